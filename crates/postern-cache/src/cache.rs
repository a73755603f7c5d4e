//! The concurrent validation cache.
//!
//! # Structure and invariants
//!
//! `shards` (a power of two) independent shards, chosen by the key's high 64
//! bits. Each shard is one `RwLock` over a slab (`Vec` of slots) and an index
//! (`HashMap` from key to slot, hashed by the key's low 64 bits — the key is
//! already pseudorandom, so no further hashing is needed). Invariants, held
//! whenever a shard's lock is released:
//!
//! - `index[slot.key] == position of slot` for every slot, and the index has
//!   exactly one entry per slot;
//! - a shard holds at most `max_entries / shards` entries and
//!   `max_bytes / shards` bytes of declared weight;
//! - the global `entries` and `bytes` counters equal the sums over shards.
//!
//! Reads take the shard's read lock, check expiry against the caller's
//! `now`, and either clone the `Arc` ([`Cache::get`]) or run a closure on
//! the value ([`Cache::get_map`]). An expired entry is never returned; it is
//! reaped by the sweeper or replaced on insert.
//!
//! # Admission and eviction
//!
//! Every miss and insert counts the key in a [`FrequencySketch`]; hits are
//! counted one time in four with weight four (a per-thread random
//! draw), which keeps the hit path
//! to one read lock and one atomic add while hot keys still accumulate
//! frequency. When a shard is full, an insert samples `eviction_samples`
//! random slots: an expired one is reaped outright; otherwise the least
//! frequent one is the victim, and the candidate is admitted only if the
//! sketch says it is strictly more frequent (TinyLFU's rule). A flood of
//! one-off keys therefore cannot push out sessions that are being used.
//! Departure from W-TinyLFU: there is no LRU window and victims are sampled
//! (as in Redis' approximated LFU) rather than taken from an SLRU's tail;
//! sampling needs no per-hit bookkeeping, which is what keeps hits cheap.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use rand::Rng;

use crate::key::CacheKey;
use crate::sketch::FrequencySketch;

/// Cache limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries held.
    pub max_entries: usize,
    /// Most bytes of declared entry weight held.
    pub max_bytes: usize,
    /// Number of shards (rounded up to a power of two).
    pub shards: usize,
    /// Slots sampled to choose an eviction victim.
    pub eviction_samples: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 1_000_000,
            max_bytes: 512 << 20,
            shards: 64,
            eviction_samples: 8,
        }
    }
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Stored (possibly after evicting a less frequent entry).
    Admitted,
    /// Replaced the value already stored under the key.
    Replaced,
    /// Refused: the shard is full of entries more frequent than this one.
    Rejected,
    /// Refused: already expired at `now` (nothing to cache).
    Expired,
    /// Refused: heavier than a whole shard's byte budget.
    TooLarge,
}

/// A point-in-time reading of the cache's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub admissions_rejected: u64,
    pub evictions: u64,
    pub expired_reaped: u64,
    pub entries: u64,
    pub bytes: u64,
}

struct Slot<V> {
    key: CacheKey,
    value: Arc<V>,
    expires_at: u64,
    weight: u32,
    tag: u64,
}

/// Hashes a pseudorandom `u128` key by folding it; no mixing needed.
#[derive(Clone, Copy, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

#[derive(Clone, Copy, Default)]
struct BuildKeyHasher;

impl BuildHasher for BuildKeyHasher {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

struct ShardData<V> {
    index: HashMap<CacheKey, u32, BuildKeyHasher>,
    slots: Vec<Slot<V>>,
    bytes: usize,
}

impl<V> ShardData<V> {
    /// Removes the slot at `pos`, keeping the index consistent.
    fn remove_at(&mut self, pos: usize) -> Slot<V> {
        let removed = self.slots.swap_remove(pos);
        self.index.remove(&removed.key);
        if let Some(moved) = self.slots.get(pos) {
            // Slot positions fit u32: a shard never holds more than u32::MAX entries.
            self.index.insert(moved.key, pos as u32);
        }
        self.bytes -= removed.weight as usize;
        removed
    }
}

// Aligned so two shards' locks and hit counters never share a cache line.
#[repr(align(128))]
struct Shard<V> {
    data: RwLock<ShardData<V>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Counters {
    admissions_rejected: AtomicU64,
    evictions: AtomicU64,
    expired_reaped: AtomicU64,
    entries: AtomicU64,
    bytes: AtomicU64,
}

/// A concurrent cache from [`CacheKey`]s to shared values with expiry.
pub struct Cache<V> {
    shards: Box<[Shard<V>]>,
    shard_mask: usize,
    max_entries_per_shard: usize,
    max_bytes_per_shard: usize,
    samples: usize,
    sketch: FrequencySketch,
    counters: Counters,
}

impl<V> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

thread_local! {
    // Per-thread xorshift state for sampling hits; random rather than a
    // round-robin tick so that periodic access patterns cannot alias with
    // the sampling and leave some hot keys uncounted.
    static HIT_SAMPLER: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
}

impl<V> Cache<V> {
    pub fn new(config: CacheConfig) -> Self {
        let shards = config.shards.max(1).next_power_of_two();
        let per_shard = config.max_entries.div_ceil(shards).max(1);
        Self {
            shards: (0..shards)
                .map(|_| Shard {
                    data: RwLock::new(ShardData {
                        index: HashMap::with_hasher(BuildKeyHasher),
                        slots: Vec::new(),
                        bytes: 0,
                    }),
                    hits: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                })
                .collect(),
            shard_mask: shards - 1,
            max_entries_per_shard: per_shard,
            max_bytes_per_shard: (config.max_bytes / shards).max(1),
            samples: config.eviction_samples.max(1),
            sketch: FrequencySketch::new(config.max_entries),
            counters: Counters::default(),
        }
    }

    fn shard(&self, key: CacheKey) -> &Shard<V> {
        &self.shards[((key >> 64) as usize) & self.shard_mask]
    }

    fn record_hit(&self, shard: &Shard<V>, key: CacheKey) {
        shard.hits.fetch_add(1, Ordering::Relaxed);
        let draw = HIT_SAMPLER.with(|state| {
            let mut x = state.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            state.set(x);
            x
        });
        if draw % 4 == 0 {
            self.sketch.increment_by(key, 4);
        }
    }

    fn record_miss(&self, shard: &Shard<V>, key: CacheKey) {
        shard.misses.fetch_add(1, Ordering::Relaxed);
        self.sketch.increment(key);
    }

    /// The value under `key` if present and unexpired at `now`.
    pub fn get(&self, key: CacheKey, now: u64) -> Option<Arc<V>> {
        self.get_map(key, now, Arc::clone)
    }

    /// Runs `f` on the value under `key` (if present and unexpired) while the
    /// shard is read-locked, without touching the value's reference count.
    /// `f` must be short: it delays writers to this shard.
    pub fn get_map<R>(&self, key: CacheKey, now: u64, f: impl FnOnce(&Arc<V>) -> R) -> Option<R> {
        let shard = self.shard(key);
        let found = {
            let data = shard.data.read();
            match data
                .index
                .get(&key)
                .and_then(|&pos| data.slots.get(pos as usize))
            {
                Some(slot) if slot.expires_at > now => Some(f(&slot.value)),
                _ => None,
            }
        };
        match found {
            Some(_) => self.record_hit(shard, key),
            None => self.record_miss(shard, key),
        }
        found
    }

    /// The expiry time of `key`'s entry, if present (expired or not).
    pub fn expires_at(&self, key: CacheKey) -> Option<u64> {
        let data = self.shard(key).data.read();
        data.index
            .get(&key)
            .and_then(|&pos| data.slots.get(pos as usize))
            .map(|s| s.expires_at)
    }

    /// Stores `value` under `key` until `expires_at` (exclusive), with a
    /// declared `weight` in bytes and a `tag` for group purges.
    pub fn insert(
        &self,
        key: CacheKey,
        value: V,
        weight: u32,
        expires_at: u64,
        tag: u64,
        now: u64,
    ) -> Admission {
        self.insert_arc(key, Arc::new(value), weight, expires_at, tag, now)
    }

    /// As [`Cache::insert`], for a value the caller already shares.
    pub fn insert_arc(
        &self,
        key: CacheKey,
        value: Arc<V>,
        weight: u32,
        expires_at: u64,
        tag: u64,
        now: u64,
    ) -> Admission {
        if expires_at <= now {
            return Admission::Expired;
        }
        if weight as usize > self.max_bytes_per_shard {
            return Admission::TooLarge;
        }
        self.sketch.increment(key);
        let shard = self.shard(key);
        let mut data = shard.data.write();
        let slot = Slot {
            key,
            value,
            expires_at,
            weight,
            tag,
        };
        if let Some(&pos) = data.index.get(&key) {
            let old_weight = data.slots[pos as usize].weight;
            data.bytes = data.bytes - old_weight as usize + weight as usize;
            self.adjust_bytes(old_weight, weight);
            data.slots[pos as usize] = slot;
            return Admission::Replaced;
        }
        while data.slots.len() >= self.max_entries_per_shard
            || data.bytes + weight as usize > self.max_bytes_per_shard
        {
            if !self.make_room(&mut data, key, now) {
                self.counters
                    .admissions_rejected
                    .fetch_add(1, Ordering::Relaxed);
                return Admission::Rejected;
            }
        }
        let pos = data.slots.len() as u32;
        data.index.insert(key, pos);
        data.bytes += weight as usize;
        data.slots.push(slot);
        self.counters.entries.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_add(u64::from(weight), Ordering::Relaxed);
        Admission::Admitted
    }

    fn adjust_bytes(&self, old: u32, new: u32) {
        if new >= old {
            self.counters
                .bytes
                .fetch_add(u64::from(new - old), Ordering::Relaxed);
        } else {
            self.counters
                .bytes
                .fetch_sub(u64::from(old - new), Ordering::Relaxed);
        }
    }

    /// Frees one slot for `candidate`: reaps an expired sample, or evicts
    /// the least frequent sample if the candidate is more frequent.
    fn make_room(&self, data: &mut ShardData<V>, candidate: CacheKey, now: u64) -> bool {
        if data.slots.is_empty() {
            return false;
        }
        let mut rng = rand::thread_rng();
        let mut victim: Option<(usize, u16)> = None;
        for _ in 0..self.samples {
            let pos = rng.gen_range(0..data.slots.len());
            let slot = &data.slots[pos];
            if slot.expires_at <= now {
                let removed = data.remove_at(pos);
                self.note_removed(&removed);
                self.counters.expired_reaped.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            let freq = self.sketch.estimate(slot.key);
            if victim.is_none_or(|(_, f)| freq < f) {
                victim = Some((pos, freq));
            }
        }
        match victim {
            Some((pos, freq)) if self.sketch.estimate(candidate) > freq => {
                let removed = data.remove_at(pos);
                self.note_removed(&removed);
                self.counters.evictions.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    fn note_removed(&self, slot: &Slot<V>) {
        self.counters.entries.fetch_sub(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_sub(u64::from(slot.weight), Ordering::Relaxed);
    }

    /// Removes `key`'s entry (logout, revocation). Returns whether it was there.
    pub fn remove(&self, key: CacheKey) -> bool {
        let mut data = self.shard(key).data.write();
        match data.index.get(&key) {
            Some(&pos) => {
                let removed = data.remove_at(pos as usize);
                self.note_removed(&removed);
                true
            }
            None => false,
        }
    }

    /// Removes every entry carrying `tag` (e.g. every token signed with a
    /// rotated-out key id). Takes each shard's write lock in turn.
    pub fn remove_tag(&self, tag: u64) -> usize {
        self.remove_where(|slot| slot.tag == tag)
    }

    /// Removes every entry.
    pub fn clear(&self) -> usize {
        self.remove_where(|_| true)
    }

    fn remove_where(&self, doomed: impl Fn(&Slot<V>) -> bool) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut data = shard.data.write();
            let mut pos = 0;
            while pos < data.slots.len() {
                if doomed(&data.slots[pos]) {
                    let slot = data.remove_at(pos);
                    self.note_removed(&slot);
                    removed += 1;
                } else {
                    pos += 1;
                }
            }
        }
        removed
    }

    /// Reaps expired entries, at most `max_per_shard` per shard, locking one
    /// shard at a time so readers of the other shards never wait.
    pub fn sweep(&self, now: u64, max_per_shard: usize) -> usize {
        let mut reaped = 0;
        for shard in self.shards.iter() {
            let mut data = shard.data.write();
            let mut pos = 0;
            let mut here = 0;
            while pos < data.slots.len() && here < max_per_shard {
                if data.slots[pos].expires_at <= now {
                    let slot = data.remove_at(pos);
                    self.note_removed(&slot);
                    here += 1;
                } else {
                    pos += 1;
                }
            }
            reaped += here;
        }
        self.counters
            .expired_reaped
            .fetch_add(reaped as u64, Ordering::Relaxed);
        reaped
    }

    /// Counters, summed over a fixed number of shards: O(1) in entries.
    pub fn stats(&self) -> CacheStats {
        let (hits, misses) = self.shards.iter().fold((0, 0), |(h, m), s| {
            (
                h + s.hits.load(Ordering::Relaxed),
                m + s.misses.load(Ordering::Relaxed),
            )
        });
        CacheStats {
            hits,
            misses,
            admissions_rejected: self.counters.admissions_rejected.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            expired_reaped: self.counters.expired_reaped.load(Ordering::Relaxed),
            entries: self.counters.entries.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
        }
    }

    pub fn len(&self) -> usize {
        self.counters.entries.load(Ordering::Relaxed) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn key(i: u64) -> CacheKey {
        // Spread like a PRF output: distinct high and low halves.
        let x = u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        x ^ (x >> 61)
    }

    fn small(max_entries: usize) -> Cache<u64> {
        Cache::new(CacheConfig {
            max_entries,
            max_bytes: 1 << 30,
            shards: 1,
            eviction_samples: 8,
        })
    }

    #[test]
    fn an_entry_is_served_until_its_expiry_and_never_after() {
        let c = small(10);
        assert_eq!(c.insert(key(1), 42, 8, 10 * S, 0, 0), Admission::Admitted);
        assert_eq!(c.get(key(1), 10 * S - 1).as_deref(), Some(&42));
        assert_eq!(c.get(key(1), 10 * S), None);
        assert_eq!(c.stats().hits, 1);
        assert_eq!(c.stats().misses, 1);
    }

    #[test]
    fn already_expired_and_oversized_values_are_not_stored() {
        let c: Cache<u64> = Cache::new(CacheConfig {
            max_entries: 10,
            max_bytes: 100,
            shards: 1,
            eviction_samples: 4,
        });
        assert_eq!(c.insert(key(1), 1, 8, 5, 0, 5), Admission::Expired);
        assert_eq!(c.insert(key(1), 1, 101, 10, 0, 5), Admission::TooLarge);
        assert!(c.is_empty());
    }

    #[test]
    fn replacing_keeps_counts_exact() {
        let c = small(10);
        c.insert(key(1), 1, 10, 100, 0, 0);
        assert_eq!(c.insert(key(1), 2, 30, 100, 0, 0), Admission::Replaced);
        assert_eq!(c.get(key(1), 1).as_deref(), Some(&2));
        let s = c.stats();
        assert_eq!((s.entries, s.bytes), (1, 30));
    }

    #[test]
    fn a_flood_of_one_off_keys_cannot_evict_hot_entries() {
        let c = small(100);
        for i in 0..100 {
            c.insert(key(i), i, 8, 1_000 * S, 0, 0);
        }
        // The resident entries are in use: many hits each.
        for _ in 0..400 {
            for i in 0..100 {
                assert!(c.get(key(i), S).is_some());
            }
        }
        // 10,000 never-repeated keys try to get in while the resident
        // sessions stay in use (two hits per flood key).
        let mut admitted = 0;
        for i in 1_000..11_000 {
            if c.insert(key(i), i, 8, 1_000 * S, 0, S) == Admission::Admitted {
                admitted += 1;
            }
            assert!(c.get(key(i % 100), S).is_some());
            assert!(c.get(key((i + 50) % 100), S).is_some());
        }
        assert_eq!(admitted, 0);
        assert!((0..100).all(|i| c.get(key(i), S).is_some()));
        assert_eq!(c.stats().admissions_rejected, 10_000);
        assert_eq!(c.stats().evictions, 0);
    }

    #[test]
    fn a_key_that_keeps_coming_back_is_admitted_over_a_cold_one() {
        let c = small(1);
        c.insert(key(1), 1, 8, 1_000 * S, 0, 0);
        // key(2) misses repeatedly (each miss is counted) before it is offered.
        for _ in 0..5 {
            assert!(c.get(key(2), S).is_none());
        }
        assert_eq!(c.insert(key(2), 2, 8, 1_000 * S, 0, S), Admission::Admitted);
        assert_eq!(c.stats().evictions, 1);
        assert!(c.get(key(1), S).is_none());
    }

    #[test]
    fn expired_entries_make_room_before_anything_is_evicted() {
        let c = small(1);
        c.insert(key(1), 1, 8, 2 * S, 0, 0);
        assert_eq!(
            c.insert(key(2), 2, 8, 100 * S, 0, 3 * S),
            Admission::Admitted
        );
        let s = c.stats();
        assert_eq!((s.expired_reaped, s.evictions, s.entries), (1, 0, 1));
    }

    #[test]
    fn byte_bounds_are_enforced() {
        let c: Cache<u64> = Cache::new(CacheConfig {
            max_entries: 100,
            max_bytes: 100,
            shards: 1,
            eviction_samples: 8,
        });
        for i in 0..10 {
            c.insert(key(i), i, 10, 100 * S, 0, 0);
        }
        assert_eq!(c.stats().bytes, 100);
        assert_eq!(
            c.insert(key(99), 99, 10, 100 * S, 0, 0),
            Admission::Rejected
        );
        assert_eq!(c.stats().bytes, 100);
    }

    #[test]
    fn sweeping_reaps_only_expired_entries() {
        let c = Cache::new(CacheConfig {
            max_entries: 1000,
            ..CacheConfig::default()
        });
        for i in 0..100 {
            c.insert(key(i), i, 8, if i % 2 == 0 { 10 } else { 1_000 }, 0, 0);
        }
        assert_eq!(c.sweep(500, usize::MAX), 50);
        assert_eq!(c.len(), 50);
        assert_eq!(c.stats().expired_reaped, 50);
        assert!((0..100)
            .filter(|i| i % 2 == 1)
            .all(|i| c.get(key(i), 500).is_some()));
    }

    #[test]
    fn removal_by_key_and_by_tag() {
        let c = Cache::new(CacheConfig::default());
        for i in 0..20 {
            c.insert(key(i), i, 8, 1_000, i % 4, 0);
        }
        assert!(c.remove(key(0)));
        assert!(!c.remove(key(0)));
        assert_eq!(c.remove_tag(1), 5);
        assert_eq!(c.len(), 14);
        assert!((0..20)
            .filter(|i| i % 4 == 1)
            .all(|i| c.get(key(i), 1).is_none()));
        assert_eq!(c.clear(), 14);
        assert_eq!(c.stats().bytes, 0);
    }

    #[test]
    fn the_index_stays_consistent_through_random_operations() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let c: Cache<u64> = Cache::new(CacheConfig {
            max_entries: 64,
            max_bytes: 10_000,
            shards: 4,
            eviction_samples: 4,
        });
        for now in 0..20_000u64 {
            let k = key(rng.gen_range(0..200));
            match rng.gen_range(0..4) {
                0 => {
                    c.insert(
                        k,
                        1,
                        rng.gen_range(1..100),
                        now + rng.gen_range(1..50),
                        0,
                        now,
                    );
                }
                1 => {
                    c.remove(k);
                }
                2 => {
                    c.sweep(now, 3);
                }
                _ => {
                    c.get(k, now);
                }
            }
        }
        let mut entries = 0;
        let mut bytes = 0;
        for shard in c.shards.iter() {
            let data = shard.data.read();
            assert_eq!(data.index.len(), data.slots.len());
            for (pos, slot) in data.slots.iter().enumerate() {
                assert_eq!(data.index[&slot.key] as usize, pos);
            }
            assert!(data.slots.len() <= c.max_entries_per_shard);
            entries += data.slots.len();
            bytes += data.bytes;
        }
        assert_eq!(c.stats().entries as usize, entries);
        assert_eq!(c.stats().bytes as usize, bytes);
    }
}
