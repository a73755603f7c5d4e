//! A user's sessions and identity key: list sessions, revoke one, revoke all
//! ("log out everywhere"), or revoke the identity key itself (every session
//! derived from it then resumes as `revoked`). The caller must hold a session
//! of that same user that passes the same check as `/v1/check`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use postern_core::identity::IdentityPublicKey;
use postern_core::token::SessionId;
use serde::Serialize;
use utoipa::ToSchema;

use super::session::{authenticated, Intent};
use super::{blocking, user_id};
use crate::error::{ApiError, ApiJson};
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

fn same_user(
    state: &AppState,
    headers: &HeaderMap,
    user: &str,
    intent: Intent,
) -> Result<(postern_core::context::UserId, SessionId), ApiError> {
    let user = user_id(user)?;
    let session = authenticated(state, headers, intent)?;
    if session.context().user != user {
        return Err(ApiError::Forbidden);
    }
    Ok((user, session.context().session_id))
}

/// List a user's sessions.
#[utoipa::path(get, path = "/v1/users/{user}/sessions", params(("user" = String, Path, description = "User id")),
    responses((status = 200, body = SessionList), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<ApiJson<SessionList>, ApiError> {
    let (user, current) = same_user(&state, &headers, &user, Intent::Read)?;
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
    params(("user" = String, Path, description = "User id"), ("session" = String, Path, description = "Session id")),
    responses((status = 200, body = RevokeResponse), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub async fn revoke_one(
    State(state): State<AppState>,
    Path((user, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<ApiJson<RevokeResponse>, ApiError> {
    let (user, _) = same_user(&state, &headers, &user, Intent::Change)?;
    let id = SessionId::parse(&session)
        .map_err(|_| ApiError::bad_request("invalid_session_id", "not a Postern session id"))?;
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
#[utoipa::path(delete, path = "/v1/users/{user}/sessions", params(("user" = String, Path, description = "User id")),
    responses((status = 200, body = RevokeResponse), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody)))]
pub async fn revoke_all(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<ApiJson<RevokeResponse>, ApiError> {
    let (user, _) = same_user(&state, &headers, &user, Intent::Change)?;
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

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityRevokedResponse {
    /// The revoked identity key's credential id (base64url).
    pub credential_id: String,
    pub revoked_at: String,
    /// Live sessions minted with that key, now revoked.
    pub revoked_sessions: usize,
    /// Verified proofs of that key forgotten from the proof cache.
    pub forgotten_proofs: usize,
}

/// Revoke a user's identity key: its proofs are forgotten, every session
/// derived from it is revoked (and resumes as `revoked`), and full
/// authentication with it fails until the user enrolls a new key.
#[utoipa::path(delete, path = "/v1/users/{user}/identity", params(("user" = String, Path, description = "User id")),
    responses((status = 200, body = IdentityRevokedResponse), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
        (status = 409, body = crate::openapi::ErrorBody), (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn revoke_identity(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<ApiJson<IdentityRevokedResponse>, ApiError> {
    let (user, _) = same_user(&state, &headers, &user, Intent::Change)?;
    let worker = state.clone();
    let for_store = user.clone();
    let (credential, revoked_at, revoked_sessions, forgotten_proofs) = blocking(move || {
        let state = worker;
        let now = state.clock.now();
        let mut record = state
            .store
            .get_user(&for_store)?
            .ok_or(ApiError::NotFound)?;
        if record.identity_revoked_at.is_some() {
            return Err(ApiError::IdentityAlreadyRevoked);
        }
        let credential = IdentityPublicKey::from_bytes(&record.identity_key)
            .map_err(|_| ApiError::Internal("the enrolled identity key does not decode"))?
            .credential_id();
        // Key first: from here on no new session can be minted with it.
        record.identity_revoked_at = Some(now);
        state.store.update_user(&for_store, &record)?;
        let forgotten = state.proofs.forget_credential(&for_store, &credential);
        // Nothing derived from a revoked user's enrollment stays in memory
        // (the cache could not serve a changed template anyway: it compares
        // the stored bytes).
        if let Some(biometric) = &state.biometric {
            biometric.prepared.forget(&for_store);
        }
        let revoked = state
            .authority
            .revoke_credential(&for_store, &credential, now)?;
        Ok((credential, now, revoked, forgotten))
    })
    .await?;
    tracing::info!(user = %user, revoked_sessions, "identity key revoked");
    Ok(ApiJson(IdentityRevokedResponse {
        credential_id: URL_SAFE_NO_PAD.encode(credential),
        revoked_at: crate::time::rfc3339(revoked_at),
        revoked_sessions,
        forgotten_proofs,
    }))
}
