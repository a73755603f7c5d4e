//! Exact event counters that the hit path updates without a locked
//! instruction.
//!
//! # Why
//!
//! Every hit and miss is counted, and an atomic add on one shared counter
//! costs a locked read-modify-write, and with two threads, a cache line
//! that moves between cores on every hit. So a [`StripedCounter`] has
//! [`STRIPES`] cache-line-padded stripes, and each thread *leases* one
//! stripe index for its lifetime (process-wide, shared by every counter).
//! Only the leaseholder writes that stripe, so it adds with a plain
//! `Relaxed` load and store, and no increment is ever lost. The lease goes
//! back to a free list when the thread exits. The next thread to lease that
//! stripe takes it under the same mutex, so it sees every store of the
//! thread before.
//!
//! When more than [`STRIPES`] threads count at once, the extra threads get
//! no lease. They add with `fetch_add` on a shared overflow stripe: slower,
//! but still exact. Reading sums the stripes, a fixed number, so it is O(1)
//! in entries. Sums are taken without stopping writers, so a reading taken
//! while counting goes on is a value the counter had during the read.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Stripes per counter: threads that can count without a locked add.
pub const STRIPES: usize = 64;

// One counter per cache line pair (adjacent-line prefetch pairs lines on
// x86), so stripes leased to different threads never share a line.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Stripe(AtomicU64);

/// A counter summed over per-thread stripes; see the module docs.
#[derive(Debug)]
pub struct StripedCounter {
    stripes: Box<[Stripe]>,
    overflow: Stripe,
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            overflow: Stripe::default(),
        }
    }
}

impl StripedCounter {
    /// Adds `n`, with a plain load and store when this thread holds a lease.
    pub fn add(&self, n: u64) {
        match leased_stripe() {
            Some(index) => {
                let stripe = &self.stripes[index].0;
                // Only this thread writes this stripe while it holds the
                // lease, so load-then-store loses nothing.
                stripe.store(
                    stripe.load(Ordering::Relaxed).wrapping_add(n),
                    Ordering::Relaxed,
                );
            }
            None => {
                self.overflow.0.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// The total: a fixed number of loads.
    pub fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .chain(std::iter::once(&self.overflow))
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

/// Stripe indices no live thread holds, and how many indices have ever been
/// handed out. Locked only when a thread takes its first lease or exits.
static LEASES: Mutex<(Vec<usize>, usize)> = Mutex::new((Vec::new(), 0));

/// A thread's lease on one stripe index; returns it on thread exit.
struct Lease(Option<usize>);

impl Lease {
    fn take() -> Self {
        let mut leases = LEASES.lock();
        let (free, handed_out) = &mut *leases;
        if let Some(index) = free.pop() {
            Self(Some(index))
        } else if *handed_out < STRIPES {
            *handed_out += 1;
            Self(Some(*handed_out - 1))
        } else {
            Self(None)
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(index) = self.0.take() {
            LEASES.lock().0.push(index);
        }
    }
}

thread_local! {
    static LEASE: Lease = Lease::take();
    // xorshift64 state for [`draw`], seeded on first use.
    static DRAW: Cell<u64> = const { Cell::new(0) };
}

/// This thread's stripe, if it holds one (none past [`STRIPES`] live
/// threads, or while the thread's locals are being destroyed).
fn leased_stripe() -> Option<usize> {
    LEASE.try_with(|lease| lease.0).ok().flatten()
}

/// A fast per-thread pseudorandom draw (xorshift64), for sampling; not
/// for anything secret. Random rather than a round-robin tick, so that a
/// periodic access pattern cannot alias with the sampling.
pub fn draw() -> u64 {
    DRAW.try_with(|cell| {
        let mut x = cell.get();
        if x == 0 {
            x = rand::random::<u64>() | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cell.set(x);
        x
    })
    .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_adds_are_never_lost_even_past_the_stripe_count() {
        let counter = Arc::new(StripedCounter::default());
        // More threads than stripes, alive at once: some count through the
        // overflow stripe; all of them together must sum exactly.
        let threads = STRIPES + 16;
        let barrier = Arc::new(std::sync::Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let counter = counter.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..10_000 {
                        counter.add(1);
                    }
                    barrier.wait();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(counter.sum(), threads as u64 * 10_000);
    }

    #[test]
    fn a_stripe_freed_by_an_exited_thread_keeps_its_counts() {
        let counter = Arc::new(StripedCounter::default());
        for round in 1..=5u64 {
            let c = counter.clone();
            std::thread::spawn(move || c.add(7)).join().unwrap();
            assert_eq!(counter.sum(), 7 * round);
        }
    }
}
