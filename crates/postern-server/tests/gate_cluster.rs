//! Several gate instances sharing logouts through a real Redis (a throwaway
//! `redis-server` per test), in front of a real upstream process.
//!
//! The upstream runs `--stateless`: it accepts revocations but revokes
//! nothing, like an IdP of self-contained JWTs. So a refusal on another
//! instance can only come from the shared feed, never from asking upstream.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{check_bearer, error_of, http, Idp, Redis, Server};

fn instance(idp: &Idp, redis: &Redis, dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut flags = idp.introspection_flags();
    flags.extend(["--redis".to_string(), redis.url()]);
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start(dir, &flags)
}

async fn status(server: &Server, token: &str) -> u16 {
    check_bearer(server, token, None).await.status().as_u16()
}

async fn logout(server: &Server, token: &str) -> (u16, String) {
    let response = http()
        .post(server.url("/v1/session/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    error_of(response).await
}

/// Polls `server` until `/v1/check` answers `want` for `token`; panics
/// after `within`. Returns how long it took.
async fn until_status(server: &Server, token: &str, want: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if status(server, token).await == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "no {want} within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_logout_on_one_instance_is_refused_at_once_by_every_other() {
    let idp = Idp::start(&["--stateless"]);
    let redis = Redis::start();
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let a = instance(&idp, &redis, dirs[0].path(), &[]);
    let b = instance(&idp, &redis, dirs[1].path(), &[]);
    let token = idp.mint("dave", "read", 600).await;
    let other = idp.mint("erin", "read", 600).await;
    for server in [&a, &b] {
        until_status(server, &token, 200, Duration::from_secs(5)).await;
        assert_eq!(status(server, &other).await, 200);
    }
    let calls = idp.calls("introspect").await;
    assert_eq!(status(&b, &token).await, 200);
    assert_eq!(idp.calls("introspect").await, calls, "b answers from cache");

    assert_eq!(logout(&a, &token).await, (200, String::new()));
    assert_eq!(status(&a, &token).await, 401, "refused at once here");
    let took = until_status(&b, &token, 401, Duration::from_secs(2)).await;
    eprintln!("the logout reached the other instance within {took:?}");
    assert_eq!(
        idp.calls("introspect").await,
        calls,
        "b refused from the shared revocation, without asking upstream \
         (which, being stateless, would still say active)"
    );
    assert_eq!(status(&b, &other).await, 200, "other tokens stay cached");

    // An instance that starts after the logout replays it before serving.
    let c = instance(&idp, &redis, dirs[2].path(), &[]);
    assert_eq!(status(&c, &token).await, 401);
    assert_eq!(status(&c, &other).await, 200);
    assert!(
        c.metric("postern_gate_oldest_unapplied_revocation_seconds")
            .await
            < 3.0,
        "0-1 s while the feed is live"
    );
}

#[tokio::test]
async fn while_redis_is_away_hits_go_upstream_and_logouts_fail_loudly() {
    let idp = Idp::start(&["--stateless"]);
    let redis = Redis::start();
    let port = redis.port;
    let dir = tempfile::tempdir().unwrap();
    let a = instance(&idp, &redis, dir.path(), &["--revocation-max-lag", "3s"]);
    let token = idp.mint("frank", "read", 600).await;
    let kept = idp.mint("heidi", "read", 600).await;
    until_status(&a, &token, 200, Duration::from_secs(5)).await;
    assert_eq!(status(&a, &kept).await, 200);
    let calls = idp.calls("introspect").await;
    assert_eq!(status(&a, &token).await, 200);
    assert_eq!(status(&a, &kept).await, 200);
    assert_eq!(
        idp.calls("introspect").await,
        calls,
        "hits while Redis is up"
    );

    redis.kill();
    let lag = "postern_gate_oldest_unapplied_revocation_seconds";
    let start = Instant::now();
    while a.metric(lag).await < 4.0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the lag never grew"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for n in 1..=2 {
        assert_eq!(status(&a, &token).await, 200);
        assert_eq!(
            idp.calls("introspect").await,
            calls + n,
            "a revocation could be unheard: every request asks upstream"
        );
    }
    assert_eq!(
        logout(&a, &token).await,
        (503, "revocation_not_shared".into()),
        "the client learns that the other instances were not told"
    );
    assert_eq!(
        idp.calls("revoke").await,
        1,
        "upstream was still asked to revoke"
    );
    assert_eq!(status(&a, &token).await, 401, "and it is refused here");

    // A restarted Redis (it keeps nothing on disk) may have lost
    // revocations nobody here heard: the cache is emptied.
    let _redis = Redis::start_on(port);
    let fresh = idp.mint("grace", "read", 600).await;
    let start = Instant::now();
    loop {
        assert_eq!(status(&a, &fresh).await, 200);
        let before = idp.calls("introspect").await;
        assert_eq!(status(&a, &fresh).await, 200);
        if idp.calls("introspect").await == before {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "hits did not resume after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.metric(lag).await < 3.0);
    let before = idp.calls("introspect").await;
    assert_eq!(status(&a, &kept).await, 200);
    assert_eq!(
        idp.calls("introspect").await,
        before + 1,
        "a token cached before Redis restarted is asked upstream again"
    );
}
