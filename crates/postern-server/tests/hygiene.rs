//! Server hygiene over real TCP against the real binary: slow clients
//! cannot hold the server, answers carry the hardening headers.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{http, Server};

fn address(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// A slowloris connection: a request line, then a header byte now and
/// then, never the blank line that ends the headers.
fn slow_client(server: &Server) -> TcpStream {
    let mut stream = TcpStream::connect(address(server)).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    stream
}

/// Trickles a byte every 200 ms until the server closes the connection;
/// returns how long that took (panics after `within`).
fn until_closed(mut stream: TcpStream, within: Duration) -> Duration {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 256];
    loop {
        assert!(start.elapsed() < within, "still open after {within:?}");
        if stream.write_all(b"a").is_err() {
            return start.elapsed();
        }
        match stream.read(&mut buf) {
            // Closed, or hyper's 408 before it closes: either way, done.
            Ok(_) => return start.elapsed(),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(_) => {}
        }
    }
}

#[test]
fn a_client_trickling_its_headers_is_cut_off_at_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--header-read-timeout", "1s"]);
    let took = until_closed(slow_client(&server), Duration::from_secs(5));
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn slowloris_connections_at_the_cap_do_not_keep_others_out_for_long() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--header-read-timeout", "1s", "--max-connections", "3"],
    );
    let slow: Vec<TcpStream> = (0..3).map(|_| slow_client(&server)).collect();
    let start = Instant::now();
    let answer = http()
        .get(server.url("/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let waited = start.elapsed();
    eprintln!("served after {waited:?} behind 3 slowloris connections");
    assert!(
        waited < Duration::from_secs(3),
        "the slow connections were cut at 1 s: {waited:?}"
    );
    drop(slow);
}

#[tokio::test]
async fn a_request_body_sent_too_slowly_is_answered_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--request-timeout", "1s"]);
    let mut stream = TcpStream::connect(address(&server)).unwrap();
    stream
        .write_all(
            b"POST /v1/auth/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).unwrap();
    answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[tokio::test]
async fn api_answers_are_not_stored_and_no_answer_is_sniffed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for (path, no_store) in [
        ("/v1/check", true),
        ("/v1/users/alice/sessions", true),
        ("/healthz", false),
        ("/nowhere", false),
    ] {
        let r = http().get(server.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(
            r.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            no_store.then_some("no-store"),
            "{path}"
        );
    }
    let (_, login) = common::enroll_and_login(&server.client(), "alice", "laptop").await;
    let r = http()
        .get(server.url("/v1/users/alice/sessions"))
        .bearer_auth(&login.token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn with_metrics_listen_metrics_move_to_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let address = format!("127.0.0.1:{port}");
    let server = Server::start(dir.path(), &["--metrics-listen", &address]);
    let main = http().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(
        common::error_of(main).await,
        (404, "not_found".into()),
        "not on the main listener"
    );
    let text = http()
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("postern_active_sessions 0"), "{text}");
    assert!(
        text.contains(
            "postern_http_requests_total{endpoint=\"unmatched\",method=\"GET\",status=\"404\"} 1"
        ),
        "{text}"
    );
}

#[test]
fn the_metrics_listener_cuts_off_a_client_trickling_its_headers_too() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", common::free_port());
    let server = Server::start(
        dir.path(),
        &["--metrics-listen", &address, "--header-read-timeout", "1s"],
    );
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let took = until_closed(stream, Duration::from_secs(5));
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    drop(server);
}

#[tokio::test]
async fn the_metrics_listener_serves_a_scrape_behind_a_full_set_of_slow_connections() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", common::free_port());
    let server = Server::start(
        dir.path(),
        &["--metrics-listen", &address, "--header-read-timeout", "1s"],
    );
    // More slow connections than the metrics listener serves at once
    // (16): the ones past the cap wait in the backlog, not in the server.
    let slow: Vec<TcpStream> = (0..24)
        .map(|_| {
            let mut s = TcpStream::connect(&address).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let start = Instant::now();
    let scrape = http()
        .get(format!("http://{address}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    drop(slow);
    drop(server);
}
