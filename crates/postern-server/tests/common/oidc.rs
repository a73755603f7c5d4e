//! node-oidc-provider (npm `oidc-provider`), a real third-party
//! authorization server, started by `e2e/oidc-provider.mjs` over https
//! with a certificate a CA made here (rcgen) signs: for the gate's tests
//! against it (`tests/oidc_provider.rs`) and behind real proxies
//! (`tests/proxies.rs`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::Value;

/// What the provider's tests lack (node, `oidc-provider` from npm).
pub fn missing() -> Vec<String> {
    super::e2e::node_missing("oidc-provider")
}

/// A CA made for one test and a certificate it signed for 127.0.0.1, as
/// PEM files: `ca.pem`, `cert.pem`, `key.pem`.
pub fn pki(dir: &Path) {
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
pub struct Provider {
    child: Child,
    pub issuer: String,
    pub http: reqwest::Client,
}

impl Provider {
    pub fn start(pki: &Path) -> Provider {
        let mut child = Command::new("node")
            .arg("oidc-provider.mjs")
            .arg("--cert")
            .arg(pki.join("cert.pem"))
            .arg("--key")
            .arg(pki.join("key.pem"))
            .arg("--exit-with-stdin")
            .current_dir(super::e2e::dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let line = super::first_stdout_line(&mut child, Duration::from_secs(30))
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
    pub async fn client_credentials(&self, scope: &str) -> String {
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
    pub async fn revoke(&self, token: &str) {
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
    pub async fn introspect(&self, token: &str) -> Value {
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
    pub fn flags(&self, ca: &Path) -> Vec<String> {
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
