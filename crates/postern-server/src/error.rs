//! API errors: one enum, mapped to HTTP once, here.
//!
//! Every error response is `{ "error": "<code>", "message": "<text>" }`,
//! sometimes with documented extra fields (`decision`, `reason`). A failed
//! authentication has none: its body is [`AUTHENTICATION_FAILED_BODY`]
//! whatever failed, so it cannot tell a known user from an unknown one.
//! Messages never contain a token or any secret; the precise internal cause
//! is logged (without secrets), not sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use postern_auth::ceremony::CeremonyError;
use postern_auth::challenge::ChallengeError;
use postern_auth::relying_party::PasskeyError;
use postern_core::policy::Decision;
use postern_store::StoreError;
use postern_tower::GateError;
use serde_json::json;

pub use crate::error_code::ErrorCode;

/// The whole body of every failed authentication, byte for byte.
pub const AUTHENTICATION_FAILED_BODY: &str =
    r#"{"error":"authentication_failed","message":"authentication failed"}"#;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    #[error("request body is larger than the limit")]
    TooLarge,
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("missing bearer token")]
    MissingToken,
    /// A credential a forward-auth check cannot read (a malformed token or
    /// device header: `BadRequest` on the JSON APIs): 401 `invalid_token`
    /// there, since proxies understand only 2xx, 401 and 403.
    #[error("{message}")]
    InvalidCredential { code: ErrorCode, message: String },
    /// An `Authorization: Bearer` token that is not one the server could
    /// have issued (RFC 6750 §3.1: `invalid_token`, whatever is wrong
    /// with it). A malformed token in a body field or a cookie is a 400.
    #[error("the bearer token is not a Postern session token")]
    InvalidToken,
    /// Every failed authentication (`/v1/auth/full`, passkey login):
    /// one fixed body; which stage failed, and why, goes to the log and
    /// the metrics only.
    #[error("authentication failed")]
    AuthenticationFailed,
    #[error("challenge rejected: {0}")]
    Challenge(ChallengeError),
    #[error("{}: {}", .0.as_str(), .0.reason().map_or("none", |r| r.as_str()))]
    Decision(Decision),
    #[error("this session may not act on that resource")]
    Forbidden,
    #[error(
        "a cookie-authenticated request that changes state must come from a configured origin"
    )]
    CrossOrigin,
    #[error("{0}")]
    Passkey(PasskeyError),
    #[error("not found")]
    NotFound,
    #[error("user is already enrolled")]
    AlreadyEnrolled,
    #[error("this needs a session from a recent full authentication")]
    ReauthRequired,
    #[error("the record changed while this request was handled; retry")]
    Conflict,
    #[error("this is the account's last way in (no live identity key, no other passkey in good standing)")]
    LastCredential,
    #[error("this passkey is not suspended")]
    NotSuspended,
    /// A component the request needs is down (not the store, not an
    /// upstream): a retry may succeed, so 503, never 500.
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    #[error("invalid session JWT: {0}")]
    InvalidJwt(crate::jwt::JwtError),
    #[error("too many requests")]
    RateLimited,
    /// This client's, or this user's, share of outstanding challenges or
    /// ceremonies is full; one frees in `retry_after` seconds.
    #[error("too many outstanding challenges or ceremonies for this client or user")]
    ShareExhausted { retry_after: u64 },
    /// The request was not finished within `request_timeout` (a client
    /// sending its body too slowly, or work taking too long).
    #[error("the request took longer than the server allows")]
    RequestTimeout,
    #[error("session store unavailable")]
    StoreUnavailable(#[source] StoreError),
    #[error(transparent)]
    Gate(#[from] postern_tower::GateError),
    #[error("internal error")]
    Internal(&'static str),
}

impl ApiError {
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            // A full challenge book is a 429, as documented (it was a 401).
            ApiError::Challenge(
                ChallengeError::TooMany | ChallengeError::ShareExhausted { .. },
            ) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MissingToken
            | ApiError::InvalidCredential { .. }
            | ApiError::InvalidToken
            | ApiError::AuthenticationFailed
            | ApiError::InvalidJwt(_)
            | ApiError::Challenge(_) => StatusCode::UNAUTHORIZED,
            ApiError::Decision(Decision::StepUp(_)) => StatusCode::FORBIDDEN,
            ApiError::Decision(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::CrossOrigin => StatusCode::FORBIDDEN,
            ApiError::Passkey(e) => match e {
                PasskeyError::Ceremony(
                    CeremonyError::TooMany | CeremonyError::ShareExhausted { .. },
                ) => StatusCode::TOO_MANY_REQUESTS,
                PasskeyError::Ceremony(_) => StatusCode::UNAUTHORIZED,
                // The authenticator's response does not verify: a failed
                // proof, like a failed login (a syntax error is a 400 before).
                PasskeyError::Verification(_) => StatusCode::UNAUTHORIZED,
                PasskeyError::AlreadyRegistered | PasskeyError::AccountClaimed => {
                    StatusCode::CONFLICT
                }
                PasskeyError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                PasskeyError::Configuration(_) | PasskeyError::Encoding(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::AlreadyEnrolled
            | ApiError::Conflict
            | ApiError::LastCredential
            | ApiError::NotSuspended => StatusCode::CONFLICT,
            ApiError::ReauthRequired => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited | ApiError::ShareExhausted { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Gate(GateError::Unauthenticated(_)) => StatusCode::UNAUTHORIZED,
            ApiError::Gate(GateError::Forbidden(_)) => StatusCode::FORBIDDEN,
            ApiError::Gate(GateError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Gate(GateError::BadUpstreamAnswer(_)) => StatusCode::BAD_GATEWAY,
            ApiError::Gate(GateError::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Gate(GateError::NotShared) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Gate(GateError::RevocationsFull) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest { code, .. } => *code,
            ApiError::TooLarge => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            ApiError::MissingToken => ErrorCode::MissingToken,
            ApiError::InvalidCredential { code, .. } => *code,
            ApiError::InvalidToken => ErrorCode::InvalidToken,
            ApiError::AuthenticationFailed => ErrorCode::AuthenticationFailed,
            ApiError::Challenge(ChallengeError::Expired) => ErrorCode::ChallengeExpired,
            ApiError::Challenge(
                ChallengeError::TooMany | ChallengeError::ShareExhausted { .. },
            ) => ErrorCode::RateLimited,
            ApiError::Challenge(_) => ErrorCode::ChallengeInvalid,
            ApiError::Decision(Decision::StepUp(_)) => ErrorCode::StepUpRequired,
            ApiError::Decision(_) => ErrorCode::FullAuthRequired,
            ApiError::Forbidden => ErrorCode::Forbidden,
            ApiError::CrossOrigin => ErrorCode::CrossOrigin,
            ApiError::Passkey(e) => match e {
                PasskeyError::Ceremony(
                    CeremonyError::TooMany | CeremonyError::ShareExhausted { .. },
                ) => ErrorCode::RateLimited,
                PasskeyError::Ceremony(CeremonyError::Expired) => ErrorCode::CeremonyExpired,
                PasskeyError::Ceremony(CeremonyError::Unknown) => ErrorCode::CeremonyInvalid,
                PasskeyError::Verification(_) => ErrorCode::PasskeyRejected,
                PasskeyError::AlreadyRegistered => ErrorCode::AlreadyRegistered,
                PasskeyError::AccountClaimed => ErrorCode::AlreadyEnrolled,
                PasskeyError::Store(_) => ErrorCode::StoreUnavailable,
                PasskeyError::Configuration(_) | PasskeyError::Encoding(_) => ErrorCode::Internal,
            },
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::RequestTimeout => ErrorCode::RequestTimeout,
            ApiError::AlreadyEnrolled => ErrorCode::AlreadyEnrolled,
            ApiError::ReauthRequired => ErrorCode::ReauthRequired,
            ApiError::Conflict => ErrorCode::Conflict,
            ApiError::LastCredential => ErrorCode::LastCredential,
            ApiError::NotSuspended => ErrorCode::NotSuspended,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::InvalidJwt(_) => ErrorCode::InvalidToken,
            ApiError::RateLimited | ApiError::ShareExhausted { .. } => ErrorCode::RateLimited,
            ApiError::StoreUnavailable(_) => ErrorCode::StoreUnavailable,
            ApiError::Gate(GateError::Unauthenticated(_)) => ErrorCode::InvalidToken,
            ApiError::Gate(GateError::Forbidden(_)) => ErrorCode::InsufficientScope,
            ApiError::Gate(GateError::Unavailable(_)) => ErrorCode::UpstreamUnavailable,
            ApiError::Gate(GateError::BadUpstreamAnswer(_)) => ErrorCode::UpstreamBadAnswer,
            ApiError::Gate(GateError::RateLimited) => ErrorCode::RateLimited,
            ApiError::Gate(GateError::NotShared) => ErrorCode::RevocationNotShared,
            ApiError::Gate(GateError::RevocationsFull) => ErrorCode::RevocationsFull,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl ApiError {
    /// A full share of the challenge book, as of `now`.
    pub fn from_challenge(error: ChallengeError, now: postern_core::UnixNanos) -> Self {
        match error {
            ChallengeError::ShareExhausted { retry_at, .. } => {
                ApiError::share_exhausted(retry_at, now)
            }
            other => ApiError::Challenge(other),
        }
    }

    /// A full share of a ceremony book, as of `now`.
    pub fn from_passkey(error: PasskeyError, now: postern_core::UnixNanos) -> Self {
        match error {
            PasskeyError::Ceremony(CeremonyError::ShareExhausted { retry_at, .. }) => {
                ApiError::share_exhausted(retry_at, now)
            }
            other => ApiError::Passkey(other),
        }
    }

    /// Whole seconds until `retry_at`, at least 1 (`Retry-After` has no
    /// fractions, and 0 would invite an immediate retry that fails).
    fn share_exhausted(retry_at: postern_core::UnixNanos, now: postern_core::UnixNanos) -> Self {
        const SECOND: u64 = 1_000_000_000;
        let wait = retry_at.saturating_sub(now);
        ApiError::ShareExhausted {
            retry_after: wait.div_ceil(SECOND).max(1),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::StoreUnavailable(e)
    }
}

impl From<PasskeyError> for ApiError {
    fn from(e: PasskeyError) -> Self {
        ApiError::Passkey(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::BytesRejection(ref r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge
            }
            JsonRejection::JsonDataError(e) => {
                ApiError::bad_request(ErrorCode::InvalidRequest, e.body_text())
            }
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::bad_request(ErrorCode::InvalidJson, "request body is not valid JSON")
            }
            other => ApiError::bad_request(ErrorCode::InvalidRequest, other.body_text()),
        }
    }
}

impl ApiError {
    /// Whether answering with this error writes a log line at `info` or
    /// above (in step with [`IntoResponse::into_response`] below): the
    /// `/v1/check` hot path makes a request span only then
    /// (`crate::request_id`).
    pub fn logs_above_debug(&self) -> bool {
        matches!(
            self,
            ApiError::StoreUnavailable(_)
                | ApiError::Internal(_)
                | ApiError::Unavailable(_)
                | ApiError::Passkey(_)
                | ApiError::Gate(GateError::Unavailable(_))
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(ErrorCode::InvalidPath, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(ErrorCode::InvalidQuery, rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::StoreUnavailable(cause) => {
                tracing::error!(error = %cause, source = ?std::error::Error::source(cause), "store unavailable")
            }
            ApiError::Internal(what) => tracing::error!(what, "internal error"),
            ApiError::Unavailable(what) => tracing::error!(what, "component unavailable"),
            ApiError::Passkey(
                e @ (PasskeyError::Store(_)
                | PasskeyError::Configuration(_)
                | PasskeyError::Encoding(_)),
            ) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(e), "passkey operation failed")
            }
            ApiError::Passkey(e) => tracing::info!(error = %e, "passkey refused"),
            ApiError::Gate(GateError::Unavailable(why)) => {
                tracing::warn!(why, "gate: upstream unavailable")
            }
            ApiError::Gate(GateError::BadUpstreamAnswer(why)) => {
                tracing::warn!(
                    why,
                    "gate: the upstream's answer about a token cannot be used"
                )
            }
            _ => tracing::debug!(code = self.code().as_str(), "request refused"),
        }
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        if let ApiError::Decision(decision) = &self {
            body["decision"] = json!(decision.as_str());
            body["reason"] = json!(decision.reason().map(|r| r.as_str()));
        }
        let mut response = (status, Json(body)).into_response();
        // RFC 6750 §3: 401s carry a Bearer challenge, with no error code
        // when no credentials were sent (§3.1) and `invalid_token` for a
        // refused one; a 403 for missing scope or a needed step-up says
        // `insufficient_scope`.
        let challenge = match &self {
            ApiError::Gate(GateError::Forbidden(_)) | ApiError::Decision(Decision::StepUp(_)) => {
                Some("Bearer error=\"insufficient_scope\"")
            }
            ApiError::Decision(_)
            | ApiError::Gate(_)
            | ApiError::InvalidJwt(_)
            | ApiError::InvalidCredential { .. }
            | ApiError::InvalidToken
                if status == StatusCode::UNAUTHORIZED =>
            {
                Some("Bearer error=\"invalid_token\"")
            }
            _ if status == StatusCode::UNAUTHORIZED => Some("Bearer"),
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let ApiError::ShareExhausted { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s (JSON error shape, right status).
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// `Path<T>` whose rejections (a segment that is not UTF-8 once
/// percent-decoded) are [`ApiError`]s: JSON, like every other 400.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `Query<T>` whose rejections are [`ApiError`]s (JSON 400).
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);
