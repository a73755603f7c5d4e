//! Gate mode against a real upstream identity provider process
//! (`postern-demo-idp`) over real HTTP.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{check_bearer, error_of, http, Idp, Server};

fn gate_server(idp: &Idp, dir: &std::path::Path) -> Server {
    let flags = idp.introspection_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start(dir, &flags)
}

#[tokio::test]
async fn the_first_request_calls_upstream_once_and_repeats_hit() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let server = gate_server(&idp, dir.path());
    let token = idp.mint("alice", "read write", 600).await;
    for _ in 0..6 {
        let r = check_bearer(&server, &token, None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-postern-user"], "alice");
        assert_eq!(r.headers()["x-postern-client"], "demo");
        assert_eq!(r.headers()["x-postern-scopes"], "read write");
        assert!(r.headers().contains_key("x-postern-session"));
    }
    assert_eq!(idp.calls("introspect").await, 1);
    let metrics = server.metrics().await;
    for expected in [
        "postern_gate_cache_hits_total 5",
        "postern_gate_cache_misses_total 1",
        "postern_gate_cache_entries 1",
        "postern_gate_upstream_duration_seconds_count{op=\"validate\",outcome=\"ok\"} 1",
        "postern_gate_oldest_unapplied_revocation_seconds 0",
    ] {
        assert!(
            metrics.contains(expected),
            "missing `{expected}` in\n{metrics}"
        );
    }
    assert!(
        !metrics.contains(&token[..40]),
        "metrics must not contain the token"
    );
}

#[tokio::test]
async fn required_scopes_are_checked_on_every_hit() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let server = gate_server(&idp, dir.path());
    let token = idp.mint("bob", "read", 600).await;
    assert_eq!(
        check_bearer(&server, &token, Some("read")).await.status(),
        200
    );
    let denied = check_bearer(&server, &token, Some("read write")).await;
    assert_eq!(
        denied.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\""
    );
    assert_eq!(error_of(denied).await, (403, "insufficient_scope".into()));
    assert_eq!(
        check_bearer(&server, &token, Some("read")).await.status(),
        200
    );
    assert_eq!(
        idp.calls("introspect").await,
        1,
        "the 403 came from the cached entry"
    );
}

#[tokio::test]
async fn logout_refuses_the_token_at_once_and_revokes_it_upstream() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let server = gate_server(&idp, dir.path());
    let token = idp.mint("carol", "read", 600).await;
    assert_eq!(check_bearer(&server, &token, None).await.status(), 200);
    let out = http()
        .post(server.url("/v1/session/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(idp.calls("revoke").await, 1);
    assert_eq!(
        error_of(check_bearer(&server, &token, None).await).await,
        (401, "invalid_token".into())
    );
}

#[tokio::test]
async fn failures_are_never_cached_and_expired_tokens_are_never_served() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let server = gate_server(&idp, dir.path());
    for _ in 0..3 {
        assert_eq!(
            error_of(check_bearer(&server, "not-a-token-the-idp-knows", None).await).await,
            (401, "invalid_token".into())
        );
    }
    assert_eq!(
        idp.calls("introspect").await,
        3,
        "every failure asked upstream again"
    );

    let short = idp.mint("dave", "read", 2).await;
    assert_eq!(check_bearer(&server, &short, None).await.status(), 200);
    assert_eq!(check_bearer(&server, &short, None).await.status(), 200);
    assert_eq!(idp.calls("introspect").await, 4);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(
        error_of(check_bearer(&server, &short, None).await).await,
        (401, "invalid_token".into())
    );
    assert_eq!(
        idp.calls("introspect").await,
        5,
        "the expired entry was not served; upstream was asked"
    );
}

#[tokio::test]
async fn a_dead_upstream_fails_closed_with_503() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let server = gate_server(&idp, dir.path());
    let token = idp.mint("erin", "read", 600).await;
    idp.kill();
    for _ in 0..8 {
        assert_eq!(
            error_of(check_bearer(&server, &token, None).await).await,
            (503, "upstream_unavailable".into())
        );
    }
    let metrics = server.metrics().await;
    assert!(metrics.contains("postern_gate_upstream_duration_seconds_count{op=\"validate\",outcome=\"unreachable\"} 5"), "{metrics}");
}

#[tokio::test]
async fn a_hundred_concurrent_first_requests_make_one_upstream_call() {
    let idp = Idp::start(&["--latency", "300ms"]);
    let dir = tempfile::tempdir().unwrap();
    let server = gate_server(&idp, dir.path());
    let token = idp.mint("frank", "read", 600).await;
    let client = http();
    let requests = (0..100).map(|_| {
        let client = client.clone();
        let url = server.url("/v1/check");
        let token = token.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let statuses: Vec<u16> = futures_join(requests).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(idp.calls("introspect").await, 1);
}

async fn futures_join(handles: impl Iterator<Item = tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_auth1_session_api_works_as_an_upstream_too() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--upstream-auth1", &idp.base]);
    let token = idp.mint("grace", "read", 600).await;
    for _ in 0..3 {
        let r = check_bearer(&server, &token, Some("read")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-postern-user"], "grace");
    }
    assert_eq!(idp.calls("session").await, 1);
    assert_eq!(
        http()
            .post(server.url("/v1/session/logout"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(idp.calls("logout").await, 1);
    assert_eq!(
        error_of(check_bearer(&server, &token, None).await).await,
        (401, "invalid_token".into())
    );
}

#[tokio::test]
async fn postern_sessions_still_work_beside_the_gate() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let server = gate_server(&idp, dir.path());
    let (_, login) = common::enroll_and_login(&server.client(), "heidi", "laptop").await;
    let r = http()
        .get(server.url("/v1/check"))
        .bearer_auth(&login.token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-postern-user"], "heidi");
    assert_eq!(idp.calls("introspect").await, 0);
}

#[tokio::test]
async fn rotating_a_key_out_of_the_upstream_jwks_purges_its_tokens_at_once() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut flags = idp.introspection_flags();
    flags.extend([
        "--upstream-jwks".into(),
        format!("{}/.well-known/jwks.json", idp.base),
        "--jwks-interval".into(),
        "100ms".into(),
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(dir.path(), &flags);
    let token = idp.mint("ivan", "read", 600).await;
    assert_eq!(check_bearer(&server, &token, None).await.status(), 200);
    assert_eq!(check_bearer(&server, &token, None).await.status(), 200);
    assert_eq!(idp.calls("introspect").await, 1);
    // The watcher has seen the first JWKS by now; rotate demo-key-1 out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    http()
        .post(format!("{}/admin/jwks", idp.base))
        .json(&serde_json::json!({ "kids": ["demo-key-2"] }))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("postern_gate_cache_entries 0"),
        "{metrics}"
    );
    // The next request asks upstream again (which still vouches for it here).
    assert_eq!(check_bearer(&server, &token, None).await.status(), 200);
    assert_eq!(idp.calls("introspect").await, 2);
}

#[tokio::test]
async fn misses_are_rate_limited_per_client_and_hits_never_are() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut flags = idp.introspection_flags();
    flags.extend(["--miss-rate-per-client".into(), "0.5".into()]);
    // The test client (127.0.0.1) plays the proxy in front of Postern.
    flags.extend(["--trusted-proxies".into(), "127.0.0.1/32".into()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    std::fs::write(
        dir.path().join("postern.toml"),
        "[gate]\nmiss_burst_per_client = 3.0\n",
    )
    .unwrap();
    let config = dir.path().join("postern.toml");
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend(flags);
    let server = Server::start(&dir.path().join("data"), &all);
    let token = idp.mint("judy", "read", 600).await;
    let from = |client: &'static str, token: String| {
        let url = server.url("/v1/check");
        async move {
            let r = http()
                .get(url)
                .bearer_auth(token)
                .header("X-Forwarded-For", format!("6.6.6.6, {client}"))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    // The valid token's first request is a miss (1 of the burst of 3).
    assert_eq!(from("10.0.0.1", token.clone()).await, 200);
    assert_eq!(from("10.0.0.1", "bogus-1".into()).await, 401);
    assert_eq!(from("10.0.0.1", "bogus-2".into()).await, 401);
    assert_eq!(from("10.0.0.1", "bogus-3".into()).await, 429);
    assert_eq!(
        from("10.0.0.1", token.clone()).await,
        200,
        "hits are never limited"
    );
    assert_eq!(
        from("10.0.0.2", "bogus-4".into()).await,
        401,
        "another client has its own bucket"
    );
    assert_eq!(
        idp.calls("introspect").await,
        4,
        "the refused miss never reached the upstream"
    );
}

/// `GET /v1/check` for `token` with `X-Forwarded-For: forwarded`.
async fn check_forwarded(server: &Server, token: &str, forwarded: &str) -> u16 {
    http()
        .get(server.url("/v1/check"))
        .bearer_auth(token)
        .header("X-Forwarded-For", forwarded)
        .header("X-Real-IP", forwarded)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_miss_limit() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("postern.toml"),
        "trusted_proxies = [\"10.0.0.0/8\"]\n[gate]\nmiss_rate_per_client = 0.001\nmiss_burst_per_client = 3.0\n",
    )
    .unwrap();
    let config = dir.path().join("postern.toml");
    let mut flags = vec!["--config".to_string(), config.to_str().unwrap().into()];
    flags.extend(idp.introspection_flags());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(&dir.path().join("data"), &flags);
    // 127.0.0.1 is not a trusted proxy: each request claims a new client,
    // and each is charged to 127.0.0.1 all the same.
    for n in 1..=3 {
        assert_eq!(
            check_forwarded(&server, &format!("bogus-{n}"), &format!("10.9.9.{n}")).await,
            401
        );
    }
    assert_eq!(
        check_forwarded(&server, "bogus-4", "10.9.9.4").await,
        429,
        "the peer's bucket is empty whatever the headers say"
    );
    assert_eq!(idp.calls("introspect").await, 3);
}

#[tokio::test]
async fn the_miss_limit_is_on_by_default_and_covers_junk_logouts() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let server = gate_server(&idp, dir.path());
    let logout = |token: String| {
        let url = server.url("/v1/session/logout");
        async move { error_of(http().post(url).bearer_auth(token).send().await.unwrap()).await }
    };
    // The default burst is 100 misses, then 20 a second: each junk logout
    // is asked upstream once and leaves nothing behind, until the limit.
    let mut refused_after = None;
    for n in 0..1_000 {
        match logout(format!("junk-{n}")).await {
            (401, code) if code == "invalid_token" => {}
            (429, code) if code == "rate_limited" => {
                refused_after = Some(n);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let answered = refused_after.expect("the default limit refused the flood");
    assert!(answered >= 100, "the burst of 100 first: {answered}");
    assert_eq!(idp.calls("introspect").await, answered as u64);
    assert_eq!(idp.calls("revoke").await, 0, "nothing to revoke for junk");
    assert_eq!(server.metric("postern_gate_revocations_held").await, 0.0);
}
