//! Login, resume, step-up, expiry, logout and restart, against the real
//! binary over real HTTP.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{device, enroll_and_login, http, Server};
use postern_client::http::ResumeResponse;

fn decision(r: &ResumeResponse) -> (&str, Option<&str>, u16) {
    (r.decision.as_str(), r.reason.as_deref(), r.status)
}

#[tokio::test]
async fn login_then_resume_follows_the_device_and_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (_, login) = enroll_and_login(&client, "alice", "laptop-1").await;
    assert_eq!(login.user, "alice");
    let stages: Vec<&str> = login.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(stages, ["identity", "attestation", "persist"]);
    assert!(login
        .stages
        .iter()
        .all(|s| s.outcome == "passed" && s.micros > 0.0));

    let ok = client
        .resume(&login.token, Some(&device("laptop-1")), None)
        .await
        .unwrap();
    assert_eq!(decision(&ok), ("resumed", None, 200));
    assert_eq!(ok.user.as_deref(), Some("alice"));
    assert_eq!(ok.session_id.as_deref(), Some(login.session_id.as_str()));

    let other = client
        .resume(&login.token, Some(&device("phone-9")), None)
        .await
        .unwrap();
    assert_eq!(
        decision(&other),
        ("full_auth_required", Some("device_mismatch"), 401)
    );
    let none = client.resume(&login.token, None, None).await.unwrap();
    assert_eq!(
        decision(&none),
        ("full_auth_required", Some("device_mismatch"), 401)
    );

    let sensitive = client
        .resume(&login.token, Some(&device("laptop-1")), Some("transfer"))
        .await
        .unwrap();
    assert_eq!(
        decision(&sensitive),
        ("step_up", Some("sensitive_operation"), 403)
    );
    let ordinary = client
        .resume(&login.token, Some(&device("laptop-1")), Some("read"))
        .await
        .unwrap();
    assert_eq!(decision(&ordinary), ("resumed", None, 200));
}

#[tokio::test]
async fn logout_revokes_at_once_and_the_token_then_answers_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (_, login) = enroll_and_login(&client, "bob", "laptop").await;
    let out = client.logout(&login.token).await.unwrap();
    assert!(out.revoked);
    assert_eq!(out.session_id.as_deref(), Some(login.session_id.as_str()));
    let after = client
        .resume(&login.token, Some(&device("laptop")), None)
        .await
        .unwrap();
    assert_eq!(
        decision(&after),
        ("full_auth_required", Some("revoked"), 401)
    );
    let check = http()
        .get(server.url("/v1/check"))
        .bearer_auth(&login.token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 401);
}

#[tokio::test]
async fn idle_timeout_and_expiry_come_back_with_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    // ttl = resume window = 2 s, idle 1 s.
    let server = Server::start(
        dir.path(),
        &[
            "--ttl",
            "2s",
            "--resume-window",
            "2s",
            "--idle-timeout",
            "1s",
        ],
    );
    let client = server.client();
    let identity = postern_client::identity_file::IdentityFile::generate("carol").unwrap();
    client.enroll(&identity).await.unwrap();
    let idle = client.login(&identity, &device("d")).await.unwrap();
    let busy = client.login(&identity, &device("d")).await.unwrap();
    // Keep `busy` active every 0.5 s; leave `idle` alone.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = client
            .resume(&busy.token, Some(&device("d")), None)
            .await
            .unwrap();
        assert_eq!(decision(&r), ("resumed", None, 200));
    }
    let r = client
        .resume(&idle.token, Some(&device("d")), None)
        .await
        .unwrap();
    assert_eq!(
        decision(&r),
        ("full_auth_required", Some("idle_timeout"), 401)
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = client
        .resume(&busy.token, Some(&device("d")), None)
        .await
        .unwrap();
    assert_eq!(decision(&r), ("full_auth_required", Some("expired"), 401));
}

#[tokio::test]
async fn the_resume_window_closes_before_the_session_expires() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--ttl",
            "10s",
            "--resume-window",
            "1500ms",
            "--idle-timeout",
            "1s",
        ],
    );
    let client = server.client();
    let (_, login) = enroll_and_login(&client, "dave", "d").await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let r = client
            .resume(&login.token, Some(&device("d")), None)
            .await
            .unwrap();
        assert_eq!(decision(&r), ("resumed", None, 200));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = client
        .resume(&login.token, Some(&device("d")), None)
        .await
        .unwrap();
    assert_eq!(
        decision(&r),
        ("full_auth_required", Some("resume_window_elapsed"), 401)
    );
}

#[tokio::test]
async fn a_server_killed_with_sigkill_restarts_with_every_acknowledged_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let identity = postern_client::identity_file::IdentityFile::generate("erin").unwrap();
    client.enroll(&identity).await.unwrap();
    let mut logins = Vec::new();
    for i in 0..5 {
        logins.push(
            client
                .login(&identity, &device(&format!("dev-{i}")))
                .await
                .unwrap(),
        );
    }
    client.logout(&logins[1].token).await.unwrap();
    client.logout(&logins[3].token).await.unwrap();
    server.kill();

    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    for (i, login) in logins.iter().enumerate() {
        let r = client
            .resume(&login.token, Some(&device(&format!("dev-{i}"))), None)
            .await
            .unwrap();
        if i == 1 || i == 3 {
            assert_eq!(
                decision(&r),
                ("full_auth_required", Some("revoked"), 401),
                "session {i}"
            );
        } else {
            assert_eq!(decision(&r), ("resumed", None, 200), "session {i}");
        }
    }
    // The enrolled identity survived too.
    client.login(&identity, &device("dev-9")).await.unwrap();
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully_and_sessions_survive() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (_, login) = enroll_and_login(&client, "frank", "d").await;
    assert!(server.terminate(), "postern should exit 0 on SIGTERM");
    let server = Server::start(dir.path(), &[]);
    let r = server
        .client()
        .resume(&login.token, Some(&device("d")), None)
        .await
        .unwrap();
    assert_eq!(decision(&r), ("resumed", None, 200));
}

#[tokio::test]
async fn a_tampered_record_on_disk_answers_tampered_after_restart() {
    use postern_core::token::SessionToken;
    use postern_store::embedded::RedbStore;
    use postern_store::{SessionRow, SessionStore};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, login) = enroll_and_login(&server.client(), "grace", "d").await;
    assert!(server.terminate());
    {
        // Rewrite the row with one flipped byte in its sealed record.
        let db = dir.path().join("sessions.redb");
        let id = SessionToken::parse(&login.token).unwrap().id();
        let original = RedbStore::open(&db).unwrap().get(&id).unwrap().unwrap();
        std::fs::remove_file(&db).unwrap();
        let store = RedbStore::open(&db).unwrap();
        let mut tampered: SessionRow = original;
        let mid = tampered.sealed.len() / 2;
        tampered.sealed[mid] ^= 0x20;
        store.insert(&tampered).unwrap();
    }
    let server = Server::start(dir.path(), &[]);
    let r = server
        .client()
        .resume(&login.token, Some(&device("d")), None)
        .await
        .unwrap();
    assert_eq!(decision(&r), ("full_auth_required", Some("tampered"), 401));
}

#[tokio::test]
async fn a_logout_cleared_on_disk_answers_tampered_after_restart_not_resumed() {
    use postern_core::token::SessionToken;
    use postern_store::embedded::RedbStore;
    use postern_store::SessionStore;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, login) = enroll_and_login(&server.client(), "heidi", "d").await;
    server.client().logout(&login.token).await.unwrap();
    assert!(server.terminate());
    {
        // A disk writer without the instance key clears the revocation
        // time in the row, in place (bytes 17..25 of an encoded row).
        let db = dir.path().join("sessions.redb");
        let id = SessionToken::parse(&login.token).unwrap().id();
        let row = RedbStore::open(&db).unwrap().get(&id).unwrap().unwrap();
        assert!(row.revoked_at.is_some());
        use redb::ReadableTable;
        let db = redb::Database::create(&db).unwrap();
        let table: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("sessions");
        let tx = db.begin_write().unwrap();
        {
            let mut sessions = tx.open_table(table).unwrap();
            let key = id.as_bytes().as_slice();
            let mut bytes = sessions.get(key).unwrap().unwrap().value().to_vec();
            bytes[17..25].fill(0);
            sessions.insert(key, bytes.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    let server = Server::start(dir.path(), &[]);
    let r = server
        .client()
        .resume(&login.token, Some(&device("d")), None)
        .await
        .unwrap();
    assert_eq!(decision(&r), ("full_auth_required", Some("tampered"), 401));
}

#[tokio::test]
async fn revoking_the_identity_key_revokes_every_session_made_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (identity, first) = enroll_and_login(&client, "erin", "laptop").await;
    let second = client.login(&identity, &device("phone")).await.unwrap();

    let revoke = |token: String, dev: &'static str| {
        let url = server.url("/v1/users/erin/identity?freeze=true");
        async move {
            http()
                .delete(url)
                .bearer_auth(token)
                .header("X-Postern-Device", dev)
                .send()
                .await
                .unwrap()
        }
    };
    let answer = revoke(first.token.clone(), "laptop").await;
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["revoked_sessions"], 2);
    assert_eq!(body["forgotten_proofs"], 2);

    for (login, dev) in [(&first, "laptop"), (&second, "phone")] {
        let r = client
            .resume(&login.token, Some(&device(dev)), None)
            .await
            .unwrap();
        assert_eq!(decision(&r), ("full_auth_required", Some("revoked"), 401));
    }
    // The revoked key cannot authenticate again; the refusal names no stage
    // detail beyond the standard 401.
    assert!(client.login(&identity, &device("laptop")).await.is_err());

    // Still revoked after a restart: the sessions were revoked in the store.
    server.kill();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let r = client
        .resume(&first.token, Some(&device("laptop")), None)
        .await
        .unwrap();
    assert_eq!(decision(&r), ("full_auth_required", Some("revoked"), 401));

    // Nobody can enroll a new key over the revoked one through the
    // unauthenticated enroll route (that would be an account takeover).
    let intruder = postern_client::identity_file::IdentityFile::generate("erin").unwrap();
    assert!(client.enroll(&intruder).await.is_err());
}

/// Logins that read the identity key before a revocation and mint after
/// it must not survive it: after the revocation answers and the logins
/// finish, every session they got resumes as `revoked`.
#[tokio::test]
async fn no_login_in_flight_during_an_identity_revocation_survives_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (identity, first) = enroll_and_login(&client, "erin", "laptop").await;
    let identity = std::sync::Arc::new(identity);
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (client, identity) = (client.clone(), identity.clone());
        logins.spawn(async move {
            client
                .login(&identity, &device(&format!("dev-{i}")))
                .await
                .ok()
                .map(|login| (login, format!("dev-{i}")))
        });
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let answer = http()
        .delete(server.url("/v1/users/erin/identity?freeze=true"))
        .bearer_auth(&first.token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    while let Some(outcome) = logins.join_next().await {
        if let Some((login, dev)) = outcome.unwrap() {
            let r = client
                .resume(&login.token, Some(&device(&dev)), None)
                .await
                .unwrap();
            assert_eq!(decision(&r), ("full_auth_required", Some("revoked"), 401));
        }
    }
}

/// Rotating a live identity key: a fresh session of the old key replaces
/// it; the old key's sessions (the caller's too) are revoked and the old
/// key no longer logs in; the new one does.
#[tokio::test]
async fn a_fresh_session_rotates_the_identity_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (old, session) = enroll_and_login(&client, "erin", "laptop").await;
    let new = postern_client::identity_file::IdentityFile::generate("erin").unwrap();

    // Another user's session, and no session at all, are refused.
    let (_, mallory) = enroll_and_login(&client, "mallory", "laptop").await;
    let err = client
        .replace_identity(&new, &mallory.token, "laptop")
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(403), Some("forbidden")));
    let anonymous = http()
        .put(server.url("/v1/users/erin/identity"))
        .json(&serde_json::json!({ "identity_public_key": "AAAA" }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let err = client
        .replace_identity(&old, &session.token, "laptop")
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(400), Some("same_identity_key"))
    );

    let replaced = client
        .replace_identity(&new, &session.token, "laptop")
        .await
        .unwrap();
    assert_eq!(replaced.revoked_sessions, 1);
    let r = client
        .resume(&session.token, Some(&device("laptop")), None)
        .await
        .unwrap();
    assert_eq!(decision(&r), ("full_auth_required", Some("revoked"), 401));
    assert!(client.login(&old, &device("laptop")).await.is_err());
    let again = client.login(&new, &device("laptop")).await.unwrap();
    let r = client
        .resume(&again.token, Some(&device("laptop")), None)
        .await
        .unwrap();
    assert_eq!(decision(&r).0, "resumed");

    // A session older than reauth_max_age may not replace the key.
    server.kill();
    let server = Server::start(dir.path(), &["--reauth-max-age", "1s"]);
    let client = server.client();
    let stale = client.login(&new, &device("laptop")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let newer = postern_client::identity_file::IdentityFile::generate("erin").unwrap();
    let err = client
        .replace_identity(&newer, &stale.token, "laptop")
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(403), Some("reauth_required"))
    );
}
