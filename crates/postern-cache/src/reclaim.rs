//! Memory reclamation for the cache's lock-free reads, at the cost of two
//! plain stores per read.
//!
//! The cache is its only user. [`read_section`] is public so that
//! `benches/engines.rs` can measure a section against `seize`'s guard; it
//! scopes the section to a closure, so sections always close, innermost
//! first.
//!
//! # Why our own
//!
//! A reader must be able to dereference a value pointer it found in a slot
//! even if a writer removes the value meanwhile; the value may be freed
//! only once no reader can still hold it. `seize` (the best-kept crate for
//! this) costs 12 ns per read on our machine, because leaving its guard is
//! an atomic swap; `crossbeam-epoch` pins with a locked instruction too.
//! Either alone would take most of a 20 ns hit budget
//! (`benches/engines.rs`, group `reclaim`; figures in `BENCHMARKS.md`).
//!
//! # Scheme
//!
//! Userspace RCU's `membarrier` flavour (Desnoyers et al., "User-Level
//! Implementations of Read-Copy Update", IEEE TPDS 2012):
//!
//! - Every thread that reads owns a `Record`, a counter that is odd while
//!   the thread is inside a read section. Entering stores the next (odd)
//!   value; leaving stores the next (even) value with release ordering.
//!   Neither is a read-modify-write; a nested section leaves the counter
//!   to the outermost one.
//! - A writer that has made objects unreachable calls `synchronize`: a
//!   process-wide memory barrier, then for every record that is odd, a wait
//!   until it changes. Every read section that could have seen the objects
//!   has then ended, and they can be freed.
//! - The process-wide barrier is Linux's
//!   `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: it makes every running
//!   thread of the process execute a full fence, so readers need none of
//!   their own. Where it is unavailable (another OS, a seccomp filter),
//!   readers issue a `SeqCst` fence after entering and writers a `SeqCst`
//!   fence instead; which one is fixed before the first read.
//! - A thread never waits for itself: `synchronize` refuses to run inside
//!   a read section (the caller keeps its objects for later).
//! - A writer that may be on an async runtime's worker thread (every
//!   insert and removal the gate makes) waits a bounded number of steps
//!   for each section in progress (`Patience::Steps`). A section that
//!   outlasts it (a reader descheduled or stalled inside one) makes the
//!   writer give up and keep its objects for a later attempt, so a stalled
//!   reader delays freeing, never the writer. Only the sweeper's thread
//!   waits without bound (`Patience::Unbounded`).

#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::atomic::compiler_fence;
#[cfg(not(loom))]
use std::sync::OnceLock;

use crate::sync::{backoff, fence, AtomicBool, AtomicU64, Mutex, Ordering};

/// A thread's read-section counter: odd while inside one.
#[repr(align(128))]
struct Record {
    state: AtomicU64,
    claimed: AtomicBool,
}

/// Every record ever made; records outlive their threads and are reused.
#[cfg(not(loom))]
static RECORDS: Mutex<Vec<&'static Record>> = Mutex::new(Vec::new());

// Under loom, made afresh for each execution of a model (its records'
// atomics belong to that execution).
#[cfg(loom)]
loom::lazy_static! {
    static ref RECORDS: Mutex<Vec<&'static Record>> = Mutex::new(Vec::new());
}

/// Whether readers may rely on the writers' process-wide barrier.
#[cfg(not(loom))]
static ASYMMETRIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether readers may rely on the writers' process-wide barrier: never
/// under loom, which has no `membarrier`. The model checks the symmetric
/// protocol, a `SeqCst` fence on each side; see `tests/loom.rs` for why
/// that is what `membarrier` provides.
#[cfg(loom)]
fn asymmetric() -> bool {
    false
}

#[cfg(not(loom))]
fn asymmetric() -> bool {
    ASYMMETRIC.load(Ordering::Relaxed)
}

#[cfg(not(loom))]
thread_local! {
    static LOCAL: Cell<Option<&'static Record>> = const { Cell::new(None) };
    // Gives the record back when the thread exits; touched only when the
    // thread first reads, which registers its destructor.
    static RELEASE: Release = const { Release };
}

// Under loom, records are made afresh for each execution and never handed
// back: loom drops thread-locals after the execution ends, where `Release`
// could not touch a record's atomics.
#[cfg(loom)]
loom::thread_local! {
    static LOCAL: Cell<Option<&'static Record>> = Cell::new(None);
}

#[cfg(not(loom))]
struct Release;

#[cfg(not(loom))]
impl Drop for Release {
    fn drop(&mut self) {
        let record = LOCAL.try_with(|cell| cell.replace(None));
        // A record still inside a section (a guard outliving this
        // destructor) is never handed to another thread: it stays claimed.
        if let Ok(Some(record)) = record {
            if record.state.load(Ordering::Relaxed) & 1 == 0 {
                record.claimed.store(false, Ordering::Release);
            }
        }
    }
}

/// Chooses the barrier strategy; call before the first read of any cache.
/// (Nothing to choose under loom.)
#[cfg(loom)]
pub(crate) fn init() {}

/// Chooses the barrier strategy; call before the first read of any cache.
#[cfg(not(loom))]
pub(crate) fn init() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if heavy::register() {
            ASYMMETRIC.store(true, Ordering::SeqCst);
        }
    });
}

#[cold]
fn claim_record() -> &'static Record {
    let mut records = RECORDS.lock();
    let record = match records.iter().find(|r| {
        r.claimed
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }) {
        Some(record) => record,
        None => {
            let record: &'static Record = Box::leak(Box::new(Record {
                state: AtomicU64::new(0),
                claimed: AtomicBool::new(true),
            }));
            records.push(record);
            record
        }
    };
    // Fails only during thread teardown; the record then stays claimed.
    #[cfg(not(loom))]
    let _ = RELEASE.try_with(|_| ());
    LOCAL.with(|cell| cell.set(Some(record)));
    record
}

/// A read section: pointers found while it lives stay valid until it drops.
/// Guards must drop innermost first and must not be leaked; they stay
/// inside this crate, where every one is scoped to a function body.
pub(crate) struct ReadGuard {
    record: &'static Record,
    /// The record's (odd) state this section set, or `None` when nested in
    /// an outer section, which leaves it.
    entered: Option<u64>,
    // Not `Send`: the section belongs to this thread's record.
    _thread_bound: std::marker::PhantomData<*const ()>,
}

/// Enters a read section. Sections nest: only the outermost one marks the
/// thread's record, so a nested one costs a load.
#[inline]
pub(crate) fn enter() -> ReadGuard {
    let record = match LOCAL.with(Cell::get) {
        Some(record) => record,
        None => claim_record(),
    };
    // Only this thread writes its record, so this reads its own last store.
    let state = record.state.load(Ordering::Relaxed);
    let entered = if state & 1 == 1 {
        None
    } else {
        let inside = state.wrapping_add(1);
        record.state.store(inside, Ordering::Relaxed);
        if asymmetric() {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
        Some(inside)
    };
    ReadGuard {
        record,
        entered,
        _thread_bound: std::marker::PhantomData,
    }
}

impl Drop for ReadGuard {
    #[inline]
    fn drop(&mut self) {
        if let Some(inside) = self.entered {
            self.record
                .state
                .store(inside.wrapping_add(1), Ordering::Release);
        }
    }
}

/// Runs `f` inside a read section (after choosing the barrier strategy,
/// as creating a cache does). For benchmarks: the cache opens its own.
pub fn read_section<R>(f: impl FnOnce() -> R) -> R {
    init();
    let _section = enter();
    f()
}

/// Whether this thread is inside a read section.
pub(crate) fn in_read_section() -> bool {
    LOCAL
        .with(Cell::get)
        .is_some_and(|record| record.state.load(Ordering::Relaxed) & 1 == 1)
}

/// How long [`synchronize`] waits for the read sections in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Patience {
    /// Until they have all ended, however long that takes: only for
    /// threads that may block (the sweeper's, `Cache::reclaim`'s callers).
    Unbounded,
    /// At most this many backoff steps (spins, then yields) for each
    /// section, then give up. For writers that may be on an async
    /// runtime's worker thread, which must never wait on a reader that is
    /// descheduled or stalled.
    Steps(u32),
}

/// Waits until every read section that was in progress when this was
/// called has ended. Returns `false`, having waited for nothing, when
/// called inside a read section or when the barrier fails, and also when a
/// section outlasts a bounded `patience`; the caller then keeps its
/// objects for a later attempt.
pub(crate) fn synchronize(patience: Patience) -> bool {
    if in_read_section() {
        return false;
    }
    if asymmetric() {
        if !heavy::barrier() {
            return false;
        }
    } else {
        fence(Ordering::SeqCst);
    }
    let inside: Vec<(&'static Record, u64)> = RECORDS
        .lock()
        .iter()
        .filter_map(|record| {
            let state = record.state.load(Ordering::Acquire);
            (state & 1 == 1).then_some((*record, state))
        })
        .collect();
    for (record, state) in inside {
        let mut step = 0u32;
        while record.state.load(Ordering::Acquire) == state {
            if let Patience::Steps(limit) = patience {
                if step >= limit {
                    return false;
                }
            }
            backoff(step);
            step = step.saturating_add(1);
        }
    }
    true
}

// Under loom only `barrier` is referenced (and never reached): the model
// has no process-wide barrier to register for.
#[cfg(target_os = "linux")]
#[cfg_attr(loom, allow(dead_code))]
mod heavy {
    // membarrier(2) commands.
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    pub(super) fn register() -> bool {
        // SAFETY: membarrier takes two integers and touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0) == 0 }
    }

    pub(super) fn barrier() -> bool {
        // SAFETY: membarrier takes two integers and touches no memory of
        // ours; it fails (`-1`) rather than misbehaves if unregistered.
        unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0) == 0 }
    }
}

#[cfg(not(target_os = "linux"))]
#[cfg_attr(loom, allow(dead_code))]
mod heavy {
    pub(super) fn register() -> bool {
        false
    }

    pub(super) fn barrier() -> bool {
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn synchronize_waits_for_a_section_in_progress_and_not_for_later_ones() {
        init();
        let entered = Arc::new(AtomicBool::new(false));
        let leave = Arc::new(AtomicBool::new(false));
        let reader = {
            let (entered, leave) = (entered.clone(), leave.clone());
            std::thread::spawn(move || {
                let guard = enter();
                entered.store(true, Ordering::SeqCst);
                while !leave.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                drop(guard);
            })
        };
        while !entered.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let synced = Arc::new(AtomicBool::new(false));
        let writer = {
            let synced = synced.clone();
            std::thread::spawn(move || {
                assert!(synchronize(Patience::Unbounded));
                synced.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !synced.load(Ordering::SeqCst),
            "the writer waits while the section is open"
        );
        leave.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        reader.join().unwrap();
        assert!(synced.load(Ordering::SeqCst));
    }

    #[test]
    fn sections_nest_and_a_thread_never_waits_for_itself() {
        init();
        let outer = enter();
        let inner = enter();
        drop(inner);
        assert!(in_read_section(), "the outer section is still open");
        assert!(
            !synchronize(Patience::Unbounded),
            "refused inside a section"
        );
        drop(outer);
        assert!(!in_read_section());
        assert!(synchronize(Patience::Unbounded));
    }

    #[test]
    fn records_of_exited_threads_are_reused() {
        init();
        let before = RECORDS.lock().len();
        let seen = Arc::new(AtomicUsize::new(0));
        for _ in 0..8 {
            let seen = seen.clone();
            std::thread::spawn(move || {
                drop(enter());
                seen.fetch_add(1, Ordering::SeqCst);
            })
            .join()
            .unwrap();
        }
        assert_eq!(seen.load(Ordering::SeqCst), 8);
        // Threads that ran one after another shared records (other tests
        // may run at the same time, so allow a few more).
        assert!(RECORDS.lock().len() <= before + 4);
    }
}
