//! One shard of the cache's index: an open-addressing table whose readers
//! take no lock and write nothing shared.
//!
//! # Why our own table
//!
//! `benches/engines.rs` measured every candidate crate above the issue's
//! hit target on this machine: a `DashMap` read takes its shard's
//! reader-writer lock, two atomic read-modify-writes on a line that every
//! reader of the shard shares, and with two threads that line moves between
//! cores on every hit. Here a reader only *loads*: the shard's table
//! pointer, one slot, the entry it points to. The one shared write left is
//! epoch pinning (`crossbeam-epoch`), which stores to a line owned by the
//! reading thread.
//!
//! # Structure
//!
//! A [`Shard`] owns a [`Table`]: a power-of-two array of slots, each an
//! epoch-protected pointer to an immutable [`Entry`] (key, expiry, weight,
//! tag, value), probed linearly from the key's low bits. A slot is *empty*
//! (null, tag 0), a *tombstone* (null, tag 1: something was removed here,
//! keep probing) or *live*. Entries are never changed in place: a replace
//! publishes a new entry in the same slot and retires the old one.
//!
//! # Invariants (held whenever the shard's writer lock is released)
//!
//! 1. Every write (publish, replace, remove, rebuild) happens under the
//!    shard's writer lock; readers never lock.
//! 2. `live + tombstones <= capacity / 2`, so every probe sequence meets an
//!    empty slot; probes are still bounded by the capacity.
//! 3. A key appears in at most one live slot of the current table.
//! 4. `live` and `bytes` count and weigh the current table's live entries.
//! 5. An entry or table that is unlinked is *retired* to the epoch
//!    collector, which frees it only once every thread that could have
//!    loaded it has unpinned; so a reference obtained under a guard stays
//!    valid for the guard's lifetime.
//! 6. A table that has been replaced by a rebuild is never written again;
//!    the entries it points to now belong to the new table. Dropping a
//!    [`Table`] frees only its slot array, never the entries.
//!
//! A reader racing a writer sees either the old or the new pointer of a
//! slot, never a torn entry; it may miss a key that is being inserted or
//! moved by a rebuild at that instant (a miss, which the caller treats like
//! any other: ask upstream), and it never returns an entry for another key,
//! because it compares the full 128-bit key of the entry it found.

// The one module of the crate with `unsafe`: dereferencing epoch-protected
// pointers and retiring them. Each block says why it is sound.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned, Shared};
use parking_lot::{Mutex, MutexGuard};

use crate::key::CacheKey;

/// The smallest table a shard allocates.
const MIN_CAPACITY: usize = 16;
/// The tag of a null slot pointer that marks a removed entry.
const TOMBSTONE: usize = 1;

/// A cached value with what the cache needs to know about it. Immutable
/// once published.
#[derive(Debug)]
pub(crate) struct Entry<V> {
    pub(crate) key: CacheKey,
    pub(crate) expires_at: u64,
    pub(crate) weight: u32,
    pub(crate) tag: u64,
    pub(crate) value: Arc<V>,
}

/// A slot array; see the module docs.
struct Table<V> {
    slots: Box<[Atomic<Entry<V>>]>,
    mask: usize,
}

impl<V> Table<V> {
    fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(MIN_CAPACITY).next_power_of_two();
        Self {
            slots: (0..capacity).map(|_| Atomic::null()).collect(),
            mask: capacity - 1,
        }
    }

    fn home(&self, key: CacheKey) -> usize {
        key as usize & self.mask
    }
}

/// What the writer lock protects besides the table pointer's writes.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    pub(crate) live: usize,
    pub(crate) bytes: usize,
    tombstones: usize,
}

/// One shard: a table, and the lock its writers take.
pub(crate) struct Shard<V> {
    table: Atomic<Table<V>>,
    // Held by writers only (insert, replace, remove, sweep, rebuild), for
    // the length of one such operation; readers never take it.
    writer: Mutex<Accounts>,
}

impl<V> Shard<V> {
    pub(crate) fn new() -> Self {
        Self {
            table: Atomic::new(Table::with_capacity(MIN_CAPACITY)),
            writer: Mutex::new(Accounts::default()),
        }
    }
}

/// The current table of `shard`.
fn table_of<'g, V>(shard: &Shard<V>, guard: &'g Guard) -> &'g Table<V> {
    let table = shard.table.load(Ordering::Acquire, guard);
    // SAFETY: the table pointer is set at construction and only ever
    // replaced by another valid table (`rebuild`), never by null; a
    // replaced table is retired to the epoch collector (invariant 5), so it
    // lives at least as long as `guard`.
    unsafe { table.deref() }
}

/// The entry a slot points to, if it is live.
fn entry_of<'g, V>(slot: &Atomic<Entry<V>>, guard: &'g Guard) -> Option<&'g Entry<V>> {
    let entry = slot.load(Ordering::Acquire, guard);
    // SAFETY: a non-null slot pointer was made from an `Owned` entry when it
    // was published; an entry is retired to the epoch collector only after
    // it has been unlinked (invariant 5), so it is freed no earlier than
    // `guard` is dropped.
    unsafe { entry.as_ref() }
}

/// Retires an unlinked entry: it is dropped once no pinned thread can
/// still hold a reference to it.
fn retire<V>(entry: Shared<'_, Entry<V>>, guard: &Guard) {
    if !entry.is_null() {
        // SAFETY: the caller has just unlinked `entry` under the writer
        // lock (replaced or removed its only slot in the current table), so
        // no thread that pins from now on can load it; threads pinned
        // earlier are waited for by the collector. It is retired once: only
        // the writer that unlinks a pointer retires it.
        unsafe { guard.defer_destroy(entry) }
    }
}

impl<V> Shard<V> {
    /// The live entry under `key`, without locking. The reference is valid
    /// while `guard` is.
    pub(crate) fn find<'g>(&self, key: CacheKey, guard: &'g Guard) -> Option<&'g Entry<V>> {
        let table = table_of(self, guard);
        let mut index = table.home(key);
        for _ in 0..table.slots.len() {
            let slot = &table.slots[index];
            match entry_of(slot, guard) {
                Some(entry) if entry.key == key => return Some(entry),
                Some(_) => {}
                None if slot.load(Ordering::Relaxed, guard).tag() == TOMBSTONE => {}
                None => return None,
            }
            index = (index + 1) & table.mask;
        }
        None
    }

    /// Takes the writer lock.
    pub(crate) fn lock<'s, 'g>(&'s self, guard: &'g Guard) -> Writer<'s, 'g, V> {
        Writer {
            shard: self,
            accounts: self.writer.lock(),
            guard,
        }
    }
}

impl<V> Drop for Shard<V> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no reader or writer can reach this
        // shard any more, so nothing is protected by an epoch here. Each
        // live entry is owned by exactly one slot of the current table
        // (invariants 3 and 6); retired entries and tables are owned by the
        // collector and are not in it. So each pointer is freed once.
        unsafe {
            let guard = epoch::unprotected();
            let table = self.table.load(Ordering::Relaxed, guard);
            if let Some(current) = table.as_ref() {
                for slot in current.slots.iter() {
                    let entry = slot.load(Ordering::Relaxed, guard);
                    if !entry.is_null() {
                        drop(entry.into_owned());
                    }
                }
                drop(table.into_owned());
            }
        }
    }
}

/// A shard under its writer lock.
pub(crate) struct Writer<'s, 'g, V> {
    shard: &'s Shard<V>,
    accounts: MutexGuard<'s, Accounts>,
    guard: &'g Guard,
}

impl<'g, V: 'g> Writer<'_, 'g, V> {
    pub(crate) fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    fn table(&self) -> &'g Table<V> {
        table_of(self.shard, self.guard)
    }

    /// The slot index holding `key`, if it is live.
    fn position(&self, key: CacheKey) -> Option<usize> {
        let table = self.table();
        let mut index = table.home(key);
        for _ in 0..table.slots.len() {
            let slot = &table.slots[index];
            match entry_of(slot, self.guard) {
                Some(entry) if entry.key == key => return Some(index),
                Some(_) => {}
                None if slot.load(Ordering::Relaxed, self.guard).tag() == TOMBSTONE => {}
                None => return None,
            }
            index = (index + 1) & table.mask;
        }
        None
    }

    /// Replaces the entry under `entry.key` if there is one, returning the
    /// old weight; otherwise gives the entry back.
    pub(crate) fn replace(&mut self, entry: Entry<V>) -> Result<u32, Entry<V>> {
        let Some(index) = self.position(entry.key) else {
            return Err(entry);
        };
        let weight = entry.weight;
        let old = self.table().slots[index].swap(Owned::new(entry), Ordering::AcqRel, self.guard);
        let old_weight = entry_of_shared(old).map_or(0, |e| e.weight);
        self.accounts.bytes = self.accounts.bytes - old_weight as usize + weight as usize;
        retire(old, self.guard);
        Ok(old_weight)
    }

    /// Publishes an entry whose key is not present (the caller checked
    /// with [`Writer::replace`] under this same lock).
    pub(crate) fn insert_absent(&mut self, entry: Entry<V>) {
        if (self.accounts.live + self.accounts.tombstones + 1) * 2 > self.table().slots.len() {
            self.rebuild(self.accounts.live + 1);
        }
        let table = self.table();
        let mut index = table.home(entry.key);
        let mut reuse = None;
        for _ in 0..table.slots.len() {
            let current = table.slots[index].load(Ordering::Relaxed, self.guard);
            if current.is_null() {
                if current.tag() != TOMBSTONE {
                    break;
                }
                reuse.get_or_insert(index);
            }
            index = (index + 1) & table.mask;
        }
        if let Some(tombstone) = reuse {
            index = tombstone;
            self.accounts.tombstones -= 1;
        }
        self.accounts.live += 1;
        self.accounts.bytes += entry.weight as usize;
        table.slots[index].store(Owned::new(entry), Ordering::Release);
    }

    /// Removes the entry at `index`, returning it (valid while the guard is).
    fn remove_at(&mut self, index: usize) -> Option<&'g Entry<V>> {
        let old = self.table().slots[index].swap(
            Shared::null().with_tag(TOMBSTONE),
            Ordering::AcqRel,
            self.guard,
        );
        let entry = entry_of_shared(old)?;
        self.accounts.live -= 1;
        self.accounts.bytes -= entry.weight as usize;
        self.accounts.tombstones += 1;
        retire(old, self.guard);
        Some(entry)
    }

    /// Removes `key`'s entry, returning it.
    pub(crate) fn remove(&mut self, key: CacheKey) -> Option<&'g Entry<V>> {
        let index = self.position(key)?;
        self.remove_at(index)
    }

    /// A live entry found by scanning forward from slot `start` (reduced
    /// modulo the capacity), with its position, for eviction sampling.
    pub(crate) fn sample(&self, start: usize) -> Option<(usize, &'g Entry<V>)> {
        if self.accounts.live == 0 {
            return None;
        }
        let table = self.table();
        let mut index = start & table.mask;
        for _ in 0..table.slots.len() {
            if let Some(entry) = entry_of(&table.slots[index], self.guard) {
                return Some((index, entry));
            }
            index = (index + 1) & table.mask;
        }
        None
    }

    /// Removes the sampled entry at `index` (see [`Writer::sample`]).
    pub(crate) fn evict(&mut self, index: usize) -> Option<&'g Entry<V>> {
        self.remove_at(index)
    }

    /// Removes up to `max` entries for which `doomed` holds, returning how
    /// many went; rebuilds the table afterwards if tombstones dominate.
    pub(crate) fn remove_where(&mut self, max: usize, doomed: impl Fn(&Entry<V>) -> bool) -> usize {
        let table = self.table();
        let mut removed = 0;
        for index in 0..table.slots.len() {
            if removed == max {
                break;
            }
            if entry_of(&table.slots[index], self.guard).is_some_and(&doomed) {
                self.remove_at(index);
                removed += 1;
            }
        }
        if self.accounts.tombstones * 4 > table.slots.len() {
            self.rebuild(self.accounts.live);
        }
        removed
    }

    /// Moves every live entry to a fresh table sized for `live` entries at
    /// most a quarter full, dropping all tombstones, and retires the old
    /// table (not its entries, which the new table now holds).
    fn rebuild(&mut self, live: usize) {
        let old = self.table();
        let fresh = Table::with_capacity(live.saturating_mul(4));
        for slot in old.slots.iter() {
            let entry = slot.load(Ordering::Relaxed, self.guard);
            if let Some(e) = entry_of_shared(entry) {
                let mut index = fresh.home(e.key);
                while !fresh.slots[index]
                    .load(Ordering::Relaxed, self.guard)
                    .is_null()
                {
                    index = (index + 1) & fresh.mask;
                }
                fresh.slots[index].store(entry, Ordering::Relaxed);
            }
        }
        self.accounts.tombstones = 0;
        let old = self
            .shard
            .table
            .swap(Owned::new(fresh), Ordering::AcqRel, self.guard);
        if !old.is_null() {
            // SAFETY: the old table was unlinked just now under the writer
            // lock; it is retired once, and dropping it frees only its slot
            // array (invariant 6), never the entries the new table holds.
            unsafe { self.guard.defer_destroy(old) }
        }
    }

    /// Every live entry of the current table (for consistency checks).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> Vec<&'g Entry<V>> {
        self.table()
            .slots
            .iter()
            .filter_map(|s| entry_of(s, self.guard))
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.table().slots.len()
    }
}

/// The entry behind a pointer loaded under a guard `'g`.
fn entry_of_shared<'g, V>(entry: Shared<'g, Entry<V>>) -> Option<&'g Entry<V>> {
    // SAFETY: as in `entry_of`: the pointer came from a slot loaded under a
    // guard living for `'g`, and entries are retired only after unlinking.
    unsafe { entry.as_ref() }
}
