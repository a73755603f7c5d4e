//! From a float embedding to the small integers that are encrypted.
//!
//! The embedding is L2-normalised, so the inner product of two quantised
//! vectors approximates `QUANT_SCALE^2` times their cosine similarity. Each
//! component is scaled by `QUANT_SCALE` = 64, rounded, and clamped to
//! [-31, 31] (6-bit signed). A unit vector's components spread about
//! 1/sqrt(128) = 0.088, so the clamp at 31/64 = 0.48 (5.5 standard
//! deviations) almost never bites, and the step of 1/64 moves a cosine by
//! well under 0.01. The clamp is what bounds every score below t/2 (see
//! `params`): without it one large component could wrap the score.

use super::params::DIMENSIONS;
use super::BiometricError;

/// Scale applied to a unit-norm embedding before rounding.
pub const QUANT_SCALE: f32 = 64.0;
/// Largest magnitude of a quantised component.
pub const QUANT_MAX: i8 = 31;

/// A quantised embedding: what the client encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantised(pub [i8; DIMENSIONS]);

impl Quantised {
    /// Normalises, scales, rounds and clamps `embedding`, which must have
    /// `DIMENSIONS` finite components and a non-zero norm.
    pub fn from_embedding(embedding: &[f32]) -> Result<Self, BiometricError> {
        if embedding.len() != DIMENSIONS || embedding.iter().any(|v| !v.is_finite()) {
            return Err(BiometricError::BadEmbedding);
        }
        let norm = embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return Err(BiometricError::BadEmbedding);
        }
        let limit = f32::from(QUANT_MAX);
        let mut out = [0i8; DIMENSIONS];
        for (o, v) in out.iter_mut().zip(embedding) {
            // In [-31, 31] after the clamp, so the cast is exact.
            *o = (v / norm * QUANT_SCALE).round().clamp(-limit, limit) as i8;
        }
        Ok(Self(out))
    }

    /// Builds from components already in [-QUANT_MAX, QUANT_MAX].
    pub fn from_components(components: [i8; DIMENSIONS]) -> Result<Self, BiometricError> {
        if components
            .iter()
            .any(|c| c.unsigned_abs() > QUANT_MAX.unsigned_abs())
        {
            return Err(BiometricError::BadEmbedding);
        }
        Ok(Self(components))
    }

    /// The plaintext inner product: what the encrypted evaluation must equal.
    pub fn score(&self, other: &Quantised) -> i64 {
        self.0
            .iter()
            .zip(other.0.iter())
            .map(|(a, b)| i64::from(*a) * i64::from(*b))
            .sum()
    }
}

/// The largest score two genuine quantised unit vectors can reach: rounding
/// moves each component by at most 1/2, so a quantised vector's norm is at
/// most 64 + sqrt(128)/2 = 69.66, and by Cauchy-Schwarz a score at most
/// 69.66^2 < 4853. A larger score cannot come from a well-formed probe.
pub const MAX_GENUINE_SCORE: i64 = 4853;

/// The integer threshold matching a cosine-similarity threshold.
pub fn threshold_for_cosine(cosine: f32) -> i64 {
    (cosine * QUANT_SCALE * QUANT_SCALE).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantisation_normalises_rounds_and_clamps() {
        let mut e = [0.0f32; DIMENSIONS];
        e[0] = 3.0;
        e[1] = 4.0;
        let q = Quantised::from_embedding(&e).unwrap();
        // 0.6 * 64 = 38.4 clamps to 31; 0.8 * 64 = 51.2 clamps to 31.
        assert_eq!(&q.0[..3], &[31, 31, 0]);
        let spread: Vec<f32> = (0..DIMENSIONS)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let q = Quantised::from_embedding(&spread).unwrap();
        // 64 / sqrt(128) = 5.66 rounds to 6.
        assert!(q.0.iter().all(|c| c.abs() == 6));
        assert_eq!(q.score(&q), 128 * 36);
    }

    #[test]
    fn bad_embeddings_are_refused() {
        assert_eq!(
            Quantised::from_embedding(&[1.0; 3]),
            Err(BiometricError::BadEmbedding)
        );
        assert_eq!(
            Quantised::from_embedding(&[0.0; DIMENSIONS]),
            Err(BiometricError::BadEmbedding)
        );
        let mut e = [1.0f32; DIMENSIONS];
        e[5] = f32::NAN;
        assert_eq!(
            Quantised::from_embedding(&e),
            Err(BiometricError::BadEmbedding)
        );
        assert!(Quantised::from_components([32; DIMENSIONS]).is_err());
        assert!(Quantised::from_components([-31; DIMENSIONS]).is_ok());
    }

    #[test]
    fn no_genuine_score_exceeds_the_bound() {
        // The worst case for rounding: every component just below a half step.
        let e: Vec<f32> = (0..DIMENSIONS)
            .map(|i| if i % 3 == 0 { 0.1 } else { -0.07 })
            .collect();
        let q = Quantised::from_embedding(&e).unwrap();
        assert!(q.score(&q) <= MAX_GENUINE_SCORE);
        let norm_bound = 64.0 + (DIMENSIONS as f64).sqrt() / 2.0;
        assert!((norm_bound * norm_bound) < MAX_GENUINE_SCORE as f64);
    }

    #[test]
    fn the_cosine_threshold_is_in_score_units() {
        assert_eq!(threshold_for_cosine(1.0), 4096);
        assert_eq!(threshold_for_cosine(0.8), 3277);
    }
}
