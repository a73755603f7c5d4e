//! Black-box harness: the real `postern` binary on a free port, driven over
//! real HTTP by the real client.

// Test helpers: a failed unwrap here is a failed test, which is the point.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod e2e;
pub mod oidc;
pub mod soft_passkey;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use postern_client::device::DeviceInput;
use postern_client::http::{LoginResponse, PosternClient};
use postern_client::identity_file::IdentityFile;

pub struct Server {
    child: Child,
    pub base: String,
    pub data: PathBuf,
}

impl Server {
    /// Starts `postern serve` on 127.0.0.1:0 with `data` and extra flags,
    /// and waits for its "listening" line.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Self::start_with_env(data, extra, &[])
    }

    /// As [`Server::start`], with extra environment variables.
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_on("127.0.0.1:0", data, extra, env)
    }

    /// As [`Server::start_with_env`], listening on `listen` (for tests that
    /// need the port before the server starts, or the same port again).
    pub fn start_on(listen: &str, data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::spawn(listen, data, extra, env, Stdio::inherit())
    }

    /// As [`Server::start_with_env`], writing the server's log (its
    /// stderr) to the file `log`.
    pub fn start_logged(data: &Path, extra: &[&str], env: &[(&str, &str)], log: &Path) -> Server {
        let file = std::fs::File::create(log).expect("create the log file");
        Self::spawn("127.0.0.1:0", data, extra, env, Stdio::from(file))
    }

    fn spawn(
        listen: &str,
        data: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Server {
        let mut child = postern()
            .args(["serve", "--listen", listen, "--data"])
            .arg(data)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn postern");
        let line = first_stdout_line(&mut child, Duration::from_secs(30))
            .expect("server did not start in 30 s");
        let base = line
            .strip_prefix("postern listening on ")
            .expect("listening line")
            .to_string();
        Server {
            child,
            base,
            data: data.to_path_buf(),
        }
    }

    pub fn client(&self) -> PosternClient {
        PosternClient::new(&self.base).unwrap()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        http()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of the unlabelled metric `name`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// SIGKILL: no shutdown work at all.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not stop within 5 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first line a child prints on its stdout (its "listening on ..."
/// line), or `None` if it printed none within `timeout` (or exited). The
/// rest of its stdout is drained on a thread, so that the child never
/// blocks on a full pipe.
pub fn first_stdout_line(child: &mut Child, timeout: Duration) -> Option<String> {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    rx.recv_timeout(timeout).ok()
}

/// The `postern` binary with a clean environment for tests.
pub fn postern() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_postern"));
    command.env("RUST_LOG", "error");
    for (key, _) in std::env::vars() {
        if key.starts_with("POSTERN_") {
            command.env_remove(key);
        }
    }
    command
}

/// The reference identity provider (`postern-demo-idp`) as a separate
/// process on a free port.
pub struct Idp {
    child: Child,
    pub base: String,
}

impl Idp {
    pub fn start(extra: &[&str]) -> Idp {
        let mut child = Command::new(env!("CARGO_BIN_EXE_postern-demo-idp"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn postern-demo-idp");
        let line = first_stdout_line(&mut child, Duration::from_secs(30))
            .expect("idp did not start in 30 s");
        let base = line
            .strip_prefix("postern-demo-idp listening on ")
            .expect("listening line")
            .to_string();
        Idp { child, base }
    }

    /// Mints a token for `sub` with `scope`, valid for `expires_in` seconds.
    pub async fn mint(&self, sub: &str, scope: &str, expires_in: u64) -> String {
        let body: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/admin/tokens", self.base))
            .json(&serde_json::json!({ "sub": sub, "scope": scope, "expires_in": expires_in }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// Calls per endpoint (`introspect`, `revoke`, `session`, `logout`).
    pub async fn calls(&self, endpoint: &str) -> u64 {
        let body: serde_json::Value = reqwest::get(format!("{}/stats", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body[endpoint].as_u64().unwrap()
    }

    /// The flags that point `postern serve` at this IdP's introspection.
    pub fn introspection_flags(&self) -> Vec<String> {
        vec![
            "--upstream-introspection".into(),
            format!("{}/oauth/introspect", self.base),
            "--upstream-revocation".into(),
            format!("{}/oauth/revoke", self.base),
            "--client-id".into(),
            "demo".into(),
            "--client-secret".into(),
            "demo-secret".into(),
        ]
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn device(id: &str) -> DeviceInput {
    DeviceInput::Id(id.to_string())
}

/// Enrolls a fresh identity for `user` and logs in from `device_id`.
pub async fn enroll_and_login(
    client: &PosternClient,
    user: &str,
    device_id: &str,
) -> (IdentityFile, LoginResponse) {
    let identity = IdentityFile::generate(user).unwrap();
    client.enroll(&identity).await.unwrap();
    let login = client.login(&identity, &device(device_id)).await.unwrap();
    (identity, login)
}

/// The status and `error` code of a JSON answer (`""` when it has none).
/// An error answer must also carry a human message.
pub async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    if status >= 400 {
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error body has a message: {body}"
        );
    }
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
    )
}

/// `GET /v1/check` with `token` as bearer and, when given, the scopes the
/// route requires (gate mode).
pub async fn check_bearer(server: &Server, token: &str, scopes: Option<&str>) -> reqwest::Response {
    let mut request = http().get(server.url("/v1/check")).bearer_auth(token);
    if let Some(scopes) = scopes {
        request = request.header("X-Postern-Required-Scopes", scopes);
    }
    request.send().await.unwrap()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// A free TCP port on 127.0.0.1 (free when this returns; tests that need
/// a known port before starting the server use it at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway `redis-server` on a free port, keeping nothing on disk;
/// killed when dropped. Tests that share revocations between instances
/// use their own server so that they can also take it away.
pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_on(free_port())
    }

    /// Starts (or restarts) on `port` and waits until it answers.
    pub fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server is not installed (apt-get install redis-server; .ci/run does)");
        let redis = Redis { child, port };
        for _ in 0..200 {
            if redis.ping() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not answer on port {port}");
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
