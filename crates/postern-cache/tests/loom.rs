//! Model checks of the cache's lock-free reads with loom: the per-slot
//! sequence locks (`src/table.rs`) and the read-section reclamation
//! (`src/reclaim.rs`), through the real `Cache` built against loom's
//! atomics, mutexes and thread-locals (`src/sync.rs`).
//!
//! Run (as `.ci/run` does; a separate target directory, so that the cfg
//! does not invalidate the shared build):
//!
//! ```text
//! CARGO_TARGET_DIR=$HOME/.cache/postern/loom-target LOOM_MAX_PREEMPTIONS=3 \
//!   RUSTFLAGS="--cfg loom" cargo test -p postern-cache --release --test loom
//! ```
//!
//! loom runs each model under every interleaving of its threads with at
//! most `LOOM_MAX_PREEMPTIONS` preemptions (3 unless set), and lets every
//! relaxed or acquire load return any store the C++ memory model allows.
//! A value's drop and a table's free write a loom cell that every read of
//! them reads, so a read not ordered before the free (a use after free),
//! or one after it, fails the model.
//!
//! # What the model assumes
//!
//! - **`membarrier`.** loom has no process-wide barrier, so the model runs
//!   the protocol's fallback, which the code uses wherever `membarrier` is
//!   unavailable: a reader issues a `SeqCst` fence right after marking its
//!   record, and `synchronize` a `SeqCst` fence before reading the records.
//!   `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` guarantees that every
//!   running thread of the process executes a full memory barrier before
//!   the call returns, and a thread that is not running passes one when it
//!   is scheduled (Linux's `membarrier(2)`); so every reader is, with
//!   respect to the writer's call, as if a full fence stood where its
//!   compiler-only fence stands. The checked claim is therefore exactly as
//!   strong as that guarantee: that the reader's record store and its later
//!   loads are ordered as if by a `SeqCst` fence that is totally ordered
//!   with the writer's barrier. The `membarrier` path itself, and the
//!   kernel's keeping of that promise, are not checked.
//! - **Bounded preemptions.** Interleavings with more preemptions than the
//!   bound are not explored (loom's usual trade; bugs in practice need
//!   few).
//! - **SeqCst accesses** are modelled by loom as acquire/release, which is
//!   weaker than the code gets: it can only raise false alarms.
//! - **What is not modelled:** the frequency sketch and statistics
//!   counters (std atomics: estimates that decide nothing about memory),
//!   the huge-page allocation (under loom a table's slots are a boxed
//!   slice), and threads that exit while holding a record.

#![cfg(loom)]
// A failed unwrap or assertion is a failed model.
#![allow(clippy::unwrap_used, clippy::panic)]
// A value type shared by the model's threads holds a loom cell.
#![allow(unsafe_code)]

use std::sync::atomic::AtomicUsize;

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use postern_cache::{Cache, CacheConfig, CacheKey};

/// A cached value that knows its key and expiry, counts its drops, and
/// fails the model if it is read after (or racing) its drop.
struct Entry {
    key: CacheKey,
    expires: u64,
    alive: loom::cell::Cell<bool>,
    drops: std::sync::Arc<AtomicUsize>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.alive.set(false);
        self.drops
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

// SAFETY: the cell is read by lookups and written only by the drop; loom
// checks that every read is ordered before the drop, which is what the
// cache's reclamation must guarantee for a shared value.
unsafe impl Sync for Entry {}

/// Two keys with the same home slot (low bits) in a one-partition cache.
const K1: CacheKey = (1 << 64) | 3;
const K2: CacheKey = (2 << 64) | 3;

fn cache() -> Cache<Entry> {
    Cache::new(CacheConfig {
        max_entries: 64,
        max_bytes: 1 << 20,
        shards: 1,
        eviction_samples: 1,
    })
}

fn insert(cache: &Cache<Entry>, key: CacheKey, expires: u64, drops: &std::sync::Arc<AtomicUsize>) {
    cache.insert(
        key,
        Entry {
            key,
            expires,
            alive: loom::cell::Cell::new(true),
            drops: drops.clone(),
        },
        8,
        expires,
        0,
        0,
    );
}

/// What a lookup saw, read from the value itself.
fn read(value: &std::sync::Arc<Entry>) -> (CacheKey, u64) {
    assert!(value.alive.get(), "a lookup read a freed value");
    (value.key, value.expires)
}

/// Runs `model` under every interleaving within the bounds, and prints how
/// many executions that took.
fn check(model: impl Fn() + Sync + Send + 'static) {
    let executions = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = executions.clone();
    let model = move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model();
    };
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    // Filling a table before the threads start takes a few hundred steps.
    builder.max_branches = builder.max_branches.max(20_000);
    builder.check(model);
    eprintln!(
        "{} executions",
        executions.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[test]
fn a_reader_racing_a_writer_never_sees_a_torn_entry() {
    check(|| {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(cache());
        insert(&cache, K1, 100, &drops);
        let (c1, c2, d2) = (cache.clone(), cache.clone(), drops.clone());
        race(
            move || {
                // K1 only ever expires at 100: served at 150 only if a read
                // paired its key with K2's expiry; K2's value under K1 (or
                // the reverse) would pair a key with another write's value.
                assert_eq!(c1.get_map(K1, 150, read), None);
                if let Some(found) = c1.get_map(K2, 150, read) {
                    assert_eq!(found, (K2, 200));
                }
            },
            move || {
                assert!(c2.remove(K1));
                // K1's slot was the end of its chain: emptied, then reused.
                insert(&c2, K2, 200, &d2);
            },
        );
        assert_eq!(cache.get_map(K2, 150, read), Some((K2, 200)));
    });
}

/// Runs `reader` and `writer` on two threads of the model; both are
/// spawned, so that loom explores their interleavings from the start.
fn race<R: Send + 'static, W: Send + 'static>(
    reader: impl FnOnce() -> R + Send + 'static,
    writer: impl FnOnce() -> W + Send + 'static,
) -> (R, W) {
    let reader = thread::spawn(reader);
    let writer = thread::spawn(writer);
    (reader.join().unwrap(), writer.join().unwrap())
}

#[test]
fn a_reader_racing_remove_and_reclaim_never_touches_a_freed_value() {
    check(|| {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(cache());
        insert(&cache, K1, 100, &drops);
        let (c1, c2) = (cache.clone(), cache.clone());
        let (found, ()) = race(
            move || c1.get_map(K1, 50, read),
            move || {
                assert!(c2.remove(K1));
                c2.reclaim();
            },
        );
        if let Some(found) = found {
            assert_eq!(found, (K1, 100));
        }
        assert_eq!(
            drops.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "the removed value was freed once the reader had left"
        );
    });
}

#[test]
fn a_reader_racing_a_replacement_and_reclaim_sees_the_old_or_the_new_value() {
    check(|| {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(cache());
        insert(&cache, K1, 100, &drops);
        let (c1, c2, d2) = (cache.clone(), cache.clone(), drops.clone());
        let (found, ()) = race(
            move || c1.get_map(K1, 50, read),
            move || {
                // Replaced in place: the old value is retired, then freed.
                insert(&c2, K1, 200, &d2);
                c2.reclaim();
            },
        );
        assert!(
            matches!(found, Some((K1, 100 | 200))),
            "a lookup during a replacement finds one of the two: {found:?}"
        );
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(cache.get_map(K1, 50, read), Some((K1, 200)));
    });
}

#[test]
fn a_reader_racing_a_rebuild_and_reclaim_never_touches_a_freed_table() {
    check(|| {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(cache());
        // Twelve entries fill the first table (16 slots) to its load
        // limit; a thirteenth makes the writer rebuild it and retire it.
        let key = |i: u128| (i << 64) | i;
        for i in 0..12 {
            insert(&cache, key(i), 100, &drops);
        }
        let (c1, c2, d2) = (cache.clone(), cache.clone(), drops.clone());
        let (found, ()) = race(
            move || c1.get_map(key(5), 50, read),
            move || {
                insert(&c2, key(12), 100, &d2);
                c2.reclaim();
            },
        );
        assert_eq!(found, Some((key(5), 100)));
        assert_eq!(cache.len(), 13);
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 0);
    });
}

#[test]
fn a_bounded_reclaim_that_gives_up_frees_nothing_a_reader_holds() {
    check(|| {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(cache());
        insert(&cache, K1, 100, &drops);
        let (c1, c2) = (cache.clone(), cache.clone());
        let (found, freed) = race(
            move || c1.get_map(K1, 50, read),
            move || {
                assert!(c2.remove(K1));
                // As an insert or removal on an async worker does: a brief
                // wait, else the value is kept for a later attempt.
                c2.try_reclaim()
            },
        );
        if let Some(found) = found {
            assert_eq!(found, (K1, 100));
        }
        assert_eq!(
            drops.load(std::sync::atomic::Ordering::Relaxed),
            usize::from(freed)
        );
        // The reader has left: the later attempt frees the value.
        assert!(cache.try_reclaim());
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 1);
    });
}

#[test]
fn a_removal_is_seen_by_every_lookup_that_starts_after_it() {
    check(|| {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(cache());
        insert(&cache, K1, 100, &drops);
        let removed = Arc::new(AtomicBool::new(false));
        let (c1, c2, r1, r2) = (cache.clone(), cache.clone(), removed.clone(), removed);
        race(
            move || {
                let after = r1.load(Ordering::Acquire);
                let found = c1.get_map(K1, 50, read);
                if after {
                    assert_eq!(found, None, "a lookup after the removal returned");
                }
            },
            move || {
                assert!(c2.remove(K1));
                r2.store(true, Ordering::Release);
            },
        );
        assert_eq!(cache.get_map(K1, 50, read), None);
    });
}
