//! RFC 7662 answers as authorization servers send them, from a real
//! introspection endpoint on a real port: a client-credentials token names
//! no user and is valid; `nbf` and `token_type` are respected; and an
//! answer the gate cannot use fails that one token (502), is never
//! cached, and never counts toward the circuit breaker.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use postern_tower::breaker::BreakerState;
use postern_tower::session::Insufficient;
use postern_tower::upstream::Upstream;
use postern_tower::{Gate, GateConfig, GateError, Requirement};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct TokenForm {
    token: String,
}

struct Endpoint {
    calls: AtomicUsize,
    down: AtomicBool,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn unix_now() -> u64 {
    unix_secs() * 1_000_000_000
}

/// Answers as real servers do, good and bad, by token.
async fn introspect(State(up): State<Arc<Endpoint>>, Form(form): Form<TokenForm>) -> Response {
    up.calls.fetch_add(1, Ordering::SeqCst);
    if up.down.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let exp = unix_secs() + 600;
    let body = match form.token.as_str() {
        "user" => json!({ "active": true, "sub": "alice", "client_id": "web", "exp": exp }),
        // node-oidc-provider's answer for a client-credentials token.
        "client" => json!({ "active": true, "client_id": "app", "scope": "read write",
            "aud": "api", "exp": exp, "token_type": "Bearer" }),
        "empty-sub" => json!({ "active": true, "sub": "", "client_id": "app", "exp": exp }),
        "refresh" => {
            json!({ "active": true, "sub": "alice", "token_type": "refresh_token", "exp": exp })
        }
        "early" => json!({ "active": true, "sub": "alice", "nbf": unix_secs() + 300, "exp": exp }),
        "nobody" => json!({ "active": true, "exp": exp }),
        "typo" => json!({ "active": "yes", "sub": "alice" }),
        "newline" => json!({ "active": true, "sub": "alice\nX-Postern-User: root", "exp": exp }),
        "html" => {
            return ([("content-type", "text/html")], "<html>login</html>").into_response();
        }
        "moved" => return StatusCode::NOT_FOUND.into_response(),
        "jwt.looking.thing" => {
            // node-oidc-provider refuses to introspect a JWT it did not issue.
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "unsupported_token_type" })),
            )
                .into_response();
        }
        _ => json!({ "active": false }),
    };
    Json(body).into_response()
}

async fn start() -> (Arc<Gate>, Arc<Endpoint>) {
    let endpoint = Arc::new(Endpoint {
        calls: AtomicUsize::new(0),
        down: AtomicBool::new(false),
    });
    let app = Router::new()
        .route("/introspect", post(introspect))
        .with_state(endpoint.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/introspect", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let gate = Gate::new(
        Upstream::introspection(&url, None, "postern", "secret").unwrap(),
        GateConfig {
            breaker_threshold: 5,
            ..GateConfig::default()
        },
    );
    (Arc::new(gate), endpoint)
}

#[tokio::test]
async fn six_unusable_answers_in_a_row_fail_their_tokens_only_and_do_not_open_the_breaker() {
    let (gate, endpoint) = start().await;
    let now = unix_now();
    let any = Requirement::none();
    let unusable = [
        ("html", "introspection JSON"),
        ("typo", "introspection JSON"),
        ("nobody", "no sub, username or client_id"),
        ("moved", "status"),
        ("newline", "subject not header-safe"),
        ("html", "introspection JSON"),
    ];
    for (token, why) in unusable {
        assert_eq!(
            gate.check(token, &any, now).await.unwrap_err(),
            GateError::BadUpstreamAnswer(why),
            "{token}"
        );
    }
    assert_eq!(
        gate.breaker_state(),
        BreakerState::Closed { failures: 0 },
        "the upstream answered every time: nothing counted against it"
    );
    assert_eq!(gate.stats().entries, 0, "no unusable answer was cached");
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 6, "each was asked");
    assert_eq!(
        gate.check("user", &any, now)
            .await
            .unwrap()
            .subject
            .as_deref(),
        Some("alice"),
        "a good token still passes"
    );

    // Real failures still open it: five 500s in a row.
    endpoint.down.store(true, Ordering::SeqCst);
    for n in 0..5 {
        assert_eq!(
            gate.check(&format!("other-{n}"), &any, now)
                .await
                .unwrap_err(),
            GateError::Unavailable("status")
        );
    }
    assert!(matches!(gate.breaker_state(), BreakerState::Open { .. }));
    assert_eq!(
        gate.check("other", &any, now).await.unwrap_err(),
        GateError::Unavailable("circuit_open")
    );
}

#[tokio::test]
async fn an_unusable_answer_to_the_half_open_probe_closes_the_breaker() {
    let (gate, endpoint) = start().await;
    let now = unix_now();
    let any = Requirement::none();
    endpoint.down.store(true, Ordering::SeqCst);
    for n in 0..5 {
        let _ = gate.check(&format!("down-{n}"), &any, now).await;
    }
    assert!(matches!(gate.breaker_state(), BreakerState::Open { .. }));
    endpoint.down.store(false, Ordering::SeqCst);
    let later = now + GateConfig::default().breaker_cooldown;
    assert_eq!(
        gate.check("html", &any, later).await.unwrap_err(),
        GateError::BadUpstreamAnswer("introspection JSON")
    );
    assert_eq!(gate.breaker_state(), BreakerState::Closed { failures: 0 });
    assert!(gate.check("user", &any, later).await.is_ok());
}

#[tokio::test]
async fn a_client_credentials_token_passes_as_its_client_unless_the_route_needs_a_user() {
    let (gate, endpoint) = start().await;
    let now = unix_now();
    let session = gate
        .check("client", &Requirement::scopes(["read"]), now)
        .await
        .unwrap();
    assert_eq!(session.subject, None);
    assert_eq!(session.client_id.as_deref(), Some("app"));
    assert_eq!(session.principal(), Some("app"));
    assert_eq!(session.audience, vec!["api".to_string()]);
    assert_eq!(
        gate.check("client", &Requirement::none().with_subject(), now)
            .await
            .unwrap_err(),
        GateError::Forbidden(Insufficient::Subject),
        "answered from the cache: a valid token, not a user's"
    );
    let empty_sub = gate.check("empty-sub", &Requirement::none(), now).await;
    assert_eq!(empty_sub.map(|s| s.subject.clone()), Ok(None));
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refresh_tokens_tokens_before_nbf_and_refusals_are_401_and_never_cached() {
    let (gate, endpoint) = start().await;
    let now = unix_now();
    let any = Requirement::none();
    for _ in 0..2 {
        assert_eq!(
            gate.check("refresh", &any, now).await.unwrap_err(),
            GateError::Unauthenticated("not a bearer access token")
        );
        assert_eq!(
            gate.check("early", &any, now).await.unwrap_err(),
            GateError::Unauthenticated("not valid yet")
        );
        assert_eq!(
            gate.check("jwt.looking.thing", &any, now)
                .await
                .unwrap_err(),
            GateError::Unauthenticated("refused by the upstream (400)")
        );
    }
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 6, "none was cached");
    assert_eq!(gate.breaker_state(), BreakerState::Closed { failures: 0 });
}
