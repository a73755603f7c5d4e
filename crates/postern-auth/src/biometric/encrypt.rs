//! The client's side: encode a quantised embedding into a polynomial and
//! encrypt it under the key holder's public key with fhe.rs (BFV).
//!
//! Coefficient encoding: a template puts component i at x^i, a probe puts
//! component i at x^(127 - i). The product of the two polynomials then holds
//! the inner product in its coefficient of x^127, with no rotation at all.
//! Lives here rather than in `postern-client` so the server's own tests and
//! benchmarks can build real ciphertexts; the client crate wraps it.

use std::sync::Arc;

use fhe::bfv::{Encoding, Plaintext, PublicKey};
use fhe_traits::{FheEncoder, FheEncrypter};

use super::params::{Params, DIMENSIONS};
use super::quantise::Quantised;
use super::wire::{decode_public_key, EncryptedVector, VectorKind};
use super::BiometricError;

/// Encrypts templates and probes under one key holder's public key.
pub struct Encryptor {
    params: Arc<Params>,
    public_key: PublicKey,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor").finish_non_exhaustive()
    }
}

impl Encryptor {
    /// From the key holder's public key bundle.
    pub fn new(public_key: &[u8]) -> Result<Self, BiometricError> {
        let params = Params::shared()?;
        let public_key = decode_public_key(&params, public_key)?;
        Ok(Self { params, public_key })
    }

    /// The wire bytes of a fresh encryption of `vector` as `kind`.
    pub fn encrypt(&self, kind: VectorKind, vector: &Quantised) -> Result<Vec<u8>, BiometricError> {
        let mut coefficients = [0i64; DIMENSIONS];
        for (i, v) in vector.0.iter().enumerate() {
            let at = match kind {
                VectorKind::Template => i,
                VectorKind::Probe => DIMENSIONS - 1 - i,
            };
            coefficients[at] = i64::from(*v);
        }
        let fhe = |e: fhe::Error| BiometricError::Fhe(e.to_string());
        let plaintext =
            Plaintext::try_encode(coefficients.as_slice(), Encoding::poly(), &self.params.bfv)
                .map_err(fhe)?;
        let ct = self
            .public_key
            .try_encrypt(&plaintext, &mut rand09::rng())
            .map_err(fhe)?;
        let (c0, c1) = match &ct[..] {
            [c0, c1] => (c0.clone(), c1.clone()),
            _ => {
                return Err(BiometricError::Fhe(
                    "fresh ciphertext of degree != 1".into(),
                ))
            }
        };
        Ok(EncryptedVector { kind, c: [c0, c1] }.encode())
    }

    pub fn encrypt_template(&self, vector: &Quantised) -> Result<Vec<u8>, BiometricError> {
        self.encrypt(VectorKind::Template, vector)
    }

    pub fn encrypt_probe(&self, vector: &Quantised) -> Result<Vec<u8>, BiometricError> {
        self.encrypt(VectorKind::Probe, vector)
    }
}
