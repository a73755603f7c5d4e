//! OAuth 2.0 Token Introspection (RFC 7662) and Token Revocation (RFC 7009).
//!
//! RFC 7662 §2.1: "The protected resource calls the introspection endpoint
//! using an HTTP POST request with parameters sent as
//! application/x-www-form-urlencoded", with `token` and an optional
//! `token_type_hint`, and authenticates itself (here with HTTP Basic, §2.1
//! "MUST also require some form of authorization"). §2.2: "active" is
//! REQUIRED; `scope`, `client_id`, `username`, `token_type`, `exp`, `nbf`,
//! `sub`, `aud` are optional.
//!
//! How Postern reads an active answer, as authorization servers send it:
//! - **Who:** the subject is `sub`, else `username` (an empty string counts
//!   as absent); the client is `client_id`. A client-credentials token
//!   names only its client (node-oidc-provider, for one, sends no `sub`):
//!   that is valid, and its principal is the client. An answer that names
//!   neither a subject nor a client cannot be used (502, not cached).
//! - **When:** `exp` bounds the cached entry (the gate refuses a token
//!   past it); a token before its `nbf` is refused and not cached.
//! - **What:** a `token_type` other than a bearer access token (e.g.
//!   `refresh_token`, or `DPoP`, whose proof the gate cannot check) is
//!   refused: only bearer access tokens pass.
//! - A 400 from the endpoint is the upstream refusing this token (Postern's
//!   request is the same for every token but the token; node-oidc-provider
//!   answers 400 `unsupported_token_type` for a JWT it did not issue): 401.
//!   Other answers it cannot use fail that token only (see
//!   [`super::Blame`]).

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
    client_id: Option<String>,
    token_type: Option<String>,
    aud: Option<OneOrMany>,
    exp: Option<u64>,
    nbf: Option<u64>,
    sid: Option<String>,
}

const SECOND: u64 = 1_000_000_000;

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

    /// Introspects `token` at `now` (Unix ns).
    pub async fn validate(&self, token: &str, now: u64) -> Result<Validated, UpstreamError> {
        let response = self
            .http
            .post(&self.introspect_url)
            .basic_auth(&self.client_id, Some(self.client_secret.as_str()))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        match response.status().as_u16() {
            200 => {}
            400 => return Err(UpstreamError::Rejected("refused by the upstream (400)")),
            status => return Err(UpstreamError::Status(status)),
        }
        // A body cut short is a transport failure, not a malformed answer.
        let body = response
            .bytes()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        decode_answer(&body, now)
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

/// Decodes an introspection answer (the body of a 200) received at `now`
/// (Unix ns), as the module docs describe. The upstream's bytes are
/// attacker-controlled if the upstream is: typed errors, never a panic
/// (fuzzed by `fuzz/fuzz_targets/upstream_answers.rs`).
pub fn decode_answer(body: &[u8], now: u64) -> Result<Validated, UpstreamError> {
    let body: IntrospectionResponse =
        serde_json::from_slice(body).map_err(|_| UpstreamError::Malformed("introspection JSON"))?;
    if !body.active {
        return Err(UpstreamError::Rejected("inactive"));
    }
    if let Some(kind) = present(body.token_type) {
        if !is_bearer_access_token(&kind) {
            return Err(UpstreamError::Rejected("not a bearer access token"));
        }
    }
    // RFC 7662 §2.2 `nbf`: "indicating when this token is not to be used
    // before".
    if body.nbf.is_some_and(|nbf| nbf.saturating_mul(SECOND) > now) {
        return Err(UpstreamError::Rejected("not valid yet"));
    }
    let subject = present(body.sub).or_else(|| present(body.username));
    let client = present(body.client_id);
    if subject.is_none() && client.is_none() {
        return Err(UpstreamError::Malformed("no sub, username or client_id"));
    }
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
        // 0 means "no expiry" to the gate: `exp: 0` is the epoch, long past.
        body.exp.map_or(0, |s| s.saturating_mul(SECOND).max(1)),
        body.sid,
    )
    .with_client(client))
}

/// An empty string counts as absent.
fn present(field: Option<String>) -> Option<String> {
    field.filter(|s| !s.is_empty())
}

/// RFC 7662 §2.2 `token_type`: "Type of the token as defined in Section 5.1
/// of OAuth 2.0", i.e. the access token type (`Bearer`). Servers also use
/// it to say which kind of token was introspected (`refresh_token`, RFC
/// 8693's `urn:ietf:params:oauth:token-type:refresh_token`). Only a bearer
/// access token passes: a refresh or ID token is not a credential for an
/// API, and a `DPoP` token needs a proof of possession the gate does not
/// check.
fn is_bearer_access_token(token_type: &str) -> bool {
    [
        "bearer",
        "access_token",
        "urn:ietf:params:oauth:token-type:access_token",
    ]
    .iter()
    .any(|t| t.eq_ignore_ascii_case(token_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000 * SECOND;

    #[test]
    fn an_active_answer_decodes_to_its_subject_scopes_audience_and_expiry() {
        let body = br#"{"active":true,"sub":"alice","scope":"read  write","aud":"api","exp":1800000000,"sid":"s1","client_id":"app"}"#;
        let validated = decode_answer(body, NOW).unwrap();
        assert_eq!(
            validated,
            Validated::new(
                Some("alice".into()),
                vec!["read".into(), "write".into()],
                vec!["api".into()],
                1_800_000_000_000_000_000,
                Some("s1".into()),
            )
            .with_client(Some("app".into()))
        );
        let by_username =
            decode_answer(br#"{"active":true,"username":"bob","aud":["a","b"]}"#, NOW);
        assert_eq!(
            by_username.map(|v| (v.subject, v.client_id, v.audience)),
            Ok((Some("bob".into()), None, vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn a_client_credentials_answer_without_sub_names_its_client() {
        // node-oidc-provider 9's answer for a client-credentials token.
        let body = br#"{"active":true,"client_id":"app","exp":1800000000,"iat":1699999000,"iss":"https://127.0.0.1:1","aud":"api","scope":"read write","token_type":"Bearer"}"#;
        let validated = decode_answer(body, NOW).unwrap();
        assert_eq!(validated.subject, None);
        assert_eq!(validated.client_id.as_deref(), Some("app"));
        assert_eq!(validated.principal(), Some("app"));
        assert_eq!(validated.scopes, vec!["read".to_string(), "write".into()]);
    }

    #[test]
    fn an_empty_sub_counts_as_absent() {
        let validated = decode_answer(
            br#"{"active":true,"sub":"","username":"","client_id":"app"}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(
            (validated.subject, validated.client_id),
            (None, Some("app".into()))
        );
        assert_eq!(
            decode_answer(br#"{"active":true,"sub":"","username":"carol"}"#, NOW)
                .map(|v| v.subject),
            Ok(Some("carol".into()))
        );
        assert_eq!(
            decode_answer(br#"{"active":true,"sub":"","client_id":""}"#, NOW),
            Err(UpstreamError::Malformed("no sub, username or client_id"))
        );
    }

    #[test]
    fn a_token_before_its_nbf_is_refused() {
        let at = |nbf: u64| format!(r#"{{"active":true,"sub":"dave","nbf":{nbf}}}"#);
        assert_eq!(
            decode_answer(at(1_700_000_001).as_bytes(), NOW),
            Err(UpstreamError::Rejected("not valid yet"))
        );
        assert!(decode_answer(at(1_700_000_000).as_bytes(), NOW).is_ok());
        assert!(decode_answer(at(1_600_000_000).as_bytes(), NOW).is_ok());
        // Far-future values saturate rather than wrap into the past.
        assert_eq!(
            decode_answer(at(u64::MAX).as_bytes(), NOW),
            Err(UpstreamError::Rejected("not valid yet"))
        );
    }

    #[test]
    fn only_bearer_access_tokens_pass() {
        let typed = |kind: &str| {
            decode_answer(
                format!(r#"{{"active":true,"sub":"erin","token_type":"{kind}"}}"#).as_bytes(),
                NOW,
            )
            .map(|v| v.subject)
        };
        for kind in [
            "Bearer",
            "bearer",
            "access_token",
            "urn:ietf:params:oauth:token-type:access_token",
            "",
        ] {
            assert_eq!(typed(kind), Ok(Some("erin".into())), "{kind}");
        }
        for kind in [
            "refresh_token",
            "urn:ietf:params:oauth:token-type:refresh_token",
            "id_token",
            "DPoP",
            "mac",
        ] {
            assert_eq!(
                typed(kind),
                Err(UpstreamError::Rejected("not a bearer access token")),
                "{kind}"
            );
        }
    }

    #[test]
    fn an_exp_of_zero_is_long_past_not_absent() {
        let validated = decode_answer(br#"{"active":true,"sub":"frank","exp":0}"#, NOW).unwrap();
        assert_eq!(validated.expires_at, 1, "0 would mean no expiry at all");
    }

    #[test]
    fn inactive_anonymous_and_malformed_answers_are_typed_errors() {
        assert_eq!(
            decode_answer(br#"{"active":false,"sub":"alice"}"#, NOW),
            Err(UpstreamError::Rejected("inactive"))
        );
        assert_eq!(
            decode_answer(br#"{"active":true}"#, NOW),
            Err(UpstreamError::Malformed("no sub, username or client_id"))
        );
        for body in [
            &b"{\"active\":tru"[..],
            br#"{"sub":"a"}"#,
            br#"{"active":"true","sub":"a"}"#,
            br#"{"active":true,"sub":7}"#,
            br#"{"active":true,"sub":"a","exp":1.5e9}"#,
        ] {
            assert_eq!(
                decode_answer(body, NOW),
                Err(UpstreamError::Malformed("introspection JSON")),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
