//! Revocations shared between gate instances.
//!
//! Each instance derives cache keys under its own secret (see
//! `postern_cache::key`), so a key means nothing to another instance. What
//! instances exchange instead is a [`TokenDigest`]: the first 16 bytes of
//! the token's SHA-256, which identifies a token without being usable as
//! one (the seed's and `DESIGN.md`'s cache key). It is computed only off
//! the hit path: when a logout is published, and when a miss is answered.
//!
//! An instance keeps two maps: the digests of tokens it has cached (so that
//! a revocation heard from elsewhere can find and purge the local entry)
//! and the digests revoked elsewhere (so that a later miss is refused even
//! by an upstream that cannot revoke, e.g. one issuing self-contained JWTs).
//! Both are pruned of entries past their `until`, in expiry order, and
//! bounded by count ([`SharedLimits`]; see `crate::expiry`):
//!
//! - the cached digests hold at most `cached` entries; a token that cannot
//!   be remembered is answered but not cached (a revocation heard later
//!   could not find its entry);
//! - the revocations heard hold at most `revoked` entries; one heard when
//!   that is full still purges the token's cached entry here, is counted
//!   ([`SharedRevocations::revocations_dropped`]) and logged, but cannot
//!   refuse a later miss by itself: the upstream is asked, as for any miss.
//!   Entries come only from instances holding the feed key
//!   (`crate::redis_feed`), each of which bounds its own logouts.
//!
//! A hit is served only while the feed of revocations is current: if the
//! instance has not heard the whole feed for longer than `max_lag`, every
//! request goes upstream (single-flighted, as any miss) — the gate is then
//! exactly as strict as asking upstream every time, never less. The lag is
//! read on the wall clock (the hit path's `now`); the reader also checks
//! the monotonic clock whenever a round fails, so a wall clock stepped
//! back cannot keep a dead feed looking current.
//!
//! A logout that cannot be published waits in one bounded queue, retried
//! once a second by one task until the publisher takes it or it ends. Each
//! instance also remembers its own logouts still in force, to publish them
//! again if the feed's history was lost (see `crate::redis_feed`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use postern_cache::CacheKey;
use sha2::{Digest, Sha256};

use crate::expiry::{ExpiryMap, Full};

/// Identifies a token across instances: the first 16 bytes of its SHA-256.
pub type TokenDigest = u128;

/// The digest of `token` (see the module docs).
pub fn token_digest(token: &str) -> TokenDigest {
    let hash = Sha256::digest(token.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash[..16]);
    u128::from_be_bytes(first)
}

/// Why a revocation could not be handed to the other instances.
#[derive(Debug, thiserror::Error)]
#[error("revocation not shared: {0}")]
pub struct PublishError(pub String);

/// Where a gate publishes its logouts for the other instances, e.g.
/// [`crate::redis_feed::RedisRevocations`].
pub trait RevocationPublisher: Send + Sync {
    /// Publishes that `digest` is revoked until `until` (Unix nanoseconds).
    fn publish(&self, digest: TokenDigest, until: u64) -> BoxFuture<'_, Result<(), PublishError>>;
}

/// Most logouts waiting to be published again; beyond it, new ones are
/// dropped with an error in the log (they still hold on this instance).
const MAX_PENDING: usize = 100_000;

/// Logouts waiting to be published again, and the one task retrying them.
struct RetryQueue {
    publisher: Arc<dyn RevocationPublisher>,
    pending: Mutex<HashMap<TokenDigest, u64>>,
    running: AtomicBool,
    /// Logouts dropped because the queue was full (logged at the first).
    dropped: AtomicU64,
}

impl RetryQueue {
    /// Queues `digest` (keeping the later `until`) and makes sure the task
    /// runs. Needs a Tokio runtime.
    fn push(self: &Arc<Self>, digest: TokenDigest, until: u64) {
        {
            let mut pending = self.pending.lock();
            if pending.len() >= MAX_PENDING && !pending.contains_key(&digest) {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::error!(
                        "too many logouts waiting for Redis: further ones are not shared \
                         (they still hold on this instance; this is logged once)"
                    );
                }
                return;
            }
            let held = pending.entry(digest).or_insert(until);
            *held = (*held).max(until);
        }
        if !self.running.swap(true, Ordering::AcqRel) {
            tokio::spawn(Arc::clone(self).drain());
        }
    }

    async fn drain(self: Arc<Self>) {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let now = postern_cache::unix_now();
            let batch: Vec<(TokenDigest, u64)> = {
                let mut pending = self.pending.lock();
                pending.retain(|_, until| *until > now);
                pending.iter().map(|(&d, &u)| (d, u)).collect()
            };
            let mut shared = 0usize;
            for (digest, until) in batch {
                if self.publisher.publish(digest, until).await.is_err() {
                    break;
                }
                let mut pending = self.pending.lock();
                // Queued again meanwhile with a later `until`: kept for that.
                if pending.get(&digest) == Some(&until) {
                    pending.remove(&digest);
                }
                shared += 1;
            }
            if shared > 0 {
                tracing::info!(shared, "logouts shared after a retry");
            }
            if self.pending.lock().is_empty() {
                self.running.store(false, Ordering::Release);
                // A push between the check and the store saw `running` set
                // and left the work to this task: take it back, unless a
                // new task already did.
                if self.pending.lock().is_empty() || self.running.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        }
    }
}

/// A gate's view of the revocations shared with other instances.
pub struct SharedRevocations {
    /// Holds the publisher, for first attempts and retries alike.
    retries: Arc<RetryQueue>,
    /// This instance's own logouts still in force.
    own: Mutex<ExpiryMap<TokenDigest, ()>>,
    max_lag: u64,
    /// When this view was made (Unix nanoseconds): the lag reported before
    /// the feed's first report counts from here.
    started: u64,
    /// Unix nanoseconds up to which every published revocation is applied.
    heard_up_to: AtomicU64,
    /// The same moment on the monotonic clock (nanoseconds since
    /// `monotonic_base`), so that a wall clock stepping back cannot hide a
    /// stalled feed: see [`SharedRevocations::check_stalled`].
    heard_at_monotonic: AtomicU64,
    monotonic_base: std::time::Instant,
    stalled: AtomicBool,
    // Both held for one O(log n) lookup, insert or removal, never across
    // an await; misses take them (see `crate::expiry` for the bound).
    cached: Mutex<ExpiryMap<TokenDigest, CacheKey>>,
    revoked: Mutex<ExpiryMap<TokenDigest, ()>>,
    /// Revocations heard that `revoked` had no room for.
    dropped: AtomicU64,
}

/// How many entries the maps of [`SharedRevocations`] hold at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedLimits {
    /// Digests of tokens cached here (at least the cache's entry count).
    pub cached: usize,
    /// Revocations heard from the feed, and this instance's own logouts.
    pub revoked: usize,
}

impl std::fmt::Debug for SharedRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRevocations")
            .field("max_lag", &self.max_lag)
            .field("heard_up_to", &self.heard_up_to.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SharedRevocations {
    /// `max_lag` (nanoseconds): how far behind the feed may be before hits
    /// stop being served from the cache. Nothing is heard at first, so
    /// hits wait for the feed's first report ([`SharedRevocations::heard_up_to`]).
    pub fn new(
        publisher: Arc<dyn RevocationPublisher>,
        max_lag: u64,
        limits: SharedLimits,
    ) -> Self {
        Self {
            retries: Arc::new(RetryQueue {
                publisher,
                pending: Mutex::new(HashMap::new()),
                running: AtomicBool::new(false),
                dropped: AtomicU64::new(0),
            }),
            own: Mutex::new(ExpiryMap::new(limits.revoked)),
            max_lag,
            started: postern_cache::unix_now(),
            heard_up_to: AtomicU64::new(0),
            heard_at_monotonic: AtomicU64::new(0),
            monotonic_base: std::time::Instant::now(),
            stalled: AtomicBool::new(false),
            cached: Mutex::new(ExpiryMap::new(limits.cached)),
            revoked: Mutex::new(ExpiryMap::new(limits.revoked)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Every revocation published before `at` has been applied.
    pub fn heard_up_to(&self, at: u64) {
        self.heard_up_to.fetch_max(at, Ordering::Release);
        self.heard_at_monotonic
            .store(self.monotonic_elapsed(), Ordering::Release);
        if self.stalled.load(Ordering::Acquire) {
            self.stalled.store(false, Ordering::Release);
        }
    }

    fn monotonic_elapsed(&self) -> u64 {
        u64::try_from(self.monotonic_base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Called by the feed's reader when a round fails: if, by the
    /// monotonic clock, the last report is more than `max_lag` old, hits
    /// stop until the next report, whatever the wall clock says. Returns
    /// whether the feed is now marked stalled.
    pub fn check_stalled(&self) -> bool {
        let heard = self.heard_at_monotonic.load(Ordering::Acquire);
        let stalled = self.monotonic_elapsed().saturating_sub(heard) > self.max_lag;
        if stalled {
            self.stalled.store(true, Ordering::Release);
        }
        stalled
    }

    /// How long since the feed was last known complete (nanoseconds),
    /// counted from this view's creation before the feed's first report.
    pub fn lag(&self, now: u64) -> u64 {
        let heard = self.heard_up_to.load(Ordering::Acquire);
        now.saturating_sub(heard.max(self.started))
    }

    /// May hits be served from the cache? Never before the feed's first
    /// report, nor once it is more than `max_lag` behind.
    pub(crate) fn is_current(&self, now: u64) -> bool {
        let heard = self.heard_up_to.load(Ordering::Acquire);
        heard != 0
            && now.saturating_sub(heard) <= self.max_lag
            && !self.stalled.load(Ordering::Acquire)
    }

    /// Publishes a logout made here; if that fails, it is queued and
    /// retried in the background (the error is still returned).
    pub(crate) async fn publish_own(
        &self,
        digest: TokenDigest,
        until: u64,
        now: u64,
    ) -> Result<(), PublishError> {
        if self.own.lock().insert(digest, (), until, now).is_err() {
            // Still refused here (the gate's own bounded map) and published
            // below; only a republication after a lost history would miss it.
            tracing::warn!("too many own logouts in force to remember for republication");
        }
        let result = self.retries.publisher.publish(digest, until).await;
        if result.is_err() {
            self.retries.push(digest, until);
        }
        result
    }

    /// Queues every logout made here that is still in force, to publish
    /// again (the feed lost its history). Returns how many.
    pub(crate) fn republish_own(&self, now: u64) -> usize {
        let live: Vec<(TokenDigest, u64)> = self.own.lock().live_entries(now).collect();
        for &(digest, until) in &live {
            self.retries.push(digest, until);
        }
        live.len()
    }

    /// A token was cached here under `key` until `until`. `Err` when too
    /// many are remembered: the caller must not keep the entry cached.
    pub(crate) fn remember(
        &self,
        digest: TokenDigest,
        key: CacheKey,
        until: u64,
        now: u64,
    ) -> Result<(), Full> {
        self.cached.lock().insert(digest, key, until, now)
    }

    pub(crate) fn is_revoked(&self, digest: TokenDigest, now: u64) -> bool {
        self.revoked.lock().live(&digest, now).is_some()
    }

    /// Revocations heard that could not be recorded (the map was full).
    pub fn revocations_dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Revocations heard and held (ended ones not yet pruned included).
    pub fn revocations_held(&self) -> usize {
        self.revoked.lock().len()
    }

    /// Records a revocation heard from elsewhere; returns the local cache
    /// key of the token if it was cached here (for the caller to purge).
    ///
    /// The revocation is recorded before the cached-digest lookup, and a
    /// fetch remembers its digest before it checks for revocations, so a
    /// fetch racing with this call is caught by one side or the other.
    ///
    /// When the map of revocations heard is full, the cached entry is still
    /// returned for purging; the revocation is counted and logged (at the
    /// first of each thousand) instead of recorded.
    pub(crate) fn revoke(&self, digest: TokenDigest, until: u64, now: u64) -> Option<CacheKey> {
        if self.revoked.lock().insert(digest, (), until, now).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
            if dropped.is_multiple_of(1_000) {
                tracing::error!(
                    dropped = dropped + 1,
                    "too many shared revocations in force: this one purged the cache \
                     but cannot refuse later misses here"
                );
            }
        }
        self.cached.lock().remove(&digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nowhere;

    impl RevocationPublisher for Nowhere {
        fn publish(&self, _: TokenDigest, _: u64) -> BoxFuture<'_, Result<(), PublishError>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn shared(max_lag: u64) -> SharedRevocations {
        SharedRevocations::new(
            Arc::new(Nowhere),
            max_lag,
            SharedLimits {
                cached: 1_000,
                revoked: 1_000,
            },
        )
    }

    #[test]
    fn digests_are_the_first_half_of_sha256() {
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 ...
        assert_eq!(token_digest("abc"), 0xba7816bf_8f01cfea_414140de_5dae2223);
        assert_ne!(token_digest("abc"), token_digest("abd"));
    }

    #[test]
    fn hits_wait_for_the_feed_and_stop_when_it_lags() {
        let s = shared(5);
        assert!(!s.is_current(s.started), "nothing heard yet");
        assert_eq!(s.lag(s.started + 3), 3, "reported from the start");
        let t = s.started + 100;
        s.heard_up_to(t);
        assert!(s.is_current(t + 5));
        assert!(!s.is_current(t + 6));
        s.heard_up_to(t - 10);
        assert_eq!(s.lag(t + 6), 6, "the feed never goes back");
    }

    #[test]
    fn a_stalled_feed_stops_hits_even_if_the_wall_clock_went_back() {
        let s = shared(1_000_000);
        let t = s.started + 100;
        s.heard_up_to(t);
        assert!(!s.check_stalled(), "just heard");
        std::thread::sleep(std::time::Duration::from_millis(5));
        // The wall clock still reads `t` (as if stepped back), but 5 ms
        // have passed on the monotonic clock, over the 1 ms allowed.
        assert!(s.is_current(t));
        assert!(s.check_stalled());
        assert!(!s.is_current(t));
        s.heard_up_to(t);
        assert!(s.is_current(t), "the next report lifts it");
    }

    #[test]
    fn a_revocation_returns_the_cached_key_once_and_refuses_until_it_ends() {
        let s = shared(5);
        s.remember(7, 0xfeed, 1_000, 10).unwrap();
        assert_eq!(s.revoke(7, 500, 20), Some(0xfeed));
        assert_eq!(s.revoke(7, 500, 21), None, "purged once");
        assert!(s.is_revoked(7, 499));
        assert!(!s.is_revoked(7, 500), "until is exclusive");
        s.revoke(7, 900, 20);
        s.revoke(7, 600, 20);
        assert!(s.is_revoked(7, 899), "a second hearing never shortens it");
        assert!(!s.is_revoked(8, 20));
        assert_eq!(s.revoke(9, 500, 20), None, "never cached here");
    }

    #[test]
    fn a_full_revocation_map_still_purges_and_counts_what_it_drops() {
        let s = SharedRevocations::new(
            Arc::new(Nowhere),
            5,
            SharedLimits {
                cached: 2,
                revoked: 2,
            },
        );
        assert_eq!(s.remember(1, 0x11, 1_000, 0), Ok(()));
        assert_eq!(s.remember(2, 0x22, 1_000, 0), Ok(()));
        assert_eq!(s.remember(3, 0x33, 1_000, 0), Err(Full), "bounded");
        assert_eq!(s.revoke(8, 1_000, 0), None);
        assert_eq!(s.revoke(9, 1_000, 0), None);
        assert_eq!(s.revoke(1, 1_000, 0), Some(0x11), "purged though full");
        assert_eq!(s.revocations_dropped(), 1);
        assert_eq!(s.revocations_held(), 2);
        assert!(!s.is_revoked(1, 0), "not recorded: the upstream decides");
        assert!(s.is_revoked(9, 0));
    }
}
