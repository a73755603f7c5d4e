//! The slot table behind [`Cache`](crate::Cache): one open-addressing
//! table per partition, read without a lock and without any atomic
//! read-modify-write.
//!
//! # Why our own table
//!
//! `benches/engines.rs` measured `dashmap` (the fastest crate) at 23 ns per
//! hit with 1M entries, and a cache built on it at 31 ns: a `DashMap` read
//! takes and releases a shard read lock (two locked instructions) and visits
//! the control bytes, the bucket and then the value. Here a hit reads one
//! 64-byte slot that holds the whole key, the expiry and the value pointer,
//! validated by a sequence lock, and then the value: two cache lines and
//! plain loads. The numbers are in `BENCHMARKS.md`.
//!
//! # Protocol
//!
//! - **One writer per table.** Every method that changes a slot is on
//!   [`Writer`], which can only be built from the partition's mutex guard.
//! - **Readers** load a slot's fields between two reads of its sequence
//!   number and keep them only if the number was even and unchanged
//!   (Boehm's seqlock reader: relaxed data loads, then an acquire fence,
//!   then the second sequence load). A writer makes the number odd, fences,
//!   stores the fields, and makes it even again with a release store.
//! - **Memory.** Values are `Arc<V>` held as raw pointers. A value that
//!   leaves a slot (replaced or removed) and a table replaced by a rebuilt
//!   one are *retired*: freed only once every read section that was open
//!   when they became unreachable has ended ([`crate::reclaim`]). Readers
//!   open a section before they load the table pointer and close it when
//!   they are done with the value.
//! - **Deletion** leaves a tombstone, or an empty slot when the next slot is
//!   empty (then the tombstones before it are emptied too: no probe can
//!   pass them). Tombstones count towards the load limit; going over it
//!   rebuilds the table into a fresh allocation, sized for the live
//!   entries, and publishes it with one pointer store.
//! - **Probing** is linear from the key's low bits. The load limit (3/4)
//!   leaves empty slots, so every probe ends.
//! - **Huge pages.** Slots are allocated by [`Zeroed`], which backs
//!   tables of 2 MiB or more with transparent huge pages.

#![allow(unsafe_code)]

use crate::huge::MAX_LEN;
#[cfg(not(loom))]
use crate::huge::{ZeroValid, Zeroed};
use crate::key::CacheKey;
use crate::sync::{fence, spin_hint, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Smallest table a partition starts with.
pub(crate) const MIN_CAPACITY: usize = 16;

/// Attempts at an optimistic read of one slot before the reader gives up
/// and reads under the partition's mutex (a writer was preempted mid-write).
#[cfg(not(loom))]
const OPTIMISTIC_READS: usize = 64;
/// Under loom each failed attempt yields to the model checker: three
/// explore both the retry and the fall-back to the mutex.
#[cfg(loom)]
const OPTIMISTIC_READS: usize = 3;

/// The marker a removed entry leaves in `value`. Never dereferenced; no
/// allocation lives at address 1.
fn tombstone<V>() -> *mut V {
    std::ptr::without_provenance_mut(1)
}

#[repr(C, align(64))]
struct Slot<V> {
    seq: AtomicU64,
    key_lo: AtomicU64,
    key_hi: AtomicU64,
    expires_at: AtomicU64,
    /// Null: empty. [`tombstone`]: removed. Otherwise `Arc::into_raw`.
    value: AtomicPtr<V>,
    tag: AtomicU64,
    weight: AtomicU32,
    /// Hits since the entry was stored, saturating at 255 and halved each
    /// time the sketch ages: the entry's recent use, for eviction. Written by readers
    /// (outside the sequence lock: an estimate, never a decision on its
    /// own) only while below saturation, so a hot slot's line stays shared.
    hits: AtomicU8,
}

// SAFETY: all-zero bytes are an empty slot: zero atomics and a null value
// pointer. (loom's atomics are not plain integers: under loom, tables are
// built slot by slot instead, see `Slots`.)
#[cfg(not(loom))]
unsafe impl<V> ZeroValid for Slot<V> {}

/// A table's slots: zeroed memory (huge pages when large) normally; under
/// loom, slots constructed one by one, since loom's atomics register with
/// the model when they are made.
#[cfg(not(loom))]
type Slots<V> = Zeroed<Slot<V>>;
#[cfg(loom)]
type Slots<V> = Box<[Slot<V>]>;

#[cfg(not(loom))]
fn empty_slots<V>(len: usize) -> Slots<V> {
    Zeroed::new(len)
}

#[cfg(loom)]
fn empty_slots<V>(len: usize) -> Slots<V> {
    (0..len)
        .map(|_| Slot {
            seq: AtomicU64::new(0),
            key_lo: AtomicU64::new(0),
            key_hi: AtomicU64::new(0),
            expires_at: AtomicU64::new(0),
            value: AtomicPtr::new(std::ptr::null_mut()),
            tag: AtomicU64::new(0),
            weight: AtomicU32::new(0),
            hits: AtomicU8::new(0),
        })
        .collect()
}

impl<V> Slot<V> {
    /// One optimistic read: `None` if a write overlapped it.
    #[inline]
    fn read(&self) -> Option<Seen<V>> {
        let before = self.seq.load(Ordering::Acquire);
        let key_lo = self.key_lo.load(Ordering::Relaxed);
        let key_hi = self.key_hi.load(Ordering::Relaxed);
        let expires_at = self.expires_at.load(Ordering::Relaxed);
        let value = self.value.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let after = self.seq.load(Ordering::Relaxed);
        (before == after && before & 1 == 0).then_some(Seen {
            key: join(key_lo, key_hi),
            expires_at,
            value,
        })
    }

    /// The writer's view: no write can be in progress while it holds the
    /// partition's mutex, so plain relaxed loads are consistent.
    fn peek(&self) -> Seen<V> {
        Seen {
            key: join(
                self.key_lo.load(Ordering::Relaxed),
                self.key_hi.load(Ordering::Relaxed),
            ),
            expires_at: self.expires_at.load(Ordering::Relaxed),
            value: self.value.load(Ordering::Relaxed),
        }
    }

    /// The writer's view of a live slot's whole entry.
    fn stored(&self) -> Option<Stored<V>> {
        let seen = self.peek();
        seen.is_live().then(|| Stored {
            key: seen.key,
            expires_at: seen.expires_at,
            value: seen.value,
            tag: self.tag.load(Ordering::Relaxed),
            weight: self.weight.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
        })
    }

    /// Counts a hit, unless the count is saturated.
    #[inline]
    fn bump_hits(&self) {
        let hits = self.hits.load(Ordering::Relaxed);
        if hits < u8::MAX {
            self.hits.store(hits + 1, Ordering::Relaxed);
        }
    }

    fn write(&self, entry: &Stored<V>) {
        let current = self.peek();
        if !(current.is_live() && current.key == entry.key) {
            self.hits.store(0, Ordering::Relaxed);
        }
        let (lo, hi) = split(entry.key);
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.key_lo.store(lo, Ordering::Relaxed);
        self.key_hi.store(hi, Ordering::Relaxed);
        self.expires_at.store(entry.expires_at, Ordering::Relaxed);
        self.value.store(entry.value, Ordering::Relaxed);
        self.tag.store(entry.tag, Ordering::Relaxed);
        self.weight.store(entry.weight, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    fn set_marker(&self, marker: *mut V) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.value.store(marker, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

fn split(key: CacheKey) -> (u64, u64) {
    (key as u64, (key >> 64) as u64)
}

fn join(lo: u64, hi: u64) -> CacheKey {
    u128::from(lo) | (u128::from(hi) << 64)
}

/// A slot's fields as one consistent read saw them.
struct Seen<V> {
    key: CacheKey,
    expires_at: u64,
    value: *mut V,
}

impl<V> Seen<V> {
    fn is_empty(&self) -> bool {
        self.value.is_null()
    }

    fn is_live(&self) -> bool {
        !self.value.is_null() && self.value != tombstone()
    }
}

/// A live entry: its value is `Arc::into_raw` of the cached `Arc<V>`.
pub(crate) struct Stored<V> {
    pub key: CacheKey,
    pub expires_at: u64,
    pub value: *mut V,
    pub tag: u64,
    pub weight: u32,
    /// Recent hits (read back from a slot; ignored when writing one).
    pub hits: u8,
}

/// What a reader found under a key.
pub(crate) enum Probe<'t, V> {
    Found {
        expires_at: u64,
        value: *mut V,
        slot: SlotRef<'t, V>,
    },
    Absent,
    /// A slot on the probe path was being written throughout the reader's
    /// attempts; the caller retries under the partition's mutex.
    Contended,
}

/// The slot a hit was found in, to count the hit there.
pub(crate) struct SlotRef<'t, V>(&'t Slot<V>);

impl<V> SlotRef<'_, V> {
    #[inline]
    pub(crate) fn count_hit(&self) {
        self.0.bump_hits();
    }
}

/// A fixed-capacity open-addressing table (capacity a power of two).
pub(crate) struct Table<V> {
    mask: usize,
    slots: Slots<V>,
    /// Under loom: fails the model if a reader searches this table after
    /// (or racing) its free.
    #[cfg(loom)]
    alive: crate::sync::Alive,
}

impl<V> Table<V> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.clamp(MIN_CAPACITY, MAX_LEN).next_power_of_two();
        Self {
            mask: capacity - 1,
            slots: empty_slots(capacity),
            #[cfg(loom)]
            alive: crate::sync::Alive::new(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn home(&self, key: CacheKey) -> usize {
        (key as usize) & self.mask
    }

    /// Looks `key` up without a lock. A returned value pointer may be read
    /// only inside the read section that was open when this table's pointer
    /// was loaded.
    #[inline]
    pub(crate) fn find(&self, key: CacheKey) -> Probe<'_, V> {
        #[cfg(loom)]
        self.alive.check();
        let mut index = self.home(key);
        for _ in 0..self.slots.len() {
            let slot = &self.slots[index];
            let seen = match (0..OPTIMISTIC_READS).find_map(|attempt| {
                if attempt > 0 {
                    spin_hint();
                }
                slot.read()
            }) {
                Some(seen) => seen,
                None => return Probe::Contended,
            };
            if seen.is_empty() {
                return Probe::Absent;
            }
            if seen.key == key && seen.is_live() {
                return Probe::Found {
                    expires_at: seen.expires_at,
                    value: seen.value,
                    slot: SlotRef(slot),
                };
            }
            index = (index + 1) & self.mask;
        }
        Probe::Absent
    }

    #[cfg(test)]
    pub(crate) fn tombstones(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.peek().value == tombstone::<V>())
            .count()
    }

    /// Every live entry, as the writer (or the only owner) sees it.
    pub(crate) fn live(&self) -> impl Iterator<Item = Stored<V>> + '_ {
        self.slots.iter().filter_map(Slot::stored)
    }
}

/// Where a key is, or where it would go.
pub(crate) enum Located {
    At(usize),
    /// Not present; the first reusable slot on its probe path, and whether
    /// that slot is a tombstone.
    Vacant {
        index: usize,
        tombstone: bool,
    },
}

impl Located {
    /// The first tombstone met, else the empty slot that ended the probe.
    fn vacant(tombstone: Option<usize>, empty: usize) -> Self {
        match tombstone {
            Some(index) => Located::Vacant {
                index,
                tombstone: true,
            },
            None => Located::Vacant {
                index: empty,
                tombstone: false,
            },
        }
    }
}

/// The partition's single writer over its current table. Built only while
/// the partition's mutex is held.
pub(crate) struct Writer<'t, V> {
    table: &'t Table<V>,
}

impl<'t, V> Writer<'t, V> {
    /// # Safety
    /// The caller holds the mutex that serialises all writers of `table`,
    /// for as long as the writer lives.
    pub(crate) unsafe fn new(table: &'t Table<V>) -> Self {
        Self { table }
    }

    pub(crate) fn table(&self) -> &'t Table<V> {
        self.table
    }

    pub(crate) fn locate(&self, key: CacheKey) -> Located {
        let t = self.table;
        let mut index = t.home(key);
        let mut reusable: Option<usize> = None;
        for _ in 0..t.slots.len() {
            let seen = t.slots[index].peek();
            if seen.is_empty() {
                return Located::vacant(reusable, index);
            }
            if seen.is_live() && seen.key == key {
                return Located::At(index);
            }
            if !seen.is_live() && reusable.is_none() {
                reusable = Some(index);
            }
            index = (index + 1) & t.mask;
        }
        // Unreachable under the load limit, which always leaves an empty
        // slot; answer with the tombstone if there was one.
        Located::vacant(reusable, index)
    }

    /// The live entry at `index`, if any.
    pub(crate) fn entry(&self, index: usize) -> Option<Stored<V>> {
        self.table.slots[index].stored()
    }

    /// Halves the recent-hit count of the live entry at `index` (aging).
    pub(crate) fn age_hits(&self, index: usize) {
        let slot = &self.table.slots[index];
        let hits = slot.hits.load(Ordering::Relaxed);
        if hits > 0 {
            slot.hits.store(hits / 2, Ordering::Relaxed);
        }
    }

    /// Writes `entry` at `index` (a vacant slot, or the key's own slot).
    /// A slot keeps its hit count when the same key is rewritten.
    pub(crate) fn put(&self, index: usize, entry: &Stored<V>) {
        self.table.slots[index].write(entry);
    }

    /// Empties the live slot at `index`; returns how many tombstones the
    /// table gained (1) or lost (0 or fewer: the slot and the tombstones
    /// before it became empty).
    pub(crate) fn clear(&self, index: usize) -> isize {
        let t = self.table;
        let next = (index + 1) & t.mask;
        if !t.slots[next].peek().is_empty() {
            t.slots[index].set_marker(tombstone());
            return 1;
        }
        t.slots[index].set_marker(std::ptr::null_mut());
        let mut freed = 0;
        let mut prev = index.wrapping_sub(1) & t.mask;
        while prev != index && t.slots[prev].peek().value == tombstone() {
            t.slots[prev].set_marker(std::ptr::null_mut());
            freed += 1;
            prev = prev.wrapping_sub(1) & t.mask;
        }
        -freed
    }

    /// A copy of the live entries in a new table of `capacity` slots, not
    /// yet visible to readers.
    pub(crate) fn rebuilt(&self, capacity: usize) -> Table<V> {
        let fresh = Table::with_capacity(capacity);
        {
            // SAFETY: `fresh` is not shared yet; this is its only writer.
            let writer = unsafe { Writer::new(&fresh) };
            for entry in self.table.live() {
                if let Located::Vacant { index, .. } = writer.locate(entry.key) {
                    writer.put(index, &entry);
                    // An entry's recent use moves with it.
                    fresh.slots[index].hits.store(entry.hits, Ordering::Relaxed);
                }
            }
        }
        fresh
    }
}

// SAFETY: the raw value pointers are `Arc<V>`s; sharing a table shares the
// values (`Sync`) and lets any thread drop them (`Send`); the slots are
// atomics.
unsafe impl<V: Send + Sync> Send for Table<V> {}
// SAFETY: as for `Send`; concurrent access to slots goes through atomics
// only, and writes are confined to the one `Writer` of the partition's mutex.
unsafe impl<V: Send + Sync> Sync for Table<V> {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn stored(key: CacheKey, value: usize) -> Stored<u8> {
        Stored {
            key,
            expires_at: 10,
            value: std::ptr::without_provenance_mut(value * 8),
            tag: 0,
            weight: 1,
            hits: 0,
        }
    }

    fn found(t: &Table<u8>, key: CacheKey) -> Option<usize> {
        match t.find(key) {
            Probe::Found { value, .. } => Some(value as usize / 8),
            _ => None,
        }
    }

    #[test]
    fn colliding_keys_probe_past_each_other_and_removal_keeps_chains() {
        let t = Table::with_capacity(16);
        // SAFETY: the table is local to the test: one writer.
        let w = unsafe { Writer::new(&t) };
        // Same home slot (low bits), different keys.
        let keys: Vec<CacheKey> = (1..=4u128).map(|i| (i << 64) | 3).collect();
        for (i, &k) in keys.iter().enumerate() {
            match w.locate(k) {
                Located::Vacant { index, .. } => w.put(index, &stored(k, i + 1)),
                Located::At(_) => panic!("not yet present"),
            }
        }
        assert_eq!(found(&t, keys[3]), Some(4));
        let Located::At(second) = w.locate(keys[1]) else {
            panic!("present")
        };
        assert_eq!(
            w.clear(second),
            1,
            "a slot inside a chain leaves a tombstone"
        );
        assert_eq!(found(&t, keys[1]), None);
        assert_eq!(
            found(&t, keys[3]),
            Some(4),
            "the chain still reaches past it"
        );
        let Located::At(last) = w.locate(keys[3]) else {
            panic!("present")
        };
        let Located::At(third) = w.locate(keys[2]) else {
            panic!("present")
        };
        assert_eq!(w.clear(last), 0);
        assert_eq!(
            w.clear(third),
            -1,
            "emptying the chain's end frees the tombstone before it"
        );
        assert_eq!(t.live().count(), 1);
        assert!(matches!(
            w.locate(keys[1]),
            Located::Vacant {
                tombstone: false,
                ..
            }
        ));
    }

    #[test]
    fn a_rebuild_keeps_every_live_entry_and_drops_tombstones() {
        let t = Table::with_capacity(64);
        // SAFETY: the table is local to the test: one writer.
        let w = unsafe { Writer::new(&t) };
        for i in 0..40u128 {
            let k = (i << 64) | (i * 7 % 5);
            if let Located::Vacant { index, .. } = w.locate(k) {
                w.put(index, &stored(k, i as usize + 1));
            }
        }
        for i in (0..40u128).step_by(2) {
            let k = (i << 64) | (i * 7 % 5);
            let Located::At(index) = w.locate(k) else {
                panic!("present")
            };
            w.clear(index);
        }
        let fresh = w.rebuilt(128);
        assert_eq!(fresh.capacity(), 128);
        for i in 0..40u128 {
            let k = (i << 64) | (i * 7 % 5);
            let want = (i % 2 == 1).then_some(i as usize + 1);
            assert_eq!(found(&fresh, k), want);
        }
        assert!(fresh
            .slots
            .iter()
            .all(|s| s.peek().value != tombstone::<u8>()));
        assert!(fresh.live().all(|e| e.hits == 0));
    }
}
