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

/// The key every instance of these tests shares for the revocation feed.
const FEED_KEY: &str = "0123456789abcdef0123456789abcdef";

fn instance(idp: &Idp, redis: &Redis, dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut flags = idp.introspection_flags();
    flags.extend(["--redis".to_string(), redis.url()]);
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start_with_env(dir, &flags, &[("POSTERN_REDIS_FEED_KEY", FEED_KEY)])
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

/// The first 16 bytes of the token's SHA-256, in hex: the feed's `d`.
fn digest_hex(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `XADD` to the feed's stream straight into Redis, as anyone who can
/// write to Redis (but does not hold the feed key) could.
fn xadd(redis: &Redis, fields: &[&str]) {
    let status = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "XADD",
            "postern:gate:revocations",
            "*",
        ])
        .args(fields)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn entries_written_into_redis_without_the_feed_key_are_ignored() {
    let idp = Idp::start(&["--stateless"]);
    let redis = Redis::start();
    let dirs = [(); 2].map(|()| tempfile::tempdir().unwrap());
    let a = instance(&idp, &redis, dirs[0].path(), &[]);
    let b = instance(&idp, &redis, dirs[1].path(), &[]);
    let victim = idp.mint("ivan", "read", 600).await;
    let witness = idp.mint("judy", "read", 600).await;
    for token in [&victim, &witness] {
        until_status(&a, token, 200, Duration::from_secs(5)).await;
    }
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        + 600_000_000_000)
        .to_string();
    let d = digest_hex(&victim);
    // No MAC, and a made-up one.
    xadd(&redis, &["d", &d, "u", &until]);
    xadd(&redis, &["d", &d, "u", &until, "m", &"ab".repeat(32)]);
    // A genuine entry, written by b's logout of the witness, comes after.
    assert_eq!(logout(&b, &witness).await, (200, String::new()));
    until_status(&a, &witness, 401, Duration::from_secs(3)).await;
    assert_eq!(
        status(&a, &victim).await,
        200,
        "the forged revocations before the genuine one were not applied"
    );
    assert_eq!(
        a.metric("postern_gate_feed_entries_rejected_total").await,
        2.0
    );
    assert_eq!(
        b.metric("postern_gate_feed_entries_rejected_total").await,
        2.0
    );
}
