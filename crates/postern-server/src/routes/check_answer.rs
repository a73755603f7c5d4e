//! The `200` of `/v1/check`: headers for a proxy, JSON when asked for.
//!
//! `/v1/check` is the hottest route: a proxy calls it before every request
//! it lets through, and reads only the status and the identity headers
//! (`X-Postern-User`, `X-Postern-Session`; nginx's `auth_request`, Caddy's
//! `forward_auth`, Traefik's `forwardAuth` and Envoy's `ext_authz` all
//! discard the body of a 2xx). So the answer is headers alone, unless the
//! caller asks for `Accept: application/json` ([`wants_json`]): then the
//! same identity also comes as `{"user":…,"session_id":…}`. Every byte of a
//! body and every header is work for the proxy on every request:
//! `BENCHMARKS.md` (own sessions against peers) measures it.
//!
//! Built the ordinary way (`serde_json::json!`, `HeaderValue::from_str`,
//! `SessionId::to_text`) an answer is a map, its keys, a serialised body
//! and two header copies on every check. Here one buffer of the exact size
//! holds the text, and each header value is a reference-counted slice of
//! it: validated, never copied. The gate's answers do the same from bytes
//! rendered at admission (`postern_tower::Rendered`); own sessions render
//! per request because keeping a rendering in every hot session would cost
//! memory for sessions that are never checked.

use axum::body::{Body, Bytes};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use postern_core::context::UserId;
use postern_core::token::SessionId;

use super::session::{SESSION_HEADER, USER_HEADER};

const BODY_USER: &[u8] = br#"{"user":""#;
const BODY_SESSION: &[u8] = br#"","session_id":""#;
const BODY_END: &[u8] = br#""}"#;

/// Whether the request asks for a JSON body: an `Accept` media range that
/// is exactly `application/json` (any case, any parameters) and not
/// refused with `q=0`. Wildcards (`*/*`, `application/*`) do not count: a
/// browser's navigation (`text/html,…,*/*;q=0.8`), which a proxy passes on
/// to its check, gets the headers alone.
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("application/json")
                && !parts.any(|parameter| refuses(parameter.trim()))
        })
}

/// `q=0` (or `q=0.0`, …): "not acceptable" (RFC 9110, section 12.4.2).
fn refuses(parameter: &str) -> bool {
    match parameter.split_once('=') {
        Some((name, weight)) if name.trim().eq_ignore_ascii_case("q") => weight
            .trim()
            .parse::<f32>()
            .is_ok_and(|weight| weight == 0.0),
        _ => false,
    }
}

/// The answer that lets a request through: the identity headers, and with
/// `json` the body `{"user":…,"session_id":…}` as well.
///
/// User ids are limited to `[A-Za-z0-9._@-]` (`UserId::parse`) and session
/// ids are base64url, so neither needs escaping in JSON nor fails as a
/// header value; a header that somehow did would be left out, never sent
/// half-formed.
pub(crate) fn session_answer(user: &UserId, session: &SessionId, json: bool) -> Response {
    let user = user.as_str().as_bytes();
    let id = session.text_bytes();
    let (prefix, middle, end): (&[u8], &[u8], &[u8]) = if json {
        (BODY_USER, BODY_SESSION, BODY_END)
    } else {
        (b"", b"", b"")
    };
    let mut text =
        Vec::with_capacity(prefix.len() + user.len() + middle.len() + id.len() + end.len());
    text.extend_from_slice(prefix);
    let user_at = text.len()..text.len() + user.len();
    text.extend_from_slice(user);
    text.extend_from_slice(middle);
    let id_at = text.len()..text.len() + id.len();
    text.extend_from_slice(&id);
    text.extend_from_slice(end);
    let text = Bytes::from(text);

    // Room for every header the answer leaves with (the proxy's
    // `X-Request-Id` and the hardening headers added by `super::App`), so
    // that none makes the map grow.
    let mut headers = HeaderMap::with_capacity(8);
    if json {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Ok(value) = HeaderValue::from_maybe_shared(text.slice(user_at)) {
        headers.insert(HeaderName::from_static(USER_HEADER), value);
    }
    if let Ok(value) = HeaderValue::from_maybe_shared(text.slice(id_at)) {
        headers.insert(HeaderName::from_static(SESSION_HEADER), value);
    }
    let mut response = Response::new(if json {
        Body::from(text)
    } else {
        Body::empty()
    });
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn body_bytes(response: Response) -> Bytes {
        axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_answer_names_the_user_and_session_in_headers_and_in_json_when_asked() {
        for user in ["alice", "a", "Bob.Smith-2@example.org_x"] {
            let user = UserId::parse(user).unwrap();
            let session = SessionId::from_bytes(*b"\x00\xffsession-id-16b");
            let response = session_answer(&user, &session, true);
            assert_eq!(response.status(), 200);
            let headers = response.headers().clone();
            assert_eq!(headers[CONTENT_TYPE], "application/json");
            assert_eq!(headers[USER_HEADER], user.as_str());
            assert_eq!(headers[SESSION_HEADER], session.to_text().as_str());
            assert_eq!(
                body_of(response).await,
                serde_json::json!({ "user": user.as_str(), "session_id": session.to_text() })
            );

            let response = session_answer(&user, &session, false);
            assert_eq!(response.status(), 200);
            let headers = response.headers().clone();
            assert!(headers.get(CONTENT_TYPE).is_none());
            assert_eq!(headers[USER_HEADER], user.as_str());
            assert_eq!(headers[SESSION_HEADER], session.to_text().as_str());
            assert!(body_bytes(response).await.is_empty());
        }
    }

    fn accept(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(ACCEPT, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn json_is_sent_only_to_a_caller_that_names_it() {
        for asks in [
            &["application/json"][..],
            &["APPLICATION/JSON"],
            &["text/html, application/json;q=0.5"],
            &["application/json; charset=utf-8"],
            &["text/plain", "application/json"],
            &["application/json;q=0.001"],
        ] {
            assert!(wants_json(&accept(asks)), "{asks:?}");
        }
        for does_not in [
            &[][..],
            &["*/*"],
            &["application/*"],
            &["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
            &["application/json;q=0"],
            &["application/json; Q = 0.0"],
            &["application/jsonx"],
            &["application/problem+json"],
        ] {
            assert!(!wants_json(&accept(does_not)), "{does_not:?}");
        }
    }
}
