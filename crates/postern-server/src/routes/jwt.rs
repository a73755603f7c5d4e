//! JWT mode over HTTP: `GET /.well-known/jwks.json`, `POST
//! /v1/session/refresh`, and accepting a presented JWT wherever a session
//! token is accepted (`/v1/check`, resume, logout, the user endpoints).
//!
//! A presented JWT is checked twice: its signature, algorithm, key, issuer
//! and lifetime (see [`crate::jwt`]), then the session it names must be
//! live and resumable under the same policy as an opaque token — so a JWT
//! is never accepted for a revoked, expired or foreign-device session, and
//! logging out kills it at once here, whatever its `exp` says.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use postern_core::context::{SessionContext, UserId};
use postern_core::device::Fingerprint;
use postern_core::policy::Decision;
use postern_core::token::SessionId;
use postern_core::{UnixNanos, SECOND};
use postern_store::hot::HotSession;
use postern_store::ResumeOutcome;
use serde::Serialize;
use utoipa::ToSchema;

use super::session::{header_device, OPERATION_HEADER};
use super::{bearer_text, malformed_token};
use crate::config::SessionMode;
use crate::error::{ApiError, ApiJson};
use crate::jwt::{device_binding_hash, JwtKeys, SessionClaims};
use crate::state::AppState;

/// JWT mode's keys and lifetime, in the shared state.
#[derive(Debug)]
pub struct JwtDelivery {
    pub keys: JwtKeys,
    /// Lifetime of each JWT (never past its session's expiry).
    pub ttl: std::time::Duration,
}

fn delivery(state: &AppState) -> Result<&JwtDelivery, ApiError> {
    match (&state.delivery.mode, &state.jwt) {
        (SessionMode::Jwt, Some(jwt)) => Ok(jwt),
        _ => Err(ApiError::NotFound),
    }
}

/// Signs a JWT for `ctx`, valid until `now + ttl` or the session's expiry,
/// whichever is first. Returns the JWT and its expiry.
pub(crate) fn issue_jwt(
    jwt: &JwtDelivery,
    ctx: &SessionContext,
    now: UnixNanos,
) -> Result<(String, UnixNanos), ApiError> {
    let ttl = u64::try_from(jwt.ttl.as_nanos()).unwrap_or(u64::MAX);
    let expires = now.saturating_add(ttl).min(ctx.expires_at);
    let claims = SessionClaims {
        iss: jwt.keys.issuer().to_string(),
        aud: jwt.keys.audience().to_string(),
        sub: ctx.user.to_string(),
        sid: ctx.session_id.to_text(),
        iat: now / SECOND,
        nbf: now / SECOND,
        exp: expires / SECOND,
        dbh: device_binding_hash(&ctx.device_mac),
    };
    let token = jwt
        .keys
        .sign(&claims)
        .map_err(|_| ApiError::Internal("could not sign the session JWT"))?;
    Ok((token, expires))
}

/// Whether `token` is one of this server's JWTs (JWT mode, a kid we hold);
/// otherwise it is an opaque token or, in gate mode, the upstream's.
pub(crate) fn is_own_jwt(state: &AppState, token: &str) -> bool {
    match &state.jwt {
        Some(jwt) if state.delivery.mode == SessionMode::Jwt => jwt.keys.owns(token),
        _ => false,
    }
}

/// Verifies a presented JWT and decides a resume on the session it names.
pub(crate) fn resume_jwt(
    state: &AppState,
    token: &str,
    device: Option<&Fingerprint>,
    operation: Option<&str>,
    risk: Option<f32>,
) -> Result<ResumeOutcome, ApiError> {
    let jwt = delivery(state)?;
    let now = state.clock.now();
    let claims = jwt
        .keys
        .verify(token, now / SECOND)
        .map_err(ApiError::InvalidJwt)?;
    let id = SessionId::parse(&claims.sid).map_err(|_| malformed_token())?;
    let outcome = state
        .authority
        .resume_by_id(&id, device, operation, risk, now);
    if let Some(session) = &outcome.session {
        let ctx = session.context();
        // The signature makes these hold for every JWT we issued; checking
        // them keeps a future signing bug from crossing sessions.
        if ctx.user.as_str() != claims.sub || device_binding_hash(&ctx.device_mac) != claims.dbh {
            return Err(ApiError::InvalidJwt(crate::jwt::JwtError::Malformed));
        }
    }
    Ok(outcome)
}

/// The session a presented JWT names, whatever its state (for logout):
/// the JWT must verify; `None` if the session is unknown here.
pub(crate) fn session_of_jwt(
    state: &AppState,
    token: &str,
) -> Result<Option<Arc<HotSession>>, ApiError> {
    let jwt = delivery(state)?;
    let claims = jwt
        .keys
        .verify(token, state.clock.now() / SECOND)
        .map_err(ApiError::InvalidJwt)?;
    let id = SessionId::parse(&claims.sid).map_err(|_| malformed_token())?;
    let user = UserId::parse(&claims.sub).map_err(|_| malformed_token())?;
    Ok(state.authority.session_of(&user, &id))
}

/// The JSON Web Key Set that verifies this server's session JWTs: the
/// current key and every previous one that may still have live JWTs.
#[utoipa::path(get, path = "/.well-known/jwks.json",
    responses((status = 200, description = "JWKS (RFC 7517) of the keys that verify session JWTs", body = Object, content_type = "application/json"),
        (status = 404, description = "JWT mode is off", body = crate::openapi::ErrorBody)))]
pub async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let jwt = delivery(&state)?;
    let mut response = ApiJson(jwt.keys.jwks()).into_response();
    // Verifiers may cache it briefly; a rotation needs a restart anyway.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResponse {
    /// A fresh JWT for the same session.
    pub token: String,
    pub session_id: String,
    pub expires_at: String,
}

/// Re-issue a session JWT. The presented JWT must still verify (not yet
/// expired) and its session must resume on the presenting device
/// (`X-Postern-Device`); the new JWT never outlives the session.
#[utoipa::path(post, path = "/v1/session/refresh",
    security(("bearer" = [])),
    params(("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "The device the session is bound to"),
        ("X-Postern-Operation" = Option<String>, Header, description = "The operation about to be performed (sensitive ones need a step-up)")),
    responses((status = 200, body = RefreshResponse),
        (status = 400, description = "`invalid_device`", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (no Postern JWT, or one that does not verify or has expired), or `full_auth_required` with `decision` and `reason`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`step_up_required`, with `decision` and `reason`", body = crate::openapi::ErrorBody),
        (status = 404, description = "JWT mode is off", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let jwt = delivery(&state)?;
    let token = bearer_text(&headers)?;
    let device = header_device(&headers)?;
    let operation = headers.get(OPERATION_HEADER).and_then(|v| v.to_str().ok());
    let outcome = resume_jwt(&state, token, device.as_ref(), operation, None)?;
    state.metrics.observe_decision(outcome.decision);
    let session = match (outcome.decision, outcome.session) {
        (Decision::Resumed, Some(session)) => session,
        (decision, _) => return Err(ApiError::Decision(decision)),
    };
    let ctx = session.context();
    let (token, expires) = issue_jwt(jwt, ctx, state.clock.now())?;
    let mut response = ApiJson(RefreshResponse {
        token,
        session_id: ctx.session_id.to_text(),
        expires_at: crate::time::rfc3339(expires),
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
