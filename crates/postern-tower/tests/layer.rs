//! The tower layer and extractor in an axum app, in front of a real
//! introspection server on a real port.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use postern_tower::upstream::Upstream;
use postern_tower::{Authenticated, Gate, GateConfig, GateError, GateLayer, Requirement};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct TokenForm {
    token: String,
}

struct Upstreamish {
    calls: AtomicUsize,
    down: std::sync::atomic::AtomicBool,
    /// The answer for the token `held` waits for a permit from the test.
    hold: tokio::sync::Semaphore,
}

async fn introspect(
    State(up): State<Arc<Upstreamish>>,
    Form(form): Form<TokenForm>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    up.calls.fetch_add(1, Ordering::SeqCst);
    if up.down.load(Ordering::SeqCst) {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if form.token == "held" {
        up.hold.acquire().await.unwrap().forget();
    } else {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    match form.token.as_str() {
        "good" => {
            Json(json!({ "active": true, "sub": "alice", "scope": "profile email", "exp": exp }))
                .into_response()
        }
        "limited" => Json(json!({ "active": true, "sub": "bob", "scope": "email", "exp": exp }))
            .into_response(),
        "held" => Json(json!({ "active": true, "sub": "harry", "exp": exp })).into_response(),
        many if many.starts_with("many-") => {
            Json(json!({ "active": true, "sub": many, "exp": exp })).into_response()
        }
        _ => Json(json!({ "active": false })).into_response(),
    }
}

async fn start_upstream() -> (String, Arc<Upstreamish>) {
    let state = Arc::new(Upstreamish {
        calls: AtomicUsize::new(0),
        down: false.into(),
        hold: tokio::sync::Semaphore::new(0),
    });
    let app = Router::new()
        .route("/introspect", post(introspect))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/introspect"), state)
}

async fn me(Authenticated(session): Authenticated) -> Json<Value> {
    Json(json!({ "user": session.subject }))
}

async fn start_app(gate: Arc<Gate>) -> String {
    let app = Router::new()
        .route("/me", get(me))
        .layer(GateLayer::new(gate).with_requirement(Requirement::scopes(["profile"])));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_layer_admits_valid_tokens_and_hands_the_handler_its_session() {
    let (url, upstream) = start_upstream().await;
    let gate = Arc::new(gate_at(&url));
    let app = start_app(gate.clone()).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client
            .get(format!("{app}/me"))
            .bearer_auth("good")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap(), json!({ "user": "alice" }));
    }
    assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);

    let r = client.get(format!("{app}/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = client
        .get(format!("{app}/me"))
        .bearer_auth("limited")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "insufficient_scope"
    );
    let r = client
        .get(format!("{app}/me"))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        gate.stats().entries,
        2,
        "valid answers cached, the failure not"
    );
}

#[tokio::test]
async fn concurrent_misses_share_one_call_and_errors_fail_closed() {
    let (url, upstream) = start_upstream().await;
    let gate = Arc::new(Gate::new(
        Upstream::introspection(&url, None, "c", "s").unwrap(),
        GateConfig {
            breaker_threshold: 3,
            ..GateConfig::default()
        },
    ));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let checks = (0..50).map(|_| {
        let gate = gate.clone();
        tokio::spawn(async move {
            gate.check("good", &Requirement::none(), now)
                .await
                .map(|s| s.subject.clone())
        })
    });
    for check in checks.collect::<Vec<_>>() {
        assert_eq!(check.await.unwrap().unwrap().as_deref(), Some("alice"));
    }
    assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);
    assert_eq!(gate.inflight(), 0);

    upstream.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(
            gate.check("other", &Requirement::none(), now)
                .await
                .unwrap_err(),
            GateError::Unavailable("status")
        );
    }
    // The breaker is open: no more upstream calls, still 503-class errors.
    let before = upstream.calls.load(Ordering::SeqCst);
    assert_eq!(
        gate.check("other", &Requirement::none(), now)
            .await
            .unwrap_err(),
        GateError::Unavailable("circuit_open")
    );
    assert_eq!(upstream.calls.load(Ordering::SeqCst), before);
    // Cached sessions keep working while the upstream is down.
    assert_eq!(
        gate.check("good", &Requirement::none(), now)
            .await
            .unwrap()
            .subject
            .as_deref(),
        Some("alice")
    );
}

#[tokio::test]
async fn the_extractor_fails_closed_without_the_layer() {
    let app = Router::new().route("/me", get(me));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let r = reqwest::get(format!("http://{addr}/me")).await.unwrap();
    assert_eq!(r.status(), 401);
}

/// Records what a gate publishes, or fails every publication.
struct Recorder {
    published: parking_lot::Mutex<Vec<(u128, u64)>>,
    fail: std::sync::atomic::AtomicBool,
}

impl Recorder {
    fn new(fail: bool) -> Arc<Recorder> {
        Arc::new(Recorder {
            published: parking_lot::Mutex::new(Vec::new()),
            fail: fail.into(),
        })
    }
}

/// A gate in front of the test's introspection endpoint, with defaults.
fn gate_at(url: &str) -> Gate {
    Gate::new(
        Upstream::introspection(url, None, "c", "s").unwrap(),
        GateConfig::default(),
    )
}

impl postern_tower::shared::RevocationPublisher for Recorder {
    fn publish(
        &self,
        digest: u128,
        until: u64,
    ) -> futures_util::future::BoxFuture<'_, Result<(), postern_tower::shared::PublishError>> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) {
                return Err(postern_tower::shared::PublishError("down".into()));
            }
            self.published.lock().push((digest, until));
            Ok(())
        })
    }
}

/// Waits for `condition`, failing the test after 5 s.
async fn until(condition: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("condition not met within 5 s");
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn shared_revocations_purge_refuse_and_beat_a_fetch_in_flight() {
    use postern_tower::shared::token_digest;
    let (url, upstream) = start_upstream().await;
    let recorder = Recorder::new(false);
    let gate = Arc::new(gate_at(&url).with_shared_revocations(recorder.clone(), 5_000_000_000));
    let any = Requirement::none();
    let calls = || upstream.calls.load(Ordering::SeqCst);
    let now = unix_now();

    // Until the feed has been heard, nothing is served from the cache.
    gate.check("good", &any, now).await.unwrap();
    gate.check("good", &any, now).await.unwrap();
    assert_eq!(calls(), 2, "hits wait for the feed");
    gate.revocations_heard_up_to(now);
    gate.check("good", &any, now).await.unwrap();
    assert_eq!(calls(), 2, "then they are hits");
    assert_eq!(gate.revocation_lag(now + 7), Some(7));
    assert!(
        gate.check("good", &any, now + 6_000_000_000).await.is_ok(),
        "a feed 6 s behind (max 5 s): asked upstream again"
    );
    assert_eq!(calls(), 3);

    // A revocation heard from elsewhere purges the entry and refuses the
    // token without asking upstream (which would still say active).
    assert!(gate.apply_revocation(token_digest("good"), now + 60_000_000_000, now));
    assert_eq!(
        gate.check("good", &any, now).await.unwrap_err(),
        GateError::Unauthenticated("revoked")
    );
    assert_eq!(calls(), 3);

    // One that lands while the upstream call is in flight (held until the
    // revocation is in) wins: the answer is not served, nor left cached.
    let racing = {
        let gate = gate.clone();
        tokio::spawn(async move { gate.check("held", &Requirement::none(), now).await })
    };
    until(|| calls() >= 4).await;
    assert!(
        !gate.apply_revocation(token_digest("held"), now + 60_000_000_000, now),
        "not cached yet"
    );
    upstream.hold.add_permits(1);
    assert_eq!(
        racing.await.unwrap().unwrap_err(),
        GateError::Unauthenticated("revoked")
    );
    assert_eq!(calls(), 4, "the upstream was asked, and said active");
    assert_eq!(gate.stats().entries, 0, "nothing revoked stays cached");
    upstream.hold.add_permits(1);
    assert_eq!(
        gate.check("held", &any, now + 61_000_000_000)
            .await
            .map(|s| s.subject.clone()),
        Ok(Some("harry".into())),
        "the refusal ends when the revocation does"
    );

    // A logout publishes the token's digest, never the token.
    gate.logout("limited", now).await.unwrap();
    let published = recorder.published.lock().clone();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].0, token_digest("limited"));
    assert!(published[0].1 > now);
}

#[tokio::test]
async fn a_logout_that_cannot_be_shared_is_refused_here_retried_and_republished() {
    use postern_tower::shared::token_digest;
    let (url, _upstream) = start_upstream().await;
    let recorder = Recorder::new(true);
    let gate = Arc::new(gate_at(&url).with_shared_revocations(recorder.clone(), 5_000_000_000));
    let now = unix_now();
    gate.revocations_heard_up_to(now);
    gate.check("good", &Requirement::none(), now).await.unwrap();
    assert_eq!(gate.logout("good", now).await, Err(GateError::NotShared));
    assert_eq!(
        gate.check("good", &Requirement::none(), now)
            .await
            .unwrap_err(),
        GateError::Unauthenticated("revoked")
    );

    // Retried in the background once the publisher is back, once.
    recorder.fail.store(false, Ordering::SeqCst);
    until(|| recorder.published.lock().len() == 1).await;
    assert_eq!(recorder.published.lock()[0].0, token_digest("good"));

    // If the feed's history is lost, this instance's logouts still in
    // force are published again, and the cache is emptied.
    gate.check("limited", &Requirement::none(), now)
        .await
        .unwrap();
    assert_eq!(gate.stats().entries, 1);
    assert_eq!(gate.revocation_history_lost(now), (1, 1));
    assert_eq!(gate.stats().entries, 0);
    until(|| recorder.published.lock().len() == 2).await;
    assert_eq!(recorder.published.lock()[1].0, token_digest("good"));
}

#[tokio::test]
async fn a_clear_during_a_fetch_does_not_leave_its_answer_cached() {
    let (url, upstream) = start_upstream().await;
    let gate = Arc::new(gate_at(&url));
    let now = unix_now();
    let fetching = {
        let gate = gate.clone();
        tokio::spawn(async move { gate.check("held", &Requirement::none(), now).await })
    };
    until(|| upstream.calls.load(Ordering::SeqCst) == 1).await;
    gate.clear_cache();
    upstream.hold.add_permits(1);
    assert_eq!(
        fetching.await.unwrap().unwrap().subject.as_deref(),
        Some("harry")
    );
    assert_eq!(gate.stats().entries, 0, "the answer was not kept");
}

#[tokio::test]
async fn logouts_are_charged_to_the_client_like_misses() {
    let (url, _upstream) = start_upstream().await;
    let gate = Arc::new(
        gate_at(&url).with_miss_limiter(postern_tower::ratelimit::MissLimiter::new(0.001, 2.0, 16)),
    );
    let now = unix_now();
    for token in ["junk-1", "junk-2"] {
        assert_eq!(
            gate.logout_from(Some("flooder"), token, now).await,
            Err(GateError::Unauthenticated("inactive")),
            "the upstream says there is nothing to log out"
        );
    }
    assert_eq!(
        gate.logout_from(Some("flooder"), "junk-3", now).await,
        Err(GateError::RateLimited)
    );
    assert_eq!(
        gate.logout_from(Some("someone-else"), "junk-3", now).await,
        Err(GateError::Unauthenticated("inactive"))
    );
    assert_eq!(gate.revocations_held(), 0, "junk leaves nothing behind");
    gate.check("good", &Requirement::none(), now).await.unwrap();
    assert_eq!(
        gate.logout_from(Some("flooder"), "good", now).await,
        Ok(()),
        "a cached token is a live session: its logout is never refused"
    );
}

#[tokio::test]
async fn while_the_feed_lags_would_be_hits_are_not_charged_as_misses() {
    let (url, _upstream) = start_upstream().await;
    let gate = Arc::new(
        gate_at(&url)
            .with_miss_limiter(postern_tower::ratelimit::MissLimiter::new(0.001, 1.0, 16))
            .with_shared_revocations(Recorder::new(false), 5_000_000_000),
    );
    let now = unix_now();
    gate.revocations_heard_up_to(now);
    gate.check("good", &Requirement::none(), now).await.unwrap();
    let lagging = now + 10_000_000_000;
    assert!(!gate.revocations_current(lagging));
    for _ in 0..3 {
        assert!(gate
            .check_from(Some("c"), "good", &Requirement::none(), lagging)
            .await
            .is_ok());
    }
    assert_eq!(
        gate.check_from(Some("c"), "junk-1", &Requirement::none(), lagging)
            .await
            .unwrap_err(),
        GateError::Unauthenticated("inactive")
    );
    assert_eq!(
        gate.check_from(Some("c"), "junk-2", &Requirement::none(), lagging)
            .await
            .unwrap_err(),
        GateError::RateLimited,
        "junk is still charged while the feed lags"
    );
}

#[tokio::test]
async fn a_clear_on_the_runtime_does_not_wait_for_a_reader_stalled_in_the_cache() {
    use std::sync::mpsc;
    let (url, _upstream) = start_upstream().await;
    let gate = Arc::new(gate_at(&url));
    let now = unix_now();
    // 100 cached sessions: clearing them retires enough values for the
    // cache to try to free them at once.
    let checks: Vec<_> = (0..100)
        .map(|i| {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.check(&format!("many-{i}"), &Requirement::none(), now)
                    .await
                    .map(|s| s.subject.clone())
            })
        })
        .collect();
    for check in checks {
        check.await.unwrap().unwrap();
    }
    assert_eq!(gate.stats().entries, 100);
    // A thread stalls inside a cache read section (as a reader descheduled
    // mid-lookup would) until it is told to leave; a watchdog tells it
    // after 10 s if the clear below has not returned by then.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        postern_cache::reclaim::read_section(|| {
            entered_tx.send(()).unwrap();
            leave_rx.recv().unwrap();
        })
    });
    entered_rx.recv().unwrap();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let in_time = done_rx.recv_timeout(Duration::from_secs(10)).is_ok();
        leave_tx.send(()).unwrap();
        in_time
    });
    // On this runtime's worker thread, as the feed's history-lost path does.
    assert_eq!(gate.clear_cache(), 100);
    // Fails only if the watchdog gave up already; its verdict says so.
    let _ = done_tx.send(());
    assert!(
        watchdog.join().unwrap(),
        "the clear returned while the reader was still in its section"
    );
    reader.join().unwrap();
    assert_eq!(gate.stats().entries, 0);
}

/// Counts the upstream's calls by endpoint (introspect, revoke).
struct Counting {
    introspect: AtomicUsize,
    revoke: AtomicUsize,
}

/// An upstream where every token starting `valid-` is active and the rest
/// are not, with a revocation endpoint; both count their calls.
async fn start_counting_upstream() -> (String, Arc<Counting>) {
    async fn introspect(
        State(up): State<Arc<Counting>>,
        Form(form): Form<TokenForm>,
    ) -> Json<Value> {
        up.introspect.fetch_add(1, Ordering::SeqCst);
        if form.token.starts_with("valid-") {
            Json(json!({ "active": true, "sub": "u", "exp": unix_now() / 1_000_000_000 + 600 }))
        } else {
            Json(json!({ "active": false }))
        }
    }
    async fn revoke(State(up): State<Arc<Counting>>) -> &'static str {
        up.revoke.fetch_add(1, Ordering::SeqCst);
        ""
    }
    let state = Arc::new(Counting {
        introspect: AtomicUsize::new(0),
        revoke: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/introspect", post(introspect))
        .route("/revoke", post(revoke))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

#[tokio::test]
async fn a_flood_of_junk_logouts_records_publishes_and_revokes_nothing() {
    let (base, upstream) = start_counting_upstream().await;
    let recorder = Recorder::new(false);
    let gate = Arc::new(
        Gate::new(
            Upstream::introspection(
                &format!("{base}/introspect"),
                Some(&format!("{base}/revoke")),
                "c",
                "s",
            )
            .unwrap(),
            GateConfig {
                max_revocations: 3,
                ..GateConfig::default()
            },
        )
        .with_shared_revocations(recorder.clone(), 5_000_000_000),
    );
    let now = unix_now();
    gate.revocations_heard_up_to(now);
    for n in 0..1_000 {
        assert_eq!(
            gate.logout(&format!("junk-{n}"), now).await,
            Err(GateError::Unauthenticated("inactive"))
        );
    }
    assert_eq!(gate.revocations_held(), 0);
    assert_eq!(upstream.introspect.load(Ordering::SeqCst), 1_000);
    assert_eq!(upstream.revoke.load(Ordering::SeqCst), 0);
    assert_eq!(recorder.published.lock().len(), 0, "no feed entry for junk");

    // Valid tokens fill the bounded set; past it a logout is refused
    // loudly (503), yet purges and revokes upstream as far as it can.
    for n in 0..3 {
        assert_eq!(gate.logout(&format!("valid-{n}"), now).await, Ok(()));
    }
    assert_eq!(gate.revocations_held(), 3);
    gate.check("valid-x", &Requirement::none(), now)
        .await
        .unwrap();
    assert_eq!(gate.stats().entries, 1);
    assert_eq!(
        gate.logout("valid-x", now).await,
        Err(GateError::RevocationsFull)
    );
    assert_eq!(gate.stats().entries, 0, "the cached entry was purged");
    assert_eq!(gate.revocations_held(), 3, "still bounded");
    assert_eq!(gate.revocations_refused(), 1);
    assert_eq!(upstream.revoke.load(Ordering::SeqCst), 4);
    assert_eq!(recorder.published.lock().len(), 4);
    assert_eq!(
        gate.logout("valid-0", now).await,
        Ok(()),
        "logging out again what is held is free"
    );
    assert_eq!(upstream.revoke.load(Ordering::SeqCst), 4);
    // Once the held logouts end, there is room again.
    let later = now + GateConfig::default().max_ttl + 1;
    assert_eq!(gate.logout("valid-y", later).await, Ok(()));
    assert_eq!(gate.revocations_held(), 1);
}
