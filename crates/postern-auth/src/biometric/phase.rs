//! One coefficient of a decryption, read without the inverse NTT.
//!
//! # Why
//!
//! A `standard` result holds one score, at coefficient 127. Decrypting it
//! through the inverse NTT computes all 4,096 coefficients (three residues
//! each) to read one, and that transform was most of the key holder's
//! time. One coefficient of a polynomial is a dot product with its NTT
//! form, so the key holder reads lane 0's score with 3 x 4,096
//! multiply-adds per modulus and no transform.
//!
//! # The identity
//!
//! NTT slot i of a polynomial a holds a(w_i), where the w_i run over the
//! N primitive 2N-th roots of unity modulo q_j (in fhe-math's slot order,
//! which is read off the NTT of the polynomial x rather than assumed). For
//! 0 <= m, k < N, sum_i w_i^(m - k) is N when m = k and 0 otherwise (the
//! w_i are psi zeta^i for a primitive 2N-th root psi and zeta = psi^2,
//! and sum_i zeta^(i d) = 0 for 0 < |d| < N, with psi^d != 0). So
//! a_k = N^-1 sum_i a(w_i) w_i^-k. Test: it agrees with the inverse NTT
//! on random polynomials.
//!
//! For a degree-2 result the phase is c0 + c1 s + c2 s^2, so its
//! coefficient k is sum_i (c0_i W_i + c1_i (s W)_i + c2_i (s^2 W)_i) with
//! W_i = N^-1 w_i^-k: the key holder keeps s W and s^2 W for k = 127.

use fhe_math::rq::{traits::TryConvertFrom, Context, Poly, Representation};
use fhe_math::zq::Modulus;
use ndarray::{Array1, Array2};
use std::sync::Arc;

use super::params::DEGREE;
use super::BiometricError;

fn fhe_error(e: impl std::fmt::Display) -> BiometricError {
    BiometricError::Fhe(e.to_string())
}

/// N^-1 w_i^-k for each modulus (row) and NTT slot i (column).
pub(crate) fn coefficient_weights(
    ctx: &Arc<Context>,
    k: usize,
) -> Result<Array2<u64>, BiometricError> {
    let mut x = vec![0u64; DEGREE];
    x[1] = 1;
    let mut roots = Poly::try_convert_from(x.as_slice(), ctx, false, Representation::PowerBasis)
        .map_err(fhe_error)?;
    roots.change_representation(Representation::Ntt);
    let mut weights = roots.coefficients().to_owned();
    // w^-k = w^(2N - k), since w^(2N) = 1.
    let exponent = (2 * DEGREE - k % (2 * DEGREE)) as u64;
    for (mut row, q) in weights.outer_iter_mut().zip(ctx.moduli_operators()) {
        let n_inverse = q
            .inv(DEGREE as u64 % **q)
            .ok_or(BiometricError::Fhe("N is not invertible".into()))?;
        for w in row.iter_mut() {
            *w = q.mul(n_inverse, q.pow(*w, exponent));
        }
    }
    Ok(weights)
}

/// `weights` times `factor` slot by slot (`factor` in NTT form).
pub(crate) fn scale(ctx: &Arc<Context>, weights: &Array2<u64>, factor: &Poly) -> Array2<u64> {
    let mut out = weights.clone();
    for ((mut row, f), q) in out
        .outer_iter_mut()
        .zip(factor.coefficients().outer_iter())
        .zip(ctx.moduli_operators())
    {
        for (w, f) in row.iter_mut().zip(f.iter()) {
            *w = q.mul(*w, *f);
        }
    }
    out
}

/// The residues of sum_j <terms_j.0, terms_j.1> (slot-wise products summed
/// over slots and terms), one per modulus; constant time.
pub(crate) fn dot(
    moduli: &[Modulus],
    terms: &[(&Poly, &Array2<u64>)],
) -> Result<Array1<u64>, BiometricError> {
    let mut out = Array1::<u64>::zeros(moduli.len());
    for (j, (slot, q)) in out.iter_mut().zip(moduli).enumerate() {
        // Each product is below 2^74 (residues below 2^37) and there are at
        // most 3 x 4,096 = 2^13.6 of them: the sum stays below 2^88.
        let mut acc: u128 = 0;
        for (poly, weights) in terms {
            let coefficients = poly.coefficients();
            let (Some(a), Some(w)) = (coefficients.row(j).to_slice(), weights.row(j).to_slice())
            else {
                return Err(BiometricError::Fhe("non-contiguous coefficients".into()));
            };
            for (a, w) in a.iter().zip(w) {
                acc += u128::from(*a) * u128::from(*w);
            }
        }
        *slot = q.reduce_u128(acc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::biometric::params::Params;

    #[test]
    fn a_dot_product_with_the_weights_reads_one_coefficient() {
        let params = Params::shared().unwrap();
        let ctx = &params.ctx;
        let mut rng = rand09::rng();
        let a = Poly::random(ctx, Representation::Ntt, &mut rng);
        let b = Poly::random(ctx, Representation::Ntt, &mut rng);
        let mut power = &a + &b;
        power.change_representation(Representation::PowerBasis);
        for k in [0, 1, 127, 128 * 5 + 127, DEGREE - 1] {
            let w = coefficient_weights(ctx, k).unwrap();
            let got = dot(ctx.moduli_operators(), &[(&a, &w), (&b, &w)]).unwrap();
            assert_eq!(got, power.coefficients().column(k).to_owned(), "k = {k}");
        }
        // Scaled weights multiply by the factor first.
        let w = coefficient_weights(ctx, 127).unwrap();
        let scaled = scale(ctx, &w, &b);
        let mut product = &a * &b;
        product.change_representation(Representation::PowerBasis);
        assert_eq!(
            dot(ctx.moduli_operators(), &[(&a, &scaled)]).unwrap(),
            product.coefficients().column(127).to_owned()
        );
    }
}
