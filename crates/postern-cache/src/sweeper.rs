//! A background thread that reaps expired entries.
//!
//! It wakes every `interval`, calls [`Cache::sweep`] with the current time
//! and a per-shard budget, and exits when the [`Sweeper`] handle is dropped.
//! Sweeping locks one partition at a time for a bounded number of removals
//! (readers take no lock at all), then frees the values retired since the
//! last sweep once no reader can still hold them.
//! (This module is the crate's only clock reader: the sweeper is an edge.)

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

use crate::cache::Cache;

/// Owns the sweeping thread; dropping it stops and joins the thread.
pub struct Sweeper {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sweeper")
    }
}

/// Nanoseconds since the Unix epoch from the system clock: the one clock
/// read the edges (sweeper, tower layer, server) share.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Sweeper {
    /// Starts sweeping `cache` every `interval`, reaping at most
    /// `max_per_shard` entries per shard per pass.
    pub fn start<V: Send + Sync + 'static>(
        cache: Arc<Cache<V>>,
        interval: Duration,
        max_per_shard: usize,
    ) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("postern-cache-sweeper".into())
            .spawn(move || {
                let (lock, condvar) = &*signal;
                let mut stopped = lock.lock();
                while !*stopped {
                    condvar.wait_for(&mut stopped, interval);
                    if *stopped {
                        break;
                    }
                    // Sweep without holding the stop lock.
                    drop(stopped);
                    cache.sweep(unix_now(), max_per_shard);
                    stopped = lock.lock();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        let (lock, condvar) = &*self.stop;
        *lock.lock() = true;
        condvar.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheConfig;

    #[test]
    fn the_sweeper_reaps_in_the_background_and_stops_on_drop() {
        let cache = Arc::new(Cache::new(CacheConfig::default()));
        let now = unix_now();
        cache.insert(1u128 << 70 | 1, "gone", 8, now + 1, 0, now);
        cache.insert(2u128 << 70 | 2, "kept", 8, now + 3_600_000_000_000, 0, now);
        let sweeper = Sweeper::start(cache.clone(), Duration::from_millis(5), 100).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while cache.len() != 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(sweeper);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.stats().expired_reaped, 1);
    }
}
