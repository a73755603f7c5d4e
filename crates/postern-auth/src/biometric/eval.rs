//! The server's homomorphic evaluation: inner products of encrypted
//! templates and probes, one user (`standard`) or up to 32 (`turbo`) per
//! result, and the sanitisation that leaves the key holder nothing but
//! scores.
//!
//! # The product
//!
//! fhe.rs's BFV multiplication extends both operands to a larger modulus
//! and scales the product back by t/q: on this hardware that costs tens of
//! times more than the products themselves. It is avoidable: for a BFV
//! ciphertext, t * (c0 + c1 s) = t * (Delta m + e) = -[(q mod t) m]_t + t e
//! (mod q), because fhe.rs's Delta is -t^-1 mod q. That is a BGV ciphertext
//! (message in the low bits, noise a multiple of t), and BGV ciphertexts
//! multiply by a plain tensor product modulo q, with no extension and no
//! rescaling. So the server computes (c0, c1) x (d0, d1) -> (c0 d0,
//! c0 d1 + c1 d0, c1 d1) in the NTT domain (three products, Karatsuba),
//! multiplies by t^2, and the key holder decrypts c0 + c1 s + c2 s^2 with no
//! relinearisation, reduces modulo t and multiplies by (q mod t)^-2.
//! Exactness: every coefficient of the true product stays far below q/2
//! (tests measure it), so nothing is lost.
//!
//! # Packing 32 users (`turbo`)
//!
//! User j's probe is multiplied by x^(128 j) (a constant in NTT form). Its
//! product with the template then occupies coefficients 128 j .. 128 j + 254,
//! with the score at 128 j + 127: no other user's window reaches that
//! coefficient, so the 32 products simply add. Each user costs its own
//! tensor product (no ciphertext-wide rotation, no relinearisation); the
//! batch shares the t^2 scaling, the sanitisation and one decryption.
//!
//! # Sanitisation (what the key holder can learn)
//!
//! Before a result leaves the server it gets
//! - a uniform random plaintext R on every coefficient except the score
//!   coefficients of the lanes in use, so the partial products t_i p_j that
//!   a decryption would otherwise show are hidden (a one-time pad mod t);
//! - t * E with E uniform in [-2^87, 2^87]: noise flooding, so the noise of
//!   the product (which depends on the inputs) is statistically hidden;
//! - t * (u pk0, u pk1 + e2), a fresh encryption of zero, so c1 is uniform
//!   and unrelated to the client ciphertexts. c2 = t^2 a_T a_P depends only
//!   on the clients' encryption randomness, never on the embeddings.
//!
//! Given s, the key holder's whole view is then simulatable from the scores
//! alone.

use std::sync::Arc;

use fhe::bfv::Ciphertext;
use fhe_math::rq::{traits::TryConvertFrom, Poly, Representation};
use fhe_traits::{DeserializeParametrized, Serialize};
use num_bigint::BigUint;
use prost::Message;
use rand09::Rng;
use zeroize::Zeroizing;

use super::keyholder::{EncryptedScores, KeyHolder};
use super::params::{Params, DEGREE, DIMENSIONS, FLOOD_BITS, LANES, PLAINTEXT_MODULUS, VARIANCE};
use super::wire::{decode_public_key, EncryptedVector, VectorKind};
use super::BiometricError;

fn fhe_error(e: impl std::fmt::Display) -> BiometricError {
    BiometricError::Fhe(e.to_string())
}

/// The tensor product of one or more users' template and probe, not yet
/// scaled or sanitised. Products of the same batch add.
#[derive(Debug, Clone)]
pub struct Product {
    c: [Poly; 3],
}

impl Product {
    /// Adds another user's product (in its own lane) into this one.
    pub fn add(&mut self, other: &Product) {
        for (a, b) in self.c.iter_mut().zip(&other.c) {
            *a += b;
        }
    }
}

/// A template made ready for many products: its two polynomials and their
/// sum in Shoup form, so each of the three products with a probe costs
/// about half. Worth keeping for users who authenticate often (about
/// 590 KB each); building one costs about as much as a product.
#[derive(Debug, Clone)]
pub struct PreparedTemplate {
    a0: Poly,
    a1: Poly,
    sum: Poly,
}

/// Evaluates inner products under one key holder's public key.
pub struct Evaluator {
    params: Arc<Params>,
    /// The key holder's public key (NTT, Shoup form), for re-randomising.
    pk0: Poly,
    pk1: Poly,
    t_constant: Poly,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator").finish_non_exhaustive()
    }
}

impl Evaluator {
    /// From the key holder's public key bundle.
    pub fn new(public_key: &[u8]) -> Result<Self, BiometricError> {
        let params = Params::shared()?;
        let pk = decode_public_key(&params, public_key)?;
        // fhe.rs keeps the key's polynomials private; its own serialisation
        // (a seeded ciphertext) is the supported way to get them back.
        let proto = fhe::proto::bfv::PublicKey::decode(pk.to_bytes().as_slice())
            .map_err(|_| BiometricError::PublicKey)?;
        let ct = proto.c.ok_or(BiometricError::PublicKey)?.encode_to_vec();
        let ct = Ciphertext::from_bytes(&ct, &params.bfv).map_err(|_| BiometricError::PublicKey)?;
        let [pk0, pk1] = match &ct[..] {
            [a, b] => [a.clone(), b.clone()].map(|mut p| {
                p.disallow_variable_time_computations();
                p.change_representation(Representation::NttShoup);
                p
            }),
            _ => return Err(BiometricError::PublicKey),
        };
        let mut t = vec![0i64; DEGREE];
        t[0] = PLAINTEXT_MODULUS as i64;
        let mut t_constant =
            Poly::try_convert_from(t.as_slice(), &params.ctx, false, Representation::PowerBasis)
                .map_err(fhe_error)?;
        t_constant.change_representation(Representation::NttShoup);
        Ok(Self {
            params,
            pk0,
            pk1,
            t_constant,
        })
    }

    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    /// Parses an enrolled template.
    pub fn decode_template(&self, bytes: &[u8]) -> Result<EncryptedVector, BiometricError> {
        EncryptedVector::decode(&self.params, bytes, VectorKind::Template)
    }

    /// Parses a presented probe.
    pub fn decode_probe(&self, bytes: &[u8]) -> Result<EncryptedVector, BiometricError> {
        EncryptedVector::decode(&self.params, bytes, VectorKind::Probe)
    }

    /// The product of `template` and `probe`, placed in `lane`.
    pub fn product(
        &self,
        template: &EncryptedVector,
        probe: &EncryptedVector,
        lane: usize,
    ) -> Result<Product, BiometricError> {
        check_kind(template, VectorKind::Template)?;
        check_kind(probe, VectorKind::Probe)?;
        let shift = self
            .params
            .shifts
            .get(lane)
            .ok_or(BiometricError::Lane(lane))?;
        let [a0, a1] = &template.c;
        let [b0, b1] = if lane == 0 {
            probe.c.clone()
        } else {
            [&probe.c[0] * shift, &probe.c[1] * shift]
        };
        let d0 = a0 * &b0;
        let d2 = a1 * &b1;
        let mut d1 = a0 + a1;
        d1 *= &(&b0 + &b1);
        d1 -= &d0;
        d1 -= &d2;
        Ok(Product { c: [d0, d1, d2] })
    }

    /// Precomputes `template` for repeated products.
    pub fn prepare_template(
        &self,
        template: &EncryptedVector,
    ) -> Result<PreparedTemplate, BiometricError> {
        check_kind(template, VectorKind::Template)?;
        let [a0, a1] = &template.c;
        let sum = a0 + a1;
        let [a0, a1, sum] = [a0.clone(), a1.clone(), sum].map(|mut p| {
            p.change_representation(Representation::NttShoup);
            p
        });
        Ok(PreparedTemplate { a0, a1, sum })
    }

    /// [`product`](Self::product) with a prepared template, consuming the
    /// probe so the products happen in place.
    pub fn product_prepared(
        &self,
        template: &PreparedTemplate,
        probe: EncryptedVector,
        lane: usize,
    ) -> Result<Product, BiometricError> {
        check_kind(&probe, VectorKind::Probe)?;
        let shift = self
            .params
            .shifts
            .get(lane)
            .ok_or(BiometricError::Lane(lane))?;
        let [mut b0, mut b1] = probe.c;
        if lane != 0 {
            b0 *= shift;
            b1 *= shift;
        }
        let mut d1 = &b0 + &b1;
        d1 *= &template.sum;
        b0 *= &template.a0;
        b1 *= &template.a1;
        d1 -= &b0;
        d1 -= &b1;
        Ok(Product { c: [b0, d1, b1] })
    }

    /// Scales a batch's product to BGV form and sanitises it for the key
    /// holder; `lanes` is how many lanes (from 0) hold users.
    pub fn seal(&self, product: Product, lanes: usize) -> Result<EncryptedScores, BiometricError> {
        self.seal_with(product, lanes, true)
    }

    fn seal_with(
        &self,
        product: Product,
        lanes: usize,
        flood: bool,
    ) -> Result<EncryptedScores, BiometricError> {
        if lanes == 0 || lanes > LANES {
            return Err(BiometricError::Lane(lanes));
        }
        let mut rng = rand09::rng();
        let [mut c0, mut c1, mut c2] = product.c;
        for c in [&mut c0, &mut c1, &mut c2] {
            *c *= &self.params.t_squared;
        }
        let u = small(&self.params, &mut rng)?;
        let e2 = small(&self.params, &mut rng)?;
        let mut z0 = &u * &self.pk0;
        z0 *= &self.t_constant;
        let mut z1 = &u * &self.pk1;
        z1 += &e2;
        z1 *= &self.t_constant;
        c0 += &z0;
        c1 += &z1;
        c0 += &mask_and_flood(&self.params, lanes, flood, &mut rng)?;
        Ok(EncryptedScores {
            c: [c0, c1, c2],
            // lanes <= 32 was checked above.
            lanes: lanes as u8,
        })
    }

    /// `standard` mode: one user's score, end to end.
    pub fn score(
        &self,
        template: &EncryptedVector,
        probe: &EncryptedVector,
        key_holder: &dyn KeyHolder,
    ) -> Result<i64, BiometricError> {
        let sealed = self.seal(self.product(template, probe, 0)?, 1)?;
        key_holder
            .decrypt_scores(&sealed)?
            .first()
            .copied()
            .ok_or(BiometricError::KeyHolder("no score"))
    }
}

fn check_kind(vector: &EncryptedVector, expected: VectorKind) -> Result<(), BiometricError> {
    if vector.kind == expected {
        Ok(())
    } else {
        Err(BiometricError::WrongKind {
            expected,
            got: vector.kind.code(),
        })
    }
}

/// A polynomial with centred binomial coefficients of variance 10 (the
/// distribution fhe.rs uses), in NTT form: each coefficient is the
/// difference of the popcounts of two 20-bit random words.
fn small(params: &Params, rng: &mut impl Rng) -> Result<Poly, BiometricError> {
    const HALF: u32 = 2 * VARIANCE as u32;
    let mut random = Zeroizing::new(vec![0u64; DEGREE]);
    rng.fill(random.as_mut_slice());
    let mask = (1u64 << HALF) - 1;
    let coefficients: Zeroizing<Vec<i64>> = Zeroizing::new(
        random
            .iter()
            .map(|r| {
                i64::from((r & mask).count_ones()) - i64::from((r >> HALF & mask).count_ones())
            })
            .collect(),
    );
    let mut p = Poly::try_convert_from(
        coefficients.as_slice(),
        &params.ctx,
        false,
        Representation::PowerBasis,
    )
    .map_err(fhe_error)?;
    p.change_representation(Representation::Ntt);
    Ok(p)
}

/// R + t E (see the module docs) as an NTT polynomial. E is drawn as
/// e_hi 2^44 + e_lo (e_hi uniform in [-2^43, 2^43), e_lo in [0, 2^44)), which
/// is uniform in [-2^87, 2^87) and keeps every step in fast i64 reduction.
fn mask_and_flood(
    params: &Params,
    lanes: usize,
    flood: bool,
    rng: &mut impl Rng,
) -> Result<Poly, BiometricError> {
    const LOW_BITS: u32 = FLOOD_BITS - 43;
    const HIGH_BITS: u32 = 44;
    let t = PLAINTEXT_MODULUS;
    let mut random = Zeroizing::new(vec![0u64; 2 * DEGREE]);
    rng.fill(random.as_mut_slice());
    let mut low = Zeroizing::new(vec![0i64; DEGREE]);
    let mut high = Zeroizing::new(vec![0i64; DEGREE]);
    for (k, (pair, (low, high))) in random
        .chunks_exact(2)
        .zip(low.iter_mut().zip(high.iter_mut()))
        .enumerate()
    {
        let is_score = k % DIMENSIONS == DIMENSIONS - 1 && k / DIMENSIONS < lanes;
        // t is a power of two: the low 18 bits are uniform modulo t.
        let r = if is_score {
            0
        } else {
            (pair[0] & (t - 1)) as i64
        };
        if flood {
            let e_low = (pair[0] >> (64 - LOW_BITS)) as i64;
            // r + t e_low < 2^18 + 2^62: no overflow.
            *low = r + t as i64 * e_low;
            *high = (pair[1] >> (64 - HIGH_BITS)) as i64 - (1i64 << (HIGH_BITS - 1));
        } else {
            *low = r;
        }
    }
    let ctx = &params.ctx;
    let mut p = Poly::try_convert_from(low.as_slice(), ctx, false, Representation::PowerBasis)
        .map_err(fhe_error)?;
    if flood {
        let mut h = Poly::try_convert_from(high.as_slice(), ctx, false, Representation::PowerBasis)
            .map_err(fhe_error)?;
        h *= &(BigUint::from(t) << LOW_BITS);
        p += &h;
    }
    p.change_representation(Representation::Ntt);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::biometric::encrypt::Encryptor;
    use crate::biometric::keyholder::LocalKeyHolder;
    use crate::biometric::quantise::{Quantised, QUANT_MAX};

    fn random_vector(rng: &mut impl Rng) -> Quantised {
        let mut v = [0i8; DIMENSIONS];
        for c in &mut v {
            *c = rng.random_range(-QUANT_MAX..=QUANT_MAX);
        }
        Quantised(v)
    }

    fn setup() -> (LocalKeyHolder, Evaluator, Encryptor) {
        let kh = LocalKeyHolder::generate().unwrap();
        let ev = Evaluator::new(kh.public_key()).unwrap();
        let enc = Encryptor::new(kh.public_key()).unwrap();
        (kh, ev, enc)
    }

    #[test]
    fn the_encrypted_score_equals_the_plaintext_score() {
        let (kh, ev, enc) = setup();
        let mut rng = rand09::rng();
        for _ in 0..4 {
            let (a, b) = (random_vector(&mut rng), random_vector(&mut rng));
            let t = ev
                .decode_template(&enc.encrypt_template(&a).unwrap())
                .unwrap();
            let p = ev.decode_probe(&enc.encrypt_probe(&b).unwrap()).unwrap();
            assert_eq!(ev.score(&t, &p, &kh).unwrap(), a.score(&b));
        }
        // The extremes: the largest score in both signs.
        let max = Quantised([QUANT_MAX; DIMENSIONS]);
        let min = Quantised([-QUANT_MAX; DIMENSIONS]);
        let t = ev
            .decode_template(&enc.encrypt_template(&max).unwrap())
            .unwrap();
        for (probe, expected) in [(max, 123_008), (min, -123_008)] {
            let p = ev
                .decode_probe(&enc.encrypt_probe(&probe).unwrap())
                .unwrap();
            assert_eq!(ev.score(&t, &p, &kh).unwrap(), expected);
        }
    }

    #[test]
    fn thirty_two_lanes_add_without_touching_each_other() {
        let (kh, ev, enc) = setup();
        let mut rng = rand09::rng();
        let mut acc: Option<Product> = None;
        let mut expected = Vec::new();
        for lane in 0..LANES {
            let (a, b) = (random_vector(&mut rng), random_vector(&mut rng));
            expected.push(a.score(&b));
            let t = ev
                .decode_template(&enc.encrypt_template(&a).unwrap())
                .unwrap();
            let p = ev.decode_probe(&enc.encrypt_probe(&b).unwrap()).unwrap();
            let product = ev.product(&t, &p, lane).unwrap();
            match &mut acc {
                Some(acc) => acc.add(&product),
                None => acc = Some(product),
            }
        }
        let sealed = ev.seal(acc.unwrap(), LANES).unwrap();
        assert_eq!(kh.decrypt_scores(&sealed).unwrap(), expected);
        // Prepared templates give the same products.
        let a = random_vector(&mut rng);
        let b = random_vector(&mut rng);
        let t = ev
            .decode_template(&enc.encrypt_template(&a).unwrap())
            .unwrap();
        let p = ev.decode_probe(&enc.encrypt_probe(&b).unwrap()).unwrap();
        let prepared = ev.prepare_template(&t).unwrap();
        for lane in [0, 7] {
            let plain = ev.product(&t, &p, lane).unwrap();
            let fast = ev.product_prepared(&prepared, p.clone(), lane).unwrap();
            assert_eq!(plain.c, fast.c);
        }
        assert!(ev.prepare_template(&p).is_err());
        assert!(ev
            .product(
                &ev.decode_template(&enc.encrypt_template(&random_vector(&mut rng)).unwrap())
                    .unwrap(),
                &ev.decode_probe(&enc.encrypt_probe(&random_vector(&mut rng)).unwrap())
                    .unwrap(),
                LANES
            )
            .is_err());
    }

    #[test]
    fn the_product_noise_leaves_room_for_the_flood() {
        let (kh, ev, enc) = setup();
        let max = Quantised([QUANT_MAX; DIMENSIONS]);
        let t = ev
            .decode_template(&enc.encrypt_template(&max).unwrap())
            .unwrap();
        let p = ev.decode_probe(&enc.encrypt_probe(&max).unwrap()).unwrap();
        let mut acc = ev.product(&t, &p, 0).unwrap();
        for lane in 1..LANES {
            acc.add(&ev.product(&t, &p, lane).unwrap());
        }
        let bare = kh.phase_bits(&ev.seal_with(acc.clone(), LANES, false).unwrap());
        let flooded = kh.phase_bits(&ev.seal_with(acc, LANES, true).unwrap());
        eprintln!("phase without flooding: 2^{bare}, with: 2^{flooded}");
        // The flood dominates the product's own noise by 2^30 or more and
        // stays below q/2 = 2^108.
        assert!(bare + 30 <= u64::from(FLOOD_BITS) + 18, "noise 2^{bare}");
        assert!(flooded < 108);
    }

    #[test]
    fn decrypting_the_whole_result_shows_only_scores_and_noise() {
        let (kh, ev, enc) = setup();
        let mut rng = rand09::rng();
        let (a, b) = (random_vector(&mut rng), random_vector(&mut rng));
        let t = ev
            .decode_template(&enc.encrypt_template(&a).unwrap())
            .unwrap();
        let p = ev.decode_probe(&enc.encrypt_probe(&b).unwrap()).unwrap();
        let product = ev.product(&t, &p, 0).unwrap();
        // Two sanitisations of the same product differ everywhere but at the
        // score: the rest is fresh randomness, not a function of a and b.
        let one = ev.seal(product.clone(), 1).unwrap();
        let two = ev.seal(product, 1).unwrap();
        assert_eq!(
            kh.decrypt_scores(&one).unwrap(),
            kh.decrypt_scores(&two).unwrap()
        );
        assert_ne!(one.c[0], two.c[0]);
        assert_ne!(one.c[1], two.c[1]);
    }

    #[test]
    fn results_round_trip_for_a_remote_key_holder_and_garbage_is_refused() {
        let (kh, ev, enc) = setup();
        let mut rng = rand09::rng();
        let (a, b) = (random_vector(&mut rng), random_vector(&mut rng));
        let t = ev
            .decode_template(&enc.encrypt_template(&a).unwrap())
            .unwrap();
        let p = ev.decode_probe(&enc.encrypt_probe(&b).unwrap()).unwrap();
        let sealed = ev.seal(ev.product(&t, &p, 0).unwrap(), 1).unwrap();
        let bytes = sealed.to_bytes();
        let back = EncryptedScores::from_bytes(ev.params(), &bytes).unwrap();
        assert_eq!(kh.decrypt_scores(&back).unwrap(), vec![a.score(&b)]);
        assert!(EncryptedScores::from_bytes(ev.params(), &bytes[..100]).is_err());
        let mut zero_lanes = bytes.clone();
        zero_lanes[0] = 0;
        assert_eq!(
            EncryptedScores::from_bytes(ev.params(), &zero_lanes).unwrap_err(),
            BiometricError::Lane(0)
        );
    }
}
