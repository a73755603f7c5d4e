//! The client side of the encrypted biometric match.
//!
//! The client quantises its embedding (L2-normalise, scale by 64, round,
//! clamp to [-31, 31]) and encrypts it under the key holder's BFV public
//! key: once as a template at enrollment, then as a probe at each full
//! authentication. It sends the bytes as they come back from here.
//!
//! # Wire format (see `postern_auth::biometric::wire`)
//!
//! Exactly 111,618 bytes: `[1, kind]` (kind 1 = template, 2 = probe), then
//! the two ciphertext polynomials, each as three rows of 4096 NTT-domain
//! residues bit-packed at 36, 36 and 37 bits, little-endian. A template
//! holds component i at x^i, a probe at x^(127 - i).
//!
//! In `turbo` the server places each probe in its batch lane itself (a
//! multiplication by x^(128 lane), nearly free on its side), so the client
//! encrypts the same way in both modes and needs no lane.
//!
//! [`TestPerson`] generates deterministic embeddings (a seeded person and
//! noisy captures of them) for tests and benchmarks.

use postern_auth::biometric::{BiometricError, Encryptor, Quantised, DIMENSIONS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Encrypts this client's templates and probes.
#[derive(Debug)]
pub struct BiometricClient {
    encryptor: Encryptor,
}

impl BiometricClient {
    /// From the key holder's public key bundle (served by the server).
    pub fn new(public_key: &[u8]) -> Result<Self, BiometricError> {
        Ok(Self {
            encryptor: Encryptor::new(public_key)?,
        })
    }

    /// The encrypted template to enroll.
    pub fn template(&self, embedding: &[f32]) -> Result<Vec<u8>, BiometricError> {
        self.encryptor
            .encrypt_template(&Quantised::from_embedding(embedding)?)
    }

    /// The encrypted probe for one full authentication.
    pub fn probe(&self, embedding: &[f32]) -> Result<Vec<u8>, BiometricError> {
        self.encryptor
            .encrypt_probe(&Quantised::from_embedding(embedding)?)
    }
}

/// A synthetic person: a seeded random unit direction in 128 dimensions.
/// Two people's embeddings are nearly orthogonal (cosine about 0 +- 0.09);
/// a capture with noise `n` has cosine about 1/sqrt(1 + n^2) to the person.
#[derive(Debug, Clone, PartialEq)]
pub struct TestPerson {
    base: Vec<f32>,
}

impl TestPerson {
    pub fn new(seed: u64) -> Self {
        Self {
            base: unit_gaussian(&mut StdRng::seed_from_u64(seed)),
        }
    }

    /// The person's reference embedding (unit norm).
    pub fn embedding(&self) -> Vec<f32> {
        self.base.clone()
    }

    /// A capture: the reference plus a random direction of length `noise`.
    pub fn capture(&self, noise: f32, seed: u64) -> Vec<f32> {
        let direction = unit_gaussian(&mut StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15));
        self.base
            .iter()
            .zip(direction)
            .map(|(b, d)| b + noise * d)
            .collect()
    }
}

fn unit_gaussian(rng: &mut StdRng) -> Vec<f32> {
    // Box-Muller; the 1e-12 floor keeps ln away from zero.
    let v: Vec<f32> = (0..DIMENSIONS)
        .map(|_| {
            let u1: f64 = rng.gen::<f64>().max(1e-12);
            let u2: f64 = rng.gen();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (n(a) * n(b))
    }

    #[test]
    fn people_are_deterministic_distinct_and_captures_stay_close() {
        let alice = TestPerson::new(1);
        assert_eq!(alice, TestPerson::new(1));
        assert_eq!(alice.capture(0.3, 5), alice.capture(0.3, 5));
        assert_ne!(alice.capture(0.3, 5), alice.capture(0.3, 6));
        assert!(cosine(&alice.embedding(), &alice.capture(0.3, 5)) > 0.9);
        for seed in 2..20 {
            let other = TestPerson::new(seed);
            assert!(cosine(&alice.embedding(), &other.embedding()).abs() < 0.4);
        }
    }

    #[test]
    fn quantised_scores_track_the_cosine() {
        let alice = TestPerson::new(1);
        let a = Quantised::from_embedding(&alice.embedding()).unwrap();
        let a2 = Quantised::from_embedding(&alice.capture(0.3, 9)).unwrap();
        let b = Quantised::from_embedding(&TestPerson::new(2).embedding()).unwrap();
        let same = a.score(&a2) as f32 / 4096.0;
        let expected = cosine(&alice.embedding(), &alice.capture(0.3, 9));
        assert!((same - expected).abs() < 0.03, "{same} vs {expected}");
        assert!(a.score(&b) < postern_auth::biometric::threshold_for_cosine(0.8));
    }
}
