//! Sealing records at rest with AES-256-GCM.
//!
//! Sealed layout: `version (1) ‖ key id (4, LE) ‖ nonce (12) ‖ ciphertext+tag`.
//! The associated data binds the format version, the key id and the record's
//! own key (its session id), so a sealed record moved to another row, or
//! relabelled with another key id or version, fails to open.
//!
//! Nonces are 96 random bits. Under one key that is safe for about 2^32
//! seals (NIST SP 800-38D §8.3); `postern keys rotate` starts a new key long
//! before that for any realistic session volume.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::{CryptoRng, RngCore};

use crate::wire::Reader;

const VERSION: u8 = 1;
const AAD_LABEL: &[u8] = b"postern/seal/v1";
/// Bytes a sealed record adds to its plaintext.
pub const OVERHEAD: usize = 1 + 4 + 12 + 16;

/// Why a sealed record could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("sealed record is truncated")]
    Truncated,
    #[error("sealed record has unknown format version {0}")]
    UnknownVersion(u8),
    #[error("sealed record names key {0}, which this keyring does not hold")]
    UnknownKey(u32),
    #[error("sealed record failed authentication (tampered or wrong key)")]
    Tampered,
}

/// Why sealing failed: only when the plaintext exceeds AES-GCM's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("record too large to seal")]
pub struct SealFailed;

/// An AES-256-GCM key with its id. Secret: redacted `Debug`.
#[derive(Clone)]
pub struct SealingKey {
    id: u32,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealingKey(id {})", self.id)
    }
}

fn aad(key_id: u32, record_key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 5 + record_key.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.push(VERSION);
    aad.extend_from_slice(&key_id.to_le_bytes());
    aad.extend_from_slice(record_key);
    aad
}

impl SealingKey {
    pub fn new(id: u32, key: &[u8; 32]) -> Self {
        Self {
            id,
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn seal<R: RngCore + CryptoRng>(
        &self,
        record_key: &[u8],
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, SealFailed> {
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let aad = aad(self.id, record_key);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealFailed)?;
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.push(VERSION);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a record sealed under this key. Attacker-controlled input.
    pub fn open(&self, record_key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let header = peek_header(sealed)?;
        if header.key_id != self.id {
            return Err(OpenError::UnknownKey(header.key_id));
        }
        let aad = aad(self.id, record_key);
        self.cipher
            .decrypt(
                Nonce::from_slice(&header.nonce),
                Payload {
                    msg: header.body,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Tampered)
    }
}

pub(crate) struct Header<'a> {
    pub(crate) key_id: u32,
    nonce: [u8; 12],
    body: &'a [u8],
}

/// Reads the clear header of a sealed record (to pick the key).
pub(crate) fn peek_header(sealed: &[u8]) -> Result<Header<'_>, OpenError> {
    let mut r = Reader::new(sealed);
    let version = r.u8().map_err(|_| OpenError::Truncated)?;
    if version != VERSION {
        return Err(OpenError::UnknownVersion(version));
    }
    let key_id = r.u32().map_err(|_| OpenError::Truncated)?;
    let nonce = r.array::<12>().map_err(|_| OpenError::Truncated)?;
    if r.remaining() < 16 {
        return Err(OpenError::Truncated);
    }
    let body = r.take(r.remaining()).map_err(|_| OpenError::Truncated)?;
    Ok(Header {
        key_id,
        nonce,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::new(7, &[1u8; 32])
    }

    #[test]
    fn a_sealed_record_opens_under_its_own_row_key() {
        let sealed = key()
            .seal(b"row-1", b"secret", &mut rand::thread_rng())
            .unwrap();
        assert_eq!(sealed.len(), OVERHEAD + 6);
        assert_eq!(key().open(b"row-1", &sealed).unwrap(), b"secret");
    }

    #[test]
    fn a_record_moved_to_another_row_is_rejected() {
        let sealed = key()
            .seal(b"row-1", b"secret", &mut rand::thread_rng())
            .unwrap();
        assert_eq!(
            key().open(b"row-2", &sealed).unwrap_err(),
            OpenError::Tampered
        );
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let sealed = key()
            .seal(b"row", b"some plaintext", &mut rand::thread_rng())
            .unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(
                key().open(b"row", &bad).is_err(),
                "flip at {i} was accepted"
            );
        }
    }

    #[test]
    fn wrong_key_version_and_truncation_are_told_apart() {
        let sealed = key().seal(b"row", b"x", &mut rand::thread_rng()).unwrap();
        let other = SealingKey::new(8, &[1u8; 32]);
        assert_eq!(
            other.open(b"row", &sealed).unwrap_err(),
            OpenError::UnknownKey(7)
        );
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert_eq!(
            key().open(b"row", &v2).unwrap_err(),
            OpenError::UnknownVersion(2)
        );
        assert_eq!(
            key().open(b"row", &sealed[..20]).unwrap_err(),
            OpenError::Truncated
        );
        assert_eq!(key().open(b"row", &[]).unwrap_err(), OpenError::Truncated);
    }
}
