//! Per-client rate limiting of cache misses.
//!
//! Hits cost the upstream nothing and are never limited. Misses each cost
//! one upstream call, and a flood of bogus tokens is all misses (failures
//! are never cached), so a client that misses faster than `rate` per second
//! (after a burst of `burst`) is refused with 429 before the upstream is
//! asked. A token bucket per client, pure over `now`.
//!
//! The table is bounded: past `max_clients` buckets, full (idle) buckets are
//! dropped, in one walk at most once per [`PRUNE_EVERY`] (the walk holds
//! the lock every miss takes, so it must not run per request). If every
//! bucket is still busy, a new client's miss is refused (429) rather than
//! the table cleared: clearing would let a flood from enough addresses
//! wipe every flooder's debt at once. Clients already in the table, and
//! every hit, are unaffected.

use std::collections::HashMap;

use parking_lot::Mutex;

const SECOND: f64 = 1e9;

/// Least time between two walks of a full table for idle buckets.
pub const PRUNE_EVERY: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: u64,
}

/// Token buckets keyed by client.
#[derive(Debug)]
pub struct MissLimiter {
    rate: f64,
    burst: f64,
    max_clients: usize,
    // Held for one bucket update or one prune (at most one per
    // `PRUNE_EVERY`); never across an await.
    buckets: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    buckets: HashMap<String, Bucket>,
    /// No walk for idle buckets before this (Unix nanoseconds).
    next_prune: u64,
}

impl MissLimiter {
    /// `rate` misses per second per client, bursts of up to `burst`.
    pub fn new(rate: f64, burst: f64, max_clients: usize) -> Self {
        Self {
            rate: rate.max(0.0),
            burst: burst.max(1.0),
            max_clients: max_clients.max(1),
            buckets: Mutex::new(Table::default()),
        }
    }

    fn refill(&self, bucket: Bucket, now: u64) -> f64 {
        let elapsed = now.saturating_sub(bucket.at) as f64 / SECOND;
        (bucket.tokens + elapsed * self.rate).min(self.burst)
    }

    /// Takes one miss from `client`'s bucket; `false` if it is empty.
    pub fn allow(&self, client: &str, now: u64) -> bool {
        let mut table = self.buckets.lock();
        if table.buckets.len() >= self.max_clients && !table.buckets.contains_key(client) {
            if now >= table.next_prune {
                table.next_prune = now.saturating_add(PRUNE_EVERY);
                let burst = self.burst;
                table.buckets.retain(|_, b| {
                    let elapsed = now.saturating_sub(b.at) as f64 / SECOND;
                    b.tokens + elapsed * self.rate < burst
                });
            }
            if table.buckets.len() >= self.max_clients {
                return false;
            }
        }
        let buckets = &mut table.buckets;
        let bucket = buckets.get(client).copied().unwrap_or(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = self.refill(bucket, now);
        if tokens >= 1.0 {
            buckets.insert(
                client.to_string(),
                Bucket {
                    tokens: tokens - 1.0,
                    at: now,
                },
            );
            true
        } else {
            buckets.insert(client.to_string(), Bucket { tokens, at: now });
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_client_gets_its_burst_then_its_rate() {
        let l = MissLimiter::new(2.0, 3.0, 100);
        assert!((0..3).all(|_| l.allow("a", 0)));
        assert!(!l.allow("a", 0));
        assert!(l.allow("b", 0), "other clients are not affected");
        assert!(!l.allow("a", S / 4), "half a token after 250 ms");
        assert!(l.allow("a", S / 2));
        assert!(!l.allow("a", S / 2));
        assert!(
            (0..3).all(|_| l.allow("a", 10 * S)),
            "refills to the burst, not beyond"
        );
        assert!(!l.allow("a", 10 * S));
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = MissLimiter::new(1.0, 1.0, 10);
        for i in 0..1_000 {
            l.allow(&format!("client-{i}"), 0);
        }
        assert_eq!(l.buckets.lock().buckets.len(), 10);
    }

    #[test]
    fn a_full_table_of_busy_clients_refuses_newcomers_and_keeps_every_debt() {
        let l = MissLimiter::new(1.0, 1.0, 10);
        for i in 0..10 {
            assert!(l.allow(&format!("flooder-{i}"), 0));
        }
        assert!(!l.allow("newcomer", 0), "no room, and nobody idle");
        assert!(
            !l.allow("flooder-0", S / 2),
            "debts are kept, never cleared to make room"
        );
        assert!(
            !l.allow("newcomer", S / 2),
            "no second walk within a second"
        );
        assert!(l.allow("newcomer", 2 * S), "the idle buckets went");
        assert_eq!(l.buckets.lock().buckets.len(), 1);
    }
}
