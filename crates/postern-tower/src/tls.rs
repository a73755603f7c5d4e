//! TLS to the upstream: which roots are trusted, and which cleartext URLs
//! are refused.
//!
//! Every HTTPS client the gate builds (introspection, revocation, Auth1,
//! JWKS) is rustls with the ring provider and trusts Mozilla's roots
//! (webpki-roots, compiled in), the system's roots, and the certificates of
//! an optional private CA ([`TrustRoots::from_pem_file`], `--upstream-ca`).
//! `rediss://` trusts the compiled-in roots, or only the private CA when one
//! is given: the redis client takes one root store, not a union, and a
//! private Redis is certified by a private CA.
//!
//! [`cleartext_remote_host`] names the host of a URL that would carry tokens
//! or secrets unencrypted over a network (`http://`, `redis://` to a host
//! other than loopback); the server refuses those at start unless told
//! otherwise.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ::redis::Client;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read the CA file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the CA file {path} is not valid PEM: {reason}")]
    Pem { path: String, reason: String },
    #[error("the CA file {path} holds no certificate (expected PEM blocks `-----BEGIN CERTIFICATE-----`)")]
    Empty { path: String },
    #[error("certificate {index} of the CA file {path} is not a usable trust anchor: {reason}")]
    Anchor {
        path: String,
        index: usize,
        reason: String,
    },
}

/// The roots the gate's upstream connections trust beyond the built-in
/// ones: the certificates of a private CA file, if any. Cheap to clone.
#[derive(Clone, Default)]
pub struct TrustRoots {
    private: Option<Arc<PrivateCa>>,
}

struct PrivateCa {
    /// The file's name, for messages.
    path: String,
    /// The certificates as reqwest takes them.
    certificates: Vec<reqwest::Certificate>,
    /// The same certificates as PEM, as the redis client takes them.
    pem: Vec<u8>,
}

impl std::fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("TrustRoots");
        match &self.private {
            Some(ca) => d
                .field("private_ca", &ca.path)
                .field("certificates", &ca.certificates.len()),
            None => d.field("private_ca", &"none"),
        }
        .finish()
    }
}

impl TrustRoots {
    /// Only the built-in roots (webpki and the system's).
    pub fn builtin() -> Self {
        Self::default()
    }

    /// The built-in roots plus every certificate of the PEM file at `path`.
    /// A file that cannot be read, is not PEM, holds no certificate or a
    /// certificate that cannot anchor trust is an error.
    pub fn from_pem_file(path: &Path) -> Result<Self, TrustError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| TrustError::Read {
            path: name.clone(),
            source,
        })?;
        Self::from_pem(&bytes, &name)
    }

    /// As [`TrustRoots::from_pem_file`], from the file's bytes; `path`
    /// names them in errors.
    pub fn from_pem(bytes: &[u8], path: &str) -> Result<Self, TrustError> {
        let ders = CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TrustError::Pem {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        if ders.is_empty() {
            return Err(TrustError::Empty {
                path: path.to_string(),
            });
        }
        let mut store = RootCertStore::empty();
        let mut certificates = Vec::with_capacity(ders.len());
        for (i, der) in ders.iter().enumerate() {
            let anchor = |reason: String| TrustError::Anchor {
                path: path.to_string(),
                index: i + 1,
                reason,
            };
            store.add(der.clone()).map_err(|e| anchor(e.to_string()))?;
            certificates
                .push(reqwest::Certificate::from_der(der).map_err(|e| anchor(e.to_string()))?);
        }
        let mut pem = Vec::new();
        for der in &ders {
            pem.extend_from_slice(pem_block(der).as_bytes());
        }
        Ok(Self {
            private: Some(Arc::new(PrivateCa {
                path: path.to_string(),
                certificates,
                pem,
            })),
        })
    }

    /// Whether a private CA is trusted.
    pub fn has_private_ca(&self) -> bool {
        self.private.is_some()
    }

    /// `builder` trusting these roots, and following no redirect: the URLs
    /// are configuration, and a redirect could lead to cleartext or to
    /// another host.
    pub(crate) fn http_builder(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let mut builder = builder.redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &self.private {
            for certificate in &ca.certificates {
                builder = builder.add_root_certificate(certificate.clone());
            }
        }
        builder
    }

    /// A redis client for `url`: with a private CA, a `rediss://` URL
    /// trusts it alone; otherwise the built-in roots.
    pub(crate) fn redis_client(&self, url: &str) -> ::redis::RedisResult<Client> {
        install_provider();
        match &self.private {
            Some(ca) if is_redis_tls(url) => Client::build_with_tls(
                url,
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.pem.clone()),
                },
            ),
            _ => Client::open(url),
        }
    }
}

fn is_redis_tls(url: &str) -> bool {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    matches!(scheme.as_deref(), Some("rediss" | "valkeys"))
}

/// The process's rustls provider: ring, the one reqwest also uses. The
/// redis client asks rustls for the process default, which rustls can only
/// guess while exactly one provider is built in; installing it makes that
/// independent of what other crates enable.
fn install_provider() {
    // An error means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn pem_block(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    // PEM lines are 64 characters (RFC 7468 §2); base64 is ASCII.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The host of `url` when the URL sends cleartext over a network: an
/// `http://` or `redis://` (`valkey://`) URL whose host is not loopback
/// (`127.0.0.0/8`, `::1`, `localhost`). `None` for encrypted schemes,
/// loopback hosts and Unix sockets. A cleartext URL whose host cannot be
/// read counts as remote (`Some("?")`). Only the host is returned, never
/// the URL, which may hold a password.
pub fn cleartext_remote_host(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once("://")?;
    if !matches!(
        scheme.to_ascii_lowercase().as_str(),
        "http" | "redis" | "valkey"
    ) {
        return None;
    }
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    if is_loopback(&host) {
        None
    } else if host.is_empty() {
        Some("?".into())
    } else {
        Some(host)
    }
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleartext_to_a_remote_host_is_named_and_loopback_is_not() {
        for (url, expected) in [
            (
                "http://idp.example.com/oauth/introspect",
                Some("idp.example.com"),
            ),
            ("HTTP://10.0.0.7:8080", Some("10.0.0.7")),
            ("http://[2001:db8::1]/x", Some("[2001:db8::1]")),
            ("redis://:hunter2@10.1.2.3:6379/0", Some("10.1.2.3")),
            ("redis://cache.internal", Some("cache.internal")),
            ("valkey://user:pw@cache.internal", Some("cache.internal")),
            ("http://0.0.0.0:80", Some("0.0.0.0")),
            ("http://", Some("?")),
            ("http://127.0.0.1:9000/x", None),
            ("http://127.8.9.10", None),
            ("http://localhost:9000", None),
            ("http://LOCALHOST", None),
            ("http://[::1]:9000", None),
            ("http://[::ffff:127.0.0.1]", None),
            ("redis://:pw@127.0.0.1:6379", None),
            ("redis://localhost", None),
            ("https://idp.example.com", None),
            ("rediss://:pw@cache.internal:6380", None),
            ("redis+unix:///run/redis.sock", None),
            ("unix:///run/redis.sock", None),
        ] {
            assert_eq!(cleartext_remote_host(url).as_deref(), expected, "{url}");
        }
    }

    #[test]
    fn the_named_host_never_carries_the_password() {
        let host = cleartext_remote_host("redis://admin:hunter2@db.example:6379").unwrap();
        assert_eq!(host, "db.example");
    }

    #[test]
    fn ca_files_that_are_missing_empty_or_not_certificates_are_refused() {
        let dir = std::env::temp_dir().join(format!("postern-tls-{}", std::process::id()));
        let missing = TrustRoots::from_pem_file(&dir.join("missing.pem")).unwrap_err();
        assert!(matches!(missing, TrustError::Read { .. }), "{missing}");
        assert!(missing.to_string().contains("missing.pem"), "{missing}");

        let empty = TrustRoots::from_pem(b"just some text\n", "ca.pem").unwrap_err();
        assert_eq!(
            empty.to_string(),
            "the CA file ca.pem holds no certificate (expected PEM blocks `-----BEGIN CERTIFICATE-----`)"
        );
        let bad_base64 = TrustRoots::from_pem(
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            "ca.pem",
        )
        .unwrap_err();
        assert!(matches!(bad_base64, TrustError::Pem { .. }), "{bad_base64}");
        let not_x509 = TrustRoots::from_pem(
            b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
            "ca.pem",
        )
        .unwrap_err();
        assert!(
            matches!(not_x509, TrustError::Anchor { index: 1, .. }),
            "{not_x509}"
        );
    }

    #[test]
    fn the_pem_handed_to_redis_reads_back_as_the_same_certificates() {
        let der = CertificateDer::from(vec![0x30u8, 0x03, 0x02, 0x01, 0x05]);
        let block = pem_block(&der);
        let back: Vec<_> = CertificateDer::pem_slice_iter(block.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, vec![der]);
    }

    #[test]
    fn only_rediss_and_valkeys_urls_are_tls() {
        assert!(is_redis_tls("rediss://:pw@h:6380"));
        assert!(is_redis_tls("VALKEYS://h"));
        assert!(!is_redis_tls("redis://h"));
        assert!(!is_redis_tls("redis+unix:///s"));
    }
}
