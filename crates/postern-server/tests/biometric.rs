//! The encrypted biometric stage through the real binary over real HTTP:
//! enroll an encrypted template, log in with encrypted probes (the same
//! person passes, another person and a missing or malformed probe do not),
//! and turbo mode deciding concurrent users in one batch, each in its own
//! batch slot, with sessions that survive a restart.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{device, http, Server};
use postern_client::biometric::{BiometricClient, TestPerson};
use postern_client::http::{ClientError, PosternClient};
use postern_client::identity_file::IdentityFile;
use serde_json::{json, Value};

const STANDARD: &[&str] = &["--stages", "identity,biometric"];

/// A refusal is the fixed `authentication_failed` body; why the
/// biometric stage refused is counted in the metrics only.
async fn refused_by_biometric(server: &Server, error: &ClientError, outcome: &str) -> f64 {
    match error {
        ClientError::Api {
            status: 401, body, ..
        } => assert_eq!(
            body,
            &json!({ "error": "authentication_failed", "message": "authentication failed" })
        ),
        other => panic!("not a refusal: {other}"),
    }
    let name = format!(
        "postern_auth_stage_duration_seconds_count{{stage=\"biometric\",outcome=\"{outcome}\"}}"
    );
    server.metric(&name).await
}

async fn enroll(
    client: &PosternClient,
    bio: &BiometricClient,
    user: &str,
    person: &TestPerson,
) -> IdentityFile {
    let identity = IdentityFile::generate(user).unwrap();
    let template = bio.template(&person.embedding()).unwrap();
    client
        .enroll_with_template(&identity, Some(&template))
        .await
        .unwrap();
    identity
}

#[tokio::test]
async fn the_same_person_passes_and_anyone_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), STANDARD);
    let client = server.client();
    let public_key = client.biometric_public_key().await.unwrap();
    let bio = BiometricClient::new(&public_key).unwrap();
    let alice = TestPerson::new(1);
    let identity = enroll(&client, &bio, "alice", &alice).await;

    let probe = bio.probe(&alice.capture(0.2, 7)).unwrap();
    let login = client
        .login_with_probe(&identity, &device("laptop"), Some(&probe))
        .await
        .unwrap();
    let stages: Vec<(&str, &str)> = login
        .stages
        .iter()
        .map(|s| (s.stage.as_str(), s.outcome.as_str()))
        .collect();
    assert_eq!(
        stages,
        [
            ("identity", "passed"),
            ("biometric", "passed"),
            ("attestation", "passed"),
            ("persist", "passed")
        ]
    );
    assert_eq!(login.batch_slot, None, "standard mode has no batch slot");

    let mallory = TestPerson::new(2);
    let wrong = bio.probe(&mallory.capture(0.1, 8)).unwrap();
    let refused = client
        .login_with_probe(&identity, &device("laptop"), Some(&wrong))
        .await
        .unwrap_err();
    assert_eq!(
        refused_by_biometric(&server, &refused, "rejected").await,
        1.0
    );
    let missing = client
        .login(&identity, &device("laptop"))
        .await
        .unwrap_err();
    assert_eq!(
        refused_by_biometric(&server, &missing, "missing").await,
        1.0
    );
    let truncated = client
        .login_with_probe(&identity, &device("laptop"), Some(&probe[..1000]))
        .await
        .unwrap_err();
    assert_eq!(
        refused_by_biometric(&server, &truncated, "malformed").await,
        1.0
    );
    // A template sent as the probe is the wrong kind of ciphertext.
    let template = bio.template(&alice.embedding()).unwrap();
    let confused = client
        .login_with_probe(&identity, &device("laptop"), Some(&template))
        .await
        .unwrap_err();
    assert_eq!(
        refused_by_biometric(&server, &confused, "malformed").await,
        2.0
    );

    // Enrollment checks the template is a well-formed ciphertext, and the
    // public-key endpoint exists only when the stage is on.
    let bad = http()
        .post(server.url("/v1/users/bob/enroll"))
        .json(&json!({
            "identity_public_key": URL_SAFE_NO_PAD.encode(IdentityFile::generate("bob").unwrap().public_key().as_bytes()),
            "biometric_template": URL_SAFE_NO_PAD.encode(&probe),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_biometric_template");

    // The seed of the key holder survives a restart: the stored template
    // still matches a probe encrypted under the restarted key holder's key.
    drop(server);
    let server = Server::start(dir.path(), STANDARD);
    let client = server.client();
    let bio = BiometricClient::new(&client.biometric_public_key().await.unwrap()).unwrap();
    let probe = bio.probe(&alice.capture(0.2, 9)).unwrap();
    client
        .login_with_probe(&identity, &device("laptop"), Some(&probe))
        .await
        .unwrap();

    let plain_dir = tempfile::tempdir().unwrap();
    let plain = Server::start(plain_dir.path(), &[]);
    let r = http()
        .get(plain.url("/v1/biometric/public-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

async fn prepared_templates(server: &Server) -> String {
    let text = server.metrics().await;
    text.lines()
        .find(|l| l.starts_with("postern_biometric_prepared_templates "))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_revoked_users_prepared_template_is_dropped_and_the_cache_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), STANDARD);
    let client = server.client();
    let bio = BiometricClient::new(&client.biometric_public_key().await.unwrap()).unwrap();
    let frank = TestPerson::new(6);
    let identity = enroll(&client, &bio, "frank", &frank).await;
    assert_eq!(
        prepared_templates(&server).await,
        "postern_biometric_prepared_templates 0"
    );
    let mut token = String::new();
    for seed in [1, 2] {
        let probe = bio.probe(&frank.capture(0.2, seed)).unwrap();
        token = client
            .login_with_probe(&identity, &device("laptop"), Some(&probe))
            .await
            .unwrap()
            .token;
        // The second login is served from the cache: still one entry.
        assert_eq!(
            prepared_templates(&server).await,
            "postern_biometric_prepared_templates 1"
        );
    }
    let answer = http()
        .delete(server.url("/v1/users/frank/identity?freeze=true"))
        .bearer_auth(token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        prepared_templates(&server).await,
        "postern_biometric_prepared_templates 0"
    );
    drop(server);

    // With the cache off, logins still pass and nothing is held.
    let dir = tempfile::tempdir().unwrap();
    let args = [STANDARD, &["--biometric-prepared-cache-mb", "0"]].concat();
    let server = Server::start(dir.path(), &args);
    let client = server.client();
    let bio = BiometricClient::new(&client.biometric_public_key().await.unwrap()).unwrap();
    let identity = enroll(&client, &bio, "gina", &frank).await;
    let probe = bio.probe(&frank.capture(0.2, 3)).unwrap();
    client
        .login_with_probe(&identity, &device("laptop"), Some(&probe))
        .await
        .unwrap();
    assert_eq!(
        prepared_templates(&server).await,
        "postern_biometric_prepared_templates 0"
    );
}

#[tokio::test]
async fn turbo_decides_concurrent_users_in_one_batch_each_in_its_own_slot() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--stages",
        "identity,biometric",
        "--biometric-mode",
        "turbo",
        "--turbo-deadline",
        "400ms",
    ];
    let server = Server::start(dir.path(), &args);
    let client = server.client();
    let bio = BiometricClient::new(&client.biometric_public_key().await.unwrap()).unwrap();
    let mut users = Vec::new();
    for i in 0..6u64 {
        let person = TestPerson::new(100 + i);
        let identity = enroll(&client, &bio, &format!("user{i}"), &person).await;
        let probe = bio.probe(&person.capture(0.2, i)).unwrap();
        users.push((std::sync::Arc::new(identity), probe));
    }
    let logins = futures_join_all(&client, &users).await;
    let mut slots: Vec<u8> = logins.iter().map(|l| l.batch_slot.unwrap()).collect();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), users.len(), "each user has its own slot");

    drop(server);
    let server = Server::start(dir.path(), &args);
    let client = server.client();
    for login in &logins {
        let r = client
            .resume(&login.token, Some(&device("laptop")), None)
            .await
            .unwrap();
        assert_eq!(r.decision, "resumed", "a batch-attested session restores");
    }
}

async fn futures_join_all(
    client: &PosternClient,
    users: &[(std::sync::Arc<IdentityFile>, Vec<u8>)],
) -> Vec<postern_client::http::LoginResponse> {
    let tasks: Vec<_> = users
        .iter()
        .map(|(identity, probe)| {
            let client = client.clone();
            let identity = identity.clone();
            let probe = probe.clone();
            tokio::spawn(async move {
                client
                    .login_with_probe(&identity, &device("laptop"), Some(&probe))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}
