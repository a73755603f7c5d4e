//! Every `error` code an answer can carry, as one enum.
//!
//! Why an enum: the codes are the API's contract with programs (a client
//! branches on `full_auth_required`, a proxy's page on `rate_limited`), so
//! they must not be made up at call sites, where a typo is a new code
//! nobody documented. The same enum is the body's field
//! ([`crate::error::ApiError`]) and the OpenAPI schema of `ErrorBody.error`
//! (a string enum), so the document lists exactly the codes the server can
//! send.

use utoipa::ToSchema;

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident => $text:literal,)+) => {
        /// A machine-readable error code (the `error` field of every error body).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order of the document.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as it appears in a body.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)+
                }
            }
        }
    };
}

error_codes! {
    /// The body is not JSON of the operation's schema, or a field is malformed.
    InvalidRequest => "invalid_request",
    /// The body is not valid JSON.
    InvalidJson => "invalid_json",
    /// A path parameter is malformed.
    InvalidPath => "invalid_path",
    /// A query parameter is malformed.
    InvalidQuery => "invalid_query",
    /// The body is larger than the limit.
    PayloadTooLarge => "payload_too_large",
    /// The body is not labelled `Content-Type: application/json`.
    UnsupportedMediaType => "unsupported_media_type",
    /// A user id outside `[A-Za-z0-9._@-]`, or too long.
    InvalidUser => "invalid_user",
    /// A device (`X-Postern-Device`, or the body's `device`) that cannot be read.
    InvalidDevice => "invalid_device",
    /// A session id that is not one.
    InvalidSessionId => "invalid_session_id",
    /// An identity public key that is not a Ristretto255 point.
    InvalidIdentityKey => "invalid_identity_key",
    /// An identity proof that is not base64url or not a proof.
    InvalidIdentityProof => "invalid_identity_proof",
    /// A challenge id that is not one.
    InvalidChallengeId => "invalid_challenge_id",
    /// A ceremony id that is not one.
    InvalidCeremonyId => "invalid_ceremony_id",
    /// A passkey credential id that is not base64url.
    InvalidCredentialId => "invalid_credential_id",
    /// A biometric template that is not a ciphertext of this server's key.
    InvalidBiometricTemplate => "invalid_biometric_template",
    /// A biometric probe that is not a ciphertext of this server's key.
    InvalidBiometricProbe => "invalid_biometric_probe",
    /// The biometric stage is not configured.
    BiometricNotEnabled => "biometric_not_enabled",
    /// An identity replacement that would carry a biometric template.
    BiometricTemplateNotReplaceable => "biometric_template_not_replaceable",
    /// An identity replacement with the key already enrolled.
    SameIdentityKey => "same_identity_key",
    /// A risk score outside 0..=1.
    InvalidRiskScore => "invalid_risk_score",
    /// An audience this server does not answer to.
    UnknownAudience => "unknown_audience",
    /// A token (body field or cookie) that is not a Postern token.
    MalformedToken => "malformed_token",
    /// No credentials were sent.
    MissingToken => "missing_token",
    /// The bearer token is refused (RFC 6750: expired, revoked, malformed or invalid).
    InvalidToken => "invalid_token",
    /// A full authentication failed (one fixed body whatever failed).
    AuthenticationFailed => "authentication_failed",
    /// The challenge expired.
    ChallengeExpired => "challenge_expired",
    /// The challenge is unknown, used, or for another user.
    ChallengeInvalid => "challenge_invalid",
    /// The WebAuthn ceremony expired.
    CeremonyExpired => "ceremony_expired",
    /// The WebAuthn ceremony is unknown or already finished.
    CeremonyInvalid => "ceremony_invalid",
    /// The authenticator's response does not verify.
    PasskeyRejected => "passkey_rejected",
    /// The session may not continue: a new full authentication is needed (`reason` says why).
    FullAuthRequired => "full_auth_required",
    /// This operation needs a step-up (`reason` says why).
    StepUpRequired => "step_up_required",
    /// Gate mode: the token lacks a required scope, audience or subject.
    InsufficientScope => "insufficient_scope",
    /// This session may not act on that resource.
    Forbidden => "forbidden",
    /// A cookie-authenticated change from another origin.
    CrossOrigin => "cross_origin",
    /// This needs a session from a recent full authentication.
    ReauthRequired => "reauth_required",
    /// Not found.
    NotFound => "not_found",
    /// The request was not finished within the server's request timeout.
    RequestTimeout => "request_timeout",
    /// The user is already enrolled.
    AlreadyEnrolled => "already_enrolled",
    /// The passkey is already registered.
    AlreadyRegistered => "already_registered",
    /// The record changed while the request was handled; retry.
    Conflict => "conflict",
    /// The account's last way in cannot be removed.
    LastCredential => "last_credential",
    /// The passkey is not suspended.
    NotSuspended => "not_suspended",
    /// Too many requests, or a full share of challenges or ceremonies (`Retry-After`).
    RateLimited => "rate_limited",
    /// The session store is unavailable.
    StoreUnavailable => "store_unavailable",
    /// A component the request needs is unavailable.
    Unavailable => "unavailable",
    /// Gate mode: the identity provider cannot answer.
    UpstreamUnavailable => "upstream_unavailable",
    /// Gate mode: the identity provider's answer about this token cannot be used.
    UpstreamBadAnswer => "upstream_bad_answer",
    /// Gate mode: a logout that cannot reach the other instances.
    RevocationNotShared => "revocation_not_shared",
    /// Gate mode: the revocation list is full.
    RevocationsFull => "revocations_full",
    /// A bug: nothing was changed that a retry would not redo.
    Internal => "internal",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_written_as_its_serialised_name_and_no_two_are_the_same() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(code
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }
}
