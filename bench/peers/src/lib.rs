//! What every peer server shares: the command line, the listener, the
//! start-up line the bench script waits for, and the serve loop.
//!
//! Every peer runs the stack `crates/postern-server/examples/trivial_server.rs`
//! runs (the baseline of `bench/gate-throughput.sh`): the `#[tokio::main]`
//! multi-thread runtime, a `tokio::net::TcpListener`, `axum::serve` with a
//! graceful shutdown, and an `axum::Router`. So the differences between them
//! are the session or token work of each, not the HTTP stack.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

pub mod jwt;
pub mod sessions;

/// The longest user id a login accepts.
pub const USER_ID_MAX: usize = 64;

/// Parses `--listen ADDR` (default `127.0.0.1:0`) and, for the Redis peer,
/// `--redis URL`, from the command line.
#[derive(Debug)]
pub struct Args {
    pub listen: SocketAddr,
    pub redis: Option<String>,
}

impl Args {
    pub fn parse(name: &str) -> Result<Self, String> {
        let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut redis = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--listen" => {
                    let value = args.next().ok_or("--listen needs an address")?;
                    listen = value
                        .parse()
                        .map_err(|e| format!("--listen {value}: {e}"))?;
                }
                "--redis" => redis = Some(args.next().ok_or("--redis needs a URL")?),
                "--help" | "-h" => {
                    return Err(format!("usage: {name} [--listen ADDR] [--redis URL]"))
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(Self { listen, redis })
    }
}

/// Binds `listen`, prints `NAME listening on http://ADDR` on stdout (the
/// line `bench/own-vs-peers.sh` waits for) and serves `app` until SIGTERM
/// or Ctrl-C.
pub async fn serve(name: &str, listen: SocketAddr, app: Router) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{name}: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("{name} listening on http://{addr}");
    let _ = std::io::stdout().flush();
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C (as `postern_server::server::shutdown_signal`).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// A user id as the login routes accept it: 1 to 64 characters of
/// `[A-Za-z0-9._-]`.
pub fn valid_user_id(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= USER_ID_MAX
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A refusal: the status and a short reason as the body.
pub fn refuse(status: StatusCode, reason: &'static str) -> Response {
    (status, reason).into_response()
}
