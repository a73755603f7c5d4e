//! The synchronisation primitives of the slot table and the reclamation,
//! from `std` and `parking_lot` in a normal build and from `loom` when the
//! crate is built with `--cfg loom` (`tests/loom.rs`).
//!
//! Under loom every atomic access, fence, lock and spin below is a point
//! at which the model checker may switch threads, and relaxed and acquire
//! loads may return any store the C++ memory model allows (loom models
//! store histories and acquire/release/SeqCst fences; it treats SeqCst
//! loads and stores as acquire/release, which can only add false alarms).
//! The frequency sketch and the statistics counters keep `std` atomics in
//! both builds: they are estimates, never part of a decision about memory.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8};

pub(crate) use std::sync::atomic::Ordering;

#[cfg(not(loom))]
pub(crate) use parking_lot::{Mutex, MutexGuard};

/// loom's mutex with `parking_lot`'s interface (no poisoning: a panic
/// inside a model fails the model anyway).
#[cfg(loom)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

#[cfg(loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A hint that the thread is waiting for another (a retry of a read that
/// raced a write). Under loom, a yield to the model checker.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::hint::spin_loop();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// One step of a wait for another thread: a spin hint for the first
/// `spins` steps, then a yield to the scheduler. Under loom every step
/// yields, which is how the model checker lets the awaited thread run.
#[inline]
pub(crate) fn backoff(step: u32) {
    #[cfg(loom)]
    {
        let _ = step;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        if step < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Evidence, under loom, that an object is still allocated: the object's
/// drop writes it, every read through a possibly stale pointer reads it,
/// and loom fails the model if a read is not ordered before the drop
/// (loom's causality check of its cells: a use racing the free) or sees
/// the object dropped. Absent from a normal build.
#[cfg(loom)]
pub(crate) struct Alive(loom::cell::Cell<bool>);

#[cfg(loom)]
impl Alive {
    pub(crate) fn new() -> Self {
        Self(loom::cell::Cell::new(true))
    }

    /// A read of the object; fails the model after (or racing) its drop.
    pub(crate) fn check(&self) {
        assert!(self.0.get(), "read of a freed object");
    }
}

#[cfg(loom)]
impl Drop for Alive {
    fn drop(&mut self) {
        self.0.set(false);
    }
}
