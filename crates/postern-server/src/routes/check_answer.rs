//! The `200` of `/v1/check` on a Postern session, built with one allocation.
//!
//! `/v1/check` is the hottest route: a proxy calls it before every request
//! it lets through. Its answer names the user and the session twice, in the
//! JSON body and in the `X-Postern-User` / `X-Postern-Session` headers.
//! Built the ordinary way (`serde_json::json!`, `HeaderValue::from_str`,
//! `SessionId::to_text`) that is a map, its keys, a serialised body and two
//! header copies on every check. Here the body is written once into a
//! buffer of its exact size, and each header value is a reference-counted
//! slice of that same buffer: validated, never copied. The gate's answers
//! do the same from bytes rendered at admission (`postern_tower::Rendered`);
//! own sessions render per request because keeping a rendering in every
//! hot session would cost memory for sessions that are never checked.

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use postern_core::context::UserId;
use postern_core::token::SessionId;

use super::session::{SESSION_HEADER, USER_HEADER};

const BODY_USER: &[u8] = br#"{"user":""#;
const BODY_SESSION: &[u8] = br#"","session_id":""#;
const BODY_END: &[u8] = br#""}"#;

/// The answer that lets a request through: `{"user":…,"session_id":…}`
/// and the identity headers.
///
/// User ids are limited to `[A-Za-z0-9._@-]` (`UserId::parse`) and session
/// ids are base64url, so neither needs escaping in JSON nor fails as a
/// header value; a header that somehow did would be left out, never sent
/// half-formed.
pub(crate) fn session_answer(user: &UserId, session: &SessionId) -> Response {
    let user = user.as_str().as_bytes();
    let id = session.text_bytes();
    let mut body = Vec::with_capacity(
        BODY_USER.len() + user.len() + BODY_SESSION.len() + id.len() + BODY_END.len(),
    );
    body.extend_from_slice(BODY_USER);
    let user_at = body.len()..body.len() + user.len();
    body.extend_from_slice(user);
    body.extend_from_slice(BODY_SESSION);
    let id_at = body.len()..body.len() + id.len();
    body.extend_from_slice(&id);
    body.extend_from_slice(BODY_END);
    let body = Bytes::from(body);

    // Room for every header the answer leaves with (the proxy's
    // `X-Request-Id` and the hardening headers added by `super::App`), so
    // that none makes the map grow.
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_maybe_shared(body.slice(user_at)) {
        headers.insert(HeaderName::from_static(USER_HEADER), value);
    }
    if let Ok(value) = HeaderValue::from_maybe_shared(body.slice(id_at)) {
        headers.insert(HeaderName::from_static(SESSION_HEADER), value);
    }
    let mut response = Response::new(Body::from(body));
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

    #[tokio::test]
    async fn the_answer_names_the_user_and_session_in_body_and_headers_alike() {
        for user in ["alice", "a", "Bob.Smith-2@example.org_x"] {
            let user = UserId::parse(user).unwrap();
            let session = SessionId::from_bytes(*b"\x00\xffsession-id-16b");
            let response = session_answer(&user, &session);
            assert_eq!(response.status(), 200);
            let headers = response.headers().clone();
            assert_eq!(headers[CONTENT_TYPE], "application/json");
            assert_eq!(headers[USER_HEADER], user.as_str());
            assert_eq!(headers[SESSION_HEADER], session.to_text().as_str());
            assert_eq!(
                body_of(response).await,
                serde_json::json!({ "user": user.as_str(), "session_id": session.to_text() })
            );
        }
    }
}
