//! `POST /v1/users/{user}/enroll`: register a user's identity public key.
//!
//! Enrollment is first come, first served and never overwrites a live key: a
//! second enrollment of the same user is `409 already_enrolled`, and so is
//! the enrollment of a user who already registered a passkey (an identity
//! key would otherwise be a second way into that account, open to whoever
//! enrolls first). A revoked key is never replaced here either: this route
//! is unauthenticated, so replacing it would hand the account to whoever
//! enrolls first after the revocation; the user replaces it with
//! `PUT /v1/users/{user}/identity` from a recently authenticated session
//! instead. (Deployments that need gated enrollment put this route behind
//! their admin proxy.)

use axum::extract::State;
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use postern_core::identity::IdentityPublicKey;
use postern_store::UserRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{blocking, user_id};
use crate::error::{ApiError, ApiJson, ApiPath, ErrorCode};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// Ristretto255 public key, 32 bytes, base64url without padding.
    #[schema(value_type = crate::openapi::IdentityPublicKey)]
    pub identity_public_key: String,
    /// The user's biometric template, encrypted by the client under the
    /// key holder's public key (`GET /v1/biometric/public-key`), base64url.
    /// Postern stores only this ciphertext.
    #[schema(value_type = Option<crate::openapi::BiometricCiphertext>)]
    pub biometric_template: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollResponse {
    pub user: String,
    /// Names the enrolled credential (base64url of 16 bytes).
    pub credential_id: String,
    pub enrolled_at: String,
}

/// Enroll a user's identity key.
#[utoipa::path(post, path = "/v1/users/{user}/enroll", request_body = EnrollRequest,
    params(("user" = crate::openapi::UserId, Path, description = "User id")),
    responses((status = 201, body = EnrollResponse),
        (status = 400, description = "`invalid_user`, `invalid_identity_key` (not base64url, or not a Ristretto255 point), `invalid_biometric_template`, `biometric_not_enabled`, or a body that is not JSON of this schema", body = crate::openapi::ErrorBody),
        (status = 409, description = "`already_enrolled`: the user has an identity key or a passkey", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn enroll(
    State(state): State<AppState>,
    ApiPath(user): ApiPath<String>,
    ApiJson(body): ApiJson<EnrollRequest>,
) -> Result<(StatusCode, ApiJson<EnrollResponse>), ApiError> {
    let user = user_id(&user)?;
    let (key, biometric_template) = decode_enrollment(&state, &body)?;
    let now = state.clock.now();
    let record = UserRecord {
        identity_key: *key.as_bytes(),
        enrolled_at: now,
        identity_revoked_at: None,
        biometric_template,
    };
    let store = state.store.clone();
    let for_store = user.clone();
    // One store write checks for an existing record and for passkeys.
    let inserted = blocking(move || Ok(store.insert_user(&for_store, &record)?)).await?;
    if !inserted {
        return Err(ApiError::AlreadyEnrolled);
    }
    tracing::info!(user = %user, "user enrolled");
    Ok((
        StatusCode::CREATED,
        ApiJson(EnrollResponse {
            user: user.to_string(),
            credential_id: URL_SAFE_NO_PAD.encode(key.credential_id()),
            enrolled_at: crate::time::rfc3339(now),
        }),
    ))
}

/// The identity key and the encrypted biometric template of an enrollment
/// (also of a key replacement), each checked: a malformed one is a 400.
pub(crate) fn decode_enrollment(
    state: &AppState,
    body: &EnrollRequest,
) -> Result<(IdentityPublicKey, Option<Vec<u8>>), ApiError> {
    let key_bytes = URL_SAFE_NO_PAD
        .decode(body.identity_public_key.trim())
        .map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidIdentityKey,
                "identity_public_key is not base64url",
            )
        })?;
    let key = IdentityPublicKey::from_bytes(&key_bytes)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidIdentityKey, e.to_string()))?;
    let biometric_template = match &body.biometric_template {
        None => None,
        Some(text) => {
            let biometric = state.biometric.as_ref().ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::BiometricNotEnabled,
                    "this server does not run the biometric stage",
                )
            })?;
            let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| {
                ApiError::bad_request(
                    ErrorCode::InvalidBiometricTemplate,
                    "biometric_template is not base64url",
                )
            })?;
            biometric.evaluator.decode_template(&bytes).map_err(|e| {
                ApiError::bad_request(ErrorCode::InvalidBiometricTemplate, e.to_string())
            })?;
            Some(bytes)
        }
    };
    Ok((key, biometric_template))
}
