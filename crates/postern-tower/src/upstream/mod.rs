//! Upstream validators: who Postern asks on a miss.
//!
//! [`Upstream`] is an enum rather than a trait object: the set of supported
//! protocols is closed, dispatch stays static, and a deployment picks one at
//! start-up from configuration.

pub mod auth1;
pub mod introspection;
mod jwt;

use std::time::Duration;

use crate::session::Validated;
use crate::tls::TrustRoots;

pub use jwt::peek_jwt;

/// What went wrong talking to the upstream (cloneable, so one answer can be
/// shared by every request waiting on the same miss). [`UpstreamError::blame`]
/// says whom it is about, which decides the HTTP answer and whether the
/// circuit breaker counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream says the token is not valid (401, `active: false`, or
    /// an answer about a token that is not a bearer access token or not
    /// valid yet).
    #[error("token rejected by the upstream: {0}")]
    Rejected(&'static str),
    /// The upstream could not be reached in time.
    #[error("upstream timed out")]
    Timeout,
    #[error("upstream unreachable")]
    Unreachable,
    /// An HTTP status the protocol does not give for a token: a 5xx (the
    /// upstream is failing) or another (a redirect, a 404: this answer
    /// cannot be used).
    #[error("upstream answered HTTP {0}")]
    Status(u16),
    /// A 200 whose body Postern cannot use: not the protocol's JSON, or
    /// naming nobody.
    #[error("upstream answer is malformed: {0}")]
    Malformed(&'static str),
}

/// Whom an [`UpstreamError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The upstream's verdict on the token: the token is refused (401).
    Token,
    /// This one answer cannot be used (502): it fails this token only and
    /// says nothing about the upstream's health, since the upstream did
    /// answer. One malformed answer must not shut every client out.
    Answer,
    /// The upstream is failing (transport error, timeout, 5xx): the gate
    /// fails closed (503) and the circuit breaker counts it.
    Upstream,
}

impl UpstreamError {
    /// Whether this is the upstream's verdict on the token (as opposed to
    /// the upstream failing to give one).
    pub fn is_verdict(&self) -> bool {
        self.blame() == Blame::Token
    }

    /// Whom this error is about (see [`Blame`]).
    pub fn blame(&self) -> Blame {
        match self {
            UpstreamError::Rejected(_) => Blame::Token,
            UpstreamError::Timeout | UpstreamError::Unreachable => Blame::Upstream,
            UpstreamError::Status(status) if (500..=599).contains(status) => Blame::Upstream,
            UpstreamError::Status(_) | UpstreamError::Malformed(_) => Blame::Answer,
        }
    }

    pub(crate) fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            UpstreamError::Timeout
        } else if e.is_decode() {
            UpstreamError::Malformed("body")
        } else {
            UpstreamError::Unreachable
        }
    }

    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            UpstreamError::Rejected(_) => "rejected",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Unreachable => "unreachable",
            UpstreamError::Status(_) => "status",
            UpstreamError::Malformed(_) => "malformed",
        }
    }
}

/// Why an upstream could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamConfigError {
    #[error("invalid upstream URL `{0}`")]
    BadUrl(String),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// The HTTP(S) client of an upstream: `roots` decide which certificates
/// it trusts, and it follows no redirect (see [`TrustRoots`]).
pub(crate) fn http_client(
    timeout: Duration,
    roots: &TrustRoots,
) -> Result<reqwest::Client, UpstreamConfigError> {
    roots
        .http_builder(reqwest::Client::builder())
        .timeout(timeout)
        .pool_max_idle_per_host(64)
        .build()
        .map_err(UpstreamConfigError::Client)
}

pub(crate) fn check_url(url: &str) -> Result<String, UpstreamConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_string())
    } else {
        Err(UpstreamConfigError::BadUrl(url.to_string()))
    }
}

/// A configured upstream.
#[derive(Debug, Clone)]
pub enum Upstream {
    Introspection(introspection::Introspection),
    Auth1(auth1::Auth1),
}

impl Upstream {
    /// RFC 7662 introspection (and RFC 7009 revocation, if given) with
    /// HTTP Basic client authentication.
    pub fn introspection(
        introspect_url: &str,
        revoke_url: Option<&str>,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, UpstreamConfigError> {
        Ok(Upstream::Introspection(introspection::Introspection::new(
            introspect_url,
            revoke_url,
            client_id,
            client_secret,
            Duration::from_secs(2),
        )?))
    }

    /// The Auth1 session API at `base`.
    pub fn auth1(base: &str) -> Result<Self, UpstreamConfigError> {
        Ok(Upstream::Auth1(auth1::Auth1::new(
            base,
            Duration::from_secs(2),
        )?))
    }

    /// Sets the per-call timeout.
    pub fn with_timeout(self, timeout: Duration) -> Result<Self, UpstreamConfigError> {
        Ok(match self {
            Upstream::Introspection(i) => Upstream::Introspection(i.with_timeout(timeout)?),
            Upstream::Auth1(a) => Upstream::Auth1(a.with_timeout(timeout)?),
        })
    }

    /// Trusts `roots` (a private CA) for `https://` upstreams, beside the
    /// built-in roots.
    pub fn with_trust(self, roots: &TrustRoots) -> Result<Self, UpstreamConfigError> {
        Ok(match self {
            Upstream::Introspection(i) => Upstream::Introspection(i.with_trust(roots)?),
            Upstream::Auth1(a) => Upstream::Auth1(a.with_trust(roots)?),
        })
    }

    /// Asks the upstream about `token` at `now` (Unix ns): used to turn
    /// relative lifetimes (`expires_in`) into an absolute expiry, and to
    /// refuse a token that is not valid yet (`nbf`).
    pub async fn validate(&self, token: &str, now: u64) -> Result<Validated, UpstreamError> {
        match self {
            Upstream::Introspection(i) => i.validate(token, now).await,
            Upstream::Auth1(a) => a.validate(token, now).await,
        }
    }

    /// Revokes `token` upstream (RFC 7009, or Auth1 logout).
    pub async fn revoke(&self, token: &str) -> Result<(), UpstreamError> {
        match self {
            Upstream::Introspection(i) => i.revoke(token).await,
            Upstream::Auth1(a) => a.revoke(token).await,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Upstream::Introspection(_) => "introspection",
            Upstream::Auth1(_) => "auth1",
        }
    }
}
