//! The randomness [`Evaluator::seal`](super::Evaluator::seal) adds to a
//! result, sampled straight into RNS residues.
//!
//! # Why a module of its own
//!
//! Sanitisation is most of a `standard` evaluation's cost, and almost none
//! of that cost was arithmetic the argument needs: sampling through
//! fhe.rs's generic `i64` conversion, a second polynomial multiplied by a
//! big integer to reach 2^87, and two products by t after the NTT. Here each
//! coefficient's randomness is drawn once (three 64-bit words), turned into
//! its exact integers, and reduced modulo each of q0, q1, q2 with one
//! Barrett reduction, so each of the three polynomials costs one pass and
//! one NTT. The factors of t move to the key holder's precomputed tables
//! (free there), so the product is not scaled at all.
//!
//! # What is drawn (unchanged from the documented distributions)
//!
//! Per coefficient k, from three uniform words w0, w1, w2:
//! - u_k = popcount(w0 bits 0..20) - popcount(w0 bits 20..40) and
//!   e2_k = the same over w1: centred binomial, variance 10, in [-20, 20]
//!   (fhe.rs's own error distribution);
//! - R_k = w0 bits 40..58: uniform modulo t = 2^18 (t is a power of two),
//!   or 0 at the score coefficients of the lanes in use;
//! - E_k = (w1 bits 40..64) 2^64 + w2 - 2^87: 88 uniform bits shifted, so
//!   uniform in [-2^87, 2^87).
//!
//! The bits used for different values never overlap, so the values are
//! independent. The result carries them as t (u pk0 + R/t + E, u pk1 + e2)
//! (the factor t keeps it in BGV form; see `eval`); it travels divided by
//! t^2, so [`sample`] returns u, t^-1 e2 and t^-2 (R + t E).
//!
//! # The generator
//!
//! ChaCha8 seeded with 256 bits from the operating system for every
//! evaluation: a CSPRNG (ChaCha has no known attack beyond 7 rounds), about
//! twice as fast as the thread generator's ChaCha12, and nothing is kept
//! between evaluations.

use fhe_math::rq::{traits::TryConvertFrom, Context, Poly, Representation};
use fhe_math::zq::Modulus;
use ndarray::Array2;
use rand09::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

use super::params::{DEGREE, DIMENSIONS, FLOOD_BITS, MODULI, PLAINTEXT_MODULUS, VARIANCE};
use super::BiometricError;

/// Bits of one word that feed one centred binomial sample.
const BINOMIAL_BITS: u32 = 2 * VARIANCE as u32;
/// Bits of the plaintext mask (t = 2^18).
const MASK_BITS: u32 = PLAINTEXT_MODULUS.trailing_zeros();
/// Bits of E drawn from w1 above the binomial bits (the rest is w2).
const FLOOD_HIGH_BITS: u32 = FLOOD_BITS + 1 - 64;

// The layout above must fit: w0 holds a binomial sample and the mask, w1 a
// binomial sample and the high bits of E.
const _: () = assert!(2 * BINOMIAL_BITS + MASK_BITS <= 64);
const _: () = assert!(2 * BINOMIAL_BITS + FLOOD_HIGH_BITS == 64);
const _: () = assert!(PLAINTEXT_MODULUS.is_power_of_two());

/// One coefficient's sanitising values, as exact integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Coefficient {
    /// Re-randomiser, centred binomial.
    pub u: i64,
    /// Re-randomiser's error, centred binomial.
    pub e2: i64,
    /// R + t E (R = 0 at a score coefficient, E = 0 without flooding).
    pub mask: i128,
}

fn binomial(word: u64) -> i64 {
    let m = (1u64 << BINOMIAL_BITS) - 1;
    i64::from((word & m).count_ones()) - i64::from((word >> BINOMIAL_BITS & m).count_ones())
}

/// The values of one coefficient from its three words (see the module docs).
pub(crate) fn coefficient(words: [u64; 3], is_score: bool, flood: bool) -> Coefficient {
    let [w0, w1, w2] = words;
    let t = PLAINTEXT_MODULUS as i128;
    // Constant time in the words: the branches depend on the position and
    // the mode only.
    let r = if is_score {
        0
    } else {
        i128::from(w0 >> (2 * BINOMIAL_BITS) & (PLAINTEXT_MODULUS - 1))
    };
    let e = if flood {
        let high = i128::from(w1 >> (2 * BINOMIAL_BITS));
        (high << 64 | i128::from(w2)) - (1i128 << FLOOD_BITS)
    } else {
        0
    };
    Coefficient {
        u: binomial(w0),
        e2: binomial(w1),
        // |R + t E| <= 2^18 + 2^105: no overflow.
        mask: r + t * e,
    }
}

/// Reduces the integers a sanitiser holds modulo one ciphertext modulus,
/// in constant time, and divides them by t or t^2 (see [`sample`]).
#[derive(Debug)]
pub(crate) struct Residues {
    modulus: Modulus,
    q: u64,
    /// A multiple of q at least 2^106 > |R + t E|, so R + t E + offset is a
    /// nonnegative u128 congruent to R + t E.
    offset: u128,
    /// t^-1 and t^-2 modulo q, with their Shoup companions.
    t_inverse: (u64, u64),
    t_inverse_squared: (u64, u64),
}

impl Residues {
    pub(crate) fn new(q: u64) -> Result<Self, BiometricError> {
        let modulus = Modulus::new(q).map_err(|e| BiometricError::Fhe(e.to_string()))?;
        let offset = ((1u128 << 106) / u128::from(q) + 1) * u128::from(q);
        let t_inverse = modulus
            .inv(PLAINTEXT_MODULUS % q)
            .ok_or(BiometricError::Fhe("t is not invertible".into()))?;
        let t_inverse_squared = modulus.mul(t_inverse, t_inverse);
        Ok(Self {
            t_inverse: (t_inverse, modulus.shoup(t_inverse)),
            t_inverse_squared: (t_inverse_squared, modulus.shoup(t_inverse_squared)),
            modulus,
            q,
            offset,
        })
    }

    /// `v mod q` for |v| < 2^106.
    pub(crate) fn wide(&self, v: i128) -> u64 {
        self.modulus.reduce_u128((v + self.offset as i128) as u128)
    }

    /// `v mod q` for |v| < q: q + v is in (0, 2q), one conditional
    /// subtraction (a mask, not a branch) reduces it.
    pub(crate) fn small(&self, v: i64) -> u64 {
        let x = (self.q as i64 + v) as u64;
        let (y, borrow) = x.overflowing_sub(self.q);
        // borrow: x < q, keep x; else keep y.
        let keep_x = 0u64.wrapping_sub(u64::from(borrow));
        (x & keep_x) | (y & !keep_x)
    }

    /// `a t^-1 mod q` for a < q.
    pub(crate) fn over_t(&self, a: u64) -> u64 {
        self.modulus
            .mul_shoup(a, self.t_inverse.0, self.t_inverse.1)
    }

    /// `a t^-2 mod q` for a < q.
    pub(crate) fn over_t_squared(&self, a: u64) -> u64 {
        self.modulus
            .mul_shoup(a, self.t_inverse_squared.0, self.t_inverse_squared.1)
    }
}

/// The three NTT polynomials of one sanitisation, divided by t^2 (see
/// [`sample`]).
///
/// Not zeroized on drop: they are derived from the per-evaluation seed and
/// meaningful only to a holder of server memory, who would already hold
/// every template and probe. The seed's generator is dropped with the
/// evaluation.
pub(crate) struct Sanitiser {
    /// u
    pub u: Poly,
    /// t^-1 e2
    pub e2: Poly,
    /// t^-2 (R + t E)
    pub mask: Poly,
}

/// A fresh generator for one evaluation (see the module docs).
pub(crate) fn generator() -> ChaCha8Rng {
    ChaCha8Rng::from_os_rng()
}

/// Draws one sanitiser for a result whose first `lanes` lanes hold scores.
///
/// The server sends the key holder t^-2 times the sanitised BGV result
/// (the key holder multiplies by t^2 again, for free, in its precomputed
/// tables): so the product needs no scaling at all, and the sanitiser is
/// returned as u, t^-1 e2 and t^-2 (R + t E), to be combined with t^-1 pk
/// (see `Evaluator::seal`). A public invertible factor changes nothing the
/// key holder can learn.
pub(crate) fn sample(
    ctx: &Arc<Context>,
    residues: &[Residues; 3],
    lanes: usize,
    flood: bool,
    rng: &mut impl RngCore,
) -> Result<Sanitiser, BiometricError> {
    let mut u = Array2::<u64>::zeros((MODULI.len(), DEGREE));
    let mut e2 = Array2::<u64>::zeros((MODULI.len(), DEGREE));
    let mut mask = Array2::<u64>::zeros((MODULI.len(), DEGREE));
    let (Some(u_out), Some(e2_out), Some(mask_out)) =
        (u.as_slice_mut(), e2.as_slice_mut(), mask.as_slice_mut())
    else {
        return Err(BiometricError::Fhe("non-contiguous array".into()));
    };
    for k in 0..DEGREE {
        let is_score = k % DIMENSIONS == DIMENSIONS - 1 && k / DIMENSIONS < lanes;
        let words = [rng.next_u64(), rng.next_u64(), rng.next_u64()];
        let c = coefficient(words, is_score, flood);
        for (i, r) in residues.iter().enumerate() {
            let at = i * DEGREE + k;
            u_out[at] = r.small(c.u);
            e2_out[at] = r.over_t(r.small(c.e2));
            mask_out[at] = r.over_t_squared(r.wide(c.mask));
        }
    }
    let ntt = |a: Array2<u64>| -> Result<Poly, BiometricError> {
        let mut p = Poly::try_convert_from(a, ctx, false, Representation::PowerBasis)
            .map_err(|e| BiometricError::Fhe(e.to_string()))?;
        p.change_representation(Representation::Ntt);
        Ok(p)
    };
    Ok(Sanitiser {
        u: ntt(u)?,
        e2: ntt(e2)?,
        mask: ntt(mask)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::biometric::params::{score_position, Params, LANES};
    use num_bigint::{BigInt, BigUint};

    /// Mean and variance of `n` samples.
    fn moments(samples: &[i64]) -> (f64, f64) {
        let n = samples.len() as f64;
        let mean = samples.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = samples
            .iter()
            .map(|&x| (x as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var)
    }

    #[test]
    fn the_sampled_values_have_the_documented_ranges_and_distributions() {
        // A fixed seed: the statistics below are exact for this stream, so
        // the test cannot flake; the bounds are 5 standard errors or wider.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 200_000;
        let (mut u, mut e2, mut r, mut e_top) = (vec![], vec![], vec![], vec![]);
        let t = PLAINTEXT_MODULUS as i128;
        let (mut e_min, mut e_max) = (i128::MAX, i128::MIN);
        for _ in 0..n {
            let words = [rng.next_u64(), rng.next_u64(), rng.next_u64()];
            let c = coefficient(words, false, true);
            u.push(c.u);
            e2.push(c.e2);
            let residue = c.mask.rem_euclid(t);
            r.push(residue as i64);
            let e = (c.mask - residue) / t;
            e_min = e_min.min(e);
            e_max = e_max.max(e);
            // The top 8 bits of E + 2^87, uniform in [0, 256).
            e_top.push(((e + (1i128 << FLOOD_BITS)) >> (FLOOD_BITS - 7)) as i64);
            // Without flooding the mask is R alone; at a score it is 0.
            assert_eq!(coefficient(words, false, false).mask, residue);
            assert_eq!(coefficient(words, true, false).mask, 0);
            assert_eq!(coefficient(words, true, true).mask, e * t);
        }
        for samples in [&u, &e2] {
            assert!(samples.iter().all(|x| (-20..=20).contains(x)));
            let (mean, var) = moments(samples);
            assert!(mean.abs() < 0.04, "mean {mean}");
            assert!((var - 10.0).abs() < 0.2, "variance {var}");
        }
        // R: uniform on [0, 2^18): mean 2^17, variance t^2 / 12.
        assert!(r.iter().all(|x| (0..1 << 18).contains(x)));
        let (mean, var) = moments(&r);
        let tf = PLAINTEXT_MODULUS as f64;
        assert!((mean / tf - 0.5).abs() < 0.005, "mean {mean}");
        assert!(
            (var / (tf * tf) - 1.0 / 12.0).abs() < 0.002,
            "variance {var}"
        );
        // E: within [-2^87, 2^87) and reaching near both ends; its top bits
        // uniform.
        assert!(e_min >= -(1i128 << FLOOD_BITS) && e_max < 1i128 << FLOOD_BITS);
        assert!(e_min < -(1i128 << (FLOOD_BITS - 1)) && e_max > 1i128 << (FLOOD_BITS - 1));
        let (mean, var) = moments(&e_top);
        assert!((mean - 127.5).abs() < 1.0, "mean {mean}");
        assert!(
            (var / (256.0 * 256.0 / 12.0) - 1.0).abs() < 0.02,
            "variance {var}"
        );
        // u and e2 come from disjoint bits: uncorrelated.
        let cov = u.iter().zip(&e2).map(|(a, b)| (a * b) as f64).sum::<f64>() / n as f64;
        assert!(cov.abs() < 0.2, "covariance {cov}");
    }

    #[test]
    fn the_residues_are_those_of_the_exact_integers() {
        let params = Params::shared().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let lanes = 3;
        let s = sample(&params.ctx, &params.residues, lanes, true, &mut rng).unwrap();
        let q = BigInt::from(params.q.clone());
        let t = BigInt::from(PLAINTEXT_MODULUS);
        // Coefficient k of p times `factor`, centred modulo q.
        let lift = |p: &Poly, factor: &BigInt, k: usize| -> BigInt {
            let mut p = p.clone();
            p.change_representation(Representation::PowerBasis);
            let x = BigInt::from(params.rns.lift(p.coefficients().column(k))) * factor % &q;
            if x > &q >> 1 {
                x - &q
            } else {
                x
            }
        };
        let one = BigInt::from(1);
        let t2 = &t * &t;
        let twenty = BigUint::from(20u8);
        for k in [
            0,
            1,
            126,
            score_position(0),
            score_position(2),
            score_position(3),
            4095,
        ] {
            // u and e2 (t times t^-1 e2) in [-20, 20].
            assert!(lift(&s.u, &one, k).magnitude() <= &twenty);
            assert!(lift(&s.e2, &t, k).magnitude() <= &twenty);
            // R + t E (t^2 times the polynomial): R = 0 exactly at the
            // score coefficients in use, and |R + t E| < 2^106.
            let mask = lift(&s.mask, &t2, k);
            let r = ((&mask % &t) + &t) % &t;
            let is_score = k % DIMENSIONS == DIMENSIONS - 1 && k / DIMENSIONS < lanes;
            if is_score {
                assert_eq!(r, BigInt::from(0), "k = {k}");
            }
            assert!(mask.magnitude() < &(BigUint::from(1u8) << 106));
        }
        assert!(LANES >= lanes);
        // The reduction itself, at the extremes.
        for r in &params.residues {
            for v in [0i128, 1, -1, (1 << 105) + (1 << 18), -(1 << 105)] {
                assert_eq!(i128::from(r.wide(v)), v.rem_euclid(i128::from(r.q)));
            }
            for v in [0i64, 1, -1, 20, -20] {
                assert_eq!(
                    i128::from(r.small(v)),
                    i128::from(v).rem_euclid(i128::from(r.q))
                );
                let back = r.modulus.mul(r.over_t(r.small(v)), PLAINTEXT_MODULUS);
                assert_eq!(back, r.small(v));
                let back = r
                    .modulus
                    .mul(r.over_t_squared(r.small(v)), PLAINTEXT_MODULUS);
                assert_eq!(r.modulus.mul(back, PLAINTEXT_MODULUS), r.small(v));
            }
        }
    }
}
