//! The README's biometric walkthrough, command for command, through the
//! real `postern` binary: a `--stages identity,biometric` server, `client
//! enroll --biometric`, the same person passing and another failing with
//! `client login --biometric`, using the committed example embeddings; and
//! the CLI's errors for embedding files that are not embeddings.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{postern, Server};
use postern_client::embedding;
use serde_json::Value;

/// `docs/examples/NAME`.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/examples")
        .join(name)
}

/// `postern client ARGS` as a user in the walkthrough runs it: the
/// identity file in their config directory, the server from
/// `POSTERN_SERVER`.
fn client(server: &str, home: &Path, args: &[&str]) -> Output {
    postern()
        .arg("client")
        .args(args)
        .env("XDG_CONFIG_HOME", home)
        .env("POSTERN_SERVER", server)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn the_example_embeddings_are_one_person_twice_and_someone_else() {
    let read = |name| embedding::parse(&std::fs::read_to_string(example(name)).unwrap()).unwrap();
    let (alice, again, mallory) = (
        read("alice.json"),
        read("alice-again.json"),
        read("mallory.json"),
    );
    // The server's default threshold is 0.8.
    assert!(cosine(&alice, &again) > 0.95, "{}", cosine(&alice, &again));
    assert!(
        cosine(&alice, &mallory).abs() < 0.2,
        "{}",
        cosine(&alice, &mallory)
    );
}

#[test]
fn the_readme_walkthrough_enrolls_passes_alice_again_and_refuses_mallory() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let server = Server::start(
        &dir.path().join("data"),
        &["--stages", "identity,biometric"],
    );
    let alice = example("alice.json");
    let alice_again = example("alice-again.json");
    let mallory = example("mallory.json");

    let out = client(
        &server.base,
        &home,
        &[
            "enroll",
            "--user",
            "alice",
            "--biometric",
            alice.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let enrolled: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(enrolled["user"], "alice");
    assert_eq!(enrolled["biometric"], true);
    assert!(home.join("postern/alice.identity").exists());

    let login = |file: &Path| {
        client(
            &server.base,
            &home,
            &[
                "login",
                "--user",
                "alice",
                "--device",
                "laptop-1",
                "--biometric",
                file.to_str().unwrap(),
            ],
        )
    };
    let out = login(&alice_again);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let session: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(session["token"].as_str().unwrap().starts_with("pst1."));
    let stages: Vec<(&str, &str)> = session["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
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
    // The stage times, for people, on stderr: one line per stage.
    let times = text(&out.stderr);
    let lines: Vec<Vec<&str>> = times
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 4, "{times}");
    for (line, (stage, outcome)) in lines.iter().zip(&stages) {
        assert_eq!(line[..2], [*stage, *outcome], "{times}");
        assert!(line[2].parse::<f64>().unwrap() >= 0.0, "{times}");
        assert_eq!(line[3], "ms");
    }

    let out = login(&mallory);
    assert!(!out.status.success());
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(refused["error"], "authentication_failed");
    assert_eq!(
        text(&out.stderr).trim(),
        "postern: server answered 401: authentication_failed: authentication failed"
    );
}

#[test]
fn an_embedding_file_that_is_not_an_embedding_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // Nothing listens here (the discard port): each file must be refused
    // before any request.
    let server = "http://127.0.0.1:9";
    let numbers = |n: usize| {
        (0..n)
            .map(|i| format!("{}", i as f32 / 100.0))
            .collect::<Vec<_>>()
            .join(",")
    };
    let cases = [
        (
            format!("[{}]", numbers(127)),
            "holds 127 numbers; an embedding has exactly 128",
        ),
        (
            format!("[{},\"0.5\"]", numbers(127)),
            "item 127 (counting from 0) is not a number: \"0.5\"",
        ),
        (
            format!("[{},NaN]", numbers(127)),
            "NaN and Infinity are not numbers an embedding may hold",
        ),
        ("{\"embedding\": []}".to_string(), "not a JSON array"),
    ];
    for (i, (content, reason)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad-{i}.json"));
        std::fs::write(&file, content).unwrap();
        for command in ["enroll", "login"] {
            let mut args = vec![
                command,
                "--user",
                "alice",
                "--biometric",
                file.to_str().unwrap(),
            ];
            if command == "login" {
                args.extend(["--device", "laptop-1"]);
            }
            let out = client(server, &home, &args);
            assert!(!out.status.success());
            let stderr = text(&out.stderr);
            assert!(
                stderr.starts_with(&format!("postern: {}: not an embedding: ", file.display()))
                    && stderr.contains(reason),
                "{command} {content}: {stderr}"
            );
        }
    }
    assert!(
        !home.join("postern/alice.identity").exists(),
        "a bad file stops enroll before it writes an identity"
    );
}
