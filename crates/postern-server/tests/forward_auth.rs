//! The forward-auth contract of `/v1/check`, as proxies need it
//! (`docs/forward-auth.md`), against the real `postern` binary:
//!
//! - every refusal of a token is 401 with `WWW-Authenticate: Bearer
//!   error="invalid_token"` (malformed, unknown, expired or revoked: nginx
//!   `auth_request` turns a 400 into a 500), a missing token is 401 with a
//!   plain `Bearer` challenge, a needed step-up or missing scope is 403
//!   `insufficient_scope`, while the JSON APIs keep 400 for malformed input;
//! - Envoy's HTTP `ext_authz` keeps the original method and appends the
//!   original path: any method on `/v1/check` and under it is the check,
//!   and its body is never read;
//! - in gate mode, an upstream whose answers cannot be used fails each
//!   token with 502 and never opens the circuit breaker.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{enroll_and_login, error_of, http, Idp, Server};
use reqwest::Method;

const INVALID_TOKEN: &str = "Bearer error=\"invalid_token\"";
const INSUFFICIENT_SCOPE: &str = "Bearer error=\"insufficient_scope\"";

/// The status, `WWW-Authenticate` and `error` code of a check.
async fn refusal(response: reqwest::Response) -> (u16, String, String) {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let (status, code) = error_of(response).await;
    (status, challenge, code)
}

async fn check_with(server: &Server, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http().get(server.url("/v1/check"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_refused_token_is_401_invalid_token_and_a_step_up_is_403_insufficient_scope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, login) = enroll_and_login(&server.client(), "alice", "laptop").await;
    let bearer = format!("Bearer {}", login.token);

    assert_eq!(
        refusal(check_with(&server, &[]).await).await,
        (401, "Bearer".into(), "missing_token".into()),
        "no credentials: a challenge without an error code (RFC 6750 §3.1)"
    );
    let stranger = postern_core::token::SessionToken::generate(&mut rand::thread_rng()).expose();
    let unknown = format!("Bearer {stranger}");
    let cases: [(&[(&str, &str)], &str); 5] = [
        // RFC 6750 §3.1: whatever is wrong with a bearer token, invalid_token.
        (&[("Authorization", "Bearer not-a-token")], "invalid_token"),
        (&[("Authorization", "Bearer")], "invalid_token"),
        (&[("Authorization", "Bearer pst1.!!")], "invalid_token"),
        (&[("Authorization", &unknown)], "full_auth_required"),
        (
            &[("Authorization", &bearer), ("X-Postern-Device", " ")],
            "invalid_device",
        ),
    ];
    for (headers, code) in cases {
        assert_eq!(
            refusal(check_with(&server, headers).await).await,
            (401, INVALID_TOKEN.into(), code.into()),
            "{headers:?}"
        );
    }
    let step_up = check_with(
        &server,
        &[
            ("Authorization", &bearer),
            ("X-Postern-Device", "laptop"),
            ("X-Postern-Operation", "delete"),
        ],
    )
    .await;
    assert_eq!(
        refusal(step_up).await,
        (403, INSUFFICIENT_SCOPE.into(), "step_up_required".into())
    );
    let ok = check_with(
        &server,
        &[("Authorization", &bearer), ("X-Postern-Device", "laptop")],
    )
    .await;
    assert_eq!(ok.status(), 200);

    // The JSON APIs keep 400 for the same malformed token.
    let resume = http()
        .post(server.url("/v1/session/resume"))
        .json(&serde_json::json!({ "token": "not-a-token", "device": "laptop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resume).await, (400, "malformed_token".into()));

    // Revoked: 401 invalid_token too.
    let out = http()
        .post(server.url("/v1/session/logout"))
        .bearer_auth(&login.token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(
        refusal(
            check_with(
                &server,
                &[("Authorization", &bearer), ("X-Postern-Device", "laptop")]
            )
            .await
        )
        .await,
        (401, INVALID_TOKEN.into(), "full_auth_required".into())
    );
}

#[tokio::test]
async fn every_standard_method_on_any_path_under_the_check_prefix_is_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, login) = enroll_and_login(&server.client(), "bob", "laptop").await;
    let methods = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::TRACE,
    ];
    let paths = [
        "/v1/check",
        "/v1/check/",
        "/v1/check/api/orders/42?expand=items",
    ];
    for method in &methods {
        for path in paths {
            let ok = http()
                .request(method.clone(), server.url(path))
                .bearer_auth(&login.token)
                .header("X-Postern-Device", "laptop")
                .send()
                .await
                .unwrap();
            assert_eq!(ok.status(), 200, "{method} {path}");
            assert_eq!(ok.headers()["x-postern-user"], "bob", "{method} {path}");
            let refused = http()
                .request(method.clone(), server.url(path))
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), 401, "{method} {path}");
            assert_eq!(refused.headers()["www-authenticate"], "Bearer");
        }
    }
    // A method OpenAPI cannot describe (an extension such as QUERY or
    // PROPFIND) is refused with 405 even with a good session: every proxy
    // treats that as a refusal, and the document stays exact.
    for method in [
        Method::from_bytes(b"QUERY").unwrap(),
        Method::from_bytes(b"PROPFIND").unwrap(),
    ] {
        for path in ["/v1/check", "/v1/check/api"] {
            let refused = http()
                .request(method.clone(), server.url(path))
                .bearer_auth(&login.token)
                .header("X-Postern-Device", "laptop")
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), 405, "{method} {path}");
            assert!(refused.headers().get("x-postern-user").is_none());
        }
    }

    // A path that only begins like the prefix is not the check.
    let other = http()
        .get(server.url("/v1/checkout"))
        .bearer_auth(&login.token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);

    // The body is never read: announced larger than the body limit
    // (16 KiB) and not JSON, with `Expect: 100-continue`, a POST under the
    // prefix is answered 200 at once; a handler that read the body would
    // first have hyper answer `100 Continue`. (Sent raw: a client that
    // streams the megabyte meanwhile races the server closing a connection
    // whose body it never read.)
    let address = server.base.trim_start_matches("http://").to_string();
    let upload = first_line(
        address.clone(),
        format!(
            "POST /v1/check/upload HTTP/1.1\r\nHost: postern\r\nAuthorization: Bearer {}\r\n\
             X-Postern-Device: laptop\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: 1048576\r\nExpect: 100-continue\r\n\r\n",
            login.token
        ),
    )
    .await;
    assert_eq!(upload, "HTTP/1.1 200");
    // Nor waited for: a body announced and never sent does not hold the
    // answer back.
    let answer = first_line(
        address,
        format!(
            "PUT /v1/check/big HTTP/1.1\r\nHost: postern\r\nAuthorization: Bearer {}\r\n\
             X-Postern-Device: laptop\r\nContent-Length: 100000000\r\n\r\n",
            login.token
        ),
    )
    .await;
    assert_eq!(answer, "HTTP/1.1 200");
}

/// Sends `head` (a request without its body) on a new connection to
/// `address`; the first 12 bytes of the answer (`HTTP/1.1 200`).
async fn first_line(address: String, head: String) -> String {
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut line = [0u8; 12];
        stream.read_exact(&mut line).unwrap();
        head_of(&line)
    })
    .await
    .unwrap()
}

fn head_of(bytes: &[u8; 12]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn an_upstream_whose_answers_cannot_be_used_fails_each_token_with_502_and_never_opens_the_breaker(
) {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    // A URL of the IdP that is not its introspection endpoint: every
    // answer is a 405, which no token can be validated by.
    let flags = [
        "--upstream-introspection".to_string(),
        format!("{}/stats", idp.base),
        "--client-id".into(),
        "demo".into(),
        "--client-secret".into(),
        "demo-secret".into(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(dir.path(), &flags);
    let token = idp.mint("carol", "read", 600).await;
    for n in 0..8 {
        let r = http()
            .get(server.url("/v1/check"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(!r.headers().contains_key("www-authenticate"));
        assert_eq!(
            error_of(r).await,
            (502, "upstream_bad_answer".into()),
            "request {n}"
        );
    }
    // Each was asked (an open circuit would have stopped the calls at 5
    // and answered 503 `circuit_open`), and none was cached.
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(
            "postern_gate_upstream_duration_seconds_count{op=\"validate\",outcome=\"status\"} 8"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("postern_gate_cache_entries 0"),
        "{metrics}"
    );
}

/// A pass's answer, as the caller asked for it.
struct Pass {
    status: u16,
    content_type: Option<String>,
    user: Option<String>,
    session: Option<String>,
    body: Vec<u8>,
}

async fn pass(server: &Server, token: &str, device: Option<&str>, accept: Option<&str>) -> Pass {
    let mut request = http().get(server.url("/v1/check")).bearer_auth(token);
    if let Some(device) = device {
        request = request.header("X-Postern-Device", device);
    }
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    Pass {
        status: response.status().as_u16(),
        content_type: header("content-type"),
        user: header("x-postern-user"),
        session: header("x-postern-session"),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

#[tokio::test]
async fn a_pass_has_no_body_unless_the_caller_asks_for_json() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let flags = idp.introspection_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(dir.path(), &flags);
    let (_, login) = enroll_and_login(&server.client(), "dora", "laptop").await;
    let upstream = idp.mint("erin", "read", 600).await;

    // What a proxy (or a browser's navigation, passed on) sends: the
    // identity in headers, and nothing else.
    for accept in [
        None,
        Some("*/*"),
        Some("text/html,*/*;q=0.8"),
        Some("application/json;q=0"),
    ] {
        let own = pass(&server, &login.token, Some("laptop"), accept).await;
        assert_eq!(own.status, 200, "{accept:?}");
        assert_eq!(own.user.as_deref(), Some("dora"), "{accept:?}");
        assert_eq!(own.session.as_deref(), Some(login.session_id.as_str()));
        assert_eq!(own.content_type, None, "{accept:?}");
        assert!(own.body.is_empty(), "{accept:?}");
        let gate = pass(&server, &upstream, None, accept).await;
        assert_eq!(gate.status, 200, "{accept:?}");
        assert_eq!(gate.user.as_deref(), Some("erin"), "{accept:?}");
        assert_eq!(gate.content_type, None, "{accept:?}");
        assert!(gate.body.is_empty(), "{accept:?}");
    }

    // Asked for, the same identity as JSON too.
    let own = pass(
        &server,
        &login.token,
        Some("laptop"),
        Some("application/json"),
    )
    .await;
    assert_eq!(own.content_type.as_deref(), Some("application/json"));
    assert_eq!(own.user.as_deref(), Some("dora"));
    let json: serde_json::Value = serde_json::from_slice(&own.body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({ "user": "dora", "session_id": login.session_id })
    );
    let gate = pass(
        &server,
        &upstream,
        None,
        Some("text/html, application/json"),
    )
    .await;
    assert_eq!(gate.content_type.as_deref(), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&gate.body).unwrap();
    assert_eq!(json["user"], "erin");
    assert_eq!(json["scopes"], serde_json::json!(["read"]));

    // A refusal keeps its JSON error body whatever was asked for.
    let refused = pass(&server, &login.token, Some("another-laptop"), None).await;
    assert_eq!(refused.status, 401);
    let json: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(json["error"], "full_auth_required");
}
