//! TLS to the upstream and for the CLI, with certificates made here: a
//! private CA (rcgen) signs a certificate for 127.0.0.1, which a real TLS
//! listener presents in front of the real demo IdP, of a real Postern, or
//! which a real `redis-server --tls-port` presents.
//!
//! Also: cleartext to a host that is not loopback is refused at start.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{check_bearer, error_of, http, postern, Idp, Server};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA made for one test, and a certificate it signed for 127.0.0.1
/// (and `localhost`), written as PEM files in `dir`.
struct Pki {
    dir: tempfile::TempDir,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Postern test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        leaf.distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer).unwrap();

        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Pki {
            dir,
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A TLS listener on 127.0.0.1 presenting `pki`'s certificate and passing
/// each connection's plaintext to `target`, on its own thread and runtime
/// (so blocking test code never starves it). Stops when dropped.
struct TlsFront {
    port: u16,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TlsFront {
    fn start(target: SocketAddr, pki: &Pki) -> TlsFront {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.clone())),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok(a) => a,
                            Err(_) => continue,
                        },
                    };
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        // A client that refuses the certificate ends here.
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let Ok(mut plain) = tokio::net::TcpStream::connect(target).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        });
        TlsFront { port, _stop: stop }
    }

    fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

fn addr_of(base: &str) -> SocketAddr {
    base.strip_prefix("http://").unwrap().parse().unwrap()
}

/// Flags for a gate whose introspection and revocation go through `front`.
fn https_flags(front: &TlsFront) -> Vec<String> {
    [
        "--upstream-introspection",
        &format!("{}/oauth/introspect", front.base()),
        "--upstream-revocation",
        &format!("{}/oauth/revoke", front.base()),
        "--client-id",
        "demo",
        "--client-secret",
        "demo-secret",
    ]
    .map(String::from)
    .to_vec()
}

/// The revocation feed's key (`--redis` needs one; the same on every
/// instance).
const FEED_KEY: &str = "tls-test-feed-key-0123456789abcdef";

fn start(dir: &Path, flags: &[String]) -> Server {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start_with_env(dir, &flags, &[("POSTERN_REDIS_FEED_KEY", FEED_KEY)])
}

async fn logout(server: &Server, token: &str) -> (u16, String) {
    let response = http()
        .post(server.url("/v1/session/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    error_of(response).await
}

#[tokio::test]
async fn an_https_upstream_certified_by_the_upstream_ca_is_trusted() {
    let pki = Pki::new();
    let idp = Idp::start(&[]);
    let front = TlsFront::start(addr_of(&idp.base), &pki);
    let dir = tempfile::tempdir().unwrap();
    let mut flags = https_flags(&front);
    flags.extend([
        "--upstream-ca".into(),
        pki.ca().display().to_string(),
        "--upstream-jwks".into(),
        format!("{}/.well-known/jwks.json", front.base()),
        "--jwks-interval".into(),
        "100ms".into(),
    ]);
    let server = start(dir.path(), &flags);
    let token = idp.mint("alice", "read", 600).await;
    let r = check_bearer(&server, &token, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-postern-user"], "alice");
    assert_eq!(idp.calls("introspect").await, 1);

    // The JWKS is read over the same TLS: rotating the token's key out
    // purges it, so the next request asks upstream again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    http()
        .post(format!("{}/admin/jwks", idp.base))
        .json(&serde_json::json!({ "kids": ["demo-key-2"] }))
        .send()
        .await
        .unwrap();
    let start = Instant::now();
    while !server
        .metrics()
        .await
        .contains("postern_gate_cache_entries 0")
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the JWKS over https was never read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(check_bearer(&server, &token, None).await.status(), 200);
    assert_eq!(idp.calls("introspect").await, 2);

    // Logout revokes upstream over https too.
    assert_eq!(logout(&server, &token).await, (200, String::new()));
    assert_eq!(idp.calls("revoke").await, 1);
}

#[tokio::test]
async fn an_https_upstream_certified_by_another_ca_fails_closed_and_never_sees_the_token() {
    let pki = Pki::new();
    let other = Pki::new();
    let idp = Idp::start(&[]);
    let front = TlsFront::start(addr_of(&idp.base), &pki);
    let token = idp.mint("bob", "read", 600).await;
    let with_other_ca = {
        let mut flags = https_flags(&front);
        flags.extend(["--upstream-ca".into(), other.ca().display().to_string()]);
        flags
    };
    for flags in [with_other_ca, https_flags(&front)] {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), &flags);
        for _ in 0..3 {
            assert_eq!(
                error_of(check_bearer(&server, &token, None).await).await,
                (503, "upstream_unavailable".into()),
                "{flags:?}"
            );
        }
    }
    assert_eq!(
        idp.calls("introspect").await,
        0,
        "the handshake failed before any token was sent"
    );
}

/// `postern serve` with `flags` in gate mode, expected to stop at start
/// before it writes anything; returns what it printed.
fn refused_start(flags: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = postern()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .args(flags)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "{flags:?} started");
    assert!(output.stdout.is_empty(), "{flags:?} listened");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "{flags:?}: nothing is written (no key, no database) before the refusal"
    );
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn a_missing_or_unusable_ca_file_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let upstream = ["--upstream-auth1", "http://127.0.0.1:9"];
    let message = refused_start(&[
        upstream[0],
        upstream[1],
        "--upstream-ca",
        missing.to_str().unwrap(),
    ]);
    assert!(
        message.contains("--upstream-ca: cannot read the CA file")
            && message.contains("missing-ca.pem"),
        "{message}"
    );

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let message = refused_start(&[
        upstream[0],
        upstream[1],
        "--upstream-ca",
        junk.to_str().unwrap(),
    ]);
    assert!(
        message.contains("junk.pem holds no certificate"),
        "{message}"
    );

    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let message = refused_start(&[
        upstream[0],
        upstream[1],
        "--upstream-ca",
        junk.to_str().unwrap(),
    ]);
    assert!(
        message.contains("certificate 1 of the CA file") && message.contains("junk.pem"),
        "{message}"
    );
}

#[tokio::test]
async fn cleartext_to_a_host_that_is_not_loopback_is_refused_unless_allowed() {
    let message = refused_start(&["--upstream-auth1", "http://idp.example.com/"]);
    assert!(
        message.contains(
            "--upstream-auth1: cleartext to `idp.example.com`, which is not loopback, is refused"
        ) && message.contains("--allow-insecure-upstream"),
        "{message}"
    );
    let message = refused_start(&[
        "--upstream-introspection",
        "https://idp.example.com/introspect",
        "--client-id",
        "c",
        "--client-secret",
        "s",
        "--upstream-jwks",
        "http://10.20.30.40/jwks.json",
    ]);
    assert!(
        message.contains("--upstream-jwks: cleartext to `10.20.30.40`"),
        "{message}"
    );
    let message = refused_start(&[
        "--upstream-auth1",
        "http://127.0.0.1:9",
        "--redis",
        "redis://:hunter2@10.9.8.7:6379",
    ]);
    assert!(
        message.contains("--redis: cleartext to `10.9.8.7`"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    // Loopback is fine without TLS, and the flag (or its variable) accepts
    // the risk for other hosts. Nothing here contacts the upstream.
    let dir = tempfile::tempdir().unwrap();
    let loopback = Server::start(dir.path(), &["--upstream-auth1", "http://localhost:9"]);
    drop(loopback);
    let dir = tempfile::tempdir().unwrap();
    let allowed = Server::start(
        dir.path(),
        &[
            "--upstream-auth1",
            "http://idp.invalid",
            "--allow-insecure-upstream",
        ],
    );
    drop(allowed);
    let dir = tempfile::tempdir().unwrap();
    let allowed = Server::start_with_env(
        dir.path(),
        &["--upstream-auth1", "http://idp.invalid"],
        &[("POSTERN_ALLOW_INSECURE_UPSTREAM", "true")],
    );
    drop(allowed);
}

/// A throwaway `redis-server` serving TLS only, with `pki`'s certificate.
struct TlsRedis {
    child: Child,
    port: u16,
}

impl TlsRedis {
    fn start(pki: &Pki) -> TlsRedis {
        let port = common::free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(pki.file("cert.pem"))
            .arg("--tls-key-file")
            .arg(pki.file("key.pem"))
            .arg("--tls-ca-cert-file")
            .arg(pki.ca())
            .args(["--tls-auth-clients", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server is not installed (apt-get install redis-server; .ci/run does)");
        let redis = TlsRedis { child, port };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not listen on TLS port {port}");
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn until_status(server: &Server, token: &str, want: u16, within: Duration) {
    let start = Instant::now();
    while check_bearer(server, token, None).await.status() != want {
        assert!(start.elapsed() < within, "no {want} within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_rediss_feed_shares_logouts_and_an_untrusted_redis_is_not_used() {
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki);
    // Stateless: a refusal on the other instance can only come from the feed.
    let idp = Idp::start(&["--stateless"]);
    let instance = |dir: &Path, extra: &[&str]| {
        let mut flags = idp.introspection_flags();
        flags.extend(["--redis".to_string(), redis.url()]);
        flags.extend(extra.iter().map(|s| s.to_string()));
        start(dir, &flags)
    };
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let ca = pki.ca().display().to_string();
    let a = instance(dirs[0].path(), &["--upstream-ca", &ca]);
    let b = instance(dirs[1].path(), &["--upstream-ca", &ca]);
    let token = idp.mint("dave", "read", 600).await;
    for server in [&a, &b] {
        until_status(server, &token, 200, Duration::from_secs(5)).await;
    }
    let calls = idp.calls("introspect").await;
    assert_eq!(check_bearer(&b, &token, None).await.status(), 200);
    assert_eq!(idp.calls("introspect").await, calls, "b serves a hit");
    assert_eq!(logout(&a, &token).await, (200, String::new()));
    until_status(&b, &token, 401, Duration::from_secs(2)).await;
    assert_eq!(
        idp.calls("introspect").await,
        calls,
        "b refused from the feed over TLS, without asking upstream"
    );

    // Without the CA, the Redis certificate is not trusted: no feed, so
    // every request asks upstream and a logout says it was not shared.
    let c = instance(dirs[2].path(), &["--revocation-max-lag", "3s"]);
    let other = idp.mint("erin", "read", 600).await;
    let before = idp.calls("introspect").await;
    for n in 1..=3 {
        assert_eq!(check_bearer(&c, &other, None).await.status(), 200);
        assert_eq!(idp.calls("introspect").await, before + n);
    }
    assert_eq!(
        logout(&c, &other).await,
        (503, "revocation_not_shared".into())
    );
}

/// `postern client` with `args`, and the environment in `env`.
fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    postern()
        .arg("client")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_cli_reaches_an_https_server_with_its_ca() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    // The TLS front is the origin clients reach, so identity proofs are
    // bound to it: the server is told so (`--audience`). The front needs
    // the server's address first, so the server's port is chosen first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let front = TlsFront::start(listen.parse().unwrap(), &pki);
    let _server = Server::start_on(&listen, dir.path(), &["--audience", &front.base()], &[]);
    let identity = dir.path().join("carol.identity");
    let base = front.base();
    let enroll = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "enroll",
            "--server",
            base.as_str(),
            "--user",
            "carol",
            "--identity",
            identity.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        cli(&args, env)
    };

    let untrusted = enroll(&[], &[]);
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        stderr.contains("could not reach the server") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );

    let ca = pki.ca().display().to_string();
    let trusted = enroll(&["--ca", &ca], &[]);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&trusted.stdout).unwrap();
    assert_eq!(body["user"], "carol");

    let login = cli(
        &[
            "login",
            "--server",
            &base,
            "--user",
            "carol",
            "--device",
            "laptop",
            "--identity",
            identity.to_str().unwrap(),
        ],
        &[("POSTERN_CA", &ca)],
    );
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&login.stdout).unwrap();
    assert_eq!(body["user"], "carol");

    // Account commands reach the server through the same CA.
    let token = body["token"].as_str().unwrap().to_string();
    let passkeys = cli(
        &[
            "passkeys", "--server", &base, "--user", "carol", "--device", "laptop", "--ca", &ca,
        ],
        &[("POSTERN_TOKEN", &token)],
    );
    assert!(
        passkeys.status.success(),
        "{}",
        String::from_utf8_lossy(&passkeys.stderr)
    );

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "nothing here").unwrap();
    let refused = enroll(&["--ca", junk.to_str().unwrap()], &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("the CA file holds no certificate") && stderr.contains("junk.pem"),
        "{stderr}"
    );
}
