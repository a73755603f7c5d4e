//! Full authentication: `POST /v1/auth/challenge` and `POST /v1/auth/full`.
//!
//! A challenge is issued for any well-formed user id, enrolled or not, and a
//! failed full authentication answers one fixed body,
//! `{"error":"authentication_failed","message":"authentication failed"}`,
//! whether the user is unknown, the proof is wrong or the key is revoked:
//! no stage list, no outcomes, no times. Which stage failed and why goes
//! to the log and to `postern_auth_stage_duration_seconds{stage,outcome}`
//! only, so neither endpoint's body tells an attacker which users exist.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use postern_auth::pipeline::{StageOutcome, StageReport};
use postern_auth::stage::{AuthRequest, Factors, StageFailure};
use postern_client::device::DeviceInput;
use postern_core::identity::IdentityPublicKey;
use postern_store::UserRecord;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::issue::{issue_session, LoginResponse};
use super::{audience_of, blocking, requester, user_id};
use crate::client_ip::Peer;
use crate::error::{ApiError, ApiJson, ErrorCode};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    #[schema(value_type = crate::openapi::UserId)]
    pub user: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeResponse {
    /// Opaque id to send back with the proof (base64url).
    pub challenge_id: String,
    /// 32 random bytes the proof must be bound to (base64url).
    pub challenge: String,
    pub expires_at: String,
}

/// Issue a one-time challenge for full authentication.
#[utoipa::path(post, path = "/v1/auth/challenge", request_body = ChallengeRequest,
    responses((status = 200, body = ChallengeResponse),
        (status = 400, description = "`invalid_user`, or a body that is not JSON of this schema", body = crate::openapi::ErrorBody),
        (status = 429, description = "`rate_limited`: the server's, this client's or this user's outstanding challenges are at their limit; with `Retry-After` for the last two", body = crate::openapi::ErrorBody, headers(("retry-after" = u64, description = "Seconds until a challenge of this client or user frees")))))]
pub async fn challenge(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChallengeRequest>,
) -> Result<ApiJson<ChallengeResponse>, ApiError> {
    let user = user_id(&body.user)?;
    let now = state.clock.now();
    let issued = state
        .challenges
        .issue(&user, &requester(&state, &headers, peer), now, &mut OsRng)
        .map_err(|e| ApiError::from_challenge(e, now))?;
    Ok(ApiJson(ChallengeResponse {
        challenge_id: URL_SAFE_NO_PAD.encode(issued.id),
        challenge: URL_SAFE_NO_PAD.encode(issued.challenge),
        expires_at: crate::time::rfc3339(issued.expires_at),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FullAuthRequest {
    #[schema(value_type = crate::openapi::UserId)]
    pub user: String,
    #[schema(value_type = crate::openapi::OpaqueId)]
    pub challenge_id: String,
    /// A device id string, or an object of named fingerprint components:
    /// the device the proof and the session are bound to (in cookie mode
    /// the session is bound to the device cookie instead).
    #[schema(value_type = crate::openapi::Device)]
    pub device: DeviceInput,
    /// Schnorr identity proof, 64 bytes, base64url.
    #[schema(value_type = Option<crate::openapi::Base64Url>)]
    pub identity_proof: Option<String>,
    /// The origin the proof was made for (the server's origin as the client
    /// reached it, e.g. `https://auth.example.com`); one of the server's
    /// `[auth] audiences`. Default: the server's first audience.
    #[schema(value_type = Option<crate::openapi::Audience>)]
    pub audience: Option<String>,
    /// Encrypted biometric probe (BFV ciphertext, 111,618 bytes), base64url,
    /// when the `biometric` stage is required.
    #[schema(value_type = Option<crate::openapi::BiometricCiphertext>)]
    pub biometric_probe: Option<String>,
}

/// One stage's outcome and time, as reported to clients.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageReportBody {
    pub stage: &'static str,
    pub outcome: &'static str,
    pub micros: f64,
}

impl StageReportBody {
    pub(crate) fn of(stage: &'static str, outcome: StageOutcome, nanos: u64) -> Self {
        Self {
            stage,
            outcome: outcome.as_str(),
            micros: nanos as f64 / 1_000.0,
        }
    }
}

/// Run full authentication and mint a session (delivered as the
/// deployment's session mode says: see `issue_session`).
#[utoipa::path(post, path = "/v1/auth/full", request_body = FullAuthRequest,
    responses((status = 200, description = "The session; in cookie mode no `token` in the body but two `Set-Cookie`: the session cookie and the device cookie the session is bound to", body = LoginResponse),
        (status = 400, description = "`invalid_user`, `invalid_device`, `unknown_audience`, `invalid_challenge_id`, `invalid_identity_proof`, `invalid_biometric_probe`, or a body that is not JSON of this schema", body = crate::openapi::ErrorBody),
        (status = 401, description = "`authentication_failed` with one fixed body whatever failed (unknown user, wrong proof, revoked key, missing factor), or `challenge_invalid` / `challenge_expired`", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`, or `unavailable` (the mint batcher is down)", body = crate::openapi::ErrorBody)))]
pub async fn full(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FullAuthRequest>,
) -> Result<Response, ApiError> {
    let user = user_id(&body.user)?;
    let device = body
        .device
        .fingerprint()
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidDevice, e.to_string()))?;
    let audience = audience_of(&state, body.audience.as_deref())?;
    let challenge_id: [u8; 16] = URL_SAFE_NO_PAD
        .decode(body.challenge_id.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidChallengeId,
                "challenge_id is not a Postern challenge id",
            )
        })?;
    let proof = match &body.identity_proof {
        Some(text) => Some(URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidIdentityProof,
                "identity_proof is not base64url",
            )
        })?),
        None => None,
    };
    let probe = match &body.biometric_probe {
        Some(text) => Some(URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidBiometricProbe,
                "biometric_probe is not base64url",
            )
        })?),
        None => None,
    };
    // The challenge is consumed now, whatever happens next.
    let challenge = state
        .challenges
        .take(&challenge_id, &user, state.clock.now())
        .map_err(ApiError::Challenge)?;

    let worker = state.clone();
    blocking(move || {
        let state = worker;
        let record = state.store.get_user(&user)?;
        // An unknown user runs the pipeline against a stand-in record that
        // no proof verifies against, so the answer is the same as a bad
        // proof, and so is the work: its key is a real one nobody holds.
        let known = record.is_some();
        let record = record.unwrap_or(UserRecord { identity_key: *IdentityPublicKey::stand_in().as_bytes(), enrolled_at: 0, identity_revoked_at: None, biometric_template: None });
        let request = AuthRequest {
            user: &user,
            record: &record,
            device: &device,
            challenge: &challenge,
            audience: &audience,
            factors: Factors { identity_proof: proof.as_deref(), biometric_probe: probe.as_deref(), ..Factors::default() },
        };
        let outcome = state.pipeline.run(&request);
        let mut stages: Vec<StageReportBody> = Vec::with_capacity(outcome.reports.len() + 2);
        for report in &outcome.reports {
            let StageReport { stage, outcome, nanos } = *report;
            let outcome = if known { outcome } else { StageOutcome::Failed(StageFailure::Rejected) };
            state.metrics.observe_stage(stage, outcome.as_str(), nanos);
            stages.push(StageReportBody::of(stage, outcome, nanos));
        }
        let evidence = match (outcome.result, known) {
            (Ok(evidence), true) => evidence,
            (result, _) => {
                if let Err((stage, failure)) = result {
                    tracing::info!(user = %user, stage, failure = failure.as_str(), known, "full authentication failed");
                } else {
                    tracing::info!(user = %user, "full authentication for an unknown user");
                }
                return Err(ApiError::AuthenticationFailed);
            }
        };
        issue_session(&state, user, device, evidence, None, stages)
    })
    .await
}
