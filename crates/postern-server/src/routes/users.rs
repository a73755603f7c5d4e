//! A user's sessions: list them, revoke one, revoke all ("log out
//! everywhere"). The caller must hold a session of that same user that
//! passes the same check as `/v1/check`. (The identity key has its own
//! routes, in `identity.rs`.)

use axum::extract::State;

use postern_core::token::SessionId;
use serde::Serialize;
use utoipa::ToSchema;

use super::blocking;
use super::own_session::{Changing, OwnSession, Reading};
use crate::error::{ApiError, ApiJson, ApiPath, ErrorCode};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub session_id: String,
    pub auth_time: String,
    pub expires_at: String,
    pub resume_until: String,
    pub last_seen: String,
    pub revoked_at: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub user: String,
    pub sessions: Vec<SessionInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeResponse {
    pub revoked: usize,
}

/// List a user's sessions.
#[utoipa::path(get, path = "/v1/users/{user}/sessions", operation_id = "list_sessions",
    security(("bearer" = [])),
    params(("user" = crate::openapi::UserId, Path, description = "User id"),
        ("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "The device the session is bound to"),
        ("X-Postern-Operation" = Option<String>, Header, description = "The operation about to be performed (sensitive ones need a step-up)")),
    responses((status = 200, body = SessionList),
        (status = 400, description = "`invalid_device` (X-Postern-Device), `invalid_user`; in cookie mode `malformed_token` (the cookie holds no Postern token)", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (the bearer token is not a Postern token), or the session is refused: `full_auth_required` with `decision` and `reason`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`step_up_required` (with `decision` and `reason`) or `forbidden` (another user's)", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(user): ApiPath<String>,
    session: OwnSession<Reading>,
) -> Result<ApiJson<SessionList>, ApiError> {
    let (user, session) = session.of_user(&user)?;
    let current = session.context().session_id;
    let worker = state.clone();
    let for_store = user.clone();
    let sessions = blocking(move || Ok(worker.authority.list_user(&for_store)?)).await?;
    let t = crate::time::rfc3339;
    Ok(ApiJson(SessionList {
        user: user.to_string(),
        sessions: sessions
            .into_iter()
            .map(|s| SessionInfo {
                session_id: s.id.to_text(),
                auth_time: t(s.auth_time),
                expires_at: t(s.expires_at),
                resume_until: t(s.resume_until),
                last_seen: t(s.last_seen),
                revoked_at: s.revoked_at.map(t),
                current: s.id == current,
            })
            .collect(),
    }))
}

/// Revoke one of a user's sessions.
#[utoipa::path(delete, path = "/v1/users/{user}/sessions/{session}",
    security(("bearer" = [])),
    params(("user" = crate::openapi::UserId, Path, description = "User id"),
        ("session" = crate::openapi::SessionId, Path, description = "Session id"),
        ("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "The device the session is bound to"),
        ("X-Postern-Operation" = Option<String>, Header, description = "The operation about to be performed (sensitive ones need a step-up)")),
    responses((status = 200, body = RevokeResponse),
        (status = 400, description = "`invalid_session_id`, `invalid_device`, `invalid_user`; in cookie mode `malformed_token`", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (the bearer token is not a Postern token), or the session is refused: `full_auth_required` with `decision` and `reason`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`step_up_required` (with `decision` and `reason`), `forbidden` (another user's), or `cross_origin` (a cookie-authenticated change from another origin)", body = crate::openapi::ErrorBody),
        (status = 404, description = "`not_found`: the user has no such session", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn revoke_one(
    State(state): State<AppState>,
    ApiPath((user, session)): ApiPath<(String, String)>,
    caller: OwnSession<Changing>,
) -> Result<ApiJson<RevokeResponse>, ApiError> {
    let (user, _) = caller.of_user(&user)?;
    let id = SessionId::parse(&session).map_err(|_| {
        ApiError::bad_request(ErrorCode::InvalidSessionId, "not a Postern session id")
    })?;
    let target = state
        .authority
        .session_of(&user, &id)
        .ok_or(ApiError::NotFound)?;
    let was_live = target.revoked_at().is_none();
    let worker = state.clone();
    blocking(move || Ok(worker.authority.revoke(&id, worker.clock.now())?)).await?;
    tracing::info!(user = %user, session = %id.to_text(), "session revoked by its user");
    Ok(ApiJson(RevokeResponse {
        revoked: usize::from(was_live),
    }))
}

/// Revoke every session of a user ("log out everywhere").
#[utoipa::path(delete, path = "/v1/users/{user}/sessions",
    security(("bearer" = [])),
    params(("user" = crate::openapi::UserId, Path, description = "User id"),
        ("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "The device the session is bound to"),
        ("X-Postern-Operation" = Option<String>, Header, description = "The operation about to be performed (sensitive ones need a step-up)")),
    responses((status = 200, body = RevokeResponse),
        (status = 400, description = "`invalid_device` (X-Postern-Device), `invalid_user`; in cookie mode `malformed_token` (the cookie holds no Postern token)", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (the bearer token is not a Postern token), or the session is refused: `full_auth_required` with `decision` and `reason`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`step_up_required` (with `decision` and `reason`), `forbidden` (another user's), or `cross_origin` (a cookie-authenticated change from another origin)", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn revoke_all(
    State(state): State<AppState>,
    ApiPath(user): ApiPath<String>,
    session: OwnSession<Changing>,
) -> Result<ApiJson<RevokeResponse>, ApiError> {
    let (user, _) = session.of_user(&user)?;
    let worker = state.clone();
    let for_store = user.clone();
    let revoked = blocking(move || {
        Ok(worker
            .authority
            .revoke_user(&for_store, worker.clock.now())?)
    })
    .await?;
    tracing::info!(user = %user, revoked, "all sessions revoked");
    Ok(ApiJson(RevokeResponse { revoked }))
}
