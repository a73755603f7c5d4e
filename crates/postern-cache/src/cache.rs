//! The concurrent validation cache.
//!
//! # Structure and invariants
//!
//! Entries live in a [`DashMap`] (the fastest of the maps measured in
//! `benches/cache.rs`), keyed by the 128-bit [`CacheKey`] and hashed by its
//! low 64 bits — the key is already pseudorandom, so no further hashing is
//! needed. Reads take one shard read lock inside the map and nothing else.
//!
//! Writes are organised by *partition* (the key's high bits pick one of
//! `shards` partitions, independently of the map's own sharding). Each
//! partition has a mutex over its accounting: the number of live entries,
//! their declared bytes, and a *ring* of keys inserted there, used to sample
//! eviction victims. Every insert, removal and sweep of a key happens under
//! its partition's mutex, so these invariants hold whenever it is released:
//!
//! - `live` and `bytes` equal the count and summed weight of the map's
//!   entries whose keys belong to the partition;
//! - every such key appears in the ring (the ring may also hold stale keys
//!   of removed entries; they are dropped when sampled or swept);
//! - a partition holds at most `max_entries / shards` entries and
//!   `max_bytes / shards` bytes, so the cache holds at most `max_entries`
//!   entries and `max_bytes` bytes (a full partition may refuse an insert
//!   before the whole cache is full);
//! - the global `entries` and `bytes` counters equal the sums over partitions.
//!
//! An expired entry is never returned; it is reaped by the sweeper or when
//! it is sampled for eviction.
//!
//! # Admission and eviction
//!
//! Every miss and insert counts the key in a [`FrequencySketch`]; hits are
//! counted one time in four with weight four (a per-thread random draw),
//! which keeps the hit path to the map's read lock plus one uncontended
//! counter while hot keys still accumulate frequency. When a partition is
//! full, an insert samples `eviction_samples` ring positions: an expired
//! entry is reaped outright; otherwise the least frequent one is the victim,
//! and the candidate is admitted only if the sketch says it is strictly more
//! frequent (TinyLFU's rule). A flood of one-off keys therefore cannot push
//! out sessions that are being used. Departure from W-TinyLFU: there is no
//! LRU window and victims are sampled (as in Redis' approximated LFU) rather
//! than taken from an SLRU's tail; sampling needs no per-hit bookkeeping,
//! which is what keeps hits cheap.
//!
//! # Statistics
//!
//! Hits and misses are counted in 64 cache-line-padded stripes, one chosen
//! per thread and updated without a locked instruction, so concurrent
//! readers neither contend nor pay for an atomic add; reading the statistics
//! sums the stripes (a fixed 64, so O(1) in entries).

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;
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
    /// Number of partitions (rounded up to a power of two).
    pub shards: usize,
    /// Ring positions sampled to choose an eviction victim.
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
    /// Refused: the partition is full of entries more frequent than this one.
    Rejected,
    /// Refused: already expired at `now` (nothing to cache).
    Expired,
    /// Refused: heavier than a whole partition's byte budget.
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
    value: Arc<V>,
    expires_at: u64,
    weight: u32,
    tag: u64,
}

/// Hashes a pseudorandom `u128` key by taking its low half; no mixing needed.
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

/// A partition's accounting; see the module docs for its invariants.
#[derive(Default)]
struct Partition {
    live: usize,
    bytes: usize,
    ring: Vec<CacheKey>,
}

#[derive(Default)]
struct Counters {
    admissions_rejected: AtomicU64,
    evictions: AtomicU64,
    expired_reaped: AtomicU64,
    entries: AtomicU64,
    bytes: AtomicU64,
}

// One counter per cache line, so stripes used by different threads never
// share a line.
#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

const STRIPES: usize = 64;

struct StripedCounter {
    stripes: Box<[Stripe]>,
}

impl StripedCounter {
    fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
        }
    }

    /// Adds without a locked read-modify-write: a stripe is written by the
    /// threads assigned to it, one thread per stripe until more than 64
    /// threads count at once; past that, two threads sharing a stripe may
    /// occasionally lose an increment (statistics, never decisions).
    fn add(&self, stripe: usize, n: u64) {
        let stripe = &self.stripes[stripe].0;
        stripe.store(
            stripe.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // This thread's stripe and its xorshift state for sampling hits (random
    // rather than a round-robin tick, so that periodic access patterns
    // cannot alias with the sampling and leave some hot keys uncounted).
    // Const-initialised and filled on first use: the hit path pays one
    // thread-local access and no lazy-initialisation check of the runtime.
    static LOCAL: Cell<(usize, u64)> = const { Cell::new((usize::MAX, 0)) };
}

/// This thread's stripe and a fresh pseudorandom draw.
fn thread_local_draw() -> (usize, u64) {
    LOCAL.with(|cell| {
        let (mut stripe, mut x) = cell.get();
        if stripe == usize::MAX {
            stripe = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
            x = rand::random::<u64>() | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cell.set((stripe, x));
        (stripe, x)
    })
}

/// A concurrent cache from [`CacheKey`]s to shared values with expiry.
pub struct Cache<V> {
    map: DashMap<CacheKey, Slot<V>, BuildKeyHasher>,
    partitions: Box<[Mutex<Partition>]>,
    partition_mask: usize,
    max_entries_per_partition: usize,
    max_bytes_per_partition: usize,
    samples: usize,
    sketch: FrequencySketch,
    hits: StripedCounter,
    misses: StripedCounter,
    counters: Counters,
}

impl<V> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<V> Cache<V> {
    pub fn new(config: CacheConfig) -> Self {
        let partitions = config.shards.max(1).next_power_of_two();
        Self {
            map: DashMap::with_capacity_and_hasher(0, BuildKeyHasher),
            partitions: (0..partitions)
                .map(|_| Mutex::new(Partition::default()))
                .collect(),
            partition_mask: partitions - 1,
            max_entries_per_partition: config.max_entries.div_ceil(partitions).max(1),
            max_bytes_per_partition: (config.max_bytes / partitions).max(1),
            samples: config.eviction_samples.max(1),
            sketch: FrequencySketch::new(config.max_entries),
            hits: StripedCounter::new(),
            misses: StripedCounter::new(),
            counters: Counters::default(),
        }
    }

    fn partition(&self, key: CacheKey) -> &Mutex<Partition> {
        &self.partitions[((key >> 64) as usize) & self.partition_mask]
    }

    fn record_hit(&self, key: CacheKey) {
        let (stripe, draw) = thread_local_draw();
        self.hits.add(stripe, 1);
        if draw % 4 == 0 {
            self.sketch.increment_by(key, 4);
        }
    }

    /// The value under `key` if present and unexpired at `now`.
    pub fn get(&self, key: CacheKey, now: u64) -> Option<Arc<V>> {
        self.get_map(key, now, Arc::clone)
    }

    /// Runs `f` on the value under `key` (if present and unexpired) while the
    /// map's shard is read-locked, without touching the value's reference
    /// count. `f` must be short: it delays writers to that shard.
    pub fn get_map<R>(&self, key: CacheKey, now: u64, f: impl FnOnce(&Arc<V>) -> R) -> Option<R> {
        let found = match self.map.get(&key) {
            Some(slot) if slot.expires_at > now => Some(f(&slot.value)),
            _ => None,
        };
        match found {
            Some(_) => self.record_hit(key),
            None => {
                self.misses.add(thread_local_draw().0, 1);
                self.sketch.increment(key);
            }
        }
        found
    }

    /// The expiry time of `key`'s entry, if present (expired or not).
    pub fn expires_at(&self, key: CacheKey) -> Option<u64> {
        self.map.get(&key).map(|slot| slot.expires_at)
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
        if weight as usize > self.max_bytes_per_partition {
            return Admission::TooLarge;
        }
        self.sketch.increment(key);
        let mut partition = self.partition(key).lock();
        if let Some(mut existing) = self.map.get_mut(&key) {
            let old = existing.weight;
            partition.bytes = partition.bytes - old as usize + weight as usize;
            self.adjust_bytes(old, weight);
            *existing = Slot {
                value,
                expires_at,
                weight,
                tag,
            };
            return Admission::Replaced;
        }
        while partition.live >= self.max_entries_per_partition
            || partition.bytes + weight as usize > self.max_bytes_per_partition
        {
            if !self.make_room(&mut partition, key, now) {
                self.counters
                    .admissions_rejected
                    .fetch_add(1, Ordering::Relaxed);
                return Admission::Rejected;
            }
        }
        self.map.insert(
            key,
            Slot {
                value,
                expires_at,
                weight,
                tag,
            },
        );
        partition.live += 1;
        partition.bytes += weight as usize;
        partition.ring.push(key);
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

    /// Removes `key` from the map and its partition's accounting. The caller
    /// holds the partition's lock. Leaves the key's ring position stale.
    fn remove_locked(&self, partition: &mut Partition, key: CacheKey) -> Option<Slot<V>> {
        let (_, slot) = self.map.remove(&key)?;
        partition.live -= 1;
        partition.bytes -= slot.weight as usize;
        self.counters.entries.fetch_sub(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_sub(u64::from(slot.weight), Ordering::Relaxed);
        Some(slot)
    }

    /// Frees room for `candidate`: reaps an expired sample, or evicts the
    /// least frequent sample if the candidate is more frequent. Stale ring
    /// positions met on the way are dropped.
    fn make_room(&self, partition: &mut Partition, candidate: CacheKey, now: u64) -> bool {
        let mut rng = rand::thread_rng();
        let mut victim: Option<(CacheKey, u16)> = None;
        let mut sampled = 0;
        while sampled < self.samples && !partition.ring.is_empty() {
            let pos = rng.gen_range(0..partition.ring.len());
            let key = partition.ring[pos];
            let expires_at = match self.map.get(&key) {
                Some(slot) => slot.expires_at,
                None => {
                    partition.ring.swap_remove(pos);
                    continue;
                }
            };
            sampled += 1;
            if expires_at <= now {
                partition.ring.swap_remove(pos);
                self.remove_locked(partition, key);
                self.counters.expired_reaped.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            let freq = self.sketch.estimate(key);
            if victim.is_none_or(|(_, f)| freq < f) {
                victim = Some((key, freq));
            }
        }
        match victim {
            Some((key, freq)) if self.sketch.estimate(candidate) > freq => {
                self.remove_locked(partition, key);
                self.counters.evictions.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Removes `key`'s entry (logout, revocation). Returns whether it was there.
    pub fn remove(&self, key: CacheKey) -> bool {
        let mut partition = self.partition(key).lock();
        self.remove_locked(&mut partition, key).is_some()
    }

    /// Removes every entry carrying `tag` (e.g. every token signed with a
    /// rotated-out key id). Locks one partition at a time.
    pub fn remove_tag(&self, tag: u64) -> usize {
        self.remove_where(usize::MAX, |slot| slot.tag == tag).0
    }

    /// Removes every entry.
    pub fn clear(&self) -> usize {
        self.remove_where(usize::MAX, |_| true).0
    }

    /// Walks each partition's ring (compacting stale positions) and removes
    /// up to `max_per_partition` entries for which `doomed` holds.
    fn remove_where(
        &self,
        max_per_partition: usize,
        doomed: impl Fn(&Slot<V>) -> bool,
    ) -> (usize, usize) {
        let mut removed = 0;
        let mut visited = 0;
        for partition in self.partitions.iter() {
            let mut partition = partition.lock();
            let mut here = 0;
            let mut pos = 0;
            while pos < partition.ring.len() {
                let key = partition.ring[pos];
                let verdict = self.map.get(&key).map(|slot| doomed(&slot));
                visited += 1;
                match verdict {
                    None => {
                        partition.ring.swap_remove(pos);
                    }
                    Some(true) if here < max_per_partition => {
                        partition.ring.swap_remove(pos);
                        self.remove_locked(&mut partition, key);
                        here += 1;
                    }
                    Some(_) => pos += 1,
                }
            }
            removed += here;
        }
        (removed, visited)
    }

    /// Reaps expired entries, at most `max_per_shard` per partition, locking
    /// one partition at a time; readers never wait on a partition lock.
    pub fn sweep(&self, now: u64, max_per_shard: usize) -> usize {
        let (reaped, _) = self.remove_where(max_per_shard, |slot| slot.expires_at <= now);
        self.counters
            .expired_reaped
            .fetch_add(reaped as u64, Ordering::Relaxed);
        reaped
    }

    /// Counters, summed over a fixed number of stripes: O(1) in entries.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.sum(),
            misses: self.misses.sum(),
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
        for (p, partition) in c.partitions.iter().enumerate() {
            let partition = partition.lock();
            let in_map: Vec<(CacheKey, u32)> = c
                .map
                .iter()
                .filter(|e| ((*e.key() >> 64) as usize) & c.partition_mask == p)
                .map(|e| (*e.key(), e.value().weight))
                .collect();
            assert_eq!(partition.live, in_map.len());
            assert_eq!(
                partition.bytes,
                in_map.iter().map(|(_, w)| *w as usize).sum::<usize>()
            );
            assert!(
                in_map.iter().all(|(k, _)| partition.ring.contains(k)),
                "every live key is in its ring"
            );
            assert!(partition.live <= c.max_entries_per_partition);
            entries += partition.live;
            bytes += partition.bytes;
        }
        assert_eq!(c.map.len(), entries);
        assert_eq!(c.stats().entries as usize, entries);
        assert_eq!(c.stats().bytes as usize, bytes);
    }
}
