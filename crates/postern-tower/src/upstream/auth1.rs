//! The seed's "Auth1" session API.
//!
//! `POST {base}/api/auth/session` with `Authorization: Bearer <token>`
//! answers 200 with `{ "user": { "id", ... }, "session": { "id", ... },
//! "expires_in": <seconds>, "scopes": [...]? }`, or 401 for a token it does
//! not accept. Logout is `POST {base}/api/auth/logout` with the same header.

use std::time::Duration;

use serde::Deserialize;

use super::{check_url, http_client, UpstreamConfigError, UpstreamError};
use crate::session::Validated;
use crate::tls::TrustRoots;

/// An Auth1 session-API client.
#[derive(Debug, Clone)]
pub struct Auth1 {
    http: reqwest::Client,
    timeout: Duration,
    roots: TrustRoots,
    base: String,
}

#[derive(Deserialize)]
struct User {
    id: String,
}

#[derive(Deserialize)]
struct Session {
    id: Option<String>,
}

#[derive(Deserialize)]
struct SessionResponse {
    user: User,
    session: Option<Session>,
    expires_in: Option<u64>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    audience: Vec<String>,
}

impl Auth1 {
    pub fn new(base: &str, timeout: Duration) -> Result<Self, UpstreamConfigError> {
        let roots = TrustRoots::builtin();
        Ok(Self {
            http: http_client(timeout, &roots)?,
            timeout,
            roots,
            base: check_url(base)?,
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, UpstreamConfigError> {
        self.http = http_client(timeout, &self.roots)?;
        self.timeout = timeout;
        Ok(self)
    }

    pub fn with_trust(mut self, roots: &TrustRoots) -> Result<Self, UpstreamConfigError> {
        self.http = http_client(self.timeout, roots)?;
        self.roots = roots.clone();
        Ok(self)
    }

    pub async fn validate(&self, token: &str, now: u64) -> Result<Validated, UpstreamError> {
        let response = self
            .http
            .post(format!("{}/api/auth/session", self.base))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        match response.status().as_u16() {
            200 => {}
            401 | 403 => return Err(UpstreamError::Rejected("unauthorized")),
            status => return Err(UpstreamError::Status(status)),
        }
        let body = response
            .bytes()
            .await
            .map_err(|_| UpstreamError::Malformed("session JSON"))?;
        decode_answer(&body, now)
    }

    pub async fn revoke(&self, token: &str) -> Result<(), UpstreamError> {
        let response = self
            .http
            .post(format!("{}/api/auth/logout", self.base))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        match response.status().as_u16() {
            200 | 204 | 401 => Ok(()),
            status => Err(UpstreamError::Status(status)),
        }
    }
}

/// Decodes a session answer (the body of a 200) received at `now` (Unix
/// ns). The upstream's bytes are attacker-controlled if the upstream is:
/// typed errors, never a panic (fuzzed by
/// `fuzz/fuzz_targets/upstream_answers.rs`).
pub fn decode_answer(body: &[u8], now: u64) -> Result<Validated, UpstreamError> {
    let body: SessionResponse =
        serde_json::from_slice(body).map_err(|_| UpstreamError::Malformed("session JSON"))?;
    if body.user.id.is_empty() {
        return Err(UpstreamError::Malformed("empty user id"));
    }
    Ok(Validated::new(
        Some(body.user.id),
        body.scopes,
        body.audience,
        body.expires_in
            .map_or(0, |s| now.saturating_add(s.saturating_mul(1_000_000_000))),
        body.session.and_then(|s| s.id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_answer_decodes_with_its_expiry_counted_from_now() {
        let body = br#"{"user":{"id":"u1"},"session":{"id":"s1"},"expires_in":60,"scopes":["a"]}"#;
        assert_eq!(
            decode_answer(body, 1_000),
            Ok(Validated::new(
                Some("u1".into()),
                vec!["a".into()],
                Vec::new(),
                1_000 + 60_000_000_000,
                Some("s1".into()),
            ))
        );
        assert_eq!(
            decode_answer(br#"{"session":{"id":"s1"}}"#, 0),
            Err(UpstreamError::Malformed("session JSON"))
        );
        assert_eq!(
            decode_answer(br#"{"user":{"id":""}}"#, 0),
            Err(UpstreamError::Malformed("empty user id"))
        );
    }
}
