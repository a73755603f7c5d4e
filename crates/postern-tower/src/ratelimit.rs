//! Per-client rate limiting of cache misses.
//!
//! Hits cost the upstream nothing and are never limited. Misses each cost
//! one upstream call, and a flood of bogus tokens is all misses (failures
//! are never cached), so a client that misses faster than `rate` per second
//! (after a burst of `burst`) is refused with 429 before the upstream is
//! asked. A token bucket per client, pure over `now`.
//!
//! The table is bounded: past `max_clients` buckets, full (idle) buckets are
//! dropped; if every bucket is busy, the table is cleared, which forgets
//! debts rather than growing without limit.

use std::collections::HashMap;

use parking_lot::Mutex;

const SECOND: f64 = 1e9;

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
    // Held for one bucket update or one prune; never across an await.
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl MissLimiter {
    /// `rate` misses per second per client, bursts of up to `burst`.
    pub fn new(rate: f64, burst: f64, max_clients: usize) -> Self {
        Self {
            rate: rate.max(0.0),
            burst: burst.max(1.0),
            max_clients: max_clients.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, bucket: Bucket, now: u64) -> f64 {
        let elapsed = now.saturating_sub(bucket.at) as f64 / SECOND;
        (bucket.tokens + elapsed * self.rate).min(self.burst)
    }

    /// Takes one miss from `client`'s bucket; `false` if it is empty.
    pub fn allow(&self, client: &str, now: u64) -> bool {
        let mut buckets = self.buckets.lock();
        if buckets.len() >= self.max_clients && !buckets.contains_key(client) {
            let burst = self.burst;
            buckets.retain(|_, b| {
                let elapsed = now.saturating_sub(b.at) as f64 / SECOND;
                b.tokens + elapsed * self.rate < burst
            });
            if buckets.len() >= self.max_clients {
                buckets.clear();
            }
        }
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
        assert!(l.buckets.lock().len() <= 10);
    }
}
