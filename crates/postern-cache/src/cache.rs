//! The concurrent validation cache.
//!
//! # Structure and invariants
//!
//! Keys are split into *partitions* by their high bits. Each partition has
//! a slot table (module `table`) that readers search without a lock,
//! and a mutex over its accounting that every writer takes: the number of
//! live entries, their declared bytes and the table's tombstones. Every
//! insert, removal and sweep of a key happens under its partition's mutex,
//! so these invariants hold whenever it is released:
//!
//! - `live` and `bytes` equal the count and summed weight of the table's
//!   live entries, and `tombstones` its tombstones;
//! - a key is live in at most one slot, and is reachable by its probe;
//! - a partition holds at most `max_entries / partitions` entries and
//!   `max_bytes / partitions` bytes, so the cache holds at most `max_entries`
//!   entries and `max_bytes` bytes (a full partition may refuse an insert
//!   before the whole cache is full);
//! - live and tombstone slots fill at most 3/4 of the table;
//! - the global `entries` and `bytes` counters equal the sums over
//!   partitions.
//!
//! An expired entry is never returned; it is reaped by the sweeper or when
//! it is sampled for eviction. A removal is seen by every lookup that
//! starts after it returns.
//!
//! # Admission and eviction
//!
//! Every miss and insert counts the key in a [`FrequencySketch`]. Hits
//! are counted in the entry's own slot (a saturating byte in the cache line
//! the lookup has just read, written only below saturation), halved by the
//! first sweep after each aging of the sketch; an entry's use is its sketch
//! estimate plus that count.
//! Counting hits in the sketch touched another random cache line per hit,
//! which measured as twice the cost of the lookup itself, whether done per
//! hit, sampled, or batched per thread (`BENCHMARKS.md`).
//!
//! When a partition is full, an insert samples `eviction_samples` random
//! live slots: an expired entry is reaped outright; otherwise the least
//! used one is the victim, and the candidate is admitted only if its
//! sketch estimate is strictly greater (TinyLFU's rule). A flood of one-off keys therefore cannot push
//! out sessions that are being used. Departure from W-TinyLFU: there is no
//! LRU window and victims are sampled (as in Redis' approximated LFU) rather
//! than taken from an SLRU's tail; sampling needs no per-hit bookkeeping,
//! which is what keeps hits cheap.
//!
//! # Memory
//!
//! Each slot is one 64-byte cache line, and a table is rebuilt to twice its
//! live entries when it passes 3/4 full, so an entry costs 85 to 256 bytes
//! of table (about 128 at 1M entries) plus its value. A value that is
//! replaced or removed is dropped once no reader can still hold it
//! (see [`crate::reclaim`]), at the latest by the next sweep. Tables of
//! 2 MiB or more, and the sketch, are backed by huge pages where the kernel
//! allows (module `huge`); a cache of fewer than `16,384 × shards`
//! entries uses fewer partitions so that its tables reach that size.
//!
//! # Statistics
//!
//! Hits and misses are counted in 64 cache-line-padded stripes, one chosen
//! per thread and updated without a locked instruction, so concurrent
//! readers neither contend nor pay for an atomic add; reading the statistics
//! sums the stripes (a fixed 64, so O(1) in entries).

#![allow(unsafe_code)]

use std::cell::Cell;
use std::mem::ManuallyDrop;
// Statistics and the sketch's clock: estimates, never part of a decision
// about memory, so `std` atomics even under loom.
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use rand::Rng;

use crate::huge::MAX_LEN;
use crate::key::CacheKey;
use crate::reclaim::{self, Patience};
use crate::sketch::FrequencySketch;
use crate::sync::{AtomicPtr, Mutex, MutexGuard, Ordering};
use crate::table::{Located, Probe, SlotRef, Stored, Table, Writer, MIN_CAPACITY};

/// Cache limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries held.
    pub max_entries: usize,
    /// Most bytes of declared entry weight held.
    pub max_bytes: usize,
    /// Most partitions (rounded up to a power of two); a cache of fewer
    /// than `16,384 × shards` entries uses one per 16,384 entries.
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

/// A partition's accounting; see the module docs for its invariants.
#[derive(Default)]
struct Accounts {
    live: usize,
    bytes: usize,
    tombstones: usize,
}

// The table pointer is read by every lookup and written only on a rebuild;
// padding keeps it off the lines that writers' mutexes dirty.
#[repr(align(128))]
struct Partition<V> {
    table: AtomicPtr<Table<V>>,
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

    #[inline]
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
    // This thread's stripe; const-initialised and filled on first use, so
    // the hit path pays no lazy-initialisation check.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's stripe.
#[inline]
fn stripe() -> usize {
    let stripe = STRIPE.with(Cell::get);
    if stripe != usize::MAX {
        return stripe;
    }
    let stripe = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
    STRIPE.with(|c| c.set(stripe));
    stripe
}

/// An object no slot or partition points to any more, freed once every
/// read section that might have seen it has ended (see [`reclaim`]).
enum Retired<V> {
    /// The `Arc` a slot held (`Arc::into_raw`).
    Value(*mut V),
    /// A table replaced by a rebuilt one (`Box::into_raw`); its values
    /// moved to the successor and are not dropped with it.
    Table(*mut Table<V>),
}

impl<V> Retired<V> {
    /// # Safety
    /// No read section that could have reached the object is still open,
    /// and it is freed once.
    unsafe fn free(self) {
        match self {
            // SAFETY: `value` came from `Arc::into_raw` when it was stored
            // in a slot and is that slot's one reference, retired once when
            // the slot let go of it; the caller guarantees no reader can
            // still dereference it.
            Retired::Value(value) => drop(unsafe { Arc::from_raw(value) }),
            // SAFETY: `table` came from `Box::into_raw` and was retired once,
            // when a rebuilt successor replaced it; the caller guarantees no
            // reader can still search it. Its slots' values moved to the
            // successor, and `Table` has no drop of its own that frees them.
            Retired::Table(table) => drop(unsafe { Box::from_raw(table) }),
        }
    }
}

/// Entries of a partition whose table, at its usual load, fills 2 MiB.
const ENTRIES_PER_HUGE_TABLE: usize = 16_384;

/// Retired objects are freed in batches of this many (or by the sweeper).
const RECLAIM_BATCH: usize = 64;

/// Backoff steps (`crate::sync::backoff`: 64 spin hints, then yields) that
/// an insert or removal waits for each read section in progress before it
/// leaves its batch for a later attempt. A read section is a lookup, tens
/// of nanoseconds, so only a reader that is descheduled or stalled inside
/// one outlasts this; a few hundred steps is a few microseconds at most on
/// a thread that an async runtime may be running.
#[cfg(not(loom))]
const INLINE_PATIENCE: u32 = 128;
/// Under loom every step is a yield to the model checker; two are enough
/// to explore both outcomes of a bounded wait.
#[cfg(loom)]
const INLINE_PATIENCE: u32 = 2;

/// Objects waiting to be freed, and when the next inline attempt is due.
struct Retirement<V> {
    objects: Vec<Retired<V>>,
    /// An inline attempt runs once `objects` reaches this length: one batch
    /// at first, and one more batch after each attempt that a read section
    /// outlasted, so a stalled reader does not make every write pay a
    /// barrier and a wait.
    due_at: usize,
}

/// A concurrent cache from [`CacheKey`]s to shared values with expiry.
pub struct Cache<V> {
    partitions: Box<[Partition<V>]>,
    accounts: Box<[Mutex<Accounts>]>,
    partition_mask: usize,
    max_entries_per_partition: usize,
    max_bytes_per_partition: usize,
    max_capacity: usize,
    samples: usize,
    sketch: FrequencySketch,
    hits: StripedCounter,
    misses: StripedCounter,
    counters: Counters,
    retired: Mutex<Retirement<V>>,
    /// The sketch's reset count when slot hits were last halved.
    hits_aged_at: AtomicU64,
}

// SAFETY: the cache owns `Arc<V>`s and tables through raw pointers: sharing
// it shares the values (`V: Sync`), and any thread may drop them (`V: Send`);
// every other field is `Send` and `Sync`.
unsafe impl<V: Send + Sync> Send for Cache<V> {}
// SAFETY: as for `Send`: `&Cache` hands out `&Arc<V>`/`Arc<V>` to any thread,
// which `V: Send + Sync` allows; writes are serialised by the partition
// mutexes and reads are atomic.
unsafe impl<V: Send + Sync> Sync for Cache<V> {}

impl<V> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A partition's writer: its mutex guard and the table it may change.
struct Locked<'c> {
    accounts: MutexGuard<'c, Accounts>,
    partition: usize,
}

impl<V> Cache<V> {
    pub fn new(config: CacheConfig) -> Self {
        reclaim::init();
        // Bounds that keep every size below computable; far past real use.
        // A small cache gets fewer partitions, so that full tables still
        // reach 2 MiB, the size that gets huge pages (`crate::huge`).
        let partitions = config
            .shards
            .min(config.max_entries / ENTRIES_PER_HUGE_TABLE)
            .clamp(1, 1 << 16)
            .next_power_of_two();
        let max_entries_per_partition = config.max_entries.div_ceil(partitions).max(1);
        Self {
            partitions: (0..partitions)
                .map(|_| Partition {
                    table: AtomicPtr::new(Box::into_raw(Box::new(Table::with_capacity(
                        MIN_CAPACITY,
                    )))),
                })
                .collect(),
            accounts: (0..partitions)
                .map(|_| Mutex::new(Accounts::default()))
                .collect(),
            partition_mask: partitions - 1,
            max_entries_per_partition,
            max_bytes_per_partition: (config.max_bytes / partitions).max(1),
            max_capacity: max_entries_per_partition
                .saturating_mul(2)
                .clamp(MIN_CAPACITY, MAX_LEN)
                .next_power_of_two(),
            samples: config.eviction_samples.clamp(1, 1 << 10),
            sketch: FrequencySketch::new(config.max_entries),
            hits: StripedCounter::new(),
            misses: StripedCounter::new(),
            counters: Counters::default(),
            retired: Mutex::new(Retirement {
                objects: Vec::new(),
                due_at: RECLAIM_BATCH,
            }),
            hits_aged_at: AtomicU64::new(0),
        }
    }

    fn partition_of(&self, key: CacheKey) -> usize {
        ((key >> 64) as usize) & self.partition_mask
    }

    fn lock(&self, partition: usize) -> Locked<'_> {
        Locked {
            accounts: self.accounts[partition].lock(),
            partition,
        }
    }

    /// The writer over `locked`'s current table.
    fn writer<'a>(&'a self, locked: &'a Locked<'_>) -> Writer<'a, V> {
        let table = self.partitions[locked.partition]
            .table
            .load(Ordering::Acquire);
        // SAFETY: tables are replaced and retired only under this mutex, so
        // the current one stays allocated while `locked` is held, and the
        // mutex makes this the only writer.
        unsafe { Writer::new(&*table) }
    }

    /// The value under `key` if present and unexpired at `now`.
    pub fn get(&self, key: CacheKey, now: u64) -> Option<Arc<V>> {
        self.get_map(key, now, Arc::clone)
    }

    /// Runs `f` on the value under `key` (if present and unexpired) without
    /// touching the value's reference count. `f` must be short: while it runs, no value
    /// this cache (or any other) retires can be freed.
    pub fn get_map<R>(&self, key: CacheKey, now: u64, f: impl FnOnce(&Arc<V>) -> R) -> Option<R> {
        let found = self.with_entry(key, |expires_at, value, slot| {
            (expires_at > now).then(|| {
                slot.count_hit();
                f(value)
            })
        });
        match found {
            Some(Some(result)) => {
                self.hits.add(stripe(), 1);
                Some(result)
            }
            _ => {
                self.misses.add(stripe(), 1);
                self.sketch.increment(key);
                None
            }
        }
    }

    /// Runs `f` on `key`'s entry (expired or not), if present.
    fn with_entry<R>(
        &self,
        key: CacheKey,
        f: impl FnOnce(u64, &Arc<V>, &SlotRef<'_, V>) -> R,
    ) -> Option<R> {
        let partition = &self.partitions[self.partition_of(key)];
        let section = reclaim::enter();
        let table = partition.table.load(Ordering::Acquire);
        // SAFETY: a table is freed only after a successor is published and
        // every read section open then has ended; this one was open before
        // the load.
        let probe = unsafe { &*table }.find(key);
        let (expires_at, value, slot) = match probe {
            Probe::Found {
                expires_at,
                value,
                slot,
            } => (expires_at, value, slot),
            Probe::Absent => return None,
            Probe::Contended => {
                // No write is in progress while the mutex is held.
                let _writers = self.lock(self.partition_of(key));
                let table = partition.table.load(Ordering::Acquire);
                // SAFETY: as for the first load: the read section opened
                // before this load is still open, so the table it names
                // is not freed before the section ends.
                match unsafe { &*table }.find(key) {
                    Probe::Found {
                        expires_at,
                        value,
                        slot,
                    } => (expires_at, value, slot),
                    _ => return None,
                }
            }
        };
        // SAFETY: `value` came from `Arc::into_raw` and was read from a live
        // slot inside the read section, so it is not freed before the
        // section ends (below); `ManuallyDrop` leaves the slot's count as is.
        let value = ManuallyDrop::new(unsafe { Arc::from_raw(value) });
        let result = f(expires_at, &value, &slot);
        drop(section);
        Some(result)
    }

    /// The expiry time of `key`'s entry, if present (expired or not).
    pub fn expires_at(&self, key: CacheKey) -> Option<u64> {
        self.with_entry(key, |expires_at, _, _| expires_at)
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
        let admission = self.insert_locked(key, value, weight, expires_at, tag, now);
        self.reclaim_if_due();
        admission
    }

    fn insert_locked(
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
        let mut locked = self.lock(self.partition_of(key));
        let entry = |value| Stored {
            key,
            expires_at,
            value,
            tag,
            weight,
            hits: 0,
        };
        if let Located::At(index) = self.writer(&locked).locate(key) {
            let writer = self.writer(&locked);
            if let Some(old) = writer.entry(index) {
                let bytes = locked.accounts.bytes - old.weight as usize + weight as usize;
                if bytes <= self.max_bytes_per_partition {
                    writer.put(index, &entry(Arc::into_raw(value).cast_mut()));
                    locked.accounts.bytes = bytes;
                    self.adjust_bytes(old.weight, weight);
                    self.retire(old.value);
                    return Admission::Replaced;
                }
                // Heavier than the room left: the old value goes, and the
                // new one competes for room like any newcomer.
                self.remove_at(&mut locked, index);
            }
        }
        while locked.accounts.live >= self.max_entries_per_partition
            || locked.accounts.bytes + weight as usize > self.max_bytes_per_partition
        {
            if !self.make_room(&mut locked, key, now) {
                self.counters
                    .admissions_rejected
                    .fetch_add(1, Ordering::Relaxed);
                return Admission::Rejected;
            }
        }
        self.keep_load_limit(&mut locked);
        let writer = self.writer(&locked);
        let Located::Vacant { index, tombstone } = writer.locate(key) else {
            // The key was absent above and the mutex has been held since.
            return Admission::Rejected;
        };
        writer.put(index, &entry(Arc::into_raw(value).cast_mut()));
        if tombstone {
            locked.accounts.tombstones -= 1;
        }
        locked.accounts.live += 1;
        locked.accounts.bytes += weight as usize;
        self.counters.entries.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_add(u64::from(weight), Ordering::Relaxed);
        Admission::Admitted
    }

    /// Rebuilds the partition's table if one more entry would take its live
    /// and tombstone slots past 3/4 of it: into twice the live entries'
    /// worth of slots (at most `max_capacity`), leaving no tombstones.
    fn keep_load_limit(&self, locked: &mut Locked<'_>) {
        let writer = self.writer(locked);
        let capacity = writer.table().capacity();
        let used = locked.accounts.live + locked.accounts.tombstones + 1;
        if used * 4 <= capacity * 3 {
            return;
        }
        let wanted = ((locked.accounts.live + 1) * 2).min(self.max_capacity);
        let fresh = Box::into_raw(Box::new(writer.rebuilt(wanted)));
        let old = self.partitions[locked.partition]
            .table
            .swap(fresh, Ordering::SeqCst);
        locked.accounts.tombstones = 0;
        self.retired.lock().objects.push(Retired::Table(old));
    }

    /// Hands over a value whose slot was just overwritten or emptied.
    fn retire(&self, value: *mut V) {
        self.retired.lock().objects.push(Retired::Value(value));
    }

    /// Frees the retired objects once no read section can still hold them,
    /// if a batch has built up. Called with no partition mutex held, by
    /// inserts and removals, which may run on an async runtime's worker
    /// thread: it waits only briefly for read sections in progress
    /// ([`INLINE_PATIENCE`]) and otherwise leaves the objects for a later
    /// attempt (the next batch, or the sweeper).
    fn reclaim_if_due(&self) {
        let due = {
            let retired = self.retired.lock();
            retired.objects.len() >= retired.due_at
        };
        if due {
            self.reclaim_with(Patience::Steps(INLINE_PATIENCE));
        }
    }

    /// Frees every object retired so far, after waiting for the read
    /// sections in progress to end, however long they take: call it from a
    /// thread that may block (the sweeper does), never from an async task.
    /// Does nothing inside a read section of this thread (a `get_map`
    /// callback); a later call frees them.
    pub fn reclaim(&self) {
        self.reclaim_with(Patience::Unbounded);
    }

    /// Frees every object retired so far if the read sections in progress
    /// end within a brief wait, as inserts and removals do; otherwise keeps
    /// them for a later attempt. Returns whether it freed them. Safe to
    /// call from an async task.
    pub fn try_reclaim(&self) -> bool {
        self.reclaim_with(Patience::Steps(INLINE_PATIENCE))
    }

    /// Frees every object retired so far if the read sections in progress
    /// end within `patience`; otherwise keeps them for a later attempt.
    /// Returns whether it freed them.
    fn reclaim_with(&self, patience: Patience) -> bool {
        if reclaim::in_read_section() {
            return false;
        }
        let batch = std::mem::take(&mut self.retired.lock().objects);
        if batch.is_empty() {
            return true;
        }
        if reclaim::synchronize(patience) {
            for retired in batch {
                // SAFETY: every object in the batch was unreachable before
                // `synchronize`, which waited out the sections that could
                // have reached it; each is in the list once.
                unsafe { retired.free() };
            }
            let mut retired = self.retired.lock();
            retired.due_at = retired.objects.len() + RECLAIM_BATCH;
            true
        } else {
            let mut retired = self.retired.lock();
            retired.objects.extend(batch);
            retired.due_at = retired.objects.len() + RECLAIM_BATCH;
            false
        }
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

    /// Removes the live entry at `index` from the table and the accounting
    /// of the partition `locked` holds, and retires its value.
    fn remove_at(&self, locked: &mut Locked<'_>, index: usize) -> Option<Stored<V>> {
        let writer = self.writer(locked);
        let entry = writer.entry(index)?;
        let gained = writer.clear(index);
        locked.accounts.tombstones = locked.accounts.tombstones.saturating_add_signed(gained);
        locked.accounts.live -= 1;
        locked.accounts.bytes -= entry.weight as usize;
        self.counters.entries.fetch_sub(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_sub(u64::from(entry.weight), Ordering::Relaxed);
        self.retire(entry.value);
        Some(entry)
    }

    /// Frees room for `candidate`: reaps an expired sample, or evicts the
    /// least frequent sample if the candidate is more frequent.
    fn make_room(&self, locked: &mut Locked<'_>, candidate: CacheKey, now: u64) -> bool {
        let mut rng = rand::thread_rng();
        let capacity = self.writer(locked).table().capacity();
        // Random slots first; a full partition's table is at least a
        // quarter live. A partition full by bytes may be sparse, so the
        // rest of the samples come from a scan from a random slot.
        let start = rng.gen_range(0..capacity);
        let random = (0..self.samples * 16).map(move |_| rng.gen_range(0..capacity));
        let scan = (0..capacity).map(|i| (start + i) % capacity);
        let mut victim: Option<(usize, u16)> = None;
        let mut sampled = 0;
        for index in random.chain(scan) {
            if sampled == self.samples {
                break;
            }
            let Some(entry) = self.writer(locked).entry(index) else {
                continue;
            };
            sampled += 1;
            if entry.expires_at <= now {
                self.remove_at(locked, index);
                self.counters.expired_reaped.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            let freq = self.frequency(&entry);
            if victim.is_none_or(|(_, f)| freq < f) {
                victim = Some((index, freq));
            }
        }
        match victim {
            Some((index, freq)) if self.sketch.estimate(candidate) > freq => {
                self.remove_at(locked, index);
                self.counters.evictions.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// An entry's use, for choosing victims: its accesses before it was
    /// stored and its misses and re-inserts (sketch), plus its recent hits.
    fn frequency(&self, entry: &Stored<V>) -> u16 {
        self.sketch.estimate(entry.key) + u16::from(entry.hits)
    }

    /// Removes `key`'s entry (logout, revocation). Returns whether it was
    /// there. Once this returns, no lookup that starts afterwards finds it.
    pub fn remove(&self, key: CacheKey) -> bool {
        let removed = {
            let mut locked = self.lock(self.partition_of(key));
            match self.writer(&locked).locate(key) {
                Located::At(index) => self.remove_at(&mut locked, index).is_some(),
                Located::Vacant { .. } => false,
            }
        };
        self.reclaim_if_due();
        removed
    }

    /// Removes every entry carrying `tag` (e.g. every token signed with a
    /// rotated-out key id). Locks one partition at a time.
    pub fn remove_tag(&self, tag: u64) -> usize {
        self.remove_where(usize::MAX, |entry| entry.tag == tag)
    }

    /// Removes every entry.
    pub fn clear(&self) -> usize {
        self.remove_where(usize::MAX, |_| true)
    }

    /// Removes up to `max_per_partition` live entries of each partition for
    /// which `doomed` holds, locking one partition at a time.
    fn remove_where(&self, max_per_partition: usize, doomed: impl Fn(&Stored<V>) -> bool) -> usize {
        self.visit(max_per_partition, false, doomed)
    }

    /// Walks every partition's live entries, one partition locked at a
    /// time: removes up to `max_per_partition` for which `doomed` holds, and
    /// with `age`, halves the recent hits of the ones it keeps.
    fn visit(
        &self,
        max_per_partition: usize,
        age: bool,
        doomed: impl Fn(&Stored<V>) -> bool,
    ) -> usize {
        let mut removed = 0;
        for partition in 0..self.partitions.len() {
            let mut locked = self.lock(partition);
            let capacity = self.writer(&locked).table().capacity();
            let mut here = 0;
            for index in 0..capacity {
                if here == max_per_partition && !age {
                    break;
                }
                let Some(entry) = self.writer(&locked).entry(index) else {
                    continue;
                };
                if here < max_per_partition && doomed(&entry) {
                    if self.remove_at(&mut locked, index).is_some() {
                        here += 1;
                    }
                } else if age {
                    self.writer(&locked).age_hits(index);
                }
            }
            removed += here;
        }
        self.reclaim_if_due();
        removed
    }

    /// Reaps expired entries, at most `max_per_shard` per partition, locking
    /// one partition at a time (readers never wait on a partition lock),
    /// then frees everything retired so far. The first sweep after the
    /// sketch ages also halves every entry's recent hits, so that hits fade
    /// on the same clock as the sketch's counts. Waits for read sections in
    /// progress ([`Cache::reclaim`]): run it on a thread that may block.
    pub fn sweep(&self, now: u64, max_per_shard: usize) -> usize {
        let resets = self.sketch.resets();
        let age = self.hits_aged_at.swap(resets, Ordering::Relaxed) != resets;
        let reaped = self.visit(max_per_shard, age, |entry| entry.expires_at <= now);
        self.reclaim();
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

impl<V> Drop for Cache<V> {
    fn drop(&mut self) {
        for partition in self.partitions.iter() {
            let table = partition.table.load(Ordering::Acquire);
            // SAFETY: `&mut self`: no reader or writer is left, and the
            // current tables and their live values are owned here alone
            // (retired ones are freed below).
            let table = unsafe { Box::from_raw(table) };
            for entry in table.live() {
                // SAFETY: each live slot holds one `Arc` reference.
                drop(unsafe { Arc::from_raw(entry.value) });
            }
        }
        for retired in std::mem::take(&mut self.retired.get_mut().objects) {
            // SAFETY: unreachable, and no read section is left (`&mut self`).
            unsafe { retired.free() };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn key(i: u64) -> CacheKey {
        // Spread like a PRF output: distinct high and low halves.
        let x = u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        x ^ (x >> 61)
    }

    fn small(max_entries: usize) -> Cache<u64> {
        bounded(max_entries, 1 << 30, 8)
    }

    /// One partition, so that bounds apply to the whole cache.
    fn bounded(max_entries: usize, max_bytes: usize, eviction_samples: usize) -> Cache<u64> {
        Cache::new(CacheConfig {
            max_entries,
            max_bytes,
            shards: 1,
            eviction_samples,
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
        let c = bounded(10, 100, 4);
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
    fn hits_protect_an_entry_until_its_use_fades_with_the_sketch() {
        let c = small(1);
        c.insert(key(1), 1, 8, 1_000 * S, 0, 0);
        for _ in 0..200 {
            assert!(c.get(key(1), S).is_some());
        }
        // key(2) keeps missing: more often than key(1) was ever missed or
        // inserted, far less often than key(1) is hit.
        for _ in 0..5 {
            assert!(c.get(key(2), S).is_none());
        }
        assert_eq!(c.insert(key(2), 2, 8, 1_000 * S, 0, S), Admission::Rejected);
        // Sweeps alone do not age hits: only the sketch's clock does.
        for _ in 0..8 {
            c.sweep(S, usize::MAX);
        }
        assert_eq!(c.insert(key(2), 2, 8, 1_000 * S, 0, S), Admission::Rejected);
        // No more hits while the sketch ages eight times: 200 recent hits
        // halve to nothing; key(2) keeps missing.
        for _ in 0..8 {
            c.sketch.age();
            c.sweep(S, usize::MAX);
            for _ in 0..3 {
                assert!(c.get(key(2), S).is_none());
            }
        }
        assert_eq!(c.insert(key(2), 2, 8, 1_000 * S, 0, S), Admission::Admitted);
        assert!(c.get(key(1), S).is_none());
    }

    #[test]
    fn a_rebuilt_table_keeps_recent_hits() {
        let c = small(10_000);
        c.insert(key(0), 0, 8, 1_000 * S, 0, 0);
        for _ in 0..100 {
            assert!(c.get(key(0), S).is_some());
        }
        // Enough inserts to rebuild the partition's table several times.
        for i in 1..2_000 {
            c.insert(key(i), i, 8, 1_000 * S, 0, 0);
        }
        let locked = c.lock(c.partition_of(key(0)));
        let table = c.writer(&locked).table();
        assert!(table.capacity() >= 2_048);
        let hits = table.live().find(|e| e.key == key(0)).map(|e| e.hits);
        assert_eq!(hits, Some(100));
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
    fn byte_bounds_are_enforced_on_inserts_and_heavier_replacements() {
        let c = bounded(100, 100, 8);
        for i in 0..10 {
            c.insert(key(i), i, 10, 100 * S, 0, 0);
        }
        assert_eq!(c.stats().bytes, 100);
        assert_eq!(
            c.insert(key(99), 99, 10, 100 * S, 0, 0),
            Admission::Rejected
        );
        assert_eq!(c.stats().bytes, 100);
        // Each replacement would take the partition past 100 bytes.
        for i in 0..10 {
            let admission = c.insert(key(i), i, 100, 100 * S, 0, 0);
            assert!(c.stats().bytes <= 100, "{admission:?}: {}", c.stats().bytes);
        }
        c.assert_consistent();
        // A replacement that fits is still a replacement.
        c.clear();
        c.insert(key(1), 1, 10, 100 * S, 0, 0);
        assert_eq!(c.insert(key(1), 2, 60, 100 * S, 0, 0), Admission::Replaced);
        assert_eq!(c.stats().bytes, 60);
    }

    #[test]
    fn a_sparse_table_full_by_bytes_still_finds_victims() {
        let c = bounded(100_000, 100, 4);
        // Grow the table, then empty it down to two heavy entries.
        for i in 0..20_000 {
            c.insert(key(i), i, 0, 100 * S, 0, 0);
        }
        c.clear();
        c.insert(key(1), 1, 50, 2 * S, 0, 0);
        c.insert(key(2), 2, 50, 2 * S, 0, 0);
        // Both have expired: the scan finds them although the random
        // probes of a table this sparse almost never do.
        assert_eq!(
            c.insert(key(3), 3, 50, 100 * S, 0, 3 * S),
            Admission::Admitted
        );
        assert_eq!(c.stats().expired_reaped, 1);
        c.assert_consistent();
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
        c.assert_consistent();
    }

    impl<V> Cache<V> {
        /// Checks every invariant of the module docs, partition by partition.
        fn assert_consistent(&self) {
            let mut entries = 0;
            let mut bytes = 0;
            for p in 0..self.partitions.len() {
                let locked = self.lock(p);
                let table = self.writer(&locked).table();
                let live: Vec<Stored<V>> = table.live().collect();
                let mut keys: Vec<CacheKey> = live.iter().map(|e| e.key).collect();
                keys.sort_unstable();
                keys.dedup();
                assert_eq!(keys.len(), live.len(), "a key is live at most once");
                assert!(live.iter().all(|e| self.partition_of(e.key) == p));
                assert_eq!(locked.accounts.live, live.len());
                assert_eq!(
                    locked.accounts.bytes,
                    live.iter().map(|e| e.weight as usize).sum::<usize>()
                );
                assert_eq!(locked.accounts.tombstones, table.tombstones());
                assert!(
                    (locked.accounts.live + locked.accounts.tombstones) * 4 <= table.capacity() * 3
                );
                assert!(locked.accounts.live <= self.max_entries_per_partition);
                assert!(
                    live.iter()
                        .all(|e| matches!(table.find(e.key), Probe::Found { .. })),
                    "every live entry is reachable by its key"
                );
                entries += live.len();
                bytes += locked.accounts.bytes;
            }
            assert_eq!(self.stats().entries as usize, entries);
            assert_eq!(self.stats().bytes as usize, bytes);
        }
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
        c.assert_consistent();
        let locked = c.lock(0);
        // 25,000 keys went through one partition; tombstones were rebuilt
        // away whenever they took the table past its load limit.
        assert!(c.writer(&locked).table().capacity() <= 2_048);
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
        c.assert_consistent();
        assert!(c.len() <= 512);
        assert_eq!(c.stats().hits, found);
    }

    #[test]
    fn a_removed_entry_is_never_found_by_a_later_lookup() {
        let c: Arc<Cache<u64>> = Arc::new(small(4_096));
        let reader = {
            let c = c.clone();
            std::thread::spawn(move || {
                // Keeps other slots of the table busy being read meanwhile.
                for i in 0..200_000u64 {
                    c.get(key(i % 2_000), 1);
                }
            })
        };
        for i in 0..2_000u64 {
            c.insert(key(i), i, 8, 100 * S, 0, 0);
            assert_eq!(c.get(key(i), 1).as_deref(), Some(&i));
            assert!(c.remove(key(i)));
            assert!(c.get(key(i), 1).is_none(), "removal is seen at once");
        }
        reader.join().unwrap();
        c.assert_consistent();
    }

    #[test]
    fn removals_do_not_wait_for_a_reader_stalled_in_a_read_section() {
        use std::sync::mpsc;
        use std::time::Duration;
        let probe = Arc::new(());
        let c: Arc<Cache<Arc<()>>> = Arc::new(Cache::new(CacheConfig::default()));
        for i in 0..200 {
            c.insert(key(i), probe.clone(), 8, 100, 0, 0);
        }
        // A reader enters a read section on another thread and stays in it
        // (as one descheduled mid-lookup would) until it is told to leave.
        let (entered_tx, entered_rx) = mpsc::channel();
        let (leave_tx, leave_rx) = mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            crate::reclaim::read_section(|| {
                entered_tx.send(()).unwrap();
                leave_rx.recv().unwrap();
            })
        });
        entered_rx.recv().unwrap();
        // 200 removals retire enough values for several inline reclaim
        // attempts, each of which would have waited for that reader.
        let (done_tx, done_rx) = mpsc::channel();
        let remover = {
            let c = c.clone();
            std::thread::spawn(move || {
                let removed = (0..200).filter(|&i| c.remove(key(i))).count();
                let freed = c.try_reclaim();
                done_tx.send((removed, freed)).unwrap();
            })
        };
        // Generous: the removals take microseconds; a remover that waits
        // for the reader never answers until the reader is released.
        let outcome = done_rx.recv_timeout(Duration::from_secs(10));
        leave_tx.send(()).unwrap();
        reader.join().unwrap();
        remover.join().unwrap();
        assert_eq!(
            outcome,
            Ok((200, false)),
            "the removals returned while the reader was still in its section, \
             and kept the values it might hold"
        );
        assert_eq!(Arc::strong_count(&probe), 201, "nothing was freed");
        // The reader has left: a reclaim that may wait frees them all. (A
        // bounded one could still give up on a read section of another test
        // running in parallel: the section records are process-wide.)
        c.reclaim();
        assert_eq!(Arc::strong_count(&probe), 1);
        assert!(c.is_empty());
    }

    #[test]
    fn every_value_is_dropped_exactly_once() {
        let probe = Arc::new(());
        {
            let c: Cache<Arc<()>> = Cache::new(CacheConfig::default());
            for i in 0..1_000 {
                c.insert(key(i), probe.clone(), 8, 100, 0, 0);
            }
            for i in 0..500 {
                c.remove(key(i));
            }
            for i in 500..600 {
                c.insert(key(i), probe.clone(), 8, 100, 0, 0);
            }
            assert!(Arc::strong_count(&probe) >= 501);
        }
        // Live and retired values all drop with the cache.
        assert_eq!(Arc::strong_count(&probe), 1);
    }
}
