//! The key holder: the only holder of the BFV secret key. It publishes the
//! public key and turns an evaluated, sanitised result into scores.
//!
//! What it learns: the result it receives was masked and re-randomised by
//! the server (see `eval`): every coefficient except the score coefficients
//! is uniform modulo t, its noise is flooded, and its c1 component is
//! uniform. So decrypting everything it is sent yields the scores and
//! nothing else, and it never sees a template or a probe ciphertext.
//!
//! What it must not do: decrypt anything but score coefficients of a
//! result. A curious server could otherwise hand it a template ciphertext
//! (or one shifted by x^k) and read components one at a time. In process,
//! that is the same trust domain anyway; as a separate process (behind its
//! own socket, with its own key file), the key holder is where that abuse is
//! rate-limited and audited, and the secret key is absent from the server's
//! memory, core dumps and data directory: stealing the stored templates and
//! the server process yields ciphertexts only.

use std::sync::Arc;

use fhe::bfv::{PublicKey, SecretKey};
use fhe_math::rq::{traits::TryConvertFrom, Poly, Representation};
use fhe_traits::Serialize;
use ndarray::Array2;
use num_bigint::BigUint;
use prost::Message;
use zeroize::Zeroize;

use super::params::{score_position, Params, LANES, PLAINTEXT_MODULUS};
use super::phase;
use super::wire::{decode_poly, encode_poly, encode_public_key, RESULT_BYTES};
use super::BiometricError;

/// An evaluated result on its way to the key holder: a degree-2 ciphertext
/// (NTT domain) whose first `lanes` score coefficients are scores.
#[derive(Debug, Clone)]
pub struct EncryptedScores {
    pub(crate) c: [Poly; 3],
    pub(crate) lanes: u8,
}

impl EncryptedScores {
    pub fn lanes(&self) -> usize {
        usize::from(self.lanes)
    }

    /// `[lanes]` then c0, c1, c2 packed as in `wire`: what a remote key
    /// holder receives.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RESULT_BYTES);
        out.push(self.lanes);
        for p in &self.c {
            encode_poly(p, &mut out);
        }
        out
    }

    pub fn from_bytes(params: &Params, bytes: &[u8]) -> Result<Self, BiometricError> {
        if bytes.len() != RESULT_BYTES {
            return Err(BiometricError::WrongLength {
                expected: RESULT_BYTES,
                got: bytes.len(),
            });
        }
        let lanes = bytes[0];
        if lanes == 0 || usize::from(lanes) > LANES {
            return Err(BiometricError::Lane(usize::from(lanes)));
        }
        let poly = (RESULT_BYTES - 1) / 3;
        let part = |i: usize| decode_poly(params, &bytes[1 + i * poly..1 + (i + 1) * poly]);
        Ok(Self {
            c: [part(0)?, part(1)?, part(2)?],
            lanes,
        })
    }
}

/// The component that holds the secret key.
pub trait KeyHolder: Send + Sync {
    /// The public key bundle clients encrypt under.
    fn public_key(&self) -> &[u8];
    /// Decrypts the score of each lane of `result`, in lane order.
    fn decrypt_scores(&self, result: &EncryptedScores) -> Result<Vec<i64>, BiometricError>;
}

/// The embedded default: the key holder in this process.
pub struct LocalKeyHolder {
    params: Arc<Params>,
    public_key: Vec<u8>,
    /// s and s^2 (NTT, Shoup form): a degree-2 result decrypts as
    /// c0 + c1 s + c2 s^2 without relinearisation.
    s: Poly,
    s2: Poly,
    /// s W and s^2 W for lane 0's score coefficient (`phase`): a one-lane
    /// result is read without an inverse NTT.
    s_lane0: Array2<u64>,
    s2_lane0: Array2<u64>,
}

impl std::fmt::Debug for LocalKeyHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyHolder").finish_non_exhaustive()
    }
}

impl Drop for LocalKeyHolder {
    fn drop(&mut self) {
        self.s.zeroize();
        self.s2.zeroize();
        self.s_lane0.as_slice_mut().map(Zeroize::zeroize);
        self.s2_lane0.as_slice_mut().map(Zeroize::zeroize);
    }
}

impl LocalKeyHolder {
    /// Generates a fresh key pair.
    pub fn generate() -> Result<Self, BiometricError> {
        let params = Params::shared()?;
        let mut rng = rand09::rng();
        let secret = SecretKey::random(&params.bfv, &mut rng);
        let public = PublicKey::new(&secret, &mut rng);
        Self::from_secret_key(params, &secret, &public)
    }

    /// The key holder whose secret key a 32-byte seed determines (a seeded
    /// CSPRNG draws it), so
    /// that a deployment keeps one key holder across restarts by keeping
    /// the seed (Postern wraps it to the instance key) instead of the
    /// fhe.rs key encodings. Every template is encrypted under this key:
    /// losing the seed means re-enrolling every user.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, BiometricError> {
        use rand09::SeedableRng as _;
        let params = Params::shared()?;
        let mut rng = rand09::rngs::StdRng::from_seed(*seed);
        let secret = SecretKey::random(&params.bfv, &mut rng);
        let public = PublicKey::new(&secret, &mut rng);
        Self::from_secret_key(params, &secret, &public)
    }

    fn from_secret_key(
        params: Arc<Params>,
        secret: &SecretKey,
        public: &PublicKey,
    ) -> Result<Self, BiometricError> {
        let mut bytes = secret.to_bytes();
        let decoded = fhe::proto::bfv::SecretKey::decode(bytes.as_slice());
        bytes.zeroize();
        let mut coefficients = decoded
            .map_err(|_| BiometricError::Fhe("secret key encoding".into()))?
            .coeffs;
        let s = Poly::try_convert_from(
            coefficients.as_slice(),
            &params.ctx,
            false,
            Representation::PowerBasis,
        );
        coefficients.zeroize();
        let mut s = s.map_err(|e| BiometricError::Fhe(e.to_string()))?;
        s.change_representation(Representation::Ntt);
        let mut s2 = &s * &s;
        let s_lane0 = phase::scale(&params.ctx, &params.lane0_weights, &s);
        let s2_lane0 = phase::scale(&params.ctx, &params.lane0_weights, &s2);
        s.change_representation(Representation::NttShoup);
        s2.change_representation(Representation::NttShoup);
        Ok(Self {
            public_key: encode_public_key(public),
            params,
            s,
            s2,
            s_lane0,
            s2_lane0,
        })
    }

    /// The centred phase coefficients at the score positions, before
    /// reduction modulo t (tests use it to measure noise).
    fn phase_at_scores(
        &self,
        result: &EncryptedScores,
    ) -> Result<Vec<(BigUint, bool)>, BiometricError> {
        self.phases(result, true)
    }

    /// [`phase_at_scores`](Self::phase_at_scores); `direct` allows the
    /// one-lane shortcut (`phase`), which tests compare with the transform.
    fn phases(
        &self,
        result: &EncryptedScores,
        direct: bool,
    ) -> Result<Vec<(BigUint, bool)>, BiometricError> {
        if result.lanes == 0 || result.lanes() > LANES {
            return Err(BiometricError::Lane(result.lanes()));
        }
        let [c0, c1, c2] = &result.c;
        let half = &self.params.q >> 1;
        let centre = |x: BigUint| {
            if x > half {
                (&self.params.q - x, true)
            } else {
                (x, false)
            }
        };
        if direct && result.lanes == 1 {
            let residues = phase::dot(
                self.params.ctx.moduli_operators(),
                &[
                    (c0, &self.params.lane0_weights),
                    (c1, &self.s_lane0),
                    (c2, &self.s2_lane0),
                ],
            )?;
            return Ok(vec![centre(self.params.rns.lift(residues.view()))]);
        }
        let mut phase = c0.clone();
        phase.disallow_variable_time_computations();
        let mut term = c1.clone();
        term.disallow_variable_time_computations();
        term *= &self.s;
        phase += &term;
        let mut term = c2.clone();
        term.disallow_variable_time_computations();
        term *= &self.s2;
        phase += &term;
        // Results travel divided by t^2 (see `sanitise`).
        phase *= &self.params.t_squared;
        phase.change_representation(Representation::PowerBasis);
        let coefficients = phase.coefficients();
        Ok((0..result.lanes())
            .map(|lane| {
                centre(
                    self.params
                        .rns
                        .lift(coefficients.column(score_position(lane))),
                )
            })
            .collect())
    }
}

impl KeyHolder for LocalKeyHolder {
    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn decrypt_scores(&self, result: &EncryptedScores) -> Result<Vec<i64>, BiometricError> {
        let t = PLAINTEXT_MODULUS;
        Ok(self
            .phase_at_scores(result)?
            .into_iter()
            .map(|(magnitude, negative)| {
                let r = (magnitude % t)
                    .to_u64_digits()
                    .first()
                    .copied()
                    .unwrap_or(0);
                let m = if negative { (t - r) % t } else { r };
                let v =
                    (u128::from(m) * u128::from(self.params.decode_factor) % u128::from(t)) as i64;
                if v >= (t / 2) as i64 {
                    v - t as i64
                } else {
                    v
                }
            })
            .collect())
    }
}

#[cfg(test)]
impl LocalKeyHolder {
    /// log2 of the largest |phase| at the score positions.
    pub(crate) fn phase_bits(&self, result: &EncryptedScores) -> u64 {
        self.phase_at_scores(result)
            .unwrap()
            .iter()
            .map(|(m, _)| m.bits())
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::biometric::{Encryptor, Evaluator, Quantised};

    #[test]
    fn a_seed_determines_the_secret_key_so_templates_survive_a_restart() {
        let first = LocalKeyHolder::from_seed(&[5; 32]).unwrap();
        // The same seed after a restart: fhe.rs draws part of the public
        // key's randomness itself, so the bundle may differ, but the secret
        // key is the same and decrypts what the first one's clients sent.
        let again = LocalKeyHolder::from_seed(&[5; 32]).unwrap();
        let other = LocalKeyHolder::from_seed(&[6; 32]).unwrap();

        let client = Encryptor::new(first.public_key()).unwrap();
        let v = Quantised::from_components([2; 128]).unwrap();
        let template_bytes = client.encrypt_template(&v).unwrap();
        let probe_bytes = client.encrypt_probe(&v).unwrap();
        for (holder, right) in [(&again, true), (&other, false)] {
            let server = Evaluator::new(holder.public_key()).unwrap();
            let template = server.decode_template(&template_bytes).unwrap();
            let probe = server.decode_probe(&probe_bytes).unwrap();
            let score = server.score(&template, &probe, holder);
            assert_eq!(score.is_ok_and(|s| s == 128 * 4), right);
        }
    }

    #[test]
    fn the_one_lane_shortcut_reads_the_same_phase_as_the_transform() {
        let holder = LocalKeyHolder::generate().unwrap();
        let client = Encryptor::new(holder.public_key()).unwrap();
        let server = Evaluator::new(holder.public_key()).unwrap();
        for components in [[31; 128], [-31; 128], [0; 128]] {
            let v = Quantised::from_components(components).unwrap();
            let t = server
                .decode_template(&client.encrypt_template(&v).unwrap())
                .unwrap();
            let p = server
                .decode_probe(&client.encrypt_probe(&v).unwrap())
                .unwrap();
            let sealed = server.seal(server.product(&t, &p, 0).unwrap(), 1).unwrap();
            let direct = holder.phases(&sealed, true).unwrap();
            assert_eq!(direct, holder.phases(&sealed, false).unwrap());
            assert_eq!(direct.len(), 1);
        }
    }
}
