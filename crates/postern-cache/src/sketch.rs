//! A count-min frequency sketch with a doorkeeper and periodic aging (after
//! TinyLFU: Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache
//! Admission Policy", ACM ToS 2017).
//!
//! - **Doorkeeper**: a Bloom filter (two bits per key) that absorbs the
//!   first sighting of every key. Only keys seen at least twice reach the
//!   counters, so a flood of one-off keys adds no noise to them — the
//!   paper's defence against "one-hit wonders".
//! - **Counters**: 8-bit saturating counters, 16 × the cache capacity (at
//!   least 16,384), in 64-byte blocks. A key's four counters lie in one
//!   block (one per 16-byte quarter), so an update touches one cache line —
//!   the layout of Caffeine's `FrequencySketch`. [`FrequencySketch::increment_by`]
//!   adds a weight at once, for callers that sample. (The cache counts
//!   hits in its slots instead, see [`crate::cache`].) Keys are already pseudorandom
//!   (see [`crate::key`]), so the block and the positions in it are slices of
//!   the key instead of rehashes. The estimate is the minimum of the four
//!   counters plus the doorkeeper's bit.
//! - **Aging**: after `8 × capacity` recorded misses and inserts every counter is halved
//!   and the doorkeeper cleared (the paper's "reset"), so popularity fades
//!   unless a key keeps being seen.
//!
//! Departure from the paper: counters and doorkeeper words are atomics
//! updated with relaxed operations and no lock, so concurrent updates of the
//! same counter may occasionally be lost. The sketch is an estimate; a lost
//! increment only makes admission slightly more conservative.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::huge::Zeroed;
use crate::key::CacheKey;

const ROWS: usize = 4;

/// Approximate access frequencies of cache keys.
#[derive(Debug)]
pub struct FrequencySketch {
    counters: Zeroed<AtomicU8>,
    doorkeeper: Box<[AtomicU64]>,
    block_mask: usize,
    door_mask: usize,
    increments: AtomicU64,
    reset_after: u64,
    resets: AtomicU64,
}

impl FrequencySketch {
    /// A sketch for a cache of about `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        // At most 2^28: 2^32 counters, the most `Zeroed` allocates.
        let capacity = capacity.clamp(16, 1 << 28);
        // At least 4,096 columns: with fewer, a small hot set covers enough of
        // each row that a never-seen key's four counters can all collide
        // with hot ones and look frequent.
        let width = capacity.saturating_mul(4).max(4_096).next_power_of_two();
        // Sampled hits touch a block at random: huge pages spare them TLB
        // misses (see `crate::huge`).
        let counters = Zeroed::new(width * ROWS);
        let blocks = width * ROWS / 64;
        // The doorkeeper holds the distinct keys of one aging period (8 ×
        // capacity) at 8 bits per key with two hash bits: ~5% false positives.
        let door_bits = capacity.saturating_mul(64).next_power_of_two();
        let doorkeeper = (0..door_bits / 64).map(|_| AtomicU64::new(0)).collect();
        Self {
            counters,
            doorkeeper,
            block_mask: blocks - 1,
            door_mask: door_bits - 1,
            increments: AtomicU64::new(0),
            reset_after: 8 * capacity as u64,
            resets: AtomicU64::new(0),
        }
    }

    /// The index of `key`'s counter for `row`: block from bits 96.., the
    /// position within the row's 16-byte quarter from bits 32 + 4·row.
    fn slot(&self, key: CacheKey, row: usize) -> usize {
        let block = ((key >> 96) as u32 as usize) & self.block_mask;
        let within = ((key >> (32 + 4 * row)) & 15) as usize;
        block * 64 + row * 16 + within
    }

    fn door_bits(&self, key: CacheKey) -> [(usize, u64); 2] {
        // Two bits from slices not used by the first counter row's index.
        let a = ((key >> 16) as u32 as usize) & self.door_mask;
        let b = ((key >> 80) as u32 as usize) & self.door_mask;
        [(a / 64, 1 << (a % 64)), (b / 64, 1 << (b % 64))]
    }

    fn in_doorkeeper(&self, key: CacheKey) -> bool {
        self.door_bits(key)
            .iter()
            .all(|&(word, bit)| self.doorkeeper[word].load(Ordering::Relaxed) & bit != 0)
    }

    /// Records one access to `key`.
    pub fn increment(&self, key: CacheKey) {
        if !self.in_doorkeeper(key) {
            for (word, bit) in self.door_bits(key) {
                self.doorkeeper[word].fetch_or(bit, Ordering::Relaxed);
            }
            self.count_access();
        } else {
            self.increment_by(key, 1);
            self.count_access();
        }
    }

    /// Records `weight` accesses to a key known to have been seen before
    /// (a sampled hit): bypasses the doorkeeper and, so that the hit path
    /// touches no shared counter, does not advance the aging clock, which
    /// runs on misses and inserts — the events that compete for admission.
    pub fn increment_by(&self, key: CacheKey, weight: u8) {
        for row in 0..ROWS {
            let counter = &self.counters[self.slot(key, row)];
            let value = counter.load(Ordering::Relaxed);
            let raised = value.saturating_add(weight);
            // A saturated counter is left unwritten, so hot keys' lines stay
            // shared between the cores that read them.
            if raised != value {
                counter.store(raised, Ordering::Relaxed);
            }
        }
    }

    fn count_access(&self) {
        if self.increments.fetch_add(1, Ordering::Relaxed) + 1 >= self.reset_after {
            self.age();
        }
    }

    /// How many times the sketch has aged: the clock the cache ages its
    /// per-entry hit counts by.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    /// The estimated access count of `key` (an upper bound, up to 256).
    pub fn estimate(&self, key: CacheKey) -> u16 {
        let counted = (0..ROWS)
            .map(|row| self.counters[self.slot(key, row)].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        u16::from(counted) + u16::from(self.in_doorkeeper(key))
    }

    /// Halves every counter and clears the doorkeeper.
    pub fn age(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
        self.increments.store(0, Ordering::Relaxed);
        for counter in self.counters.iter() {
            counter.store(counter.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
        }
        for word in self.doorkeeper.iter() {
            word.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> CacheKey {
        let x = u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        x ^ (x >> 61)
    }

    #[test]
    fn the_first_sighting_goes_to_the_doorkeeper_then_counters_count() {
        let s = FrequencySketch::new(1024);
        assert_eq!(s.estimate(key(1)), 0);
        s.increment(key(1));
        assert_eq!(s.estimate(key(1)), 1);
        for _ in 0..4 {
            s.increment(key(1));
        }
        assert_eq!(s.estimate(key(1)), 5);
        for _ in 0..300 {
            s.increment(key(1));
        }
        assert_eq!(s.estimate(key(1)), 256);
    }

    #[test]
    fn one_off_keys_leave_the_counters_clean() {
        let s = FrequencySketch::new(1024);
        for i in 0..2_000 {
            s.increment(key(i + 10));
        }
        // Apart from doorkeeper false positives (a few percent), the
        // counters saw nothing: estimates are at most the doorkeeper bit.
        let noisy = (0..2_000).filter(|&i| s.estimate(key(i + 10)) > 1).count();
        assert!(noisy < 100, "{noisy} one-off keys reached the counters");
        assert!((0..2_000).all(|i| s.estimate(key(i + 10)) <= 2));
    }

    #[test]
    fn aging_halves_counts_and_clears_the_doorkeeper() {
        let s = FrequencySketch::new(16);
        for _ in 0..41 {
            s.increment(key(1));
        }
        assert_eq!(s.estimate(key(1)), 41);
        s.age();
        assert_eq!(s.estimate(key(1)), 20);
        // 8 × capacity (128) recorded accesses trigger aging by themselves.
        let before = s.estimate(key(1));
        for _ in 0..128 {
            s.increment(key(2));
        }
        assert!(
            s.estimate(key(1)) <= before / 2 + 1,
            "aged to {}",
            s.estimate(key(1))
        );
    }
}
