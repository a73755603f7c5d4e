//! The OpenAPI document against the running server, cheaply and without
//! Python (schemathesis, in `conformance/schemathesis.sh`, is the thorough
//! check): every operation `/openapi.json` lists is routed, and what it
//! answers to requests malformed in each way the server's machinery refuses
//! (no body, a body that is not JSON or not labelled JSON, a body over the
//! limit, a bearer token that is no token, a path segment that is not
//! UTF-8, a method the path does not have) is a status the document lists
//! for that operation, with the documented content type.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{enroll_and_login, Server};
use reqwest::Method;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// A client that shows redirects rather than following them.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `path` with every `{param}` replaced by `value(param)`.
fn fill(path: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&rest[..open]);
        out.push_str(&value(&rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Asserts that `response` is documented for `operation`: its status is
/// listed and, where the listed answer has a body, the content type is
/// that one. Returns the status.
fn documented(operation: &Value, label: &str, response: &reqwest::Response) -> u16 {
    let status = response.status().as_u16();
    let listed = &operation["responses"][status.to_string()];
    assert!(
        listed.is_object(),
        "{label}: answered {status}, which the document does not list (it lists {:?})",
        operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );
    if let Some(content) = listed["content"].as_object() {
        let got = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content.keys().any(|media| got.starts_with(media.as_str())),
            "{label}: {status} came as `{got}`, the document says {:?}",
            content.keys().collect::<Vec<_>>()
        );
    }
    status
}

#[tokio::test]
async fn every_operation_answers_malformed_requests_only_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, login) = enroll_and_login(&server.client(), "alice", "laptop").await;
    let doc: Value = http()
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Larger than any route's body limit (192 KiB with a ciphertext).
    let oversized = format!("{{\"user\":\"{}\"}}", "a".repeat(256 * 1024));
    let mut probes = 0;
    let mut refusals = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = fill(path, |param| match param {
            "user" => "alice".into(),
            "session" => "AAAAAAAAAAAAAAAAAAAAAA".into(),
            _ => "AA".into(),
        });
        let url = server.url(&concrete);
        for method in METHODS.iter().filter(|m| item[**m].is_object()) {
            let operation = &item[*method];
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let label = |what: &str| format!("{} {path} ({what})", verb.as_str());
            let send =
                |request: reqwest::RequestBuilder| async move { request.send().await.unwrap() };
            let mut answers = Vec::new();

            let plain = send(http().request(verb.clone(), &url)).await;
            assert_ne!(
                plain.status(),
                405,
                "{}: the router has no such route",
                label("plain")
            );
            answers.push((label("plain"), plain));
            let secured = operation["security"]
                .as_array()
                .is_some_and(|alternatives| alternatives.iter().any(|a| a.get("bearer").is_some()));
            if secured {
                let request = http()
                    .request(verb.clone(), &url)
                    .header("Authorization", "Bearer garbage");
                answers.push((label("garbage bearer"), send(request).await));
                let request = http()
                    .request(verb.clone(), &url)
                    .bearer_auth(&login.token)
                    .header(
                        "X-Postern-Device",
                        reqwest::header::HeaderValue::from_bytes(b"laptop\xe9").unwrap(),
                    );
                answers.push((
                    label("device header not visible ASCII"),
                    send(request).await,
                ));
            }
            if operation["requestBody"].is_object() {
                for (what, content_type, body) in [
                    ("not JSON", "application/json", "{".to_string()),
                    ("not labelled JSON", "text/plain", "{}".to_string()),
                    ("wrong shape", "application/json", "[1, 2]".to_string()),
                    (
                        "unknown field",
                        "application/json",
                        r#"{"surprise": 1}"#.to_string(),
                    ),
                    ("over the limit", "application/json", oversized.clone()),
                ] {
                    let request = http()
                        .request(verb.clone(), &url)
                        .header("Content-Type", content_type)
                        .body(body);
                    answers.push((label(what), send(request).await));
                }
            }
            if path.contains('{') {
                for (what, value) in [
                    ("a segment that is not UTF-8", "%FF"),
                    ("a bad id", "no%20way!"),
                ] {
                    let url = server.url(&fill(path, |_| value.into()));
                    let request = http().request(verb.clone(), &url).bearer_auth(&login.token);
                    answers.push((label(what), send(request).await));
                }
            }
            for (label, response) in answers {
                let status = documented(operation, &label, &response);
                if status >= 400 {
                    refusals.insert(status);
                }
                probes += 1;
            }
        }
        // A method the path does not have: 405 naming the ones it has.
        let response = http().request(Method::PATCH, &url).send().await.unwrap();
        if response.status() == 405 {
            let allow = response.headers()["allow"]
                .to_str()
                .unwrap()
                .to_ascii_lowercase();
            for method in METHODS.iter().filter(|m| item[**m].is_object()) {
                assert!(
                    allow.contains(method),
                    "PATCH {path}: Allow `{allow}` lacks {method}"
                );
            }
        } else {
            let get = &item["get"];
            assert!(
                get.is_object(),
                "PATCH {path}: {} rather than 405",
                response.status()
            );
            documented(get, &format!("PATCH {path}"), &response);
        }
    }
    // Each way of being malformed was met, and each was refused as listed.
    for status in [400, 401, 413, 415] {
        assert!(
            refusals.contains(&status),
            "no probe drew a {status}: {refusals:?}"
        );
    }
    assert!(probes > 100, "only {probes} probes");
}
