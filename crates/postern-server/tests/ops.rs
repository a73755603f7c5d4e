//! Operations, through the real binary: JSON logs, request ids (taken from
//! the proxy when sane, generated otherwise, echoed, and in every log line
//! of their request, never beside a token), and `postern serve --help`
//! grouped by headings.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{enroll_and_login, http, postern, Idp, Server};
use serde_json::{json, Value};

/// The log file's lines, each parsed as JSON (any other line fails).
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The messages logged in the span of request `id`.
fn messages_of<'a>(lines: &'a [Value], id: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|l| l["span"]["request_id"] == id)
        .map(|l| l["fields"]["message"].as_str().unwrap_or_default())
        .collect()
}

/// An id Postern made: 16 hex digits, a dash, a hex counter.
fn is_generated(id: &str) -> bool {
    id.split_once('-').is_some_and(|(prefix, n)| {
        prefix.len() == 16
            && !n.is_empty()
            && prefix
                .chars()
                .chain(n.chars())
                .all(|c| c.is_ascii_hexdigit())
    })
}

fn request_id(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn json_logs_carry_each_request_id_and_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("postern.log");
    let server = Server::start_logged(
        &dir.path().join("data"),
        &["--log-format", "json"],
        &[("RUST_LOG", "debug")],
        &log,
    );
    let (_, login) = enroll_and_login(&server.client(), "alice", "laptop").await;
    let token = login.token;
    let http = http();

    // A sane id from the proxy is kept and echoed.
    let r = http
        .post(server.url("/v1/session/resume"))
        .bearer_auth(&token)
        .header("x-request-id", "proxy-resume-1")
        .json(&json!({ "device": "laptop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(request_id(&r).as_deref(), Some("proxy-resume-1"));

    // None sent: one is generated; an insane one is replaced.
    let mut generated = Vec::new();
    for sent in [None, Some("two words".to_string()), Some("x".repeat(129))] {
        let mut request = http.get(server.url("/healthz"));
        if let Some(id) = &sent {
            request = request.header("x-request-id", id);
        }
        let id = request_id(&request.send().await.unwrap()).unwrap();
        assert!(is_generated(&id), "{sent:?} answered with id {id}");
        generated.push(id);
    }
    generated.dedup();
    assert_eq!(generated.len(), 3, "each request its own id: {generated:?}");

    // The forward-auth hot path echoes the proxy's id, and makes none.
    let check = |id: Option<&'static str>| {
        let mut request = http
            .get(server.url("/v1/check"))
            .bearer_auth(&token)
            .header("x-postern-device", "laptop");
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let r = check(Some("proxy-check-2")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(request_id(&r).as_deref(), Some("proxy-check-2"));
    let r = check(None).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(request_id(&r), None);
    let r = check(Some("has space")).await.unwrap();
    assert_eq!(request_id(&r), None, "an insane id is not echoed");

    let r = http
        .post(server.url("/v1/session/logout"))
        .bearer_auth(&token)
        .header("x-request-id", "proxy-logout-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(request_id(&r).as_deref(), Some("proxy-logout-3"));
    assert!(server.terminate());

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&token), "the token reached the log");
    assert!(
        !text.contains(&token[token.len() - 40..]),
        "part of the token's secret reached the log"
    );
    let lines = json_lines(&text);
    let resume = messages_of(&lines, "proxy-resume-1");
    assert!(
        resume.contains(&"started processing request")
            && resume.contains(&"finished processing request"),
        "{resume:?}"
    );
    assert!(
        messages_of(&lines, "proxy-logout-3").contains(&"session revoked by logout"),
        "{text}"
    );
    for id in &generated {
        assert!(messages_of(&lines, id).contains(&"finished processing request"));
    }
    let in_requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["name"] == "request")
        .collect();
    assert!(in_requests.len() >= 8, "{text}");
    for line in in_requests {
        let id = line["span"]["request_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "a request's line without its id: {line}");
    }
}

#[tokio::test]
async fn a_gate_check_that_goes_upstream_logs_under_the_proxys_request_id() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("postern.log");
    let mut flags = idp.introspection_flags();
    flags.extend(["--log-format".into(), "json".into()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_logged(
        &dir.path().join("data"),
        &flags,
        &[("RUST_LOG", "info")],
        &log,
    );
    let seen = idp.mint("alice", "read", 600).await;
    let unseen = idp.mint("bob", "read", 600).await;
    let check = |token: &str, id: &'static str| {
        http()
            .get(server.url("/v1/check"))
            .bearer_auth(token)
            .header("x-request-id", id)
            .send()
    };
    for id in ["gate-miss-1", "gate-hit-2"] {
        let r = check(&seen, id).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(request_id(&r).as_deref(), Some(id));
    }
    idp.kill();
    let r = check(&unseen, "gate-down-3").await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(request_id(&r).as_deref(), Some("gate-down-3"));
    assert!(server.terminate());

    let text = std::fs::read_to_string(&log).unwrap();
    for token in [&seen, &unseen] {
        assert!(!text.contains(token.as_str()), "a token reached the log");
    }
    let lines = json_lines(&text);
    assert_eq!(
        messages_of(&lines, "gate-down-3"),
        ["upstream validation failed", "gate: upstream unavailable"],
        "{text}"
    );
    assert!(
        messages_of(&lines, "gate-hit-2").is_empty(),
        "a hit logs nothing"
    );
}

#[test]
fn the_log_format_comes_from_the_config_file_or_the_flag_and_is_text_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(&config, "log_format = \"json\"\n").unwrap();
    let config = config.to_str().unwrap();
    let first_line = |extra: &[&str]| run_serve_logging(dir.path(), extra);

    let from_file = first_line(&["--config", config]);
    let line: Value =
        serde_json::from_str(&from_file).unwrap_or_else(|e| panic!("not JSON ({e}): {from_file}"));
    assert_eq!(line["level"], "WARN");
    assert!(
        line["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("created a new instance key"),
        "{line}"
    );
    for text in [
        first_line(&[]),
        first_line(&["--config", config, "--log-format", "text"]),
    ] {
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
        assert!(
            text.contains("WARN") && text.contains("created a new instance key"),
            "{text}"
        );
    }
}

/// Starts `postern serve` on a new data directory with `extra`, stops it,
/// and returns the first line it logged (that it created an instance key).
fn run_serve_logging(dir: &std::path::Path, extra: &[&str]) -> String {
    let data = tempfile::tempdir_in(dir).unwrap();
    let log = dir.join("serve.log");
    let server = Server::start_logged(data.path(), extra, &[("RUST_LOG", "info")], &log);
    // Answered: the accept loop runs, so SIGTERM is handled (not fatal).
    assert!(answers_healthz(&server.base));
    assert!(server.terminate());
    let text = std::fs::read_to_string(&log).unwrap();
    text.lines().next().unwrap_or_default().to_owned()
}

/// Whether `GET /healthz` at `base` (`http://host:port`) answers 200.
fn answers_healthz(base: &str) -> bool {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: postern\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.starts_with("HTTP/1.1 200")
}

/// `postern serve --help`, as sections: each heading and the long flags
/// listed under it, in order.
fn help_sections() -> Vec<(String, Vec<String>)> {
    let out = postern().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in help.lines() {
        if let Some(heading) = line.strip_suffix(':').filter(|_| !line.starts_with(' ')) {
            sections.push((heading.to_owned(), Vec::new()));
            continue;
        }
        // A flag's own line is indented at most 6; its help, 10.
        let indent = line.len() - line.trim_start().len();
        let item = line.trim_start();
        if indent <= 6 && item.starts_with('-') {
            let long = item
                .split_whitespace()
                .find_map(|word| word.trim_end_matches(',').strip_prefix("--"))
                .unwrap();
            sections.last_mut().unwrap().1.push(long.to_owned());
        }
    }
    sections
}

#[test]
fn serve_help_lists_every_flag_under_its_heading() {
    let expected: [(&str, &str); 7] = [
        ("Options", "help"),
        (
            "Server",
            "config listen data instance-key max-body-bytes trusted-proxies header-read-timeout \
             request-timeout max-connections metrics-listen log-format",
        ),
        (
            "Sessions",
            "ttl resume-window idle-timeout device-binding risk-threshold sensitive-operations \
             last-seen-interval challenge-ttl reauth-max-age audience stages \
             max-challenges-per-client max-challenges-per-user session-mode jwt-ttl jwt-issuer \
             jwt-audience jwt-alg cookie-name cookie-same-site",
        ),
        (
            "Passkeys",
            "max-ceremonies-per-client max-ceremonies-per-user passkey-stages rp-id origin \
             ceremony-ttl",
        ),
        (
            "Biometric",
            "biometric-mode biometric-threshold turbo-deadline biometric-prepared-cache-mb",
        ),
        (
            "Gate",
            "upstream-introspection upstream-revocation client-id client-secret upstream-auth1 \
             upstream-jwks miss-rate-per-client jwks-interval upstream-ca allow-insecure-upstream",
        ),
        (
            "Redis",
            "redis revocation-max-lag redis-feed-key-file redis-feed-key",
        ),
    ];
    let sections = help_sections();
    let headings: Vec<&str> = sections.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(
        headings,
        expected.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        "headings, in order"
    );
    for ((heading, flags), (_, want)) in sections.iter().zip(expected) {
        let mut got = flags.clone();
        got.sort();
        let mut want: Vec<&str> = want.split_whitespace().collect();
        want.sort_unstable();
        assert_eq!(got, want, "flags under {heading}");
    }
}
