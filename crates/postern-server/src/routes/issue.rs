//! Issuing a session once full authentication has passed.
//!
//! Every route that authenticates a user (`POST /v1/auth/full`, `POST
//! /v1/passkeys/login/finish`) ends here, so a session is minted, reported
//! and delivered one way whatever the factor. Delivery follows the
//! configured [`SessionMode`]: in bearer mode the JSON body carries the
//! token; in JWT mode it carries a signed session JWT instead; in cookie
//! mode the token goes only into the session cookie and the body omits it.
//! Either way the response is `Cache-Control: no-store`.
//!
//! In cookie mode the session is bound not to the `device` the request
//! names (a string only script can send) but to a fresh random device
//! secret, set in the device cookie beside the session cookie
//! ([`crate::cookie`]), which the browser sends by itself on every request.
//! The named `device` still binds the identity proof a login verifies.

use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use postern_auth::pipeline::StageOutcome;
use postern_auth::stage::Evidence;
use postern_auth::stage::StageFailure;
use postern_core::context::{UserId, Verdict};
use postern_core::device::Fingerprint;
use postern_store::authority::MintError;
use postern_store::batch_mint::BatchMintError;
use postern_store::NewSession;
use postern_store::StoreError;
use rand::rngs::OsRng;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::StageReportBody;
use crate::config::SessionMode;
use crate::cookie::DeviceSecret;
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The bearer token (bearer mode). Keep it secret; Postern never
    /// stores or logs it. Absent in cookie mode, where the token is in the
    /// session cookie only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub session_id: String,
    pub user: String,
    /// When the session expires.
    pub expires_at: String,
    /// The biometric batch slot this session was decided in (turbo mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_slot: Option<u8>,
    /// JWT mode: when this JWT expires (refresh it with
    /// `POST /v1/session/refresh` before then; never after `expires_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<String>,
    pub resume_until: String,
    pub stages: Vec<StageReportBody>,
}

/// Whether the identity key a login verified (`identity_key`, if the
/// identity stage ran) is no longer `user`'s live key. Read after the mint:
/// a revocation or a replacement stores the user's new record before it
/// sweeps the old key's sessions, so a login that read the old record
/// either is swept or sees the new one here.
fn identity_key_retired(
    state: &AppState,
    user: &UserId,
    identity_key: Option<[u8; 32]>,
) -> Result<bool, ApiError> {
    let Some(used) = identity_key else {
        return Ok(false);
    };
    Ok(match state.store.get_user(user)? {
        Some(record) => record.identity_revoked_at.is_some() || record.identity_key != used,
        None => true,
    })
}

/// Whether the passkey a login used (its session credential, if a passkey
/// stage ran) is no longer one `user` can authenticate with: removed, or
/// suspended because its authoriser was revoked meanwhile. Read after the
/// mint, for the reason [`identity_key_retired`] is.
fn passkey_retired(
    state: &AppState,
    user: &UserId,
    passkey: Option<[u8; 16]>,
) -> Result<bool, ApiError> {
    match passkey {
        Some(credential) => Ok(!state.authority.credential_is_current(user, &credential)?),
        None => Ok(false),
    }
}

/// Mints a session for `user` on `device` from what the pipeline's stages
/// established, and answers with it as the deployment delivers sessions.
/// `passkey` is the session credential of the passkey the login used, if
/// any. `stages` are the pipeline's reports; attestation and persistence
/// are added here.
///
/// Blocking (the mint is durable before it returns): call it from
/// [`super::blocking`].
pub(crate) fn issue_session(
    state: &AppState,
    user: UserId,
    device: Fingerprint,
    evidence: Evidence,
    passkey: Option<[u8; 16]>,
    mut stages: Vec<StageReportBody>,
) -> Result<Response, ApiError> {
    let identity_key = evidence.identity_key;
    let (device, device_secret) = bound_device(state, device)?;
    let new = NewSession {
        user: user.clone(),
        device,
        verdict: Verdict::new(true, 7),
        proof_digest: evidence.proof_digest,
        credential: evidence.credential,
        batch_slot: evidence.batch_slot,
        extra_claims: evidence.claims,
    };
    let now = state.clock.now();
    let minted = match &state.mint_batcher {
        Some(batcher) => batcher.mint(new).map_err(|e| match e {
            BatchMintError::StoreUnavailable => ApiError::StoreUnavailable(StoreError::Closed),
            BatchMintError::Stopped => ApiError::Unavailable("the mint batcher"),
            BatchMintError::Failed(_) => ApiError::Internal("could not mint the session"),
        })?,
        None => state
            .authority
            .mint(new, now, &mut OsRng)
            .map_err(|e| match e {
                MintError::Store(e) => ApiError::StoreUnavailable(e),
                _ => ApiError::Internal("could not mint the session"),
            })?,
    };
    for (stage, nanos) in [
        ("attestation", minted.attestation_nanos),
        ("persist", minted.persist_nanos),
    ] {
        state.metrics.observe_stage(stage, "passed", nanos);
        stages.push(StageReportBody::of(stage, StageOutcome::Passed, nanos));
    }
    let ctx = minted.session.context();
    if identity_key_retired(state, &user, identity_key)? {
        state.authority.revoke(&ctx.session_id, state.clock.now())?;
        tracing::info!(user = %user, "identity key revoked or replaced during the login; its session is revoked");
        state
            .metrics
            .observe_stage("identity", StageFailure::CredentialRevoked.as_str(), 0);
        return Err(ApiError::AuthenticationFailed);
    }
    if passkey_retired(state, &user, passkey)? {
        state.authority.revoke(&ctx.session_id, state.clock.now())?;
        tracing::info!(user = %user, "passkey removed or suspended during the login; its session is revoked");
        state
            .metrics
            .observe_stage("passkey", StageFailure::CredentialRevoked.as_str(), 0);
        return Err(ApiError::AuthenticationFailed);
    }
    tracing::info!(user = %user, session = %ctx.session_id.to_text(), "session minted");
    let mut body = LoginResponse {
        token: None,
        session_id: ctx.session_id.to_text(),
        user: user.to_string(),
        expires_at: crate::time::rfc3339(ctx.expires_at),
        token_expires_at: None,
        batch_slot: ctx.batch_slot,
        resume_until: crate::time::rfc3339(ctx.resume_until),
        stages,
    };
    let cookies = match state.delivery.mode {
        SessionMode::Bearer => {
            body.token = Some(minted.token.expose());
            None
        }
        SessionMode::Jwt => {
            let jwt = state
                .jwt
                .as_ref()
                .ok_or(ApiError::Internal("JWT mode without JWT keys"))?;
            let (token, expires) = super::jwt::issue_jwt(jwt, ctx, now)?;
            body.token = Some(token);
            body.token_expires_at = Some(crate::time::rfc3339(expires));
            None
        }
        SessionMode::Cookie => {
            let remaining = Duration::from_nanos(ctx.expires_at.saturating_sub(now));
            let jar = &state.delivery.cookie;
            let session = jar
                .issue(&minted.token.expose(), remaining)
                .ok_or(ApiError::Internal("session cookie is not a header value"))?;
            let device = device_secret
                .as_ref()
                .and_then(|secret| jar.issue_device(secret, remaining))
                .ok_or(ApiError::Internal("device cookie is not a header value"))?;
            Some([session, device])
        }
    };
    let mut response = ApiJson(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies.into_iter().flatten() {
        headers.append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The device a new session is bound to: in cookie mode a fresh device
/// secret (returned, for its cookie), else the device the request named.
fn bound_device(
    state: &AppState,
    named: Fingerprint,
) -> Result<(Fingerprint, Option<DeviceSecret>), ApiError> {
    if state.delivery.mode != SessionMode::Cookie {
        return Ok((named, None));
    }
    let secret = DeviceSecret::generate(&mut OsRng);
    let device = secret
        .fingerprint()
        .ok_or(ApiError::Internal("device secret is not a device id"))?;
    Ok((device, Some(secret)))
}
