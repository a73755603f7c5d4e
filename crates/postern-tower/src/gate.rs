//! The gate: cache in front, upstream behind, never weaker than upstream.
//!
//! [`Gate::check`] on a hit runs the route's [`Requirement`] against the
//! cached session and returns; on a miss it joins (or starts) the one
//! upstream call for that token, caches a positive answer until the token's
//! expiry, and never caches a negative one. Upstream failures (transport,
//! timeout, 5xx) open a [`Breaker`] and answer [`GateError::Unavailable`] —
//! the caller must map it to 503, never to 200 and never to 401. An answer
//! that cannot be used for this one token (malformed, naming nobody, an
//! unexpected status) answers [`GateError::BadUpstreamAnswer`] (502) for
//! that token only: it is not cached and the breaker does not count it
//! (see [`crate::upstream::Blame`]).
//!
//! Revocation is local and immediate: [`Gate::logout`] records the token's
//! key in a revoked set (until the token would have expired), purges the
//! cache entry, then revokes upstream. A fetch that was already in flight
//! re-checks the revoked set after inserting, so it cannot resurrect a
//! logged-out token.
//!
//! A logout costs bounded work and space, whoever sends it:
//! - a token not cached here is charged to the client's miss limit, then
//!   asked upstream first; one the upstream rejects is answered 401 and
//!   leaves nothing behind (no entry here, none in the shared feed, no
//!   revocation call), so junk tokens cost one limited upstream call each;
//! - the revoked set holds at most [`GateConfig::max_revocations`] entries,
//!   pruned in expiry order (`crate::expiry`), so a miss reading it never
//!   waits on a walk of the whole set;
//! - when it is full of live revocations, a logout still purges the cached
//!   entry and revokes upstream (and shares it), but answers
//!   [`GateError::RevocationsFull`] (503): the client is told that the
//!   token may still pass here, never left believing it logged out.
//!
//! With [`Gate::with_shared_revocations`], logouts also reach every other
//! instance, and revocations heard from them purge this one (see
//! [`crate::shared`]); hits are then served only while that feed is current.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use parking_lot::Mutex;
use postern_cache::{Cache, CacheConfig, CacheKey, CacheStats, KeyDeriver};
use zeroize::Zeroizing;

use crate::breaker::{Breaker, BreakerState};
use crate::expiry::ExpiryMap;
use crate::ratelimit::MissLimiter;
use crate::session::{Insufficient, Requirement, Unrenderable, Validated};
use crate::shared::{
    token_digest, RevocationPublisher, SharedLimits, SharedRevocations, TokenDigest,
};
use crate::upstream::{peek_jwt, Blame, Upstream, UpstreamError};

const SECOND: u64 = 1_000_000_000;

/// Gate settings. Durations in nanoseconds.
#[derive(Debug, Clone)]
pub struct GateConfig {
    pub cache: CacheConfig,
    /// Cap on how long any answer is cached, whatever the token's lifetime.
    pub max_ttl: u64,
    /// How long to cache an answer that carries no expiry at all.
    pub ttl_without_expiry: u64,
    /// Consecutive upstream failures that open the circuit.
    pub breaker_threshold: u32,
    /// How long the circuit stays open before one probe.
    pub breaker_cooldown: u64,
    /// Most logouts held in force at once (each held until the token
    /// would have expired, at most `max_ttl`); see [`Gate::logout`].
    pub max_revocations: usize,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            cache: CacheConfig::default(),
            max_ttl: 15 * 60 * SECOND,
            ttl_without_expiry: 30 * SECOND,
            breaker_threshold: 5,
            breaker_cooldown: 5 * SECOND,
            // About 100 bytes each: 50 MB at most. Only tokens the upstream
            // vouched for (or could not be asked about) are held, each for
            // at most `max_ttl`.
            max_revocations: 500_000,
        }
    }
}

/// Why a request did not pass the gate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// No valid token: 401.
    #[error("token is not valid: {0}")]
    Unauthenticated(&'static str),
    /// Valid token, but not enough for this route: 403.
    #[error(transparent)]
    Forbidden(#[from] Insufficient),
    /// The upstream could not answer (or the circuit is open): 503.
    #[error("upstream unavailable: {0}")]
    Unavailable(&'static str),
    /// The upstream answered about this token with something Postern
    /// cannot use: 502, for this token only.
    #[error("the upstream's answer about this token cannot be used: {0}")]
    BadUpstreamAnswer(&'static str),
    /// This client misses too often (a token flood): 429.
    #[error("too many cache misses from this client")]
    RateLimited,
    /// A logout took effect here (and upstream, if it answered) but could
    /// not be handed to the other instances: 503, the client should retry.
    #[error("logged out here, but the other instances could not be told")]
    NotShared,
    /// Too many logouts are in force to record this one here: the cached
    /// entry was purged and the upstream asked to revoke, but the token
    /// may still pass here if the upstream cannot revoke: 503.
    #[error("too many logouts in force: this one could not be recorded here")]
    RevocationsFull,
}

impl From<UpstreamError> for GateError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Rejected(why) => GateError::Unauthenticated(why),
            UpstreamError::Malformed(why) => GateError::BadUpstreamAnswer(why),
            other if other.blame() == Blame::Answer => GateError::BadUpstreamAnswer(other.label()),
            other => GateError::Unavailable(other.label()),
        }
    }
}

/// Receives upstream call timings (e.g. for Prometheus histograms).
pub trait GateObserver: Send + Sync {
    /// `op` is `validate`, `revoke` or `share` (publishing a logout to the
    /// other instances); `outcome` is `ok` or an error label.
    fn upstream_call(&self, op: &'static str, outcome: &'static str, seconds: f64);
}

/// The outcome of [`Gate::check_cached`].
#[derive(Debug)]
pub enum Cached {
    /// The cache answered (the route's requirement included).
    Hit(Result<Arc<Validated>, GateError>),
    /// Not cached: finish with [`Gate::check_miss`].
    Miss(Miss),
}

/// A cache miss, to be finished by [`Gate::check_miss`] for the same token.
/// Holds the token's cache key, never the token.
pub struct Miss {
    key: CacheKey,
    /// The cache was not asked (the revocation feed lags) but holds the
    /// token: a would-be hit, so not charged to the client's miss limit.
    bypassed: bool,
}

impl std::fmt::Debug for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is derived from a token under a secret: not shown.
        f.write_str("Miss(..)")
    }
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Validated>, UpstreamError>>>;

/// The validation cache and forward-auth gate.
pub struct Gate {
    cache: Arc<Cache<Validated>>,
    keys: KeyDeriver,
    upstream: Upstream,
    config: GateConfig,
    // Held only to look up, insert or remove a pending fetch; never across an await.
    inflight: Mutex<HashMap<CacheKey, Fetch>>,
    // Held only for the breaker's state transition.
    breaker: Mutex<Breaker>,
    // Key → until when it stays revoked; bounded and pruned in expiry order
    // (`crate::expiry`). Misses read it: held for one O(log n) operation,
    // never across an await.
    revoked: Mutex<ExpiryMap<CacheKey, ()>>,
    /// Logouts refused because `revoked` was full.
    revocations_refused: AtomicU64,
    observer: Option<Arc<dyn GateObserver>>,
    miss_limiter: Option<MissLimiter>,
    shared: Option<SharedRevocations>,
    /// Bumped by [`Gate::clear_cache`]: a fetch that started before a clear
    /// does not leave its answer cached after it.
    generation: AtomicU64,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("upstream", &self.upstream.name())
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// A stable 64-bit tag for a JWT `kid` (FNV-1a; 0 means "no kid").
fn kid_tag(kid: &str) -> u64 {
    let hash = kid.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash.max(1)
}

impl Gate {
    pub fn new(upstream: Upstream, config: GateConfig) -> Self {
        let max_revocations = config.max_revocations;
        Self {
            cache: Arc::new(Cache::new(config.cache.clone())),
            keys: KeyDeriver::random(),
            breaker: Mutex::new(Breaker::new(
                config.breaker_threshold,
                config.breaker_cooldown,
            )),
            upstream,
            config,
            inflight: Mutex::new(HashMap::new()),
            revoked: Mutex::new(ExpiryMap::new(max_revocations)),
            revocations_refused: AtomicU64::new(0),
            observer: None,
            miss_limiter: None,
            shared: None,
            generation: AtomicU64::new(0),
        }
    }

    /// Shares revocations with other instances: logouts are published
    /// through `publisher`, and whatever follows the feed (e.g.
    /// [`crate::redis_feed::RedisRevocations::follow`]) reports through
    /// [`Gate::apply_revocation`] and [`Gate::revocations_heard_up_to`].
    /// Hits are served only while the feed is at most `max_lag`
    /// nanoseconds behind; until then every request asks upstream.
    pub fn with_shared_revocations(
        mut self,
        publisher: Arc<dyn RevocationPublisher>,
        max_lag: u64,
    ) -> Self {
        let limits = SharedLimits {
            // Every entry the cache can hold, and as many again that it
            // evicted before they ended.
            cached: self.config.cache.max_entries.saturating_mul(2),
            // The feed carries every instance's logouts: room for several
            // instances' worth of this one's own bound.
            revoked: self.config.max_revocations.saturating_mul(4),
        };
        self.shared = Some(SharedRevocations::new(publisher, max_lag, limits));
        self
    }

    /// Limits each client's cache misses (see [`crate::ratelimit`]).
    pub fn with_miss_limiter(mut self, limiter: MissLimiter) -> Self {
        self.miss_limiter = Some(limiter);
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn GateObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The cache, e.g. to run a `postern_cache::sweeper::Sweeper` on it.
    pub fn cache(&self) -> &Arc<Cache<Validated>> {
        &self.cache
    }

    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.lock().state()
    }

    /// Is `token` valid for `requirement` at `now`? See the module docs.
    pub async fn check(
        self: &Arc<Self>,
        token: &str,
        requirement: &Requirement,
        now: u64,
    ) -> Result<Arc<Validated>, GateError> {
        self.check_from(None, token, requirement, now).await
    }

    /// As [`Gate::check`], charging a miss to `client` when a miss limiter
    /// is configured ([`Gate::with_miss_limiter`]). Hits are never limited.
    pub async fn check_from(
        self: &Arc<Self>,
        client: Option<&str>,
        token: &str,
        requirement: &Requirement,
        now: u64,
    ) -> Result<Arc<Validated>, GateError> {
        self.check_lazy(|| client, token, requirement, now).await
    }

    /// As [`Gate::check_from`], asking `client` who the caller is only on a
    /// miss (working out the client costs header lookups a hit never needs).
    pub async fn check_lazy<'c>(
        self: &Arc<Self>,
        client: impl FnOnce() -> Option<&'c str>,
        token: &str,
        requirement: &Requirement,
        now: u64,
    ) -> Result<Arc<Validated>, GateError> {
        match self.check_cached(token, requirement, now) {
            Cached::Hit(answer) => answer,
            Cached::Miss(miss) => self.check_miss(miss, client, token, requirement, now).await,
        }
    }

    /// The synchronous half of a check: on a cache hit, the answer
    /// (the requirement checked against the cached session); on a miss,
    /// what [`Gate::check_miss`] needs to finish. A caller that answers
    /// hits without awaiting keeps its own future small.
    pub fn check_cached(&self, token: &str, requirement: &Requirement, now: u64) -> Cached {
        let key = self.keys.derive(token.as_bytes());
        if let Some(shared) = &self.shared {
            if !shared.is_current(now) {
                // Charged as a miss only if the cache could not have
                // answered (junk tokens are never cached).
                return Cached::Miss(Miss {
                    key,
                    bypassed: self.cache.expires_at(key).is_some(),
                });
            }
        }
        match self
            .cache
            .get_map(key, now, |v| requirement.check(v).map(|()| Arc::clone(v)))
        {
            Some(hit) => Cached::Hit(hit.map_err(GateError::Forbidden)),
            None => Cached::Miss(Miss {
                key,
                bypassed: false,
            }),
        }
    }

    /// The asynchronous half of a check, after [`Gate::check_cached`]
    /// missed for this same `token`: revocation, the per-client miss
    /// limit, then the one shared upstream call.
    pub async fn check_miss<'c>(
        self: &Arc<Self>,
        miss: Miss,
        client: impl FnOnce() -> Option<&'c str>,
        token: &str,
        requirement: &Requirement,
        now: u64,
    ) -> Result<Arc<Validated>, GateError> {
        let key = miss.key;
        let digest = self.shared.as_ref().map(|_| token_digest(token));
        if self.is_revoked(key, digest, now) {
            return Err(GateError::Unauthenticated("revoked"));
        }
        if !miss.bypassed {
            self.charge_miss(client, now)?;
        }
        let validated = self
            .fetch_shared(key, digest, token, now)?
            .await
            .map_err(GateError::from)?;
        requirement.check(&validated)?;
        Ok(validated)
    }

    /// Charges one miss (or logout) to the client's limit, if limited.
    fn charge_miss<'c>(
        &self,
        client: impl FnOnce() -> Option<&'c str>,
        now: u64,
    ) -> Result<(), GateError> {
        if let Some(limiter) = &self.miss_limiter {
            if let Some(client) = client() {
                if !limiter.allow(client, now) {
                    return Err(GateError::RateLimited);
                }
            }
        }
        Ok(())
    }

    /// Revoked here (by key), or elsewhere (by digest, when shared).
    fn is_revoked(&self, key: CacheKey, digest: Option<TokenDigest>, now: u64) -> bool {
        let here = self.revoked.lock().live(&key, now).is_some();
        here || matches!((&self.shared, digest), (Some(shared), Some(d)) if shared.is_revoked(d, now))
    }

    /// Joins the in-flight fetch for `key`, or starts one.
    fn fetch_shared(
        self: &Arc<Self>,
        key: CacheKey,
        digest: Option<TokenDigest>,
        token: &str,
        now: u64,
    ) -> Result<Fetch, GateError> {
        let mut inflight = self.inflight.lock();
        if let Some(pending) = inflight.get(&key) {
            return Ok(pending.clone());
        }
        if !self.breaker.lock().allow(now) {
            return Err(GateError::Unavailable("circuit_open"));
        }
        let gate = Arc::clone(self);
        let token = Zeroizing::new(token.to_string());
        // The fetch runs as its own task so that it completes (and leaves
        // the in-flight map) even if every waiting request is cancelled;
        // in the span of the request that started it, so that what it
        // logs carries that request's id.
        let task = tokio::spawn(tracing::Instrument::in_current_span(async move {
            let result = gate.fetch(key, digest, &token, now).await;
            gate.inflight.lock().remove(&key);
            result
        }));
        let pending: Fetch = async move { task.await.unwrap_or(Err(UpstreamError::Unreachable)) }
            .boxed()
            .shared();
        inflight.insert(key, pending.clone());
        Ok(pending)
    }

    async fn fetch(
        &self,
        key: CacheKey,
        digest: Option<TokenDigest>,
        token: &str,
        now: u64,
    ) -> Result<Arc<Validated>, UpstreamError> {
        let generation = self.generation.load(Ordering::Acquire);
        let started = Instant::now();
        let result = self.upstream.validate(token, now).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        if let Some(observer) = &self.observer {
            observer.upstream_call("validate", outcome, started.elapsed().as_secs_f64());
        }
        match result {
            Ok(validated) => {
                self.breaker.lock().success();
                self.admit(key, digest, token, validated, now, generation)
            }
            Err(e) => {
                match e.blame() {
                    Blame::Token => self.breaker.lock().success(),
                    Blame::Answer => {
                        tracing::warn!(upstream = self.upstream.name(), error = %e, "upstream answer unusable for this token");
                        self.breaker.lock().inconclusive();
                    }
                    Blame::Upstream => {
                        tracing::warn!(upstream = self.upstream.name(), error = %e, "upstream validation failed");
                        self.breaker.lock().failure(now);
                    }
                }
                Err(e)
            }
        }
    }

    /// Bounds the entry's life by every expiry known, then caches it.
    fn admit(
        &self,
        key: CacheKey,
        digest: Option<TokenDigest>,
        token: &str,
        mut validated: Validated,
        now: u64,
        generation: u64,
    ) -> Result<Arc<Validated>, UpstreamError> {
        let mut expires_at = match validated.expires_at {
            0 => now.saturating_add(self.config.ttl_without_expiry),
            exp => exp,
        };
        let mut tag = 0;
        if let Some((kid, jwt_exp)) = peek_jwt(token) {
            if let Some(exp) = jwt_exp {
                expires_at = expires_at.min(exp.saturating_mul(SECOND));
            }
            if let Some(kid) = &kid {
                tag = kid_tag(kid);
            }
            validated.key_id = kid;
        }
        validated.expires_at = expires_at;
        if expires_at <= now {
            return Err(UpstreamError::Rejected("expired"));
        }
        let cache_until = expires_at.min(now.saturating_add(self.config.max_ttl));
        // Rendered once here, so that every hit answers with shared bytes;
        // an identity that cannot travel in a header is never admitted.
        validated.render().map_err(|e| {
            tracing::warn!(upstream = self.upstream.name(), error = %e, "upstream answer unusable for this token");
            UpstreamError::Malformed(match e {
                Unrenderable::Subject => "subject not header-safe",
                Unrenderable::Client => "client_id not header-safe",
            })
        })?;
        let validated = Arc::new(validated);
        if self.is_revoked(key, digest, now) {
            return Err(UpstreamError::Rejected("revoked"));
        }
        self.cache.insert_arc(
            key,
            Arc::clone(&validated),
            validated.weight(),
            cache_until,
            tag,
            now,
        );
        if let (Some(shared), Some(digest)) = (&self.shared, digest) {
            if shared.remember(digest, key, cache_until, now).is_err() {
                // A revocation heard later could not find this entry: the
                // answer serves this request but is not kept.
                self.cache.remove(key);
            }
        }
        // The cache was cleared while the upstream answered: the answer is
        // fresh enough for this request, but is not kept past the clear.
        if self.generation.load(Ordering::Acquire) != generation {
            self.cache.remove(key);
        }
        // A logout may have landed between the check above and the insert
        // (here, or elsewhere: see `SharedRevocations::revoke`).
        if self.is_revoked(key, digest, now) {
            self.cache.remove(key);
            return Err(UpstreamError::Rejected("revoked"));
        }
        Ok(validated)
    }

    /// Logs a token out: refused locally at once, purged from the cache,
    /// published to the other instances (when shared), then revoked
    /// upstream. A failed upstream revocation or publication is reported
    /// (the upstream's first), but the token stays refused here until it
    /// would have expired. See the module docs for what a logout costs.
    pub async fn logout(&self, token: &str, now: u64) -> Result<(), GateError> {
        self.logout_from(None, token, now).await
    }

    /// As [`Gate::logout`], charged to `client`'s miss limit when one is
    /// configured, unless the token is cached here: each logout of a token
    /// not cached here costs an upstream call, so a flood of them with junk
    /// tokens is limited like a flood of misses.
    ///
    /// Answers, in order: [`GateError::RateLimited`] before anything is
    /// done; [`GateError::Unauthenticated`] when the upstream says the
    /// token is not valid (nothing recorded, shared or revoked: there is
    /// nothing to log out); else the token is refused here and purged, and
    /// [`GateError::RevocationsFull`] if it could not be recorded here, the
    /// upstream revocation's error, or [`GateError::NotShared`].
    pub async fn logout_from(
        &self,
        client: Option<&str>,
        token: &str,
        now: u64,
    ) -> Result<(), GateError> {
        let key = self.keys.derive(token.as_bytes());
        let digest = self.shared.as_ref().map(|_| token_digest(token));
        let cached_until = self.cache.expires_at(key);
        if cached_until.is_none() {
            if self.is_revoked(key, digest, now) {
                // Logged out already (here or elsewhere): nothing to add.
                return Ok(());
            }
            // Not a live session here: it costs what a miss costs.
            self.charge_miss(|| client, now)?;
            match self.validate_logged_out(token, now).await {
                Err(e) if e.is_verdict() => return Err(GateError::from(e)),
                // Valid, or the upstream cannot say: refused here to be safe.
                _ => {}
            }
        }
        let until = cached_until
            .unwrap_or(0)
            .max(now.saturating_add(self.config.max_ttl));
        let recorded = self.revoked.lock().insert(key, (), until, now);
        self.cache.remove(key);
        if recorded.is_err() {
            let refused = self.revocations_refused.fetch_add(1, Ordering::Relaxed);
            if refused.is_multiple_of(1_000) {
                tracing::error!(
                    refused = refused + 1,
                    "too many logouts in force: logouts are answered 503 until some end \
                     (the cache entry is purged and the upstream asked to revoke)"
                );
            }
        }
        let shared = match (&self.shared, digest) {
            (Some(shared), Some(digest)) => {
                let started = Instant::now();
                let result = shared.publish_own(digest, until, now).await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, "logout not shared with the other instances yet; retrying in the background");
                }
                if let Some(observer) = &self.observer {
                    let outcome = if result.is_ok() { "ok" } else { "unavailable" };
                    observer.upstream_call("share", outcome, started.elapsed().as_secs_f64());
                }
                result.map_err(|_| GateError::NotShared)
            }
            _ => Ok(()),
        };
        let started = Instant::now();
        let result = self.upstream.revoke(token).await;
        if let Some(observer) = &self.observer {
            let outcome = result.as_ref().map_or_else(UpstreamError::label, |()| "ok");
            observer.upstream_call("revoke", outcome, started.elapsed().as_secs_f64());
        }
        recorded
            .map_err(|_| GateError::RevocationsFull)
            .and(result.map_err(GateError::from))
            .and(shared)
    }

    /// Asks the upstream about a token being logged out that is not cached
    /// here (not cached afterwards either: it is being logged out).
    async fn validate_logged_out(&self, token: &str, now: u64) -> Result<(), UpstreamError> {
        let started = Instant::now();
        let result = self.upstream.validate(token, now).await.map(drop);
        if let Some(observer) = &self.observer {
            let outcome = result.as_ref().map_or_else(UpstreamError::label, |()| "ok");
            observer.upstream_call("validate", outcome, started.elapsed().as_secs_f64());
        }
        result
    }

    /// Logouts held in force here (ended ones not yet pruned included).
    pub fn revocations_held(&self) -> usize {
        self.revoked.lock().len()
    }

    /// Logouts answered [`GateError::RevocationsFull`] since start.
    pub fn revocations_refused(&self) -> u64 {
        self.revocations_refused.load(Ordering::Relaxed)
    }

    /// Revocations heard from other instances and held, and those dropped
    /// because too many were in force; `None` when not shared.
    pub fn shared_revocations(&self) -> Option<(usize, u64)> {
        self.shared
            .as_ref()
            .map(|s| (s.revocations_held(), s.revocations_dropped()))
    }

    /// Empties the cache (e.g. the shared revocation feed lost history it
    /// may not have delivered): every token is asked upstream again.
    /// Returns how many entries went.
    pub fn clear_cache(&self) -> usize {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.clear()
    }

    /// The shared revocation feed lost history (e.g. Redis restarted
    /// without persistence): revocations nobody here heard may be gone.
    /// Empties the cache, so every token is asked upstream again, and
    /// queues this instance's own logouts still in force to be published
    /// again, for upstreams that cannot revoke. Returns both counts.
    pub fn revocation_history_lost(&self, now: u64) -> (usize, usize) {
        let cleared = self.clear_cache();
        let republished = self
            .shared
            .as_ref()
            .map_or(0, |shared| shared.republish_own(now));
        (cleared, republished)
    }

    /// A revocation heard from another instance (see [`crate::shared`]):
    /// the token is refused until `until` and purged if cached here.
    /// Returns whether it was cached here.
    pub fn apply_revocation(&self, digest: TokenDigest, until: u64, now: u64) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        shared
            .revoke(digest, until, now)
            .is_some_and(|key| self.cache.remove(key))
    }

    /// Every revocation published before `at` (Unix nanoseconds) has been
    /// passed to [`Gate::apply_revocation`].
    pub fn revocations_heard_up_to(&self, at: u64) {
        if let Some(shared) = &self.shared {
            shared.heard_up_to(at);
        }
    }

    /// The shared revocation feed's reader failed a round: see
    /// [`SharedRevocations::check_stalled`].
    pub fn revocations_check_stalled(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(SharedRevocations::check_stalled)
    }

    /// Are hits being served from the cache, as far as the shared
    /// revocation feed goes? Always true when revocations are not shared.
    pub fn revocations_current(&self, now: u64) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|shared| shared.is_current(now))
    }

    /// How far behind the shared revocation feed is (nanoseconds); `None`
    /// when revocations are not shared.
    pub fn revocation_lag(&self, now: u64) -> Option<u64> {
        self.shared.as_ref().map(|shared| shared.lag(now))
    }

    /// Drops every cached entry of tokens signed with `kid` (the upstream
    /// rotated that key out). Returns how many went.
    pub fn purge_key_id(&self, kid: &str) -> usize {
        self.cache.remove_tag(kid_tag(kid))
    }

    /// Drops one token's entry (a revocation learnt from elsewhere).
    pub fn purge_token(&self, token: &str) -> bool {
        self.cache.remove(self.keys.derive(token.as_bytes()))
    }

    /// Requests currently waiting on an upstream call.
    pub fn inflight(&self) -> usize {
        self.inflight.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_tags_are_stable_and_never_zero() {
        assert_eq!(kid_tag("k1"), kid_tag("k1"));
        assert_ne!(kid_tag("k1"), kid_tag("k2"));
        assert_ne!(kid_tag(""), 0);
    }

    #[test]
    fn upstream_errors_map_to_fail_closed_gate_errors() {
        assert_eq!(
            GateError::from(UpstreamError::Rejected("inactive")),
            GateError::Unauthenticated("inactive")
        );
        assert_eq!(
            GateError::from(UpstreamError::Timeout),
            GateError::Unavailable("timeout")
        );
        assert_eq!(
            GateError::from(UpstreamError::Status(500)),
            GateError::Unavailable("status")
        );
        assert_eq!(
            GateError::from(UpstreamError::Status(503)),
            GateError::Unavailable("status")
        );
    }

    #[test]
    fn an_answer_unusable_for_one_token_is_a_bad_gateway_for_that_token() {
        assert_eq!(
            GateError::from(UpstreamError::Malformed("x")),
            GateError::BadUpstreamAnswer("x")
        );
        for status in [302, 307, 401, 404, 418] {
            assert_eq!(
                GateError::from(UpstreamError::Status(status)),
                GateError::BadUpstreamAnswer("status"),
                "{status}"
            );
        }
        assert_eq!(UpstreamError::Malformed("x").blame(), Blame::Answer);
        assert_eq!(UpstreamError::Status(404).blame(), Blame::Answer);
        assert_eq!(UpstreamError::Status(500).blame(), Blame::Upstream);
        assert_eq!(UpstreamError::Status(599).blame(), Blame::Upstream);
        assert_eq!(UpstreamError::Timeout.blame(), Blame::Upstream);
        assert_eq!(UpstreamError::Unreachable.blame(), Blame::Upstream);
        assert_eq!(UpstreamError::Rejected("inactive").blame(), Blame::Token);
    }
}
