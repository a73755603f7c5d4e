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
//! c0 d1 + c1 d0, c1 d1) in the NTT domain (three products, Karatsuba);
//! the key holder decrypts c0 + c1 s + c2 s^2 with no relinearisation,
//! multiplies by t^2 (the BGV factor of both operands; it is folded into
//! the key holder's precomputed tables, so nobody spends a product on it),
//! reduces modulo t and multiplies by (q mod t)^-2.
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
//! batch shares the sanitisation and one decryption. A template prepared at
//! a home lane h already carries x^(128 h), so a product in lane h needs no
//! shift (three products instead of five); in another lane j it is moved by
//! x^(128 (j - h)), which for j < h is -x^(N + 128 (j - h)). A batch's
//! result holds lanes 0 to its highest taken lane; a lane nobody took
//! decrypts to 0.
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
//! The server sends all of this divided by t^2 (a public invertible factor
//! the key holder removes; see `sanitise`), which is what lets the product
//! go unscaled.
//!
//! Given s, the key holder's whole view is then simulatable from the scores
//! alone.

use std::sync::Arc;

use fhe::bfv::Ciphertext;
use fhe_math::rq::{Poly, Representation};
use fhe_traits::{DeserializeParametrized, Serialize};
use num_bigint::BigUint;
use prost::Message;

use super::keyholder::{EncryptedScores, KeyHolder};
use super::params::{Params, LANES, PLAINTEXT_MODULUS};
use super::sanitise;
use super::wire::{decode_public_key, EncryptedVector, VectorKind};
use super::BiometricError;

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
///
/// A template may be prepared already moved to a *home lane* (`turbo`):
/// a product in that lane then needs no shift at all, which saves two of
/// the five products of a lane product.
#[derive(Debug, Clone)]
pub struct PreparedTemplate {
    a0: Poly,
    a1: Poly,
    sum: Poly,
    home: usize,
}

impl PreparedTemplate {
    /// The lane its products cost least in.
    pub fn home(&self) -> usize {
        self.home
    }
}

/// Evaluates inner products under one key holder's public key.
pub struct Evaluator {
    params: Arc<Params>,
    /// The key holder's public key times t^-1 (NTT, Shoup form), for
    /// re-randomising (see `sanitise`).
    pk0: Poly,
    pk1: Poly,
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
        let t_inverse = t_inverse(&params);
        let [pk0, pk1] = match &ct[..] {
            [a, b] => [a.clone(), b.clone()].map(|mut p| {
                p.disallow_variable_time_computations();
                p *= &t_inverse;
                p.change_representation(Representation::NttShoup);
                p
            }),
            _ => return Err(BiometricError::PublicKey),
        };
        Ok(Self { params, pk0, pk1 })
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
            .shift(lane as isize)
            .filter(|_| lane < LANES)
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
        self.prepare_template_at(template, 0)
    }

    /// Precomputes `template` for repeated products, moved to lane `home`.
    pub fn prepare_template_at(
        &self,
        template: &EncryptedVector,
        home: usize,
    ) -> Result<PreparedTemplate, BiometricError> {
        check_kind(template, VectorKind::Template)?;
        if home >= LANES {
            return Err(BiometricError::Lane(home));
        }
        let [mut a0, mut a1] = template.c.clone();
        if home != 0 {
            let shift = self
                .params
                .shift(home as isize)
                .ok_or(BiometricError::Lane(home))?;
            a0 *= shift;
            a1 *= shift;
        }
        let sum = &a0 + &a1;
        let [a0, a1, sum] = [a0, a1, sum].map(|mut p| {
            p.change_representation(Representation::NttShoup);
            p
        });
        Ok(PreparedTemplate { a0, a1, sum, home })
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
        if lane >= LANES {
            return Err(BiometricError::Lane(lane));
        }
        // Both below 32: the difference is in -31..=31.
        let move_by = lane as isize - template.home as isize;
        let [mut b0, mut b1] = probe.c;
        if move_by != 0 {
            let shift = self
                .params
                .shift(move_by)
                .ok_or(BiometricError::Lane(lane))?;
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
        let mut rng = sanitise::generator();
        let sanitise::Sanitiser { mut u, e2, mask } = sanitise::sample(
            &self.params.ctx,
            &self.params.residues,
            lanes,
            flood,
            &mut rng,
        )?;
        let [mut c0, mut c1, c2] = product.c;
        // t^-2 (t^2 c + t (u pk0 + R/t + E, u pk1 + e2)): the pk halves are
        // stored as t^-1 pk, the sanitiser comes divided (see `sanitise`).
        let z1 = &u * &self.pk1;
        u *= &self.pk0;
        c0 += &u;
        c0 += &mask;
        c1 += &z1;
        c1 += &e2;
        Ok(EncryptedScores {
            c: [c0, c1, c2],
            // lanes <= 32 was checked above.
            lanes: lanes as u8,
        })
    }

    /// `standard` mode with a prepared template (see `cache`).
    pub fn score_prepared(
        &self,
        template: &PreparedTemplate,
        probe: EncryptedVector,
        key_holder: &dyn KeyHolder,
    ) -> Result<i64, BiometricError> {
        let sealed = self.seal(self.product_prepared(template, probe, 0)?, 1)?;
        key_holder
            .decrypt_scores(&sealed)?
            .first()
            .copied()
            .ok_or(BiometricError::KeyHolder("no score"))
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

/// t^-1 modulo q: ((q + 1) / 2)^18, since t = 2^18 and q is odd.
fn t_inverse(params: &Params) -> BigUint {
    let half: BigUint = (&params.q + 1u8) >> 1;
    half.modpow(
        &BigUint::from(PLAINTEXT_MODULUS.trailing_zeros()),
        &params.q,
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::biometric::encrypt::Encryptor;
    use crate::biometric::keyholder::LocalKeyHolder;
    use crate::biometric::params::{DIMENSIONS, FLOOD_BITS};
    use crate::biometric::quantise::{Quantised, QUANT_MAX};
    use rand09::Rng;

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
        // Prepared at any home lane, products land in any lane, moved
        // forwards or (through x^N = -1) backwards.
        for home in [0, 5, 31] {
            let prepared = ev.prepare_template_at(&t, home).unwrap();
            assert_eq!(prepared.home(), home);
            for lane in [0, 4, 5, 7, 31] {
                let plain = ev.product(&t, &p, lane).unwrap();
                let fast = ev.product_prepared(&prepared, p.clone(), lane).unwrap();
                assert_eq!(plain.c, fast.c, "home {home}, lane {lane}");
            }
            assert!(ev.product_prepared(&prepared, p.clone(), LANES).is_err());
        }
        assert!(ev.prepare_template_at(&t, LANES).is_err());
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
