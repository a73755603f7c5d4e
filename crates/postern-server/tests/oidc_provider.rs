//! Gate mode against a real third-party authorization server:
//! node-oidc-provider (npm `oidc-provider`), started by
//! `e2e/oidc-provider.mjs` over https with a certificate a CA made here
//! (rcgen) signs, and trusted by Postern through `--upstream-ca`. Tokens
//! are obtained from it with the OAuth client-credentials grant: opaque
//! access tokens whose RFC 7662 answer names the client and no user.
//!
//! Needs `node`; `npm ci` in `e2e/` is run when `node_modules` lacks
//! `oidc-provider`. Without them the test fails when `CI` is set and is
//! skipped, saying so, otherwise.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{error_of, http, Server};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::Value;

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e")
}

/// Whether node and `oidc-provider` are there; when they are not, fails
/// under CI and otherwise says why the test is skipped.
fn provider_available() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut missing = None;
    if !node {
        missing = Some("node");
    } else if !e2e_dir().join("node_modules/oidc-provider").exists() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(e2e_dir())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            missing = Some("e2e/node_modules/oidc-provider (npm ci failed)");
        }
    }
    let Some(missing) = missing else {
        return true;
    };
    if std::env::var_os("CI").is_some() {
        panic!("the node-oidc-provider test cannot run under CI: missing {missing}");
    }
    eprintln!("skipped: install node and run npm ci in e2e/ (missing {missing})");
    false
}

/// A CA made for one test and a certificate it signed for 127.0.0.1, as
/// PEM files: `ca.pem`, `cert.pem`, `key.pem`.
fn pki(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Postern test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// node-oidc-provider on a free port, over https; stops when dropped
/// (its stdin closes, and it is killed).
struct Provider {
    child: Child,
    issuer: String,
    http: reqwest::Client,
}

impl Provider {
    fn start(pki: &Path) -> Provider {
        let mut child = Command::new("node")
            .arg("oidc-provider.mjs")
            .arg("--cert")
            .arg(pki.join("cert.pem"))
            .arg("--key")
            .arg(pki.join("key.pem"))
            .arg("--exit-with-stdin")
            .current_dir(e2e_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("oidc-provider did not start in 30 s");
        let issuer = line
            .strip_prefix("oidc-provider listening on ")
            .expect("listening line")
            .to_string();
        assert!(issuer.starts_with("https://127.0.0.1:"), "{issuer}");
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(pki.join("ca.pem")).unwrap()).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        Provider {
            child,
            issuer,
            http,
        }
    }

    /// A client-credentials access token for `app`, with `scope`.
    async fn client_credentials(&self, scope: &str) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth("app", Some("app-secret"))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["token_type"], "Bearer", "{answer}");
        let token = answer["access_token"].as_str().unwrap().to_string();
        assert_eq!(token.split('.').count(), 1, "an opaque token: {answer}");
        token
    }

    /// RFC 7009 revocation, by the client the token was issued to.
    async fn revoke(&self, token: &str) {
        let status = self
            .http
            .post(format!("{}/token/revocation", self.issuer))
            .basic_auth("app", Some("app-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    /// The provider's own RFC 7662 answer, asked directly.
    async fn introspect(&self, token: &str) -> Value {
        self.http
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth("postern", Some("postern-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The flags that put `postern serve` in front of this provider.
    fn flags(&self, ca: &Path) -> Vec<String> {
        vec![
            "--upstream-introspection".into(),
            format!("{}/token/introspection", self.issuer),
            "--upstream-revocation".into(),
            format!("{}/token/revocation", self.issuer),
            "--client-id".into(),
            "postern".into(),
            "--client-secret".into(),
            "postern-secret".into(),
            "--upstream-ca".into(),
            ca.display().to_string(),
        ]
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn check(server: &Server, token: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http().get(server.url("/v1/check")).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The labelled metric line `name{labels} value`, as a number (0 if absent).
async fn metric(server: &Server, series: &str) -> f64 {
    let text = server.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn validations(outcome: &str) -> String {
    format!("postern_gate_upstream_duration_seconds_count{{op=\"validate\",outcome=\"{outcome}\"}}")
}

#[tokio::test]
async fn client_credentials_tokens_from_node_oidc_provider_over_https_pass_as_their_client() {
    if !provider_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let provider = Provider::start(dir.path());
    let flags = provider.flags(&dir.path().join("ca.pem"));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(&dir.path().join("data"), &flags);

    // A valid client-credentials token: 200 as its client, no user.
    let token = provider.client_credentials("read write").await;
    let answer = provider.introspect(&token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], "app");
    assert!(answer.get("sub").is_none(), "no subject: {answer}");
    for _ in 0..3 {
        let r = check(&server, &token, &[("X-Postern-Required-Scopes", "read")]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-postern-client"], "app");
        assert!(!r.headers().contains_key("x-postern-user"));
        assert_eq!(r.headers()["x-postern-scopes"], "read write");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "user": null, "client": "app", "scopes": ["read", "write"], "session_id": null })
        );
    }
    // Served from the cache after the first: one upstream call.
    assert_eq!(metric(&server, &validations("ok")).await, 1.0);

    // The route's requirements, checked on hits: audience (from the
    // resource indicator), scope, and a subject it does not have.
    let audience = check(&server, &token, &[("X-Postern-Required-Audience", "api")]).await;
    assert_eq!(audience.status(), 200);
    for (header, value) in [
        ("X-Postern-Required-Scopes", "admin"),
        ("X-Postern-Required-Audience", "billing"),
        ("X-Postern-Required-Subject", "true"),
    ] {
        let r = check(&server, &token, &[(header, value)]).await;
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"insufficient_scope\"",
            "{header}"
        );
        assert_eq!(error_of(r).await, (403, "insufficient_scope".into()));
    }
    assert_eq!(metric(&server, &validations("ok")).await, 1.0, "all hits");

    // Revoked at the provider before Postern saw it: 401, never cached.
    let revoked = provider.client_credentials("read").await;
    provider.revoke(&revoked).await;
    for _ in 0..2 {
        let r = check(&server, &revoked, &[]).await;
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(error_of(r).await, (401, "invalid_token".into()));
    }
    assert_eq!(metric(&server, &validations("rejected")).await, 2.0);

    // Garbage, and a JWT the provider did not issue (it answers 400
    // `unsupported_token_type` for a JWT): refused, 401, not 5xx.
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2ln";
    for junk in ["garbage", jwt] {
        let r = check(&server, junk, &[]).await;
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\"",
            "{junk}"
        );
        assert_eq!(error_of(r).await, (401, "invalid_token".into()), "{junk}");
    }
    assert_eq!(metric(&server, &validations("rejected")).await, 4.0);
    assert_eq!(server.metric("postern_gate_cache_entries").await, 1.0);

    // Logout through Postern revokes at the provider too.
    let out = http()
        .post(server.url("/v1/session/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(provider.introspect(&token).await["active"], false);
    assert_eq!(
        error_of(check(&server, &token, &[]).await).await,
        (401, "invalid_token".into())
    );
}
