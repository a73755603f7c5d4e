//! The shipped proxy configurations, run as they are against Debian's
//! nginx (`deploy/nginx/postern.conf`, `auth_request`) and Caddy
//! (`deploy/caddy/Caddyfile`, `forward_auth`), each started on a free port
//! in front of the real `postern` binary and of a small application that
//! echoes the `X-Postern-*` headers it receives (the application, not a
//! part under test). The test changes only addresses: the three in
//! `postern.conf` (Postern, the application, the listener), and the
//! Caddyfile's environment variables.
//!
//! For each proxy:
//! - a bearer API call (Postern session token and `X-Postern-Device`)
//!   reaches the application with `X-Postern-User` and
//!   `X-Postern-Session`, a client's forged copies of them never do, a
//!   malformed bearer token is 401 (not nginx's 500), after a logout
//!   through the proxy the same token is refused there (401), and with
//!   Postern gone the proxy fails closed (nginx 500, Caddy 502);
//! - in cookie mode, headless Chromium signs in with a passkey on
//!   Postern's page served through the proxy and opens a protected page
//!   of the application by a link click (the `__Host-` session and device
//!   cookies, no script header); after signing out, the same cookies put
//!   back are refused (401);
//! - in gate mode, a client-credentials token from node-oidc-provider
//!   (over https) passes as its client, with `X-Postern-Client` and
//!   `X-Postern-Scopes` and no `X-Postern-User` (a forged one is dropped),
//!   the route's required scope is the proxy's (a client cannot lower it:
//!   403), junk is 401, a logout through the proxy revokes the token, and
//!   with the provider gone a new token is Postern's 503, which Caddy
//!   passes on and nginx turns into a 500.
//!
//! Needs `nginx` and `caddy` (Debian's packages; `NGINX` and `CADDY`
//! override the paths), and for the browser and the identity provider
//! Chromium, node and `npm ci` in `e2e/`. Without them the tests fail when
//! `CI` is set and are skipped, saying "SKIPPED", otherwise.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::Json;
use common::oidc::{pki, Provider};
use common::{e2e, enroll_and_login, free_port, http, Server};
use serde_json::{json, Value};

/// The repository's root, where `deploy/` is.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    fn program(self) -> PathBuf {
        let (var, default) = match self {
            Kind::Nginx => ("NGINX", "/usr/sbin/nginx"),
            Kind::Caddy => ("CADDY", "/usr/bin/caddy"),
        };
        std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        }
    }

    /// What this proxy's tests lack.
    fn missing(self) -> Vec<String> {
        let version = match self {
            Kind::Nginx => "-v",
            Kind::Caddy => "version",
        };
        let program = self.program();
        if e2e::runs(&program.to_string_lossy(), version) {
            Vec::new()
        } else {
            vec![format!("{} ({})", self.name(), program.display())]
        }
    }
}

/// The application behind the proxy: answers every request with what it
/// got, as JSON (`method`, `path`, and `headers`: each `x-postern-*`
/// header, lower-cased, with all its values), and records each request.
struct App {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Value>>>,
}

async fn echo(State(seen): State<Arc<Mutex<Vec<Value>>>>, request: Request) -> Json<Value> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers() {
        if name.as_str().starts_with("x-postern-") {
            headers
                .entry(name.as_str().to_string())
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
    }
    let body = json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "headers": headers,
    });
    seen.lock().unwrap().push(body.clone());
    Json(body)
}

impl App {
    /// Starts on 127.0.0.1:0, on a thread of its own (with its own
    /// runtime: the tests may block theirs on a child process).
    fn start() -> App {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = seen.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(echo).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        App { addr, seen }
    }

    /// The requests the application received so far.
    fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }
}

/// A proxy running a shipped configuration, on a free port of 127.0.0.1
/// (Caddy: of every address); killed when dropped.
struct Proxy {
    kind: Kind,
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts `kind` on `port` in front of Postern at `postern` and the
    /// application at `app` (both `host:port`), and waits until it accepts
    /// connections.
    fn start(kind: Kind, port: u16, postern: &str, app: SocketAddr) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("proxy.log");
        let stderr = std::fs::File::create(&log).unwrap();
        let listen = format!("127.0.0.1:{port}");
        let child = match kind {
            Kind::Nginx => {
                // The shipped server block, with its three addresses
                // replaced, inside a minimal nginx.conf whose paths are all
                // under the temporary directory (nginx may run unprivileged).
                let shipped =
                    std::fs::read_to_string(root().join("deploy/nginx/postern.conf")).unwrap();
                for placeholder in ["127.0.0.1:8080", "127.0.0.1:3000", "127.0.0.1:8000"] {
                    assert!(
                        shipped.contains(placeholder),
                        "postern.conf has {placeholder}"
                    );
                }
                let conf = shipped
                    .replace("127.0.0.1:8080", postern)
                    .replace("127.0.0.1:3000", &app.to_string())
                    .replace("127.0.0.1:8000", &listen);
                std::fs::write(dir.path().join("postern.conf"), conf).unwrap();
                std::fs::write(
                    dir.path().join("nginx.conf"),
                    "worker_processes 1;\n\
                     events { worker_connections 256; }\n\
                     http {\n\
                     \x20   access_log off;\n\
                     \x20   client_body_temp_path temp/body;\n\
                     \x20   proxy_temp_path temp/proxy;\n\
                     \x20   fastcgi_temp_path temp/fastcgi;\n\
                     \x20   uwsgi_temp_path temp/uwsgi;\n\
                     \x20   scgi_temp_path temp/scgi;\n\
                     \x20   include postern.conf;\n\
                     }\n",
                )
                .unwrap();
                std::fs::create_dir(dir.path().join("temp")).unwrap();
                // Run as root, nginx's workers are `nobody`: they must reach
                // their temporary files.
                set_mode(dir.path(), 0o755);
                set_mode(&dir.path().join("temp"), 0o777);
                let pid = dir.path().join("nginx.pid");
                Command::new(kind.program())
                    .arg("-p")
                    .arg(dir.path())
                    .arg("-c")
                    .arg(dir.path().join("nginx.conf"))
                    .arg("-g")
                    .arg(format!(
                        "daemon off; master_process on; pid {}; error_log stderr;",
                        pid.display()
                    ))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(stderr)
                    .spawn()
                    .expect("spawn nginx")
            }
            Kind::Caddy => {
                // The shipped Caddyfile as it is; only its variables set (no
                // admin API: tests run side by side). Caddy's storage and
                // autosaved config go to the temporary directory.
                Command::new(kind.program())
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(root().join("deploy/caddy/Caddyfile"))
                    .env("HOME", dir.path())
                    .env("XDG_DATA_HOME", dir.path().join("data"))
                    .env("XDG_CONFIG_HOME", dir.path().join("config"))
                    .env("POSTERN_SITE", format!(":{port}"))
                    .env("POSTERN_UPSTREAM", postern)
                    .env("APP_UPSTREAM", app.to_string())
                    .env("CADDY_ADMIN", "off")
                    .current_dir(dir.path())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(stderr)
                    .spawn()
                    .expect("spawn caddy")
            }
        };
        let mut proxy = Proxy {
            kind,
            child,
            port,
            log,
            _dir: dir,
        };
        proxy.wait_until_ready();
        proxy
    }

    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited at start ({status}):\n{}",
                    self.kind.name(),
                    self.log()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if started.elapsed() > Duration::from_secs(15) {
                panic!(
                    "{} did not listen on port {} within 15 s:\n{}",
                    self.kind.name(),
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the proxy wrote on its stderr.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Proxy {
    /// Caddy is one process: killed. nginx's master is asked to stop
    /// (SIGTERM, a fast shutdown), so that it takes its workers along: a
    /// killed master leaves them running, and listening.
    fn drop(&mut self) {
        if self.kind == Kind::Nginx {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            for _ in 0..250 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Postern's address (`host:port`) from its base URL.
fn addr_of(server: &Server) -> String {
    server
        .base
        .strip_prefix("http://")
        .expect("Postern on http")
        .to_string()
}

/// The status, the `WWW-Authenticate` header and the body (JSON, or the
/// text of a proxy's own error page) of a response.
async fn answer(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, challenge, body)
}

/// The identity headers the application received (`x-postern-*`, by name,
/// except `x-postern-device`, the client's own, which passes as it came).
fn identity_of(seen: &Value) -> BTreeMap<String, Vec<String>> {
    let mut headers: BTreeMap<String, Vec<String>> =
        serde_json::from_value(seen["headers"].clone()).unwrap();
    headers.remove("x-postern-device");
    headers
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), vec![(*v).to_string()]))
        .collect()
}

// ---------------------------------------------------------------------
// 1, 4, 5: a bearer API call, its identity headers, logout.

async fn a_bearer_session_through(kind: Kind) {
    if !e2e::can_run(&format!("the {} bearer test", kind.name()), &kind.missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trusted-proxies", "127.0.0.1/32"]);
    let app = App::start();
    let proxy = Proxy::start(kind, free_port(), &addr_of(&server), app.addr);
    let (_, login) = enroll_and_login(&server.client(), "alice", "laptop-1").await;
    let call = |path: &str| {
        http()
            .get(proxy.url(path))
            .bearer_auth(&login.token)
            .header("X-Postern-Device", "laptop-1")
    };

    // The call reaches the application with Postern's identity, and only
    // Postern's: forged copies sent by the client are gone.
    let response = call("/orders/7")
        .header("X-Postern-User", "mallory")
        .header("X-Postern-Session", "forged")
        .header("X-Postern-Client", "forged")
        .header("X-Postern-Scopes", "admin")
        .send()
        .await
        .unwrap();
    let (status, _, body) = answer(response).await;
    assert_eq!(status, 200, "{body}\n{}", proxy.log());
    assert_eq!(body["path"], "/orders/7");
    assert_eq!(
        identity_of(&body),
        headers(&[
            ("x-postern-user", "alice"),
            ("x-postern-session", login.session_id.as_str()),
        ]),
        "the application sees Postern's identity alone"
    );
    assert_eq!(body["headers"]["x-postern-device"], json!(["laptop-1"]));

    // Refusals never reach the application, and are what Postern said:
    // no token, a forged identity without a token, another device, a
    // malformed token (which nginx would turn into a 500 were it a 400).
    let refusals: [(&str, reqwest::RequestBuilder, &str); 5] = [
        ("no token", http().get(proxy.url("/orders/7")), "Bearer"),
        (
            "a forged user alone",
            http()
                .get(proxy.url("/orders/7"))
                .header("X-Postern-User", "alice"),
            "Bearer",
        ),
        (
            "another device",
            http()
                .get(proxy.url("/orders/7"))
                .bearer_auth(&login.token)
                .header("X-Postern-Device", "phone-9"),
            "Bearer error=\"invalid_token\"",
        ),
        (
            "a malformed token",
            http()
                .get(proxy.url("/orders/7"))
                .bearer_auth("pst1.not-a-token")
                .header("X-Postern-Device", "laptop-1"),
            "Bearer error=\"invalid_token\"",
        ),
        (
            "no bearer token at all",
            http()
                .get(proxy.url("/orders/7"))
                .header("Authorization", "Bearer"),
            "Bearer error=\"invalid_token\"",
        ),
    ];
    for (what, request, challenge) in refusals {
        let (status, got, body) = answer(request.send().await.unwrap()).await;
        assert_eq!((status, got.as_str()), (401, challenge), "{what}: {body}");
        if kind == Kind::Caddy {
            // Caddy returns Postern's answer as it is; nginx its own page.
            assert!(body["error"].is_string(), "{what}: {body}");
        }
    }
    assert_eq!(app.seen().len(), 1, "refused requests never reach the app");

    // Logout through the proxy (Postern's /v1/ is on the same origin),
    // then the same session is refused there.
    let out = http()
        .post(proxy.url("/v1/session/logout"))
        .bearer_auth(&login.token)
        .header("X-Postern-Device", "laptop-1")
        .send()
        .await
        .unwrap();
    let (status, _, body) = answer(out).await;
    assert_eq!((status, &body["revoked"]), (200, &json!(true)), "{body}");
    let (status, challenge, body) = answer(call("/orders/7").send().await.unwrap()).await;
    assert_eq!(
        (status, challenge.as_str()),
        (401, "Bearer error=\"invalid_token\""),
        "{body}"
    );
    if kind == Kind::Caddy {
        assert_eq!(body["reason"], "revoked", "{body}");
    }
    assert_eq!(
        app.seen().len(),
        1,
        "a revoked session never reaches the app"
    );

    // Postern gone: the proxy fails closed, with its own error (the
    // table of docs/forward-auth.md: nginx 500, Caddy 502).
    server.kill();
    let (status, _, body) = answer(call("/orders/7").send().await.unwrap()).await;
    let expected = match kind {
        Kind::Nginx => 500,
        Kind::Caddy => 502,
    };
    assert_eq!(status, expected, "Postern unreachable: {body}");
    assert_eq!(app.seen().len(), 1, "nothing gets through without Postern");
}

#[tokio::test]
async fn nginx_passes_a_bearer_session_with_its_identity_alone_and_refuses_it_after_logout() {
    a_bearer_session_through(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_passes_a_bearer_session_with_its_identity_alone_and_refuses_it_after_logout() {
    a_bearer_session_through(Kind::Caddy).await;
}

// ---------------------------------------------------------------------
// 2, 5: a cookie session in a real browser, page navigation, logout.

/// Runs `e2e/proxy.mjs` against `base` and returns its report, one JSON
/// object per step, by step name.
fn browse(base: &str, path: &str) -> BTreeMap<String, Value> {
    let mut script = Command::new("node")
        .arg("proxy.mjs")
        .arg(base)
        .arg(path)
        .env("CHROMIUM", e2e::chromium())
        .current_dir(e2e::dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node");
    let stdout = script.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = script.kill();
                panic!(
                    "the browser script was silent for 60 s:\n{}",
                    lines.join("\n")
                );
            }
        }
    }
    let status = script.wait().unwrap();
    let output = lines.join("\n");
    assert!(
        status.success() && output.ends_with("done"),
        "browser script failed:\n{output}"
    );
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| (v["step"].as_str().unwrap().to_string(), v))
        .collect()
}

async fn a_cookie_session_in_a_browser_through(kind: Kind) {
    let mut missing = kind.missing();
    missing.extend(e2e::browser_missing());
    if !e2e::can_run(&format!("the {} browser test", kind.name()), &missing) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The browser sees the proxy as `localhost` (a WebAuthn rp id cannot
    // be an IP address), a secure context even over http, where the
    // `__Host-` cookies may be set.
    let origin = format!("http://localhost:{port}");
    let server = Server::start(
        dir.path(),
        &[
            "--session-mode",
            "cookie",
            "--rp-id",
            "localhost",
            "--origin",
            &origin,
            "--trusted-proxies",
            "127.0.0.1/32",
        ],
    );
    let app = App::start();
    let proxy = Proxy::start(kind, port, &addr_of(&server), app.addr);

    let report = tokio::task::spawn_blocking(move || browse(&origin, "/dashboard?tab=orders"))
        .await
        .unwrap();
    let step = |name: &str| {
        report
            .get(name)
            .unwrap_or_else(|| panic!("no {name} step in {report:?}\n{}", proxy.log()))
            .clone()
    };
    assert_eq!(
        step("signed_in")["cookies"],
        json!(["__Host-postern", "__Host-postern-device"]),
        "signing in through the proxy sets both cookies"
    );
    let navigation = step("navigation");
    assert_eq!(navigation["status"], 200, "{navigation}\n{}", proxy.log());
    assert_eq!(
        navigation["device_header"], false,
        "a navigation sends no header"
    );
    assert_eq!(navigation["body"]["path"], "/dashboard");
    let identity = identity_of(&navigation["body"]);
    assert_eq!(identity["x-postern-user"], ["alice"], "{navigation}");
    assert_eq!(identity["x-postern-session"].len(), 1, "{navigation}");
    assert_eq!(
        identity.keys().collect::<Vec<_>>(),
        ["x-postern-session", "x-postern-user"],
        "{navigation}"
    );
    assert_eq!(
        step("signed_out")["cookies"],
        json!([]),
        "logout clears both"
    );
    let replayed = step("replayed_after_logout");
    assert_eq!(replayed["status"], 401, "{replayed}");
    if kind == Kind::Caddy {
        assert_eq!(replayed["body"]["reason"], "revoked", "{replayed}");
    }
    // Chromium asks for /favicon.ico too, which is the application's.
    let pages: Vec<Value> = app
        .seen()
        .into_iter()
        .filter(|seen| seen["path"] != "/favicon.ico")
        .collect();
    assert_eq!(
        pages.len(),
        1,
        "only the signed-in navigation got through: {pages:?}"
    );
}

#[tokio::test]
async fn nginx_lets_a_browser_with_a_cookie_session_open_a_page_by_navigation_until_logout() {
    a_cookie_session_in_a_browser_through(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_lets_a_browser_with_a_cookie_session_open_a_page_by_navigation_until_logout() {
    a_cookie_session_in_a_browser_through(Kind::Caddy).await;
}

// ---------------------------------------------------------------------
// 3, 4, 5: gate mode with a real identity provider.

async fn identity_provider_tokens_through(kind: Kind) {
    let mut missing = kind.missing();
    missing.extend(common::oidc::missing());
    if !e2e::can_run(&format!("the {} gate test", kind.name()), &missing) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let provider = Provider::start(dir.path());
    let mut flags = provider.flags(&dir.path().join("ca.pem"));
    flags.extend(["--trusted-proxies".to_string(), "127.0.0.1/32".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(&dir.path().join("data"), &flags);
    let app = App::start();
    let proxy = Proxy::start(kind, free_port(), &addr_of(&server), app.addr);

    // A client-credentials token passes as its client, with its scopes; no
    // user, not even the one the client claims.
    let token = provider.client_credentials("read write").await;
    let response = http()
        .post(proxy.url("/reports"))
        .bearer_auth(&token)
        .header("X-Postern-User", "mallory")
        .header("X-Postern-Session", "forged")
        .send()
        .await
        .unwrap();
    let (status, _, body) = answer(response).await;
    assert_eq!(status, 200, "{body}\n{}", proxy.log());
    assert_eq!(
        (&body["method"], &body["path"]),
        (&json!("POST"), &json!("/reports"))
    );
    assert_eq!(
        identity_of(&body),
        headers(&[
            ("x-postern-client", "app"),
            ("x-postern-scopes", "read write"),
        ]),
        "the application sees the client and its scopes, and no user"
    );

    // The route needs `read` (set by the proxy): a token without it is
    // 403, even when the client names its own requirement.
    let write_only = provider.client_credentials("write").await;
    let unseen = provider.client_credentials("read").await;
    for claimed in [None, Some("write")] {
        let mut request = http().get(proxy.url("/reports")).bearer_auth(&write_only);
        if let Some(scopes) = claimed {
            request = request.header("X-Postern-Required-Scopes", scopes);
        }
        let (status, challenge, body) = answer(request.send().await.unwrap()).await;
        assert_eq!(status, 403, "claimed {claimed:?}: {body}");
        if kind == Kind::Caddy {
            // Caddy returns Postern's answer; nginx its own 403 page
            // (it copies WWW-Authenticate on a 401 only).
            assert_eq!(challenge, "Bearer error=\"insufficient_scope\"");
            assert_eq!(body["error"], "insufficient_scope", "{body}");
        }
    }

    // Junk is refused: 401, never a proxy error.
    for junk in ["junk", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2ln"] {
        let request = http().get(proxy.url("/reports")).bearer_auth(junk);
        let (status, challenge, body) = answer(request.send().await.unwrap()).await;
        assert_eq!(
            (status, challenge.as_str()),
            (401, "Bearer error=\"invalid_token\""),
            "{junk}: {body}"
        );
    }
    assert_eq!(app.seen().len(), 1, "refused requests never reach the app");

    // Logout through the proxy revokes the token at the provider too; the
    // proxy then refuses it.
    let out = http()
        .post(proxy.url("/v1/session/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(provider.introspect(&token).await["active"], false);
    let request = http().get(proxy.url("/reports")).bearer_auth(&token);
    let (status, challenge, body) = answer(request.send().await.unwrap()).await;
    assert_eq!(
        (status, challenge.as_str()),
        (401, "Bearer error=\"invalid_token\""),
        "{body}"
    );
    assert_eq!(app.seen().len(), 1);

    // The provider gone, a token Postern has not seen: Postern fails closed
    // with 503, which Caddy passes on and nginx turns into a 500 (the table
    // of docs/forward-auth.md).
    drop(provider);
    let request = http().get(proxy.url("/reports")).bearer_auth(&unseen);
    let (status, _, body) = answer(request.send().await.unwrap()).await;
    match kind {
        Kind::Nginx => assert_eq!(status, 500, "{body}"),
        Kind::Caddy => {
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["error"], "upstream_unavailable", "{body}");
        }
    }
    assert_eq!(app.seen().len(), 1, "nothing gets through failing closed");
}

#[tokio::test]
async fn nginx_passes_an_identity_provider_token_as_its_client_and_refuses_junk() {
    identity_provider_tokens_through(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_passes_an_identity_provider_token_as_its_client_and_refuses_junk() {
    identity_provider_tokens_through(Kind::Caddy).await;
}
