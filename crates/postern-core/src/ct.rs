//! Constant-time equality of 32-byte secrets (verifier hashes, MACs).
//!
//! Why not `subtle`'s `[u8]::ct_eq` directly: it builds a `Choice` per byte,
//! and each one goes through `subtle`'s optimisation barrier, 32 barrier
//! calls per comparison on every session check. Here the differences are
//! folded into one word without a branch, and only that word goes through
//! the barrier: the same guarantee (no branch or early exit depends on where
//! the inputs differ) for one barrier call.

use subtle::ConstantTimeEq;

/// Whether `a` and `b` are equal, in time that does not depend on their
/// contents.
pub fn eq32(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut difference = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        difference |= word(x) ^ word(y);
    }
    difference.ct_eq(&0).into()
}

fn word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_are_equal() {
        let a = [0xA5u8; 32];
        assert!(eq32(&a, &a.clone()));
        assert!(eq32(&[0u8; 32], &[0u8; 32]));
    }

    #[test]
    fn a_difference_in_any_bit_of_any_byte_is_seen() {
        let a: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        for byte in 0..32 {
            for bit in 0..8 {
                let mut b = a;
                b[byte] ^= 1 << bit;
                assert!(!eq32(&a, &b), "byte {byte} bit {bit}");
                assert!(!eq32(&b, &a), "byte {byte} bit {bit}");
            }
        }
    }
}
