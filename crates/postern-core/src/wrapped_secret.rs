//! One long-lived secret wrapped to the instance's ML-KEM-768 key, for keys
//! that must not rotate with the keyring: the biometric key holder's seed,
//! under which every enrolled template is encrypted.
//!
//! Layout: `"PKWS" ‖ version (1) ‖ label length (1) ‖ label ‖
//! SHA3-256(instance public key) ‖ ML-KEM ciphertext (1088) ‖ nonce (12) ‖
//! AES-256-GCM(32-byte secret) (48)`. The label (what the secret is for) is
//! bound into the key-encryption key and the associated data, so a wrapped
//! secret cannot be passed off as another one.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext};
use rand::{CryptoRng, RngCore};
use sha3::{Digest, Sha3_256};
use zeroize::{Zeroize, Zeroizing};

use crate::keyring::{InstanceKey, InstancePublicKey};
use crate::wire::Reader;

const MAGIC: &[u8; 4] = b"PKWS";
const VERSION: u8 = 1;
const KEM_CT_LEN: usize = 1088;

/// Why a wrapped secret could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WrappedSecretError {
    #[error("wrapped secret is truncated or has trailing bytes")]
    Framing,
    #[error("not a Postern wrapped secret (or an unknown version)")]
    BadMagic,
    #[error("the wrapped secret is for another purpose")]
    WrongLabel,
    #[error("the secret is wrapped to a different instance key")]
    WrongInstanceKey,
    #[error("the wrapped secret does not decrypt (tampered, or wrong instance key)")]
    Tampered,
}

fn kek(shared: &[u8], label: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut h = Sha3_256::new();
    h.update(b"postern/wrapped-secret/kek/v1");
    h.update(shared);
    h.update((label.len() as u64).to_le_bytes());
    h.update(label);
    Zeroizing::new(h.finalize().into())
}

/// Wraps `secret` to `instance` under `label` (at most 255 bytes).
pub fn wrap<R: RngCore + CryptoRng>(
    label: &str,
    secret: &[u8; 32],
    instance: &InstancePublicKey,
    rng: &mut R,
) -> Vec<u8> {
    let label = &label.as_bytes()[..label.len().min(255)];
    let mut out = Vec::with_capacity(6 + label.len() + 32 + KEM_CT_LEN + 12 + 48);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(label.len() as u8);
    out.extend_from_slice(label);
    out.extend_from_slice(&instance.fingerprint());
    let mut randomness = [0u8; 32];
    rng.fill_bytes(&mut randomness);
    let (ct, shared) = mlkem768::encapsulate(instance.inner(), randomness);
    let shared = Zeroizing::new(shared);
    randomness.zeroize();
    let kek = kek(shared.as_slice(), label);
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let aad = out.clone();
    // Encrypting 32 bytes cannot exceed AES-GCM's length limit.
    let wrapped = Aes256Gcm::new((&*kek).into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    out.extend_from_slice(ct.as_slice());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&wrapped);
    out
}

/// Unwraps a secret wrapped by [`wrap`] with the same `label`. The input
/// may be tampered; every failure is typed.
pub fn unwrap(
    label: &str,
    bytes: &[u8],
    instance: &InstanceKey,
) -> Result<Zeroizing<[u8; 32]>, WrappedSecretError> {
    let framing = |_| WrappedSecretError::Framing;
    let mut r = Reader::new(bytes);
    if r.take(4).map_err(framing)? != MAGIC || r.u8().map_err(framing)? != VERSION {
        return Err(WrappedSecretError::BadMagic);
    }
    let label_len = usize::from(r.u8().map_err(framing)?);
    if r.take(label_len).map_err(framing)? != label.as_bytes() {
        return Err(WrappedSecretError::WrongLabel);
    }
    let fingerprint: [u8; 32] = r.array().map_err(framing)?;
    if fingerprint != instance.fingerprint() {
        return Err(WrappedSecretError::WrongInstanceKey);
    }
    let aad_len = r.position();
    let ct: [u8; KEM_CT_LEN] = r.array().map_err(framing)?;
    let nonce: [u8; 12] = r.array().map_err(framing)?;
    let wrapped = r.take(48).map_err(framing)?;
    if r.remaining() != 0 {
        return Err(WrappedSecretError::Framing);
    }
    let shared = instance.decapsulate(&MlKem768Ciphertext::from(ct));
    let kek = kek(shared.as_slice(), label.as_bytes());
    let plain = Zeroizing::new(
        Aes256Gcm::new((&*kek).into())
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: wrapped,
                    aad: &bytes[..aad_len],
                },
            )
            .map_err(|_| WrappedSecretError::Tampered)?,
    );
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(&plain);
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(byte: u8) -> InstanceKey {
        InstanceKey::from_seed(&[byte; 64])
    }

    #[test]
    fn a_secret_round_trips_and_only_its_instance_and_label_open_it() {
        let inst = instance(1);
        let wrapped = wrap(
            "biometric/bfv",
            &[7; 32],
            &inst.public_key(),
            &mut rand::thread_rng(),
        );
        assert_eq!(*unwrap("biometric/bfv", &wrapped, &inst).unwrap(), [7; 32]);
        assert!(!wrapped.windows(32).any(|w| w == [7; 32]));
        assert_eq!(
            unwrap("biometric/bfv", &wrapped, &instance(2)).unwrap_err(),
            WrappedSecretError::WrongInstanceKey
        );
        assert_eq!(
            unwrap("other", &wrapped, &inst).unwrap_err(),
            WrappedSecretError::WrongLabel
        );
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let inst = instance(1);
        let wrapped = wrap("l", &[9; 32], &inst.public_key(), &mut rand::thread_rng());
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 1;
            assert!(unwrap("l", &bad, &inst).is_err(), "flip at {i}");
        }
        for len in 0..wrapped.len() {
            assert!(unwrap("l", &wrapped[..len], &inst).is_err(), "length {len}");
        }
        let mut longer = wrapped.clone();
        longer.push(0);
        assert_eq!(
            unwrap("l", &longer, &inst).unwrap_err(),
            WrappedSecretError::Framing
        );
    }
}
