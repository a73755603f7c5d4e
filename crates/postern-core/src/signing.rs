//! ML-DSA-65 (FIPS 204) signing of session contexts.
//!
//! The implementation is `libcrux-ml-dsa` with its AVX2 path, chosen by
//! `benches/mldsa.rs`, which measures it beside RustCrypto's `ml-dsa` in the
//! same run (figures in BENCHMARKS.md). Keys are derived deterministically from
//! a 32-byte seed (FIPS 204 `ML-DSA.KeyGen_internal`), so a key generation
//! stores only the seed. Every signature uses the FIPS 204 context string
//! [`CONTEXT`] for domain separation.

use libcrux_ml_dsa::ml_dsa_65::{self, MLDSA65KeyPair, MLDSA65Signature, MLDSA65VerificationKey};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroize;

/// Length of an ML-DSA-65 signature.
pub const SIGNATURE_LEN: usize = 3309;
/// Length of an ML-DSA-65 verification key.
pub const VERIFICATION_KEY_LEN: usize = 1952;
/// FIPS 204 context string for session contexts.
pub const CONTEXT: &[u8] = b"postern/session-context/v1";

/// Why signing failed (libcrux reports a rejection-sampling exhaustion or a
/// context that is too long; neither happens with our fixed context).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ML-DSA-65 signing failed")]
pub struct SigningFailed;

/// An ML-DSA-65 key pair. Secret: redacted `Debug`, seed zeroed on drop.
pub struct SigningKey {
    seed: [u8; 32],
    pair: MLDSA65KeyPair,
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.seed.zeroize();
        self.pair.signing_key.as_mut_slice().zeroize();
    }
}

// The drop above zeroes the seed and the signing key (the verification key
// is public).
impl zeroize::ZeroizeOnDrop for SigningKey {}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let pair = ml_dsa_65::generate_key_pair(seed);
        Self { seed, pair }
    }

    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.pair.verification_key.clone())
    }

    /// Hedged signing under [`CONTEXT`]: fresh randomness per signature, as
    /// FIPS 204 recommends.
    pub fn sign<R: RngCore + CryptoRng>(
        &self,
        message: &[u8],
        rng: &mut R,
    ) -> Result<[u8; SIGNATURE_LEN], SigningFailed> {
        self.sign_in_context(message, CONTEXT, rng)
    }

    /// Hedged signing under another FIPS 204 context string (at most 255
    /// bytes): JOSE's ML-DSA (RFC 9964) signs with the empty one.
    pub fn sign_in_context<R: RngCore + CryptoRng>(
        &self,
        message: &[u8],
        context: &[u8],
        rng: &mut R,
    ) -> Result<[u8; SIGNATURE_LEN], SigningFailed> {
        let mut randomness = [0u8; 32];
        rng.fill_bytes(&mut randomness);
        let sig = ml_dsa_65::sign(&self.pair.signing_key, message, context, randomness)
            .map_err(|_| SigningFailed)?;
        randomness.zeroize();
        Ok(*sig.as_ref())
    }
}

/// An ML-DSA-65 verification key.
#[derive(Clone)]
pub struct VerifyingKey(MLDSA65VerificationKey);

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyingKey(ML-DSA-65)")
    }
}

impl VerifyingKey {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// Verifies `signature` over `message` under [`CONTEXT`].
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        self.verify_in_context(message, CONTEXT, signature)
    }

    /// Verifies `signature` over `message` under `context`.
    pub fn verify_in_context(
        &self,
        message: &[u8],
        context: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> bool {
        let sig = MLDSA65Signature::new(*signature);
        ml_dsa_65::verify(&self.0, message, context, &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ml_dsa_signing_key_zeroizes_on_drop() {
        fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        assert_zeroize_on_drop::<SigningKey>();
    }

    #[test]
    fn a_signature_verifies_and_a_changed_message_does_not() {
        let key = SigningKey::from_seed([3u8; 32]);
        let sig = key.sign(b"hello", &mut rand::thread_rng()).unwrap();
        let vk = key.verifying_key();
        assert!(vk.verify(b"hello", &sig));
        assert!(!vk.verify(b"hellp", &sig));
        let mut bad = sig;
        bad[100] ^= 1;
        assert!(!vk.verify(b"hello", &bad));
    }

    #[test]
    fn a_signature_verifies_only_in_its_own_context() {
        let key = SigningKey::from_seed([4u8; 32]);
        let vk = key.verifying_key();
        let jose = key
            .sign_in_context(b"h.p", b"", &mut rand::thread_rng())
            .unwrap();
        assert!(vk.verify_in_context(b"h.p", b"", &jose));
        assert!(!vk.verify(b"h.p", &jose));
        let ours = key.sign(b"h.p", &mut rand::thread_rng()).unwrap();
        assert!(!vk.verify_in_context(b"h.p", b"", &ours));
    }

    #[test]
    fn keys_are_derived_from_the_seed() {
        let a = SigningKey::from_seed([9u8; 32]);
        let b = SigningKey::from_seed([9u8; 32]);
        assert_eq!(a.verifying_key().as_bytes(), b.verifying_key().as_bytes());
        assert_eq!(a.verifying_key().as_bytes().len(), VERIFICATION_KEY_LEN);
        let c = SigningKey::from_seed([10u8; 32]);
        assert_ne!(a.verifying_key().as_bytes(), c.verifying_key().as_bytes());
    }
}
