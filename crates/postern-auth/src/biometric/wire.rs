//! The bytes a client sends (templates, probes), the key holder's public
//! key bundle, and the result the key holder decrypts.
//!
//! # Ciphertext wire format (version 1)
//!
//! ```text
//! byte 0      version = 1
//! byte 1      kind: 1 = template, 2 = probe
//! bytes 2..   c0 then c1; each as 3 rows (one per modulus q0, q1, q2) of
//!             4096 NTT-domain residues, little-endian bit-packed at 36, 36
//!             and 37 bits (the widths of q0, q1, q2).
//! ```
//!
//! Every ciphertext is exactly [`CIPHERTEXT_BYTES`] = 111,618 bytes; any other
//! length is refused before anything is parsed, and every residue must be
//! below its modulus. The residues stay in the NTT domain fhe.rs encrypts
//! in, so the server never runs a transform on a client ciphertext.
//!
//! The kind byte only stops honest mistakes: it is attacker-chosen. A
//! template replayed as a probe scores meaninglessly, because templates are
//! encoded forwards and probes reversed.
//!
//! # Public key bundle (version 1)
//!
//! `[1, PARAMETER_SET]` followed by fhe.rs's serialised `PublicKey`, at most
//! [`MAX_PUBLIC_KEY_BYTES`].

use fhe::bfv::PublicKey;
use fhe_math::rq::{traits::TryConvertFrom, Poly, Representation};
use fhe_traits::{DeserializeParametrized, Serialize};
use ndarray::Array2;

use super::params::{Params, DEGREE, MODULI, MODULUS_BITS};
use super::BiometricError;

const VERSION: u8 = 1;
/// Identifies the parameter set of `params` in public key bundles.
pub const PARAMETER_SET: u8 = 1;
const HEADER: usize = 2;
const POLY_BYTES: usize = DEGREE * (36 + 36 + 37) / 8;
/// Exact size of an encrypted template or probe.
pub const CIPHERTEXT_BYTES: usize = HEADER + 2 * POLY_BYTES;
/// Largest public key bundle accepted.
pub const MAX_PUBLIC_KEY_BYTES: usize = 256 * 1024;
/// Exact size of an encrypted result: a lane count and three polynomials.
pub const RESULT_BYTES: usize = 1 + 3 * POLY_BYTES;

/// What an encrypted vector is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorKind {
    /// Enrolled, encoded forwards.
    Template,
    /// Presented at authentication, encoded reversed.
    Probe,
}

impl VectorKind {
    /// The kind byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            VectorKind::Template => 1,
            VectorKind::Probe => 2,
        }
    }
}

/// A parsed template or probe ciphertext (NTT domain).
#[derive(Debug, Clone)]
pub struct EncryptedVector {
    pub(crate) kind: VectorKind,
    pub(crate) c: [Poly; 2],
}

impl EncryptedVector {
    pub fn kind(&self) -> VectorKind {
        self.kind
    }

    /// Parses and validates a ciphertext of the expected kind.
    pub fn decode(
        params: &Params,
        bytes: &[u8],
        expected: VectorKind,
    ) -> Result<Self, BiometricError> {
        if bytes.len() != CIPHERTEXT_BYTES {
            return Err(BiometricError::WrongLength {
                expected: CIPHERTEXT_BYTES,
                got: bytes.len(),
            });
        }
        if bytes[0] != VERSION {
            return Err(BiometricError::Version(bytes[0]));
        }
        if bytes[1] != expected.code() {
            return Err(BiometricError::WrongKind {
                expected,
                got: bytes[1],
            });
        }
        let body = &bytes[HEADER..];
        let c0 = decode_poly(params, &body[..POLY_BYTES])?;
        let c1 = decode_poly(params, &body[POLY_BYTES..])?;
        Ok(Self {
            kind: expected,
            c: [c0, c1],
        })
    }

    /// Serialises (the client's side of [`decode`](Self::decode)).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CIPHERTEXT_BYTES);
        out.push(VERSION);
        out.push(self.kind.code());
        for p in &self.c {
            encode_poly(p, &mut out);
        }
        out
    }
}

/// Appends `p`'s residues (as they are: callers pass NTT form).
pub(crate) fn encode_poly(p: &Poly, out: &mut Vec<u8>) {
    let coefficients = p.coefficients();
    for (row, bits) in coefficients.outer_iter().zip(MODULUS_BITS) {
        let mut acc: u128 = 0;
        let mut filled = 0u32;
        for &v in row.iter() {
            acc |= u128::from(v) << filled;
            filled += bits;
            while filled >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                filled -= 8;
            }
        }
        // 4096 * 36 and 4096 * 37 are whole bytes: nothing is left over.
    }
}

/// Parses one polynomial of `POLY_BYTES` bytes into NTT form.
pub(crate) fn decode_poly(params: &Params, bytes: &[u8]) -> Result<Poly, BiometricError> {
    if bytes.len() != POLY_BYTES {
        return Err(BiometricError::WrongLength {
            expected: POLY_BYTES,
            got: bytes.len(),
        });
    }
    let mut coefficients = Array2::<u64>::zeros((MODULI.len(), DEGREE));
    let out = coefficients
        .as_slice_mut()
        .ok_or(BiometricError::Fhe("non-contiguous array".into()))?;
    let mut at = 0usize;
    for ((row, bits), modulus) in out.chunks_exact_mut(DEGREE).zip(MODULUS_BITS).zip(MODULI) {
        let row_bytes = DEGREE * bits as usize / 8;
        // The length was checked above: the rows exactly fill `bytes`.
        let chunk = bytes.get(at..at + row_bytes).unwrap_or_default();
        at += row_bytes;
        let in_range = match bits {
            36 => unpack_row::<36>(chunk, row, modulus),
            _ => unpack_row::<37>(chunk, row, modulus),
        };
        if !in_range {
            return Err(BiometricError::CoefficientOutOfRange);
        }
    }
    Poly::try_convert_from(coefficients, &params.ctx, false, Representation::Ntt)
        .map_err(|e| BiometricError::Fhe(e.to_string()))
}

/// Unpacks one row of `BITS`-bit residues into `row`; false if any is not
/// below `modulus`.
///
/// Eight residues fill exactly `BITS` bytes, so the row is read in groups
/// of eight whose bit offsets are constants once the inner loop unrolls
/// (about 1.6x faster than computing each offset, measured in an ad-hoc
/// program; every request decodes a probe). Residue j of a group starts at
/// bit j BITS of the group; eight bytes from its first byte hold all of it
/// (at most 37 bits after a shift of at most 7). The last group has fewer
/// than eight bytes after its end, so it is read from a padded copy. The
/// range check is accumulated and tested once, not branched on per residue.
fn unpack_row<const BITS: usize>(chunk: &[u8], row: &mut [u64], modulus: u64) -> bool {
    let mask = (1u64 << BITS) - 1;
    let mut out_of_range = false;
    let mut padded = [0u8; 64];
    for (g, out) in row.chunks_exact_mut(8).enumerate() {
        let start = g * BITS;
        let group = match chunk.get(start..start + BITS + 8) {
            Some(group) => group,
            None => {
                let rest = chunk.get(start..).unwrap_or_default();
                let n = rest.len().min(BITS);
                padded[..n].copy_from_slice(&rest[..n]);
                &padded[..]
            }
        };
        for (j, slot) in out.iter_mut().enumerate() {
            let bit = j * BITS;
            let word = group
                .get(bit / 8..bit / 8 + 8)
                .and_then(|w| <[u8; 8]>::try_from(w).ok())
                .unwrap_or_default();
            let v = (u64::from_le_bytes(word) >> (bit % 8)) & mask;
            out_of_range |= v >= modulus;
            *slot = v;
        }
    }
    !out_of_range
}

/// Wraps fhe.rs's public key bytes into a bundle.
pub(crate) fn encode_public_key(pk: &PublicKey) -> Vec<u8> {
    let mut out = vec![VERSION, PARAMETER_SET];
    out.extend_from_slice(&pk.to_bytes());
    out
}

/// Parses a public key bundle.
pub fn decode_public_key(params: &Params, bytes: &[u8]) -> Result<PublicKey, BiometricError> {
    if bytes.len() > MAX_PUBLIC_KEY_BYTES {
        return Err(BiometricError::PublicKey);
    }
    match bytes {
        [VERSION, PARAMETER_SET, rest @ ..] => {
            PublicKey::from_bytes(rest, &params.bfv).map_err(|_| BiometricError::PublicKey)
        }
        _ => Err(BiometricError::PublicKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhe_math::rq::Poly;

    #[test]
    fn polynomials_round_trip_through_the_bit_packing() {
        let params = Params::shared().unwrap();
        let p = Poly::random(&params.ctx, Representation::Ntt, &mut rand09::rng());
        let mut bytes = Vec::new();
        encode_poly(&p, &mut bytes);
        assert_eq!(bytes.len(), POLY_BYTES);
        assert_eq!(decode_poly(&params, &bytes).unwrap(), p);
    }

    /// Packs raw residue rows as `encode_poly` does (no range check).
    fn pack(rows: &[Vec<u64>; 3]) -> Vec<u8> {
        let mut out = Vec::new();
        for (row, bits) in rows.iter().zip(MODULUS_BITS) {
            let (mut acc, mut filled) = (0u128, 0u32);
            for &v in row {
                acc |= u128::from(v) << filled;
                filled += bits;
                while filled >= 8 {
                    out.push(acc as u8);
                    acc >>= 8;
                    filled -= 8;
                }
            }
        }
        out
    }

    #[test]
    fn every_residue_is_range_checked_and_the_largest_ones_decode() {
        let params = Params::shared().unwrap();
        let largest: [Vec<u64>; 3] = MODULI.map(|q| vec![q - 1; DEGREE]);
        let p = decode_poly(&params, &pack(&largest)).unwrap();
        for (row, q) in p.coefficients().outer_iter().zip(MODULI) {
            assert!(row.iter().all(|&v| v == q - 1));
        }
        for (i, k) in [(0, 0), (1, 2047), (2, DEGREE - 1), (2, 0)] {
            let mut rows: [Vec<u64>; 3] = [vec![1; DEGREE], vec![2; DEGREE], vec![3; DEGREE]];
            rows[i][k] = MODULI[i];
            assert_eq!(
                decode_poly(&params, &pack(&rows)).unwrap_err(),
                BiometricError::CoefficientOutOfRange,
                "row {i}, residue {k}"
            );
        }
        assert!(matches!(
            decode_poly(&params, &vec![0u8; POLY_BYTES - 1]),
            Err(BiometricError::WrongLength { .. })
        ));
    }

    #[test]
    fn sizes_are_the_documented_ones() {
        assert_eq!(CIPHERTEXT_BYTES, 111_618);
        assert_eq!(RESULT_BYTES, 167_425);
    }

    #[test]
    fn a_residue_at_or_above_its_modulus_is_refused() {
        let params = Params::shared().unwrap();
        // All ones: every 36-bit residue is 2^36 - 1 >= q0.
        let bytes = vec![0xffu8; POLY_BYTES];
        assert_eq!(
            decode_poly(&params, &bytes).unwrap_err(),
            BiometricError::CoefficientOutOfRange
        );
    }

    #[test]
    fn wrong_lengths_versions_and_kinds_are_refused() {
        let params = Params::shared().unwrap();
        for len in [
            0,
            1,
            2,
            CIPHERTEXT_BYTES - 1,
            CIPHERTEXT_BYTES + 1,
            4 * CIPHERTEXT_BYTES,
        ] {
            assert!(matches!(
                EncryptedVector::decode(&params, &vec![0u8; len], VectorKind::Probe),
                Err(BiometricError::WrongLength { .. })
            ));
        }
        let mut zeros = vec![0u8; CIPHERTEXT_BYTES];
        assert_eq!(
            EncryptedVector::decode(&params, &zeros, VectorKind::Probe).unwrap_err(),
            BiometricError::Version(0)
        );
        zeros[0] = VERSION;
        zeros[1] = VectorKind::Template.code();
        assert!(matches!(
            EncryptedVector::decode(&params, &zeros, VectorKind::Probe),
            Err(BiometricError::WrongKind { .. })
        ));
        assert!(EncryptedVector::decode(&params, &zeros, VectorKind::Template).is_ok());
    }

    #[test]
    fn garbage_public_keys_are_refused_without_panicking() {
        let params = Params::shared().unwrap();
        assert!(decode_public_key(&params, &[]).is_err());
        assert!(decode_public_key(&params, &[1, 1]).is_err());
        assert!(decode_public_key(&params, &vec![7u8; MAX_PUBLIC_KEY_BYTES + 1]).is_err());
        let mut rng = rand09::rng();
        for len in [3usize, 100, 5000, 70_000] {
            let mut bytes: Vec<u8> = (0..len).map(|_| rand09::Rng::random(&mut rng)).collect();
            bytes[0] = VERSION;
            bytes[1] = PARAMETER_SET;
            assert!(decode_public_key(&params, &bytes).is_err());
        }
    }
}
