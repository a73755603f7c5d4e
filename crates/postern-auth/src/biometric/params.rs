//! The one BFV parameter set every template, probe and key uses, and the
//! constants derived from it once.
//!
//! # Choice
//!
//! - Ring degree N = 4096: 32 users x 128 dimensions fill exactly one
//!   polynomial in `turbo`; `standard` uses the same set so a template
//!   enrolled once serves both modes.
//! - Ciphertext modulus q = q0 q1 q2 with q0 = 0xffffee001, q1 = 0xffffc4001,
//!   q2 = 0x1ffffe0001 (fhe.rs's own 128-bit set for N = 4096), log2 q = 109:
//!   the Homomorphic Encryption Standard (2018, table 1, classical 128-bit,
//!   ternary secret, error sigma 3.2) allows log2 q <= 109 at N = 4096. fhe.rs
//!   samples the secret and errors from a centred binomial of variance 10,
//!   wider than ternary, which only makes the lattice problem harder.
//! - Plaintext modulus t = 2^18. Coefficient encoding does not need a prime
//!   t, and a small t leaves noise room: a full 32-lane batch of products of
//!   extreme vectors measures at 2^66 (test
//!   `the_product_noise_leaves_room_for_the_flood`), so the server can flood
//!   the result with noise up to 2^105 (2^39 times larger) before the key
//!   holder sees it and still decrypt exactly (q/2 is about 2^108).
//! - No score wraps: quantised components lie in [-31, 31], so a score is at
//!   most 128 * 31^2 = 123,008 in magnitude, below t/2 = 131,072.
//!
//! Why the extra moduli are not smaller: two moduli (log2 q = 73) hold the
//! product itself, but leave no room to flood its noise, and the noise is
//! what could tell the key holder more than the score.

use std::sync::{Arc, OnceLock};

use fhe::bfv::{BfvParameters, BfvParametersBuilder};
use fhe_math::rns::RnsContext;
use fhe_math::rq::{traits::TryConvertFrom, Context, Poly, Representation};
use ndarray::Array2;
use num_bigint::BigUint;

use super::phase::{coefficient_weights, scale};
use super::sanitise::Residues;

use super::BiometricError;

/// Components of an embedding.
pub const DIMENSIONS: usize = 128;
/// Users one `turbo` evaluation packs.
pub const LANES: usize = 32;
/// Ring degree.
pub const DEGREE: usize = 4096;
/// Plaintext modulus.
pub const PLAINTEXT_MODULUS: u64 = 1 << 18;
/// Ciphertext moduli (product: 109 bits).
pub const MODULI: [u64; 3] = [0xffffee001, 0xffffc4001, 0x1ffffe0001];
/// Bits of each modulus, which is also its packed width on the wire.
pub const MODULUS_BITS: [u32; 3] = [36, 36, 37];
/// Variance of the centred binomial secret and error distributions.
pub const VARIANCE: usize = 10;
/// The server adds t * e with |e| < 2^FLOOD_BITS to every coefficient of a
/// result before the key holder sees it.
pub const FLOOD_BITS: u32 = 87;

impl Params {
    /// x^(128 d): moves a product by `d` lanes (-31 to 31).
    pub(crate) fn shift(&self, d: isize) -> Option<&Poly> {
        let index = usize::try_from(d + LANES as isize - 1).ok()?;
        self.shifts.get(index)
    }
}

/// The coefficient of the product that holds lane `lane`'s score.
pub const fn score_position(lane: usize) -> usize {
    lane * DIMENSIONS + DIMENSIONS - 1
}

/// The parameter set and its precomputed constants.
pub struct Params {
    pub(crate) bfv: Arc<BfvParameters>,
    pub(crate) ctx: Arc<Context>,
    pub(crate) rns: RnsContext,
    pub(crate) q: BigUint,
    /// The inverse of (q mod t)^2 modulo t: undoes the factor the BFV to
    /// BGV change of scale leaves on a product (see `eval`).
    pub(crate) decode_factor: u64,
    /// t^2 as a constant polynomial (NTT, Shoup form): the key holder's
    /// factor on a result (see `sanitise`).
    pub(crate) t_squared: Poly,
    /// x^(128 d) for d in -31..=31, at index d + 31 (NTT, Shoup form); for
    /// d < 0 that is -x^(N + 128 d), since x^N = -1. Moves a product from
    /// lane h to lane h + d.
    pub(crate) shifts: Vec<Poly>,
    /// Reduction of sanitising values modulo q0, q1, q2.
    pub(crate) residues: [Residues; 3],
    /// t^2 times the weights that read lane 0's score coefficient from an
    /// NTT polynomial (`phase`): results travel divided by t^2 (`sanitise`).
    pub(crate) lane0_weights: Array2<u64>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params")
            .field("degree", &DEGREE)
            .field("plaintext_modulus", &PLAINTEXT_MODULUS)
            .field("moduli", &MODULI)
            .finish()
    }
}

fn fhe_error(e: impl std::fmt::Display) -> BiometricError {
    BiometricError::Fhe(e.to_string())
}

impl Params {
    /// The process-wide parameter set. fhe.rs requires every key, plaintext
    /// and ciphertext of one computation to share the same parameter
    /// object, so there is exactly one.
    pub fn shared() -> Result<Arc<Params>, BiometricError> {
        static SHARED: OnceLock<Arc<Params>> = OnceLock::new();
        if let Some(p) = SHARED.get() {
            return Ok(p.clone());
        }
        let built = Arc::new(Self::build()?);
        Ok(SHARED.get_or_init(|| built).clone())
    }

    fn build() -> Result<Self, BiometricError> {
        let bfv = BfvParametersBuilder::new()
            .set_degree(DEGREE)
            .set_plaintext_modulus(PLAINTEXT_MODULUS)
            .set_moduli(&MODULI)
            .set_variance(VARIANCE)
            .build_arc()
            .map_err(fhe_error)?;
        let ctx = bfv.context_at_level(0).map_err(fhe_error)?.clone();
        let rns = RnsContext::new(&MODULI).map_err(fhe_error)?;
        let q = rns.modulus().clone();
        let q_mod_t = (&q % PLAINTEXT_MODULUS)
            .to_u64_digits()
            .first()
            .copied()
            .unwrap_or(0);
        let square = u128::from(q_mod_t) * u128::from(q_mod_t) % u128::from(PLAINTEXT_MODULUS);
        let decode_factor = inverse_mod_power_of_two(square as u64, PLAINTEXT_MODULUS)
            .ok_or(BiometricError::Fhe("q mod t is not invertible".into()))?;
        let constant = |exponent: usize, value: i64| -> Result<Poly, BiometricError> {
            let mut coefficients = vec![0i64; DEGREE];
            coefficients[exponent] = value;
            let mut p = Poly::try_convert_from(
                coefficients.as_slice(),
                &ctx,
                false,
                Representation::PowerBasis,
            )
            .map_err(fhe_error)?;
            p.change_representation(Representation::NttShoup);
            Ok(p)
        };
        let t = PLAINTEXT_MODULUS as i64;
        let t_squared = constant(0, t * t)?;
        let shifts = (1..LANES)
            .rev()
            .map(|back| constant(DEGREE - back * DIMENSIONS, -1))
            .chain((0..LANES).map(|lane| constant(lane * DIMENSIONS, 1)))
            .collect::<Result<Vec<_>, _>>()?;
        let residues = [
            Residues::new(MODULI[0])?,
            Residues::new(MODULI[1])?,
            Residues::new(MODULI[2])?,
        ];
        let lane0_weights = scale(
            &ctx,
            &coefficient_weights(&ctx, score_position(0))?,
            &t_squared,
        );
        Ok(Self {
            bfv,
            ctx,
            rns,
            q,
            decode_factor,
            t_squared,
            shifts,
            residues,
            lane0_weights,
        })
    }
}

/// The inverse of an odd `a` modulo the power of two `m` (Newton iteration).
fn inverse_mod_power_of_two(a: u64, m: u64) -> Option<u64> {
    if a.is_multiple_of(2) || !m.is_power_of_two() {
        return None;
    }
    let mut x: u64 = 1;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
    }
    Some(x & (m - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decode_factor_inverts_the_square_of_q_mod_t() {
        let p = Params::shared().unwrap();
        let q_mod_t = (&p.q % PLAINTEXT_MODULUS).to_u64_digits()[0];
        let square = u128::from(q_mod_t).pow(2) % u128::from(PLAINTEXT_MODULUS);
        assert_eq!(
            square * u128::from(p.decode_factor) % u128::from(PLAINTEXT_MODULUS),
            1
        );
        assert_eq!(p.q.bits(), 109);
        for (q, bits) in MODULI.iter().zip(MODULUS_BITS) {
            assert_eq!(64 - q.leading_zeros(), bits);
        }
    }

    #[test]
    fn no_score_can_wrap() {
        let max = (DIMENSIONS as u64) * 31 * 31;
        assert!(2 * max < PLAINTEXT_MODULUS);
    }

    #[test]
    fn score_positions_are_one_per_lane() {
        assert_eq!(score_position(0), 127);
        assert_eq!(score_position(LANES - 1), DEGREE - 1);
    }
}
