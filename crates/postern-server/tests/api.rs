//! The HTTP contract: check, user sessions, operations endpoints, and bad
//! input that must get its documented error and change nothing.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{device, enroll_and_login, error_of, http, Server};
use postern_client::identity_file::IdentityFile;
use serde_json::{json, Value};

async fn session_count(server: &Server, user: &str, token: &str, dev: &str) -> usize {
    let list: Value = http()
        .get(server.url(&format!("/v1/users/{user}/sessions")))
        .bearer_auth(token)
        .header("X-Postern-Device", dev)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["sessions"].as_array().unwrap().len()
}

#[tokio::test]
async fn check_is_a_forward_auth_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, login) = enroll_and_login(&server.client(), "alice", "laptop").await;
    let ok = http()
        .get(server.url("/v1/check"))
        .bearer_auth(&login.token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-postern-user"], "alice");
    assert_eq!(ok.headers()["x-postern-session"], login.session_id.as_str());

    let missing = http().get(server.url("/v1/check")).send().await.unwrap();
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_of(missing).await, (401, "missing_token".into()));

    let wrong_device = http()
        .get(server.url("/v1/check"))
        .bearer_auth(&login.token)
        .header("X-Postern-Device", "phone")
        .send()
        .await
        .unwrap();
    let body: Value = wrong_device.json().await.unwrap();
    assert_eq!(body["error"], "full_auth_required");
    assert_eq!(body["reason"], "device_mismatch");

    let step_up = http()
        .get(server.url("/v1/check"))
        .bearer_auth(&login.token)
        .header("X-Postern-Device", "laptop")
        .header("X-Postern-Operation", "delete")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(step_up).await, (403, "step_up_required".into()));

    let garbage = http()
        .get(server.url("/v1/check"))
        .header("Authorization", "Bearer not-a-token")
        .send()
        .await
        .unwrap();
    // RFC 6750 §3.1: whatever is wrong with a bearer token, 401 invalid_token.
    assert_eq!(
        garbage.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(error_of(garbage).await, (401, "invalid_token".into()));
}

#[tokio::test]
async fn a_user_lists_and_revokes_their_own_sessions_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (identity, first) = enroll_and_login(&client, "alice", "laptop").await;
    let second = client.login(&identity, &device("phone")).await.unwrap();
    let third = client.login(&identity, &device("tablet")).await.unwrap();
    let (_, bob) = enroll_and_login(&client, "bob", "bobs").await;

    let list: Value = http()
        .get(server.url("/v1/users/alice/sessions"))
        .bearer_auth(&first.token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(
        !list.to_string().contains(&first.token[5..]),
        "listing must not contain tokens"
    );

    let foreign = http()
        .get(server.url("/v1/users/alice/sessions"))
        .bearer_auth(&bob.token)
        .header("X-Postern-Device", "bobs")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(foreign).await, (403, "forbidden".into()));

    let one = http()
        .delete(server.url(&format!("/v1/users/alice/sessions/{}", second.session_id)))
        .bearer_auth(&first.token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(one.json::<Value>().await.unwrap(), json!({ "revoked": 1 }));
    let r = client
        .resume(&second.token, Some(&device("phone")), None)
        .await
        .unwrap();
    assert_eq!(r.reason.as_deref(), Some("revoked"));
    let r = client
        .resume(&third.token, Some(&device("tablet")), None)
        .await
        .unwrap();
    assert_eq!(r.decision, "resumed");

    let unknown = http()
        .delete(server.url(&format!("/v1/users/alice/sessions/{}", bob.session_id)))
        .bearer_auth(&first.token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(unknown).await, (404, "not_found".into()));

    let all = http()
        .delete(server.url("/v1/users/alice/sessions"))
        .bearer_auth(&third.token)
        .header("X-Postern-Device", "tablet")
        .send()
        .await
        .unwrap();
    assert_eq!(all.json::<Value>().await.unwrap(), json!({ "revoked": 2 }));
    for (login, dev) in [(&first, "laptop"), (&third, "tablet")] {
        let r = client
            .resume(&login.token, Some(&device(dev)), None)
            .await
            .unwrap();
        assert_eq!(r.reason.as_deref(), Some("revoked"));
    }
    let r = client
        .resume(&bob.token, Some(&device("bobs")), None)
        .await
        .unwrap();
    assert_eq!(
        r.decision, "resumed",
        "log out everywhere touches only that user"
    );
}

#[tokio::test]
async fn bad_input_gets_its_documented_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--challenge-ttl", "300ms"]);
    let client = server.client();
    let (identity, login) = enroll_and_login(&client, "alice", "laptop").await;
    let h = http();
    let post = |path: &str| h.post(server.url(path));

    // Malformed JSON, wrong content type, unknown fields, oversized bodies.
    let r = post("/v1/auth/challenge")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_json".into()));
    let r = post("/v1/auth/challenge")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (415, "unsupported_media_type".into()));
    let r = post("/v1/auth/challenge")
        .json(&json!({ "user": "alice", "admin": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_request".into()));
    let huge = json!({ "token": "x".repeat(20_000) });
    let r = post("/v1/session/resume").json(&huge).send().await.unwrap();
    assert_eq!(error_of(r).await, (413, "payload_too_large".into()));

    // Invalid user ids and keys.
    let r = post("/v1/auth/challenge")
        .json(&json!({ "user": "bad user!" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_user".into()));
    let r = post("/v1/users/mallory/enroll")
        .json(&json!({ "identity_public_key": "AAAA" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_identity_key".into()));
    let again = client.enroll(&identity).await.unwrap_err();
    assert_eq!(
        (again.status(), again.code()),
        (Some(409), Some("already_enrolled"))
    );

    // Garbage and unknown tokens.
    let r = post("/v1/session/resume")
        .json(&json!({ "token": "garbage", "device": "laptop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (400, "malformed_token".into()));
    let stranger = postern_core::token::SessionToken::generate(&mut rand::thread_rng()).expose();
    let r = client
        .resume(&stranger, Some(&device("laptop")), None)
        .await
        .unwrap();
    assert_eq!(
        (r.decision.as_str(), r.reason.as_deref(), r.status),
        ("full_auth_required", Some("unknown"), 401)
    );
    let r = post("/v1/session/resume")
        .json(&json!({ "token": login.token, "device": "laptop", "risk_score": 7.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_risk_score".into()));
    let r = post("/v1/session/logout")
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (401, "full_auth_required".into()));

    // Unknown users, wrong proofs, replayed, foreign and expired challenges.
    let ghost = IdentityFile::generate("ghost").unwrap();
    let err = client.login(&ghost, &device("laptop")).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("authentication_failed"))
    );
    let challenge = client.challenge("alice").await.unwrap();
    let proof =
        postern_client::http::prove(&identity, &challenge, &device("laptop"), client.audience())
            .unwrap();
    let err = client
        .full(
            "alice",
            &challenge.challenge_id,
            &device("another-device"),
            &proof,
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("authentication_failed")),
        "proof bound to another device"
    );
    let err = client
        .full("alice", &challenge.challenge_id, &device("laptop"), &proof)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("challenge_invalid")),
        "replay"
    );
    // A look-alike server relayed this server's challenge: the client bound
    // its proof to the origin it was talking to, which is not ours.
    let relayed = client.challenge("alice").await.unwrap();
    let evil = "https://auth.example.evil";
    let proof = postern_client::http::prove(&identity, &relayed, &device("laptop"), evil).unwrap();
    let err = client
        .full("alice", &relayed.challenge_id, &device("laptop"), &proof)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("authentication_failed")),
        "a proof made for another deployment"
    );
    let relayed = client.challenge("alice").await.unwrap();
    let proof = postern_client::http::prove(&identity, &relayed, &device("laptop"), evil).unwrap();
    let named = http()
        .post(server.url("/v1/auth/full"))
        .json(
            &json!({"user": "alice", "challenge_id": relayed.challenge_id, "device": "laptop",
            "identity_proof": proof, "audience": evil}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(named).await,
        (400, "unknown_audience".into()),
        "naming the look-alike's origin is refused before the proof is looked at"
    );
    let foreign = client.challenge("bob").await.unwrap();
    let proof =
        postern_client::http::prove(&identity, &foreign, &device("laptop"), client.audience())
            .unwrap();
    let err = client
        .full("alice", &foreign.challenge_id, &device("laptop"), &proof)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("challenge_invalid")),
        "foreign challenge"
    );
    let late = client.challenge("alice").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let proof = postern_client::http::prove(&identity, &late, &device("laptop"), client.audience())
        .unwrap();
    let err = client
        .full("alice", &late.challenge_id, &device("laptop"), &proof)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("challenge_expired"))
    );
    let r = post("/v1/auth/full")
        .json(&json!({ "user": "alice", "challenge_id": "!!", "device": "laptop", "identity_proof": proof }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_challenge_id".into()));

    // Nothing above made or broke a session.
    assert_eq!(
        session_count(&server, "alice", &login.token, "laptop").await,
        1
    );
    let r = client
        .resume(&login.token, Some(&device("laptop")), None)
        .await
        .unwrap();
    assert_eq!(r.decision, "resumed");
    let r = h.get(server.url("/no/such/route")).send().await.unwrap();
    assert_eq!(error_of(r).await, (404, "not_found".into()));
}

#[tokio::test]
async fn operations_endpoints_report_health_metrics_and_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (_, login) = enroll_and_login(&client, "alice", "laptop").await;
    client
        .resume(&login.token, Some(&device("laptop")), None)
        .await
        .unwrap();
    client
        .resume(&login.token, Some(&device("phone")), None)
        .await
        .unwrap();

    assert_eq!(
        http()
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    assert_eq!(
        http()
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let metrics = server.metrics().await;
    for expected in [
        "postern_http_requests_total{endpoint=\"/v1/session/resume\",method=\"POST\",status=\"200\"} 1",
        "postern_http_requests_total{endpoint=\"/v1/session/resume\",method=\"POST\",status=\"401\"} 1",
        "postern_resume_decisions_total{decision=\"resumed\",reason=\"none\"} 1",
        "postern_resume_decisions_total{decision=\"full_auth_required\",reason=\"device_mismatch\"} 1",
        "postern_auth_stage_duration_seconds_count{stage=\"identity\",outcome=\"passed\"} 1",
        "postern_auth_stage_duration_seconds_count{stage=\"attestation\",outcome=\"passed\"} 1",
        "postern_http_request_duration_seconds_bucket{",
        "postern_active_sessions 1",
    ] {
        assert!(metrics.contains(expected), "missing `{expected}` in:\n{metrics}");
    }
    assert!(
        !metrics.contains(&login.token[5..]),
        "metrics must not contain a token"
    );

    let api: Value = http()
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/users/{user}/enroll",
        "/v1/auth/challenge",
        "/v1/auth/full",
        "/v1/passkeys/register/start",
        "/v1/passkeys/register/finish",
        "/v1/passkeys/login/start",
        "/v1/passkeys/login/finish",
        "/v1/session/resume",
        "/v1/session/logout",
        "/v1/check",
        "/v1/users/{user}/sessions",
        "/v1/users/{user}/sessions/{session}",
    ] {
        assert!(api["paths"][path].is_object(), "openapi lacks {path}");
    }
}

/// The one body every failed full authentication answers, byte for byte.
const FAILED: &str = r#"{"error":"authentication_failed","message":"authentication failed"}"#;

/// A raw `/v1/auth/full` for `user` with `identity`'s proof (or none);
/// returns the status and the body's bytes.
async fn full_raw(server: &Server, user: &str, identity: Option<&IdentityFile>) -> (u16, String) {
    let client = server.client();
    let challenge = client.challenge(user).await.unwrap();
    let proof = identity.map(|id| {
        postern_client::http::prove(id, &challenge, &device("laptop"), client.audience()).unwrap()
    });
    let answer = http()
        .post(server.url("/v1/auth/full"))
        .json(&json!({
            "user": user, "challenge_id": challenge.challenge_id,
            "device": "laptop", "identity_proof": proof,
        }))
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// An unknown user, a wrong proof, a missing proof and a revoked key get
/// byte-identical answers: no stage list, no outcome, no time. The detail
/// is in the metrics.
#[tokio::test]
async fn every_failed_full_authentication_answers_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (alice, _) = enroll_and_login(&client, "alice", "laptop").await;
    let (carol, carols) = enroll_and_login(&client, "carol", "laptop").await;
    let revoked = http()
        .delete(server.url("/v1/users/carol/identity?freeze=true"))
        .bearer_auth(&carols.token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let ghost = IdentityFile::generate("ghost").unwrap();
    let mallory = IdentityFile::generate("alice").unwrap();

    let unknown = full_raw(&server, "ghost", Some(&ghost)).await;
    let wrong = full_raw(&server, "alice", Some(&mallory)).await;
    let missing = full_raw(&server, "alice", None).await;
    let unknown_missing = full_raw(&server, "ghost", None).await;
    let revoked = full_raw(&server, "carol", Some(&carol)).await;
    for answer in [&unknown, &wrong, &missing, &unknown_missing, &revoked] {
        assert_eq!(answer, &(401, FAILED.to_string()));
    }
    assert_eq!(full_raw(&server, "alice", Some(&alice)).await.0, 200);

    let metrics = server.metrics().await;
    for (outcome, count) in [("credential_revoked", 1), ("missing", 1), ("rejected", 3)] {
        let line = format!(
            "postern_auth_stage_duration_seconds_count{{stage=\"identity\",outcome=\"{outcome}\"}} {count}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}
