//! Biometric ciphertexts from clients (`postern_auth::biometric::wire`):
//! enrolment templates and authentication probes, the encrypted result a
//! remote key holder receives, and the public key bundle. The first input
//! byte picks what is decoded:
//!
//! - 0: the raw bytes, as a template and as a probe (length-checked);
//! - 1: a whole-length ciphertext whose residues are the input bytes
//!   packed by this target's own encoder (as `wire`'s module doc lays them
//!   out), so decoding must succeed exactly when every residue is below
//!   its modulus, and `encode` must give the same bytes back;
//! - 2: the same for an encrypted result;
//! - 3: the raw bytes as a public key bundle.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use postern_auth::biometric::keyholder::EncryptedScores;
use postern_auth::biometric::params::{DEGREE, MODULI, MODULUS_BITS};
use postern_auth::biometric::wire::{decode_public_key, RESULT_BYTES};
use postern_auth::biometric::{EncryptedVector, Params, VectorKind, CIPHERTEXT_BYTES, LANES};
use postern_fuzz::Cursor;

/// Packs `polys` polynomials of residues drawn from `c`, little-endian at
/// each modulus's width. Returns whether every residue is in range.
fn pack(c: &mut Cursor<'_>, polys: usize, out: &mut Vec<u8>) -> bool {
    let source = c.rest();
    let mut at = 0usize;
    let mut in_range = true;
    for _ in 0..polys {
        for (bits, modulus) in MODULUS_BITS.into_iter().zip(MODULI) {
            let mut acc: u128 = 0;
            let mut filled = 0u32;
            for _ in 0..DEGREE {
                // Five input bytes per residue, cycling through the input;
                // the top byte decides whether to leave the range.
                let mut raw = [0u8; 8];
                for b in raw.iter_mut().take(5) {
                    *b = source.get(at % source.len().max(1)).copied().unwrap_or(0);
                    at += 1;
                }
                let wide = u64::from_le_bytes(raw) & ((1 << bits) - 1);
                let v = if raw[4] == 0xff { wide } else { wide % modulus };
                in_range &= v < modulus;
                acc |= u128::from(v) << filled;
                filled += bits;
                while filled >= 8 {
                    out.push(acc as u8);
                    acc >>= 8;
                    filled -= 8;
                }
            }
        }
    }
    in_range
}

fuzz_target!(|data: &[u8]| {
    static PARAMS: OnceLock<Arc<Params>> = OnceLock::new();
    let params = PARAMS.get_or_init(|| Params::shared().unwrap());
    let mut c = Cursor::new(data);
    match c.u8() % 4 {
        0 => {
            let rest = c.rest();
            for kind in [VectorKind::Template, VectorKind::Probe] {
                if let Ok(v) = EncryptedVector::decode(params, rest, kind) {
                    assert_eq!(v.encode(), rest);
                }
            }
            if let Ok(scores) = EncryptedScores::from_bytes(params, rest) {
                assert_eq!(scores.to_bytes(), rest);
            }
        }
        1 => {
            let kind = if c.u8() & 1 == 0 {
                VectorKind::Template
            } else {
                VectorKind::Probe
            };
            let mut bytes = vec![1, kind.code()];
            let in_range = pack(&mut c, 2, &mut bytes);
            assert_eq!(bytes.len(), CIPHERTEXT_BYTES);
            match EncryptedVector::decode(params, &bytes, kind) {
                Ok(v) => {
                    assert!(in_range);
                    assert_eq!(v.kind(), kind);
                    assert_eq!(v.encode(), bytes);
                }
                Err(e) => assert!(!in_range, "{e}"),
            }
            let other = if kind == VectorKind::Template {
                VectorKind::Probe
            } else {
                VectorKind::Template
            };
            assert!(EncryptedVector::decode(params, &bytes, other).is_err());
        }
        2 => {
            let lanes = c.u8();
            let mut bytes = vec![lanes];
            let in_range = pack(&mut c, 3, &mut bytes);
            assert_eq!(bytes.len(), RESULT_BYTES);
            let lanes_ok = lanes != 0 && usize::from(lanes) <= LANES;
            match EncryptedScores::from_bytes(params, &bytes) {
                Ok(scores) => {
                    assert!(in_range && lanes_ok);
                    assert_eq!(scores.lanes(), usize::from(lanes));
                    assert_eq!(scores.to_bytes(), bytes);
                }
                Err(e) => assert!(!(in_range && lanes_ok), "{e}"),
            }
        }
        _ => {
            let _ = decode_public_key(params, c.rest());
        }
    }
});
