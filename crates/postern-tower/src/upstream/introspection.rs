//! OAuth 2.0 Token Introspection (RFC 7662) and Token Revocation (RFC 7009).
//!
//! RFC 7662 §2.1: "The protected resource calls the introspection endpoint
//! using an HTTP POST request with parameters sent as
//! application/x-www-form-urlencoded", with `token` and an optional
//! `token_type_hint`, and authenticates itself (here with HTTP Basic, §2.1
//! "MUST also require some form of authorization"). §2.2: "active" is
//! REQUIRED; `scope`, `aud`, `exp`, `sub`, `username` are optional.

use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{check_url, http_client, UpstreamConfigError, UpstreamError};
use crate::session::Validated;
use crate::tls::TrustRoots;

/// An RFC 7662 introspection client.
#[derive(Clone)]
pub struct Introspection {
    http: reqwest::Client,
    timeout: Duration,
    roots: TrustRoots,
    introspect_url: String,
    revoke_url: Option<String>,
    client_id: String,
    client_secret: Zeroizing<String>,
}

impl std::fmt::Debug for Introspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspection")
            .field("introspect_url", &self.introspect_url)
            .field("revoke_url", &self.revoke_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct IntrospectionResponse {
    active: bool,
    scope: Option<String>,
    sub: Option<String>,
    username: Option<String>,
    aud: Option<OneOrMany>,
    exp: Option<u64>,
    sid: Option<String>,
}

impl Introspection {
    pub fn new(
        introspect_url: &str,
        revoke_url: Option<&str>,
        client_id: &str,
        client_secret: &str,
        timeout: Duration,
    ) -> Result<Self, UpstreamConfigError> {
        let roots = TrustRoots::builtin();
        Ok(Self {
            http: http_client(timeout, &roots)?,
            timeout,
            roots,
            introspect_url: check_url(introspect_url)?,
            revoke_url: revoke_url.map(check_url).transpose()?,
            client_id: client_id.to_string(),
            client_secret: Zeroizing::new(client_secret.to_string()),
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

    pub async fn validate(&self, token: &str) -> Result<Validated, UpstreamError> {
        let response = self
            .http
            .post(&self.introspect_url)
            .basic_auth(&self.client_id, Some(self.client_secret.as_str()))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(UpstreamError::Status(status));
        }
        let body = response
            .bytes()
            .await
            .map_err(|_| UpstreamError::Malformed("introspection JSON"))?;
        decode_answer(&body)
    }

    /// RFC 7009 §2.1: POST `token` to the revocation endpoint; §2.2: "The
    /// authorization server responds with HTTP status code 200 if the token
    /// has been revoked successfully or if the client submitted an invalid
    /// token."
    pub async fn revoke(&self, token: &str) -> Result<(), UpstreamError> {
        let Some(url) = &self.revoke_url else {
            return Ok(());
        };
        let response = self
            .http
            .post(url)
            .basic_auth(&self.client_id, Some(self.client_secret.as_str()))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        match response.status().as_u16() {
            200 => Ok(()),
            status => Err(UpstreamError::Status(status)),
        }
    }
}

/// Decodes an introspection answer (the body of a 200). The upstream's
/// bytes are attacker-controlled if the upstream is: typed errors, never a
/// panic (fuzzed by `fuzz/fuzz_targets/upstream_answers.rs`).
pub fn decode_answer(body: &[u8]) -> Result<Validated, UpstreamError> {
    let body: IntrospectionResponse =
        serde_json::from_slice(body).map_err(|_| UpstreamError::Malformed("introspection JSON"))?;
    if !body.active {
        return Err(UpstreamError::Rejected("inactive"));
    }
    let subject = body
        .sub
        .or(body.username)
        .ok_or(UpstreamError::Malformed("no sub or username"))?;
    Ok(Validated::new(
        subject,
        body.scope
            .map(|s| s.split_ascii_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        match body.aud {
            Some(OneOrMany::One(a)) => vec![a],
            Some(OneOrMany::Many(a)) => a,
            None => Vec::new(),
        },
        body.exp.map_or(0, |s| s.saturating_mul(1_000_000_000)),
        body.sid,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_active_answer_decodes_to_its_subject_scopes_audience_and_expiry() {
        let body = br#"{"active":true,"sub":"alice","scope":"read  write","aud":"api","exp":1800000000,"sid":"s1"}"#;
        let validated = decode_answer(body).unwrap();
        assert_eq!(
            validated,
            Validated::new(
                "alice".into(),
                vec!["read".into(), "write".into()],
                vec!["api".into()],
                1_800_000_000_000_000_000,
                Some("s1".into()),
            )
        );
        let by_username = decode_answer(br#"{"active":true,"username":"bob","aud":["a","b"]}"#);
        assert_eq!(
            by_username.map(|v| (v.subject, v.audience)),
            Ok(("bob".into(), vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn inactive_anonymous_and_malformed_answers_are_typed_errors() {
        assert_eq!(
            decode_answer(br#"{"active":false,"sub":"alice"}"#),
            Err(UpstreamError::Rejected("inactive"))
        );
        assert_eq!(
            decode_answer(br#"{"active":true}"#),
            Err(UpstreamError::Malformed("no sub or username"))
        );
        assert_eq!(
            decode_answer(b"{\"active\":tru"),
            Err(UpstreamError::Malformed("introspection JSON"))
        );
    }
}
