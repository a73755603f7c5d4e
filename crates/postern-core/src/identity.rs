//! The identity proof: a non-interactive Schnorr proof over Ristretto255.
//!
//! The client holds an identity secret `x` with public key `P = x·G`,
//! registered at enrollment. To authenticate it proves knowledge of `x` bound
//! to a one-time server challenge, the deployment it is talking to (the
//! audience: the server's origin as the client sees it), its user id and its
//! device hash, made non-interactive by Fiat–Shamir:
//!
//! ```text
//! k ← random;  R = k·G
//! c = H("postern/identity-proof/v2" ‖ P ‖ R ‖ challenge ‖ |audience| ‖ audience
//!       ‖ |user| ‖ user ‖ device_hash)
//! s = k + c·x                         proof = R ‖ s (64 bytes)
//! verify:  s·G − c·P == R,  with s canonical and P not the identity
//! ```
//!
//! `H` is SHA-512 reduced mod ℓ (wide reduction, no bias). Binding the
//! challenge makes a proof single-use; binding the user and device makes a
//! proof stolen in transit useless for another account or device; binding
//! the audience makes a proof that a look-alike server relays (it fetched
//! the real server's challenge and handed it to the client) useless at the
//! real server, which accepts only its own audiences.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand::{CryptoRng, RngCore};
use sha2::Sha512;
use sha3::{Digest, Sha3_256};
use zeroize::Zeroize;

const DOMAIN: &[u8] = b"postern/identity-proof/v2";
/// Length of an encoded proof.
pub const PROOF_LEN: usize = 64;

/// Why a proof or public key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("identity public key is not a valid Ristretto255 point")]
    BadPublicKey,
    #[error("identity proof is malformed")]
    Malformed,
    #[error("identity proof does not verify")]
    Invalid,
}

/// An enrolled identity public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityPublicKey {
    point: RistrettoPoint,
    bytes: [u8; 32],
}

impl std::fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentityPublicKey({:02x?})", &self.bytes[..6])
    }
}

impl IdentityPublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProofError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| ProofError::BadPublicKey)?;
        let point = CompressedRistretto(bytes)
            .decompress()
            .ok_or(ProofError::BadPublicKey)?;
        if point.is_identity() {
            return Err(ProofError::BadPublicKey);
        }
        Ok(Self { point, bytes })
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// A public key whose secret nobody holds: a point hashed from a fixed
    /// label (Elligator over SHA-512), so its discrete logarithm is
    /// unknown. An unknown user is checked against it, so that a login for
    /// a name that does not exist runs the same verification, for as long,
    /// as a wrong proof for one that does (an all-zero key would fail at
    /// once, as the identity point, and tell the two apart by time).
    pub fn stand_in() -> Self {
        let mut uniform = [0u8; 64];
        uniform.copy_from_slice(&Sha512::digest(b"postern/identity/stand-in/v1"));
        let point = RistrettoPoint::from_uniform_bytes(&uniform);
        Self {
            point,
            bytes: point.compress().to_bytes(),
        }
    }

    /// A short, stable id for the credential (what sessions record, so that
    /// revoking this key can revoke every session made with it).
    pub fn credential_id(&self) -> [u8; 16] {
        let digest = Sha3_256::new()
            .chain_update(b"postern/credential/v1")
            .chain_update(self.bytes)
            .finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        id
    }
}

/// An identity secret. Redacted `Debug`, zeroed on drop.
pub struct IdentitySecret(Scalar);

impl Drop for IdentitySecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentitySecret(..)")
    }
}

impl IdentitySecret {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(Scalar::random(rng))
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        Option::from(Scalar::from_canonical_bytes(*bytes)).map(Self)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> IdentityPublicKey {
        let point = &self.0 * RISTRETTO_BASEPOINT_TABLE;
        IdentityPublicKey {
            point,
            bytes: point.compress().to_bytes(),
        }
    }

    /// Proves knowledge of this secret, bound to the statement.
    pub fn prove<R: RngCore + CryptoRng>(
        &self,
        statement: &Statement<'_>,
        rng: &mut R,
    ) -> [u8; PROOF_LEN] {
        let public = self.public_key();
        let mut k = Scalar::random(rng);
        let r = (&k * RISTRETTO_BASEPOINT_TABLE).compress();
        let c = statement.challenge_scalar(&public, &r);
        let s = k + c * self.0;
        k.zeroize();
        let mut proof = [0u8; PROOF_LEN];
        proof[..32].copy_from_slice(r.as_bytes());
        proof[32..].copy_from_slice(s.as_bytes());
        proof
    }
}

/// What a proof is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Statement<'a> {
    pub challenge: &'a [u8; 32],
    /// The deployment the proof is for: the server's origin as the client
    /// reached it, e.g. `https://auth.example.com`.
    pub audience: &'a str,
    pub user: &'a str,
    pub device_hash: &'a [u8; 32],
}

impl Statement<'_> {
    fn challenge_scalar(&self, public: &IdentityPublicKey, r: &CompressedRistretto) -> Scalar {
        let mut h = Sha512::new();
        h.update(DOMAIN);
        h.update(public.bytes);
        h.update(r.as_bytes());
        h.update(self.challenge);
        h.update((self.audience.len() as u64).to_le_bytes());
        h.update(self.audience.as_bytes());
        h.update((self.user.len() as u64).to_le_bytes());
        h.update(self.user.as_bytes());
        h.update(self.device_hash);
        Scalar::from_bytes_mod_order_wide(&h.finalize().into())
    }
}

/// Verifies a proof. Attacker-controlled input: never panics.
pub fn verify_proof(
    public: &IdentityPublicKey,
    statement: &Statement<'_>,
    proof: &[u8],
) -> Result<(), ProofError> {
    let proof: &[u8; PROOF_LEN] = proof.try_into().map_err(|_| ProofError::Malformed)?;
    let mut r_bytes = [0u8; 32];
    let mut s_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&proof[..32]);
    s_bytes.copy_from_slice(&proof[32..]);
    let r = CompressedRistretto(r_bytes);
    let s: Scalar =
        Option::from(Scalar::from_canonical_bytes(s_bytes)).ok_or(ProofError::Malformed)?;
    let c = statement.challenge_scalar(public, &r);
    let expected = RistrettoPoint::vartime_double_scalar_mul_basepoint(&(-c), &public.point, &s);
    if expected.compress() == r {
        Ok(())
    } else {
        Err(ProofError::Invalid)
    }
}

/// SHA3-256 digest of a verified proof and what it was bound to: recorded in
/// the session context and used as the key of the verified-proof cache.
pub fn proof_digest(proof: &[u8], statement: &Statement<'_>) -> [u8; 32] {
    Sha3_256::new()
        .chain_update(b"postern/proof-digest/v2")
        .chain_update(proof)
        .chain_update(statement.challenge)
        .chain_update((statement.audience.len() as u64).to_le_bytes())
        .chain_update(statement.audience.as_bytes())
        .chain_update((statement.user.len() as u64).to_le_bytes())
        .chain_update(statement.user.as_bytes())
        .chain_update(statement.device_hash)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement<'a>(
        challenge: &'a [u8; 32],
        user: &'a str,
        device: &'a [u8; 32],
    ) -> Statement<'a> {
        Statement {
            challenge,
            audience: "https://auth.example",
            user,
            device_hash: device,
        }
    }

    #[test]
    fn a_proof_made_for_one_deployment_is_refused_by_another() {
        let secret = IdentitySecret::generate(&mut rand::thread_rng());
        let relayed = Statement {
            audience: "https://auth.example.evil",
            ..statement(&[1; 32], "alice", &[2; 32])
        };
        // The client proved for the look-alike origin it was talking to.
        let proof = secret.prove(&relayed, &mut rand::thread_rng());
        assert_eq!(verify_proof(&secret.public_key(), &relayed, &proof), Ok(()));
        assert_eq!(
            verify_proof(
                &secret.public_key(),
                &statement(&[1; 32], "alice", &[2; 32]),
                &proof
            ),
            Err(ProofError::Invalid)
        );
        assert_ne!(
            proof_digest(&proof, &relayed),
            proof_digest(&proof, &statement(&[1; 32], "alice", &[2; 32]))
        );
    }

    #[test]
    fn the_stand_in_key_is_a_real_key_that_no_proof_opens_and_runs_verification_in_full() {
        let stand_in = IdentityPublicKey::stand_in();
        // A real key: it round-trips, so verification reaches the proof
        // (an all-zero key would be refused as the identity before that).
        assert_eq!(
            IdentityPublicKey::from_bytes(stand_in.as_bytes()).unwrap(),
            stand_in
        );
        assert_eq!(
            IdentityPublicKey::from_bytes(&[0; 32]),
            Err(ProofError::BadPublicKey)
        );
        assert_eq!(IdentityPublicKey::stand_in(), stand_in, "fixed");
        // No proof by anyone opens it: the whole verification runs and ends
        // in the same `Invalid` a wrong proof for a real user gets.
        let st = statement(&[1; 32], "nobody", &[2; 32]);
        for _ in 0..16 {
            let secret = IdentitySecret::generate(&mut rand::thread_rng());
            let proof = secret.prove(&st, &mut rand::thread_rng());
            assert_eq!(
                verify_proof(&stand_in, &st, &proof),
                Err(ProofError::Invalid)
            );
            assert_eq!(
                verify_proof(&secret.public_key(), &st, &proof[..63]),
                verify_proof(&stand_in, &st, &proof[..63]),
                "a malformed proof is malformed for both"
            );
        }
    }

    #[test]
    fn an_honest_proof_verifies() {
        let secret = IdentitySecret::generate(&mut rand::thread_rng());
        let st = statement(&[1; 32], "alice", &[2; 32]);
        let proof = secret.prove(&st, &mut rand::thread_rng());
        assert_eq!(verify_proof(&secret.public_key(), &st, &proof), Ok(()));
    }

    #[test]
    fn a_proof_is_bound_to_challenge_user_device_and_key() {
        let secret = IdentitySecret::generate(&mut rand::thread_rng());
        let other = IdentitySecret::generate(&mut rand::thread_rng());
        let st = statement(&[1; 32], "alice", &[2; 32]);
        let proof = secret.prove(&st, &mut rand::thread_rng());
        let pk = secret.public_key();
        assert_eq!(
            verify_proof(&pk, &statement(&[9; 32], "alice", &[2; 32]), &proof),
            Err(ProofError::Invalid)
        );
        assert_eq!(
            verify_proof(&pk, &statement(&[1; 32], "mallory", &[2; 32]), &proof),
            Err(ProofError::Invalid)
        );
        assert_eq!(
            verify_proof(&pk, &statement(&[1; 32], "alice", &[3; 32]), &proof),
            Err(ProofError::Invalid)
        );
        assert_eq!(
            verify_proof(&other.public_key(), &st, &proof),
            Err(ProofError::Invalid)
        );
    }

    #[test]
    fn malformed_proofs_and_keys_are_refused() {
        let secret = IdentitySecret::generate(&mut rand::thread_rng());
        let st = statement(&[1; 32], "alice", &[2; 32]);
        let pk = secret.public_key();
        assert_eq!(
            verify_proof(&pk, &st, &[0u8; 63]),
            Err(ProofError::Malformed)
        );
        let mut proof = secret.prove(&st, &mut rand::thread_rng());
        proof[63] = 0xFF; // s no longer canonical
        assert_eq!(verify_proof(&pk, &st, &proof), Err(ProofError::Malformed));
        assert_eq!(
            IdentityPublicKey::from_bytes(&[0u8; 32]),
            Err(ProofError::BadPublicKey)
        );
        assert_eq!(
            IdentityPublicKey::from_bytes(&[0xFFu8; 32]),
            Err(ProofError::BadPublicKey)
        );
        assert_eq!(
            IdentityPublicKey::from_bytes(&[1u8; 31]),
            Err(ProofError::BadPublicKey)
        );
    }

    #[test]
    fn every_flipped_bit_of_a_proof_is_refused() {
        let secret = IdentitySecret::generate(&mut rand::thread_rng());
        let st = statement(&[1; 32], "alice", &[2; 32]);
        let proof = secret.prove(&st, &mut rand::thread_rng());
        for i in 0..PROOF_LEN * 8 {
            let mut bad = proof;
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                verify_proof(&secret.public_key(), &st, &bad).is_err(),
                "bit {i}"
            );
        }
    }

    #[test]
    fn secrets_round_trip_and_credential_ids_are_stable() {
        let secret = IdentitySecret::generate(&mut rand::thread_rng());
        let back = IdentitySecret::from_bytes(&secret.to_bytes()).unwrap();
        assert_eq!(back.public_key(), secret.public_key());
        let pk = IdentityPublicKey::from_bytes(secret.public_key().as_bytes()).unwrap();
        assert_eq!(pk.credential_id(), secret.public_key().credential_id());
    }
}
