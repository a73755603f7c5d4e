//! Gate mode against a real third-party authorization server:
//! node-oidc-provider (npm `oidc-provider`), started by
//! `e2e/oidc-provider.mjs` over https with a certificate a CA made here
//! (rcgen) signs, and trusted by Postern through `--upstream-ca`. Tokens
//! are obtained from it with the OAuth client-credentials grant: opaque
//! access tokens whose RFC 7662 answer names the client and no user.
//!
//! Needs `node`; `npm ci` in `e2e/` is run when `node_modules` lacks
//! `oidc-provider`. Without them the test fails when `CI` is set and is
//! skipped, saying so, otherwise.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::oidc::{pki, Provider};
use common::{e2e, error_of, http, Server};
use serde_json::Value;

async fn check(server: &Server, token: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http().get(server.url("/v1/check")).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The labelled metric line `name{labels} value`, as a number (0 if absent).
async fn metric(server: &Server, series: &str) -> f64 {
    let text = server.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn validations(outcome: &str) -> String {
    format!("postern_gate_upstream_duration_seconds_count{{op=\"validate\",outcome=\"{outcome}\"}}")
}

#[tokio::test]
async fn client_credentials_tokens_from_node_oidc_provider_over_https_pass_as_their_client() {
    if !e2e::can_run("the node-oidc-provider test", &common::oidc::missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let provider = Provider::start(dir.path());
    let flags = provider.flags(&dir.path().join("ca.pem"));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(&dir.path().join("data"), &flags);

    // A valid client-credentials token: 200 as its client, no user.
    let token = provider.client_credentials("read write").await;
    let answer = provider.introspect(&token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], "app");
    assert!(answer.get("sub").is_none(), "no subject: {answer}");
    for _ in 0..3 {
        let r = check(
            &server,
            &token,
            &[
                ("X-Postern-Required-Scopes", "read"),
                ("Accept", "application/json"),
            ],
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-postern-client"], "app");
        assert!(!r.headers().contains_key("x-postern-user"));
        assert_eq!(r.headers()["x-postern-scopes"], "read write");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "user": null, "client": "app", "scopes": ["read", "write"], "session_id": null })
        );
    }
    // Served from the cache after the first: one upstream call.
    assert_eq!(metric(&server, &validations("ok")).await, 1.0);

    // The route's requirements, checked on hits: audience (from the
    // resource indicator), scope, and a subject it does not have.
    let audience = check(&server, &token, &[("X-Postern-Required-Audience", "api")]).await;
    assert_eq!(audience.status(), 200);
    for (header, value) in [
        ("X-Postern-Required-Scopes", "admin"),
        ("X-Postern-Required-Audience", "billing"),
        ("X-Postern-Required-Subject", "true"),
    ] {
        let r = check(&server, &token, &[(header, value)]).await;
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"insufficient_scope\"",
            "{header}"
        );
        assert_eq!(error_of(r).await, (403, "insufficient_scope".into()));
    }
    assert_eq!(metric(&server, &validations("ok")).await, 1.0, "all hits");

    // Revoked at the provider before Postern saw it: 401, never cached.
    let revoked = provider.client_credentials("read").await;
    provider.revoke(&revoked).await;
    for _ in 0..2 {
        let r = check(&server, &revoked, &[]).await;
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(error_of(r).await, (401, "invalid_token".into()));
    }
    assert_eq!(metric(&server, &validations("rejected")).await, 2.0);

    // Garbage, and a JWT the provider did not issue (it answers 400
    // `unsupported_token_type` for a JWT): refused, 401, not 5xx.
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2ln";
    for junk in ["garbage", jwt] {
        let r = check(&server, junk, &[]).await;
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\"",
            "{junk}"
        );
        assert_eq!(error_of(r).await, (401, "invalid_token".into()), "{junk}");
    }
    assert_eq!(metric(&server, &validations("rejected")).await, 4.0);
    assert_eq!(server.metric("postern_gate_cache_entries").await, 1.0);

    // Logout through Postern revokes at the provider too.
    let out = http()
        .post(server.url("/v1/session/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(provider.introspect(&token).await["active"], false);
    assert_eq!(
        error_of(check(&server, &token, &[]).await).await,
        (401, "invalid_token".into())
    );
}
