//! `GET /v1/biometric/public-key`: the key holder's BFV public key bundle,
//! which clients encrypt their templates and probes under. It is public by
//! design: it lets anyone encrypt, and only the key holder decrypt.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

/// Largest request body of the routes that carry a ciphertext (enrollment
/// with a template, full authentication with a probe): one 111,618-byte
/// ciphertext in base64url plus the rest of the JSON.
pub const CIPHERTEXT_BODY_BYTES: usize = 192 * 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct BiometricPublicKey {
    /// The key holder's public key bundle, base64url.
    pub public_key: String,
    /// `BFV/N=4096/t=2^18`, for clients that check what they encrypt under.
    pub scheme: &'static str,
    /// Components of an embedding (each quantised to [-31, 31]).
    pub dimensions: usize,
}

/// The key holder's public key for encrypting biometric templates and probes.
#[utoipa::path(get, path = "/v1/biometric/public-key",
    responses((status = 200, body = BiometricPublicKey),
        (status = 404, description = "`not_found`: the biometric stage is off", body = crate::openapi::ErrorBody)))]
pub async fn public_key(State(state): State<AppState>) -> Result<Response, ApiError> {
    let biometric = state.biometric.as_ref().ok_or(ApiError::NotFound)?;
    let mut response = ApiJson(BiometricPublicKey {
        public_key: URL_SAFE_NO_PAD.encode(&biometric.public_key),
        scheme: "BFV/N=4096/t=2^18",
        dimensions: postern_auth::biometric::DIMENSIONS,
    })
    .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(response)
}
