//! An upstream that redirects is failing, not followed: a redirect could
//! lead the client secret and the token to cleartext or to another host.
//! A real introspection endpoint on a real port answers 307 to where a
//! real endpoint would say `active: true`.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use postern_tower::upstream::{Upstream, UpstreamError};

#[tokio::test]
async fn a_redirecting_upstream_is_not_followed() {
    let followed = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let target = format!("{base}/elsewhere");
    let app = Router::new()
        .route(
            "/introspect",
            post(move || {
                let target = target.clone();
                async move {
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response()
                }
            }),
        )
        .route(
            "/elsewhere",
            post(|State(n): State<Arc<AtomicUsize>>| async move {
                n.fetch_add(1, Ordering::SeqCst);
                Json(serde_json::json!({ "active": true, "sub": "mallory" }))
            }),
        )
        .with_state(followed.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let upstream = Upstream::introspection(&format!("{base}/introspect"), None, "c", "s").unwrap();
    assert_eq!(
        upstream.validate("token", 0).await.unwrap_err(),
        UpstreamError::Status(307)
    );
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
}
