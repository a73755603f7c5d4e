//! Prometheus metrics, in the text exposition format at `GET /metrics`.
//!
//! - `postern_http_requests_total{endpoint,method,status}` and
//!   `postern_http_request_duration_seconds{endpoint,method}`;
//! - `postern_resume_decisions_total{decision,reason}` (`reason="none"` for
//!   `resumed`), counting resumes from `/v1/session/resume` and `/v1/check`;
//! - `postern_auth_stage_duration_seconds{stage,outcome}` for every
//!   full-authentication stage, plus `attestation` and `persist`;
//! - `postern_active_sessions` (live, unexpired, unrevoked). Counting walks
//!   every session, so it is done at most once per [`RECOUNT_EVERY`]
//!   whatever the scrape rate (a scrape within it reads the last count),
//!   and by the maintenance task once per round: a flood of scrapes cannot
//!   make the server walk every session each time;
//! - gate mode, read off the gate at scrape: the counters
//!   `postern_gate_cache_{hits,misses,admissions_rejected,evictions,expired_reaped}_total`
//!   (the gate hit rate is `rate(hits) / (rate(hits) + rate(misses))`),
//!   the gauges `postern_gate_cache_entries` and `postern_gate_cache_bytes`,
//!   `postern_gate_breaker_state` (0 closed, 1 half-open: the next upstream
//!   call is a probe, 2 open: upstream calls refused until the cool-down
//!   ends), the revocation maps (`postern_gate_revocations_held`,
//!   `postern_gate_shared_revocations_held`, and the counters
//!   `postern_gate_revocations_refused_total`,
//!   `postern_gate_shared_revocations_dropped_total`,
//!   `postern_gate_feed_entries_rejected_total`);
//!   `postern_gate_upstream_duration_seconds{op,outcome}`, and
//!   `postern_gate_oldest_unapplied_revocation_seconds`: how long since
//!   this instance last knew it had applied every revocation shared
//!   through Redis (0-1 while the feed is live, since an idle feed reports
//!   once a second; then growing while Redis is out of reach). Always 0
//!   without `--redis`: local revocations apply before logout answers.
//!
//! Endpoint labels are route templates (`/v1/users/{user}/sessions`), never
//! concrete paths, so neither user ids nor anything secret reach a label.

use postern_core::policy::Decision;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    endpoint: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    op: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
    outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 1 µs to ~16 s in powers of two: resumes sit at the bottom, full
    // authentication with a durable commit in the middle.
    Histogram::new(exponential_buckets(1e-6, 2.0, 25))
}

/// Least time between two walks of every session to count the live ones.
pub const RECOUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The registry and its metrics.
pub struct Metrics {
    /// When the live sessions were last counted; held (try-locked) by
    /// the one scrape that counts, so concurrent scrapes never wait.
    counted_at: parking_lot::Mutex<Option<std::time::Instant>>,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    decisions: Family<DecisionLabels, Counter>,
    stages: Family<StageLabels, Histogram, fn() -> Histogram>,
    active_sessions: Gauge,
    biometric_prepared: Gauge,
    upstream: Family<UpstreamLabels, Histogram, fn() -> Histogram>,
    gate_cache_counters: [Counter; GATE_CACHE_COUNTERS.len()],
    gate_cache_gauges: [Gauge; GATE_CACHE_GAUGES.len()],
    gate_revocation_counters: [Counter; GATE_REVOCATION_COUNTERS.len()],
    gate_revocation_gauges: [Gauge; GATE_REVOCATION_GAUGES.len()],
    breaker_state: Gauge,
    oldest_unapplied_revocation: Gauge,
    check: CheckMetrics,
}

/// `GET /v1/check`'s series, resolved once (on first use, so the exposition
/// is the same as through the families) instead of looked up by label on
/// every request: a family lookup hashes the labels under a shared lock.
#[derive(Default)]
struct CheckMetrics {
    latency: OnceLock<Histogram>,
    /// 200, 401, 403, 503: the statuses a forward-auth check answers.
    statuses: [OnceLock<Counter>; 4],
    /// `postern_resume_decisions_total{decision="resumed",reason="none"}`:
    /// the decision behind every check and resume that passes.
    resumed: OnceLock<Counter>,
}

/// The gate's bounded revocation maps (see `postern_tower::Gate::logout`
/// and `postern_tower::shared`), read at scrape: what they hold now...
const GATE_REVOCATION_GAUGES: [(&str, &str); 2] = [
    (
        "postern_gate_revocations_held",
        "Gate logouts held in force on this instance (bounded by gate.max_revocations)",
    ),
    (
        "postern_gate_shared_revocations_held",
        "Revocations heard from other instances and held",
    ),
];

/// ...and what they counted since start (registered without `_total`,
/// which the exposition adds to a counter).
const GATE_REVOCATION_COUNTERS: [(&str, &str); 3] = [
    (
        "postern_gate_revocations_refused",
        "Gate logouts answered 503 revocations_full because too many were in force",
    ),
    (
        "postern_gate_shared_revocations_dropped",
        "Revocations heard from other instances that could not be held (too many in force)",
    ),
    (
        "postern_gate_feed_entries_rejected",
        "Revocation feed entries dropped for a missing or wrong MAC (written without the feed key)",
    ),
];

/// The gate cache's counts since start (exposed as `..._total`).
const GATE_CACHE_COUNTERS: [(&str, &str); 5] = [
    ("postern_gate_cache_hits", "Gate cache hits"),
    ("postern_gate_cache_misses", "Gate cache misses"),
    (
        "postern_gate_cache_admissions_rejected",
        "Entries refused by frequency-based admission",
    ),
    (
        "postern_gate_cache_evictions",
        "Entries evicted for more frequent ones",
    ),
    (
        "postern_gate_cache_expired_reaped",
        "Expired entries reaped",
    ),
];

/// The gate cache's size now.
const GATE_CACHE_GAUGES: [(&str, &str); 2] = [
    ("postern_gate_cache_entries", "Entries held"),
    ("postern_gate_cache_bytes", "Bytes of entries held"),
];

/// Brings a counter up to `total`, a count kept elsewhere since start
/// (the gate's): never down, so two scrapes racing cannot make it run
/// backwards (which Prometheus would read as a restart).
fn catch_up(counter: &Counter, total: u64) {
    counter
        .inner()
        .fetch_max(total, std::sync::atomic::Ordering::Relaxed);
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The circuit breaker as `postern_gate_breaker_state` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerReading {
    /// Upstream calls flow.
    Closed = 0,
    /// The next upstream call is a probe (the cool-down is over, or the
    /// probe is in flight).
    HalfOpen = 1,
    /// Upstream calls are refused (503) until the cool-down ends.
    Open = 2,
}

impl BreakerReading {
    /// The breaker's state at `now` (an open breaker whose cool-down has
    /// ended lets the next call probe: half-open).
    pub fn of(state: postern_tower::breaker::BreakerState, now: u64) -> Self {
        use postern_tower::breaker::BreakerState;
        match state {
            BreakerState::Closed { .. } => Self::Closed,
            BreakerState::HalfOpen => Self::HalfOpen,
            BreakerState::Open { until } if now >= until => Self::HalfOpen,
            BreakerState::Open { .. } => Self::Open,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        let stages = Family::<StageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let active_sessions = Gauge::default();
        registry.register(
            "postern_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "postern_http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "postern_resume_decisions",
            "Resume decisions by decision and reason",
            decisions.clone(),
        );
        registry.register(
            "postern_auth_stage_duration_seconds",
            "Full-authentication stage time by stage and outcome",
            stages.clone(),
        );
        registry.register(
            "postern_active_sessions",
            "Live sessions in the hot tier",
            active_sessions.clone(),
        );
        let upstream = Family::<UpstreamLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "postern_gate_upstream_duration_seconds",
            "Upstream calls by operation and outcome",
            upstream.clone(),
        );
        let gate_cache_counters: [Counter; GATE_CACHE_COUNTERS.len()] = Default::default();
        for ((name, help), counter) in GATE_CACHE_COUNTERS.iter().zip(&gate_cache_counters) {
            registry.register(*name, *help, counter.clone());
        }
        let gate_cache_gauges: [Gauge; GATE_CACHE_GAUGES.len()] = Default::default();
        for ((name, help), gauge) in GATE_CACHE_GAUGES.iter().zip(&gate_cache_gauges) {
            registry.register(*name, *help, gauge.clone());
        }
        let gate_revocation_counters: [Counter; GATE_REVOCATION_COUNTERS.len()] =
            Default::default();
        for ((name, help), counter) in GATE_REVOCATION_COUNTERS
            .iter()
            .zip(&gate_revocation_counters)
        {
            registry.register(*name, *help, counter.clone());
        }
        let gate_revocation_gauges: [Gauge; GATE_REVOCATION_GAUGES.len()] = Default::default();
        for ((name, help), gauge) in GATE_REVOCATION_GAUGES.iter().zip(&gate_revocation_gauges) {
            registry.register(*name, *help, gauge.clone());
        }
        let breaker_state = Gauge::default();
        registry.register(
            "postern_gate_breaker_state",
            "Upstream circuit breaker: 0 closed, 1 half-open (the next call probes), 2 open (calls refused until the cool-down ends)",
            breaker_state.clone(),
        );
        let oldest_unapplied_revocation = Gauge::default();
        registry.register(
            "postern_gate_oldest_unapplied_revocation_seconds",
            "Age of the oldest revocation this instance knows of but has not applied (local revocations apply synchronously)",
            oldest_unapplied_revocation.clone(),
        );
        let biometric_prepared = Gauge::default();
        registry.register(
            "postern_biometric_prepared_templates",
            "Users whose biometric template is held prepared (auth.biometric.prepared_cache_mb)",
            biometric_prepared.clone(),
        );
        Self {
            counted_at: parking_lot::Mutex::new(None),
            registry,
            requests,
            latency,
            decisions,
            stages,
            active_sessions,
            biometric_prepared,
            upstream,
            gate_cache_counters,
            gate_cache_gauges,
            gate_revocation_counters,
            gate_revocation_gauges,
            breaker_state,
            oldest_unapplied_revocation,
            check: CheckMetrics::default(),
        }
    }
}

impl Metrics {
    pub fn observe_request(
        &self,
        endpoint: &'static str,
        method: &'static str,
        status: u16,
        seconds: f64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels { endpoint, method })
            .observe(seconds);
    }

    /// As [`Metrics::observe_request`] for `/v1/check` (and the paths
    /// under it), with `method` its label. `GET`, what nginx, Caddy and
    /// Traefik send, takes series handles kept from the first time; other
    /// methods (Envoy keeps the original request's) are looked up.
    pub fn observe_check(&self, method: &'static str, status: u16, seconds: f64) {
        const ENDPOINT: &str = "/v1/check";
        const METHOD: &str = "GET";
        if method != METHOD {
            self.observe_request(ENDPOINT, method, status, seconds);
            return;
        }
        let slot = match status {
            200 => Some(0),
            401 => Some(1),
            403 => Some(2),
            503 => Some(3),
            _ => None,
        };
        match slot {
            Some(i) => self.check.statuses[i].get_or_init(|| {
                self.requests
                    .get_or_create(&RequestLabels {
                        endpoint: ENDPOINT,
                        method: METHOD,
                        status,
                    })
                    .clone()
            }),
            None => {
                self.observe_request(ENDPOINT, METHOD, status, seconds);
                return;
            }
        }
        .inc();
        self.check
            .latency
            .get_or_init(|| {
                self.latency
                    .get_or_create(&LatencyLabels {
                        endpoint: ENDPOINT,
                        method: METHOD,
                    })
                    .clone()
            })
            .observe(seconds);
    }

    pub fn observe_decision(&self, decision: Decision) {
        let reason = decision.reason().map_or("none", |r| r.as_str());
        let labels = DecisionLabels {
            decision: decision.as_str(),
            reason,
        };
        if decision == Decision::Resumed {
            self.check
                .resumed
                .get_or_init(|| self.decisions.get_or_create(&labels).clone())
                .inc();
        } else {
            self.decisions.get_or_create(&labels).inc();
        }
    }

    pub fn observe_stage(&self, stage: &'static str, outcome: &'static str, nanos: u64) {
        self.stages
            .get_or_create(&StageLabels { stage, outcome })
            .observe(nanos as f64 / 1e9);
    }

    /// Renders the text exposition format with the current active-session
    /// count, the prepared biometric templates held and, in gate mode, the
    /// gate's reading.
    /// Records the live-session count (see the module docs: counted by the
    /// maintenance task, not at scrape).
    pub fn set_active_sessions(&self, active_sessions: usize) {
        self.active_sessions
            .set(i64::try_from(active_sessions).unwrap_or(i64::MAX));
    }

    /// Counts the live sessions with `count` unless they were counted less
    /// than [`RECOUNT_EVERY`] before `now` (or another scrape is counting
    /// them): then the last count stands. Returns whether it counted.
    pub fn refresh_active_sessions(
        &self,
        now: std::time::Instant,
        count: impl FnOnce() -> usize,
    ) -> bool {
        let Some(mut counted_at) = self.counted_at.try_lock() else {
            return false;
        };
        if counted_at.is_some_and(|at| now.saturating_duration_since(at) < RECOUNT_EVERY) {
            return false;
        }
        *counted_at = Some(now);
        self.set_active_sessions(count());
        true
    }

    pub fn render(&self, biometric_prepared: usize, gate: Option<GateReading>) -> String {
        self.biometric_prepared
            .set(i64::try_from(biometric_prepared).unwrap_or(i64::MAX));
        if let Some(GateReading {
            cache: s,
            revocation_lag,
            revocations: r,
            breaker,
        }) = gate
        {
            let totals = [
                s.hits,
                s.misses,
                s.admissions_rejected,
                s.evictions,
                s.expired_reaped,
            ];
            for (counter, total) in self.gate_cache_counters.iter().zip(totals) {
                catch_up(counter, total);
            }
            for (gauge, value) in self.gate_cache_gauges.iter().zip([s.entries, s.bytes]) {
                gauge.set(gauge_value(value));
            }
            let totals = [r.refused, r.shared_dropped, r.feed_rejected];
            for (counter, total) in self.gate_revocation_counters.iter().zip(totals) {
                catch_up(counter, total);
            }
            for (gauge, value) in self
                .gate_revocation_gauges
                .iter()
                .zip([r.held, r.shared_held])
            {
                gauge.set(gauge_value(value));
            }
            self.breaker_state.set(breaker as i64);
            let lag_seconds = revocation_lag.unwrap_or(0) / 1_000_000_000;
            self.oldest_unapplied_revocation
                .set(i64::try_from(lag_seconds).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// What `/metrics` reads off the gate at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct GateReading {
    pub cache: postern_cache::CacheStats,
    /// Nanoseconds the shared revocation feed is behind (`None` without it).
    pub revocation_lag: Option<u64>,
    pub revocations: RevocationReading,
    pub breaker: BreakerReading,
}

/// The gate's revocation maps, counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct RevocationReading {
    pub held: u64,
    pub refused: u64,
    pub shared_held: u64,
    pub shared_dropped: u64,
    pub feed_rejected: u64,
}

impl RevocationReading {
    pub fn of(
        gate: &postern_tower::Gate,
        feed: Option<&postern_tower::redis_feed::RedisRevocations>,
    ) -> Self {
        let (shared_held, shared_dropped) = gate.shared_revocations().unwrap_or((0, 0));
        Self {
            held: gate.revocations_held() as u64,
            refused: gate.revocations_refused(),
            shared_held: shared_held as u64,
            shared_dropped,
            feed_rejected: feed.map_or(0, |f| f.entries_rejected()),
        }
    }
}

impl postern_tower::GateObserver for Metrics {
    fn upstream_call(&self, op: &'static str, outcome: &'static str, seconds: f64) {
        self.upstream
            .get_or_create(&UpstreamLabels { op, outcome })
            .observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_core::policy::Reason;

    #[test]
    fn metrics_render_in_prometheus_text_format() {
        let m = Metrics::default();
        m.observe_request("/v1/session/resume", "POST", 200, 0.000_002);
        m.observe_decision(Decision::FullAuth(Reason::DeviceMismatch));
        m.observe_decision(Decision::Resumed);
        m.observe_stage("identity", "passed", 25_000);
        m.set_active_sessions(3);
        let text = m.render(0, None);
        assert!(text.contains("postern_http_requests_total{endpoint=\"/v1/session/resume\",method=\"POST\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("postern_resume_decisions_total{decision=\"full_auth_required\",reason=\"device_mismatch\"} 1"));
        assert!(
            text.contains("postern_resume_decisions_total{decision=\"resumed\",reason=\"none\"} 1")
        );
        assert!(text.contains(
            "postern_auth_stage_duration_seconds_count{stage=\"identity\",outcome=\"passed\"} 1"
        ));
        assert!(text.contains("postern_active_sessions 3"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_flood_of_scrapes_counts_the_sessions_once_a_second() {
        let m = Metrics::default();
        let start = std::time::Instant::now();
        let mut walks = 0;
        for ms in 0..3_000u64 {
            let at = start + std::time::Duration::from_millis(ms);
            if m.refresh_active_sessions(at, || {
                walks += 1;
                7
            }) {
                assert_eq!(ms % 1_000, 0, "recounted at {ms} ms");
            }
        }
        assert_eq!(walks, 3, "3,000 scrapes over 3 s: 3 walks");
        assert!(m.render(0, None).contains("postern_active_sessions 7"));
    }

    fn gate_reading(hits: u64, misses: u64, breaker: BreakerReading) -> GateReading {
        GateReading {
            cache: postern_cache::CacheStats {
                hits,
                misses,
                admissions_rejected: 0,
                evictions: 0,
                expired_reaped: 0,
                entries: 2,
                bytes: 512,
            },
            revocation_lag: Some(3_500_000_000),
            revocations: RevocationReading {
                held: 1,
                refused: 4,
                ..RevocationReading::default()
            },
            breaker,
        }
    }

    #[test]
    fn the_gate_counts_are_counters_with_total_names_that_never_run_backwards() {
        let m = Metrics::default();
        let text = m.render(0, Some(gate_reading(7, 3, BreakerReading::Closed)));
        for line in [
            "# TYPE postern_gate_cache_hits counter",
            "postern_gate_cache_hits_total 7",
            "# TYPE postern_gate_cache_misses counter",
            "postern_gate_cache_misses_total 3",
            "postern_gate_cache_evictions_total 0",
            "# TYPE postern_gate_cache_entries gauge",
            "postern_gate_cache_entries 2",
            "postern_gate_cache_bytes 512",
            "postern_gate_revocations_held 1",
            "# TYPE postern_gate_revocations_refused counter",
            "postern_gate_revocations_refused_total 4",
            "postern_gate_feed_entries_rejected_total 0",
            "# TYPE postern_gate_breaker_state gauge",
            "postern_gate_breaker_state 0",
            "postern_gate_oldest_unapplied_revocation_seconds 3",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("postern_gate_cache_hits ")),
            "no gauge under the old name"
        );
        // A scrape that read the gate earlier, finishing later, does not
        // take the counter back.
        let text = m.render(0, Some(gate_reading(9, 4, BreakerReading::Open)));
        assert!(text.contains("postern_gate_cache_hits_total 9\n"), "{text}");
        let text = m.render(0, Some(gate_reading(8, 4, BreakerReading::HalfOpen)));
        assert!(text.contains("postern_gate_cache_hits_total 9\n"), "{text}");
        assert!(text.contains("postern_gate_breaker_state 1\n"), "{text}");
    }

    #[test]
    fn the_breaker_reads_half_open_once_its_cool_down_is_over() {
        use postern_tower::breaker::BreakerState;
        let at = |state, now| BreakerReading::of(state, now) as i64;
        assert_eq!(at(BreakerState::Closed { failures: 3 }, 0), 0);
        assert_eq!(at(BreakerState::Open { until: 100 }, 99), 2);
        assert_eq!(at(BreakerState::Open { until: 100 }, 100), 1);
        assert_eq!(at(BreakerState::HalfOpen, 0), 1);
    }

    #[test]
    fn check_metrics_land_in_the_same_series_as_other_requests() {
        let m = Metrics::default();
        m.observe_check("GET", 200, 0.000_001);
        m.observe_check("GET", 200, 0.000_001);
        m.observe_request("/v1/check", "GET", 200, 0.000_001);
        m.observe_check("GET", 400, 0.000_001);
        m.observe_check("POST", 401, 0.000_001);
        let text = m.render(0, None);
        assert!(text.contains("postern_http_requests_total{endpoint=\"/v1/check\",method=\"GET\",status=\"200\"} 3"), "{text}");
        assert!(text.contains("postern_http_requests_total{endpoint=\"/v1/check\",method=\"GET\",status=\"400\"} 1"), "{text}");
        assert!(text.contains("postern_http_request_duration_seconds_count{endpoint=\"/v1/check\",method=\"GET\"} 4"), "{text}");
        assert!(text.contains("postern_http_requests_total{endpoint=\"/v1/check\",method=\"POST\",status=\"401\"} 1"), "{text}");
        assert!(
            !text.contains("method=\"GET\",status=\"401\""),
            "series appear on first use only"
        );
    }
}
