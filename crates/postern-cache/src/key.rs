//! Cache keys from bearer tokens: a secret-keyed PRF, not a bare hash.
//!
//! The seed keys its cache by the first 16 bytes of SHA-256(token). That
//! costs about 420 ns for a 700-byte JWT on this machine — more than the
//! whole hit budget — and needs no secret. Postern instead computes
//!
//! ```text
//! key = AES-128_k( POLYVAL_h( token ‖ 0-padding ‖ bit-length block ) )
//! ```
//!
//! with `h` and `k` drawn at random per process and never exposed. This is
//! the Carter–Wegman construction (the one inside AES-GCM-SIV): POLYVAL is
//! an ε-almost-XOR-universal hash with ε = L/2^128 for messages of L blocks,
//! so for any two distinct tokens chosen *without knowledge of `h`* the
//! chance that their keys collide is at most L/2^128 (≈ 2^-122 for 700-byte
//! tokens), and the AES finalisation hides `h` from anyone who sees keys.
//!
//! Why that is safe here: a collision is the only way a cache lookup could
//! answer for the wrong token, and an attacker who chooses tokens learns
//! nothing about `h` or `k` — keys are never returned, logged or exported,
//! and the map's timing depends only on the (pseudorandom) key. The
//! trailing length block makes `token` and `token ‖ 0x00` distinct inputs.
//! Because the key is secret, per process, and the cache holds keys only,
//! a memory dump of the cache never yields a token, and keys are useless
//! outside the process that made them.
//!
//! Cost: `benches/engines.rs`, group `key` (`postern_keyderiver_700b`
//! against `sha256_700b`) and group `bearer_path` (derive, then `get_map`
//! on a 1M-entry cache); figures in `BENCHMARKS.md`. POLYVAL with CLMUL
//! processes blocks in parallel, so a 711-byte JWT costs 160 ns against
//! 433 ns for its SHA-256, and the whole bearer hit path is 180 ns (run C).
//!
//! Memory: with the `zeroize` features of `aes` and `polyval`, the AES
//! round keys and the POLYVAL key `h` are zeroed when a `KeyDeriver` (and
//! each per-call copy of the POLYVAL state) is dropped.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use polyval::universal_hash::UniversalHash;
use polyval::Polyval;
use rand::{CryptoRng, RngCore};

/// A 128-bit cache key: pseudorandom, so its bits are used directly for
/// shard selection, map hashing and sketch indexing.
pub type CacheKey = u128;

/// Derives cache keys from tokens under per-process secret keys.
#[derive(Clone)]
pub struct KeyDeriver {
    hash: Polyval,
    cipher: Aes128,
}

impl std::fmt::Debug for KeyDeriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDeriver(..)")
    }
}

impl KeyDeriver {
    pub fn new<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut h = [0u8; 16];
        let mut k = [0u8; 16];
        rng.fill_bytes(&mut h);
        rng.fill_bytes(&mut k);
        let deriver = Self {
            hash: Polyval::new(&h.into()),
            cipher: Aes128::new(&k.into()),
        };
        h.fill(0);
        k.fill(0);
        deriver
    }

    /// Keys drawn from the operating system's generator.
    pub fn random() -> Self {
        Self::new(&mut rand::rngs::OsRng)
    }

    /// The cache key of `token`. Attacker-controlled input of any length.
    pub fn derive(&self, token: &[u8]) -> CacheKey {
        let mut hash = self.hash.clone();
        hash.update_padded(token);
        let mut length = [0u8; 16];
        length[..8].copy_from_slice(&((token.len() as u64).wrapping_mul(8)).to_le_bytes());
        hash.update(&[length.into()]);
        let tag = hash.finalize();
        let mut block = aes::Block::default();
        block.copy_from_slice(&tag[..]);
        self.cipher.encrypt_block(&mut block);
        let mut out = [0u8; 16];
        out.copy_from_slice(&block);
        u128::from_le_bytes(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_are_deterministic_per_deriver_and_differ_across_derivers() {
        let a = KeyDeriver::random();
        let b = KeyDeriver::random();
        assert_eq!(a.derive(b"token"), a.derive(b"token"));
        assert_ne!(a.derive(b"token"), b.derive(b"token"));
    }

    #[test]
    fn zero_padding_does_not_collide() {
        let d = KeyDeriver::random();
        assert_ne!(d.derive(b"abc"), d.derive(b"abc\0"));
        assert_ne!(d.derive(b""), d.derive(&[0u8; 16]));
        assert_ne!(d.derive(&[0u8; 15]), d.derive(&[0u8; 16]));
    }

    #[test]
    fn the_aes_round_keys_zeroize_on_drop() {
        // Compile-time: `aes` is built with its `zeroize` feature, which is
        // what makes its ciphers zero their round keys on drop. (POLYVAL's
        // state zeroes itself in its `Drop` under the same feature, but
        // does not declare the marker trait.)
        fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        assert_zeroize_on_drop::<Aes128>();
    }

    proptest! {
        #[test]
        fn distinct_tokens_get_distinct_keys(a in proptest::collection::vec(any::<u8>(), 0..800), b in proptest::collection::vec(any::<u8>(), 0..800)) {
            prop_assume!(a != b);
            let d = KeyDeriver::random();
            prop_assert_ne!(d.derive(&a), d.derive(&b));
        }
    }
}
