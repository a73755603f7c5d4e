//! Key management and configuration layering, through the real binary.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use base64::Engine as _;
use common::{device, enroll_and_login, postern, Server};
use serde_json::Value;

fn run_json(args: &[&str], data: &std::path::Path) -> (bool, Value, String) {
    let out = postern()
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `postern serve` on `data` with one environment variable set, for the
/// cases where it must refuse to start; returns its output.
fn serve_once(data: &std::path::Path, key: &str, value: &str) -> std::process::Output {
    postern()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env(key, value)
        .output()
        .unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn keys_init_show_and_rotate_keep_old_sessions_verifying() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (ok, init, _) = run_json(&["keys", "init"], data);
    assert!(ok);
    assert_eq!(init["generations"].as_array().unwrap().len(), 1);
    assert_eq!(mode(&data.join("instance.key")), 0o600);
    assert_eq!(mode(&data.join("keyring.bin")), 0o600);
    let (ok, _, err) = run_json(&["keys", "init"], data);
    assert!(!ok);
    assert!(err.contains("already exist"), "{err}");

    let fresh = dir.path().join("fresh");
    let probe = Server::start(&fresh, &[]);
    assert_eq!(
        mode(&fresh),
        0o700,
        "a data directory Postern creates is private"
    );
    drop(probe);

    let server = Server::start(data, &[]);
    let client = server.client();
    let (identity, before) = enroll_and_login(&client, "alice", "laptop").await;
    assert!(server.terminate());

    let (ok, rotated, _) = run_json(&["keys", "rotate"], data);
    assert!(ok);
    assert_eq!(rotated["current"], 2);
    let (ok, shown, _) = run_json(&["keys", "show", "--json"], data);
    assert!(ok);
    let generations = shown["generations"].as_array().unwrap();
    assert_eq!(generations.len(), 2);
    assert_eq!(generations[0]["current"], false);
    assert!(generations[0]["retired_at"].is_string());
    assert_eq!(generations[1]["current"], true);
    assert_eq!(
        shown["instance_key_fingerprint"].as_str().unwrap().len(),
        64
    );

    let server = Server::start(data, &[]);
    let client = server.client();
    let after = client.login(&identity, &device("laptop")).await.unwrap();
    for login in [&before, &after] {
        let r = client
            .resume(&login.token, Some(&device("laptop")), None)
            .await
            .unwrap();
        assert_eq!(r.decision, "resumed");
    }
}

#[tokio::test]
async fn an_older_keyring_file_put_back_after_a_rotation_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (ok, _, _) = run_json(&["keys", "init"], data);
    assert!(ok);
    let before_rotation = std::fs::read(data.join("keyring.bin")).unwrap();
    let (ok, shown, _) = run_json(&["keys", "show", "--json"], data);
    assert!(ok);
    assert_eq!(shown["revision"], 1);
    let (ok, _, _) = run_json(&["keys", "rotate"], data);
    assert!(ok);
    // The server records the revision it runs with...
    let server = Server::start(data, &[]);
    assert!(server.terminate());
    // ...so the copy from before the rotation is refused.
    std::fs::write(data.join("keyring.bin"), &before_rotation).unwrap();
    let out = postern()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("older copy (revision 1, but revision 2 was in use here)"),
        "{err}"
    );
}

#[tokio::test]
async fn the_instance_secret_can_live_in_the_environment_and_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let secret = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    let other = base64::engine::general_purpose::STANDARD.encode([8u8; 64]);
    let server = Server::start_with_env(dir.path(), &[], &[("POSTERN_INSTANCE_SECRET", &secret)]);
    let (_, login) = enroll_and_login(&server.client(), "alice", "laptop").await;
    assert!(server.terminate());
    assert!(
        !dir.path().join("instance.key").exists(),
        "no key file when the secret comes from the environment"
    );

    // The keyring alone is useless: another instance secret cannot open it.
    let out = serve_once(dir.path(), "POSTERN_INSTANCE_SECRET", &other);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("different instance key"), "{err}");

    let bad = serve_once(dir.path(), "POSTERN_INSTANCE_SECRET", "too-short");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("POSTERN_INSTANCE_SECRET must be base64"));

    let server = Server::start_with_env(dir.path(), &[], &[("POSTERN_INSTANCE_SECRET", &secret)]);
    let r = server
        .client()
        .resume(&login.token, Some(&device("laptop")), None)
        .await
        .unwrap();
    assert_eq!(r.decision, "resumed");
}

#[tokio::test]
async fn the_environment_overrides_the_file_and_flags_override_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        "[session]\nttl = \"1h\"\nresume_window = \"10m\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let env_wins = Server::start_with_env(
        &dir.path().join("a"),
        &["--config", config],
        &[("POSTERN_RESUME_WINDOW", "1s")],
    );
    let flag_wins = Server::start_with_env(
        &dir.path().join("b"),
        &["--config", config, "--resume-window", "30m"],
        &[("POSTERN_RESUME_WINDOW", "1s")],
    );
    let (_, a) = enroll_and_login(&env_wins.client(), "alice", "d").await;
    let (_, b) = enroll_and_login(&flag_wins.client(), "alice", "d").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = env_wins
        .client()
        .resume(&a.token, Some(&device("d")), None)
        .await
        .unwrap();
    assert_eq!(r.reason.as_deref(), Some("resume_window_elapsed"));
    let r = flag_wins
        .client()
        .resume(&b.token, Some(&device("d")), None)
        .await
        .unwrap();
    assert_eq!(r.decision, "resumed");
}

#[test]
fn a_bad_config_file_stops_the_server_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(&config, "[session]\nresume_window = \"9h\"\n").unwrap();
    let out = postern()
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("resume_window must be positive and no longer than ttl"),
        "{err}"
    );
}

#[tokio::test]
async fn the_instance_key_can_be_derived_from_a_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let phrase = [(
        "POSTERN_INSTANCE_PASSPHRASE",
        "correct horse battery staple",
    )];
    let server = Server::start_with_env(dir.path(), &[], &phrase);
    let (_, login) = enroll_and_login(&server.client(), "alice", "laptop").await;
    assert!(server.terminate());
    assert!(!dir.path().join("instance.key").exists());
    assert_eq!(mode(&dir.path().join("instance.salt")), 0o600);

    let wrong = serve_once(
        dir.path(),
        "POSTERN_INSTANCE_PASSPHRASE",
        "a different passphrase",
    );
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("different instance key"));
    let weak = serve_once(dir.path(), "POSTERN_INSTANCE_PASSPHRASE", "short");
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12 characters"));

    let server = Server::start_with_env(dir.path(), &[], &phrase);
    let r = server
        .client()
        .resume(&login.token, Some(&device("laptop")), None)
        .await
        .unwrap();
    assert_eq!(r.decision, "resumed");
}

#[test]
fn keys_show_prints_for_people_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let seed = [7u8; 64];
    let secret = base64::engine::general_purpose::STANDARD.encode(seed);
    let keys = |args: &[&str]| {
        let out = postern()
            .arg("keys")
            .args(args)
            .arg("--data")
            .arg(data)
            .env("POSTERN_INSTANCE_SECRET", &secret)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    keys(&["init"]);
    keys(&["rotate"]);
    let shown: Value = serde_json::from_str(&keys(&["show", "--json"])).unwrap();
    assert_eq!(
        shown["instance_key_source"], "environment (POSTERN_INSTANCE_SECRET)",
        "words, not Debug output"
    );
    let generations = shown["generations"].as_array().unwrap();
    let at = |i: usize, field: &str| generations[i][field].as_str().unwrap().to_owned();
    let text = keys(&["show"]);
    let expected = format!(
        "Keyring       {keyring} (revision 2)\n\
         Instance key  ML-KEM-768, from environment (POSTERN_INSTANCE_SECRET)\n\
         \x20             fingerprint {fingerprint} (SHA3-256 of the public key)\n\
         \n\
         Key generations (each: AES-256-GCM sealing, HMAC-SHA256 device binding, ML-DSA-65 signing; stored encrypted to the instance key)\n\
         \x20 KEY ID  STATE     CREATED                   RETIRED\n\
         \x20      1  retired   {created_1}  {retired_1}\n\
         \x20      2  current   {created_2}  -\n\
         \n\
         New sessions are minted under generation 2; sessions of a retired generation keep verifying until they expire.\n",
        keyring = data.join("keyring.bin").display(),
        fingerprint = shown["instance_key_fingerprint"].as_str().unwrap(),
        created_1 = at(0, "created_at"),
        retired_1 = at(0, "retired_at"),
        created_2 = at(1, "created_at"),
    );
    assert_eq!(text, expected);
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    for secret_text in [&secret, &hex] {
        assert!(!text.contains(secret_text.as_str()));
    }
    let keyring = std::fs::read(data.join("keyring.bin")).unwrap();
    let wrapped = base64::engine::general_purpose::STANDARD.encode(&keyring);
    assert!(!text.contains(&wrapped[..32]));
}
