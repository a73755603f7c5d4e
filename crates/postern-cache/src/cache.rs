//! The concurrent validation cache.
//!
//! # Structure and invariants
//!
//! The key's high bits pick one of `shards` [`Shard`]s (see
//! [`crate::table`]): an open-addressing table that readers search without
//! a lock and without writing anything shared, so a hit costs a few loads
//! and the value's own cache line. `crate::table` says why the cache has
//! its own table rather than a `DashMap` (`benches/engines.rs` measures
//! both, with `moka` and `quick_cache`, in one run).
//!
//! Every insert, removal and sweep of a key happens under its shard's
//! writer lock, so these invariants hold whenever it is released:
//!
//! - the shard's `live` and `bytes` equal the count and summed weight of
//!   its entries;
//! - a shard holds at most `max_entries / shards` entries and
//!   `max_bytes / shards` bytes, so the cache holds at most `max_entries`
//!   entries and `max_bytes` bytes (a full shard may refuse an insert
//!   before the whole cache is full);
//! - the global `entries` and `bytes` counters equal the sums over shards.
//!
//! An expired entry is never returned; it is reaped by the sweeper or when
//! it is sampled for eviction.
//!
//! # Admission and eviction
//!
//! Every miss and insert counts the key in a [`FrequencySketch`]; hits are
//! counted one time in four with weight four (a per-thread random draw), so
//! that hot keys accumulate frequency while most hits write nothing shared.
//! When a shard is full, an insert samples `eviction_samples` live entries
//! (each the first live slot at or after a random position): an expired
//! one is reaped outright; otherwise the least frequent one is the victim,
//! and the candidate is admitted only if the sketch says it is strictly
//! more frequent (TinyLFU's rule). A flood of one-off keys therefore cannot
//! push out sessions that are being used. Departures from W-TinyLFU: there
//! is no LRU window, and victims are sampled (as in Redis' approximated
//! LFU) rather than taken from an SLRU's tail. Sampling needs no per-hit
//! bookkeeping, which is what keeps hits cheap; a slot that follows a run
//! of empty slots is sampled a little more often than others.
//!
//! # Statistics
//!
//! Hits and misses go to [`StripedCounter`]s: one stripe per thread, added
//! to with a plain load and store, and exact. The other counters change
//! only on writes. Reading the statistics sums a fixed number of stripes,
//! so it is O(1) in entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_epoch as epoch;

use crate::counter::{draw, StripedCounter};
use crate::key::CacheKey;
use crate::sketch::FrequencySketch;
use crate::table::{Entry, Shard, Writer};

/// Cache limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries held.
    pub max_entries: usize,
    /// Most bytes of declared entry weight held.
    pub max_bytes: usize,
    /// Number of shards (rounded up to a power of two).
    pub shards: usize,
    /// Live entries sampled to choose an eviction victim.
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
    hits: StripedCounter,
    misses: StripedCounter,
    counters: Counters,
}

impl<V: Send + Sync + 'static> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Sampled hits count with this weight, one time in `HIT_SAMPLE`.
const HIT_SAMPLE: u64 = 4;

impl<V: Send + Sync + 'static> Cache<V> {
    pub fn new(config: CacheConfig) -> Self {
        let shards = config.shards.max(1).next_power_of_two();
        Self {
            shards: (0..shards).map(|_| Shard::new()).collect(),
            shard_mask: shards - 1,
            max_entries_per_shard: config.max_entries.div_ceil(shards).max(1),
            max_bytes_per_shard: (config.max_bytes / shards).max(1),
            samples: config.eviction_samples.max(1),
            sketch: FrequencySketch::new(config.max_entries),
            hits: StripedCounter::default(),
            misses: StripedCounter::default(),
            counters: Counters::default(),
        }
    }

    fn shard(&self, key: CacheKey) -> &Shard<V> {
        &self.shards[((key >> 64) as usize) & self.shard_mask]
    }

    /// The value under `key` if present and unexpired at `now`.
    pub fn get(&self, key: CacheKey, now: u64) -> Option<Arc<V>> {
        self.get_map(key, now, Arc::clone)
    }

    /// Runs `f` on the value under `key` (if present and unexpired), without
    /// touching the value's reference count and without taking any lock.
    /// `f` should be short: while it runs, this thread holds back the
    /// freeing of entries removed meanwhile (never any reader or writer).
    pub fn get_map<R>(&self, key: CacheKey, now: u64, f: impl FnOnce(&Arc<V>) -> R) -> Option<R> {
        let found = {
            let guard = epoch::pin();
            match self.shard(key).find(key, &guard) {
                Some(entry) if entry.expires_at > now => Some(f(&entry.value)),
                _ => None,
            }
        };
        match found {
            Some(_) => {
                self.hits.add(1);
                if draw().is_multiple_of(HIT_SAMPLE) {
                    self.sketch.increment_by(key, HIT_SAMPLE as u8);
                }
            }
            None => {
                self.misses.add(1);
                self.sketch.increment(key);
            }
        }
        found
    }

    /// The expiry time of `key`'s entry, if present (expired or not).
    pub fn expires_at(&self, key: CacheKey) -> Option<u64> {
        let guard = epoch::pin();
        self.shard(key).find(key, &guard).map(|e| e.expires_at)
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
        let guard = epoch::pin();
        let mut shard = self.shard(key).lock(&guard);
        let entry = Entry {
            key,
            expires_at,
            weight,
            tag,
            value,
        };
        let entry = match shard.replace(entry) {
            Ok(old) => {
                self.adjust_bytes(old, weight);
                return Admission::Replaced;
            }
            Err(entry) => entry,
        };
        while shard.accounts().live >= self.max_entries_per_shard
            || shard.accounts().bytes + weight as usize > self.max_bytes_per_shard
        {
            if !self.make_room(&mut shard, key, now) {
                self.counters
                    .admissions_rejected
                    .fetch_add(1, Ordering::Relaxed);
                return Admission::Rejected;
            }
        }
        shard.insert_absent(entry);
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

    /// Global accounting for an entry that left a shard.
    fn removed(&self, entry: &Entry<V>) {
        self.counters.entries.fetch_sub(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_sub(u64::from(entry.weight), Ordering::Relaxed);
    }

    /// Frees room for `candidate`: reaps an expired sample, or evicts the
    /// least frequent sample if the candidate is more frequent.
    fn make_room(&self, shard: &mut Writer<'_, '_, V>, candidate: CacheKey, now: u64) -> bool {
        let mut victim: Option<(usize, u16)> = None;
        for _ in 0..self.samples {
            let Some((index, entry)) = shard.sample(draw() as usize) else {
                break;
            };
            if entry.expires_at <= now {
                if let Some(gone) = shard.evict(index) {
                    self.removed(gone);
                    self.counters.expired_reaped.fetch_add(1, Ordering::Relaxed);
                }
                return true;
            }
            let freq = self.sketch.estimate(entry.key);
            if victim.is_none_or(|(_, f)| freq < f) {
                victim = Some((index, freq));
            }
        }
        match victim {
            Some((index, freq)) if self.sketch.estimate(candidate) > freq => {
                if let Some(gone) = shard.evict(index) {
                    self.removed(gone);
                    self.counters.evictions.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            _ => false,
        }
    }

    /// Removes `key`'s entry (logout, revocation). Returns whether it was there.
    pub fn remove(&self, key: CacheKey) -> bool {
        let guard = epoch::pin();
        let mut shard = self.shard(key).lock(&guard);
        match shard.remove(key) {
            Some(gone) => {
                self.removed(gone);
                true
            }
            None => false,
        }
    }

    /// Removes every entry carrying `tag` (e.g. every token signed with a
    /// rotated-out key id). Locks one shard at a time.
    pub fn remove_tag(&self, tag: u64) -> usize {
        self.remove_where(usize::MAX, |entry| entry.tag == tag)
    }

    /// Removes every entry.
    pub fn clear(&self) -> usize {
        self.remove_where(usize::MAX, |_| true)
    }

    /// Removes up to `max_per_shard` entries of each shard for which
    /// `doomed` holds, locking one shard at a time.
    fn remove_where(&self, max_per_shard: usize, doomed: impl Fn(&Entry<V>) -> bool) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let guard = epoch::pin();
            let mut shard = shard.lock(&guard);
            let before = (shard.accounts().live, shard.accounts().bytes);
            let here = shard.remove_where(max_per_shard, &doomed);
            let after = (shard.accounts().live, shard.accounts().bytes);
            self.counters
                .entries
                .fetch_sub((before.0 - after.0) as u64, Ordering::Relaxed);
            self.counters
                .bytes
                .fetch_sub((before.1 - after.1) as u64, Ordering::Relaxed);
            removed += here;
        }
        removed
    }

    /// Reaps expired entries, at most `max_per_shard` per shard, locking
    /// one shard at a time; readers never wait on a shard's lock.
    pub fn sweep(&self, now: u64, max_per_shard: usize) -> usize {
        let reaped = self.remove_where(max_per_shard, |entry| entry.expires_at <= now);
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
        let guard = epoch::pin();
        for (p, shard) in c.shards.iter().enumerate() {
            let shard = shard.lock(&guard);
            let live = shard.entries();
            assert!(
                live.iter()
                    .all(|e| ((e.key >> 64) as usize) & c.shard_mask == p),
                "every entry is in its key's shard"
            );
            let mut keys: Vec<CacheKey> = live.iter().map(|e| e.key).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), live.len(), "a key is live at most once");
            assert_eq!(shard.accounts().live, live.len());
            assert_eq!(
                shard.accounts().bytes,
                live.iter().map(|e| e.weight as usize).sum::<usize>()
            );
            assert!(shard.accounts().live <= c.max_entries_per_shard);
            assert!(
                live.iter()
                    .all(|e| c.shard(e.key).find(e.key, &guard).is_some()),
                "every live entry is reachable by its key"
            );
            entries += live.len();
            bytes += shard.accounts().bytes;
        }
        assert_eq!(c.stats().entries as usize, entries);
        assert_eq!(c.stats().bytes as usize, bytes);
    }

    #[test]
    fn tables_stay_small_through_churn() {
        let c = small(1_000);
        for round in 0..50u64 {
            for i in 0..500 {
                c.insert(key(round * 1_000 + i), i, 8, 100 * S, 0, 0);
            }
            for i in 0..500 {
                assert!(c.remove(key(round * 1_000 + i)));
            }
        }
        assert!(c.is_empty());
        let guard = epoch::pin();
        let shard = c.shards[0].lock(&guard);
        // 25,000 keys went through; tombstones were rebuilt away each time
        // they passed a quarter of the table.
        assert!(shard.capacity() <= 4_096, "capacity {}", shard.capacity());
        assert_eq!(shard.accounts().live, 0);
    }

    #[test]
    fn concurrent_readers_never_see_a_wrong_or_expired_value_while_writers_churn() {
        use std::sync::atomic::AtomicBool;
        // Values encode their key and expiry, so a reader can check that
        // whatever it is handed belongs to the key it asked for and is live.
        let c: Arc<Cache<(CacheKey, u64)>> = Arc::new(Cache::new(CacheConfig {
            max_entries: 512,
            max_bytes: 1 << 20,
            shards: 4,
            eviction_samples: 4,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let now = 1_000;
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let c = c.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = w + 1;
                    let mut ops = 0u64;
                    while !stop.load(Ordering::Relaxed) || ops < 20_000 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        let k = key(x >> 54);
                        let expires = now + 1 + (x >> 40) % 3 * 1_000;
                        match x >> 61 {
                            0..=3 => {
                                c.insert(k, (k, expires), 16, expires, x % 3, now);
                            }
                            4 | 5 => {
                                c.remove(k);
                            }
                            6 => {
                                c.sweep(now + 1_500, 8);
                            }
                            _ => {
                                c.remove_tag(x % 3);
                            }
                        }
                        ops += 1;
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2u64)
            .map(|r| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut found = 0u64;
                    for i in 0..400_000u64 {
                        let k = key((i * 7 + r) % 1024);
                        let at = now + (i % 4) * 700;
                        if let Some((owner, expires)) = c.get_map(k, at, |v| **v) {
                            assert_eq!(owner, k, "a value is only ever served for its own key");
                            assert!(expires > at, "an expired value is never served");
                            found += 1;
                        }
                    }
                    found
                })
            })
            .collect();
        let found: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        assert!(found > 0, "readers hit something");
        // Accounting survived the churn.
        let guard = epoch::pin();
        let live: usize = c
            .shards
            .iter()
            .map(|s| s.lock(&guard).entries().len())
            .sum();
        assert_eq!(c.stats().entries as usize, live);
        assert!(live <= 512);
        assert_eq!(c.stats().hits, found);
    }

    #[test]
    fn dropping_the_cache_drops_every_value_once() {
        let probe = Arc::new(());
        {
            let c: Cache<Arc<()>> = Cache::new(CacheConfig::default());
            for i in 0..1_000 {
                c.insert(key(i), probe.clone(), 8, 100, 0, 0);
            }
            for i in 0..500 {
                c.remove(key(i));
            }
            c.insert(key(600), probe.clone(), 8, 100, 0, 0);
        }
        // Removed values are freed by the epoch collector once no thread can
        // still read them; flush until it has run.
        for _ in 0..1_000 {
            if Arc::strong_count(&probe) == 1 {
                break;
            }
            epoch::pin().flush();
        }
        assert_eq!(Arc::strong_count(&probe), 1);
    }
}
