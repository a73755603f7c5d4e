//! Passkeys (WebAuthn): `POST /v1/passkeys/register/start|finish` and
//! `POST /v1/passkeys/login/start|finish`.
//!
//! Each ceremony is two calls: `start` answers with the options for the
//! browser's `navigator.credentials.create()` / `.get()` (under
//! `options.publicKey`, binary fields base64url) and a `ceremony_id`;
//! `finish` takes that id back with the browser's credential. A ceremony is
//! single-use and expires (`ceremony_invalid`, `ceremony_expired`).
//!
//! Who may register: a user with no credential at all, first come first
//! served (like identity enrollment); a user who already has one needs a
//! session of that user (bearer header or cookie) from a full
//! authentication at most `reauth_max_age` old (`403 reauth_required`), so
//! a stolen session that has aged cannot add a way in.
//!
//! A passkey added to an existing account records the credential of the
//! session that authorised it (`registered_by`). When that credential is
//! revoked, replaced or removed, the passkey is *suspended*, and so is
//! everything it authorised in turn (`postern_store::passkey::standings`):
//! it cannot log in (the same `401 authentication_failed` as a forged
//! assertion) and its sessions are revoked, until the owner confirms it
//! from a recent session of another current credential (`POST
//! .../passkeys/{id}/confirm`) or removes it. This is how an owner locks
//! out a thief who used a stolen key or session to add a passkey: replace
//! the key (or remove the passkey the thief used) and confirm only their
//! own passkeys. `GET /v1/users/{user}/passkeys` shows each passkey's
//! standing. A passkey login runs the
//! passkey stage through the pipeline and mints the session through the
//! same `issue_session` as `/v1/auth/full`. Login with a `user` offers
//! that user's passkeys; without one it is usernameless (the authenticator
//! offers a discoverable credential). Any failure of the login answers the
//! same fixed `401 authentication_failed` body as `/v1/auth/full`, whether
//! the credential is unknown, foreign, forged, replayed or suspended, or
//! another required stage failed; the detail goes to the log and the
//! metrics.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use postern_auth::ceremony::CeremonyId;
use postern_auth::passkey::PasskeyFactor;
use postern_auth::pipeline::StageReport;
use postern_auth::relying_party::{has_credentials, Enrolment};
use postern_auth::stage::{AuthRequest, Factors, StageFailure};
use postern_client::device::DeviceInput;
use postern_core::identity::IdentityPublicKey;
use postern_core::policy::{Decision, Reason};
use postern_store::passkey::MAX_CREDENTIAL_ID_LEN;
use postern_store::{standings, PasskeyRecord, PasskeyRemoval, PasskeyUse, Standing, UserRecord};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use webauthn_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

use super::auth::StageReportBody;
use super::issue::{issue_session, LoginResponse};
use super::own_session::{Changing, OwnSession, Reading};
use super::session::{credential_from, header_device};
use super::{audience_of, blocking, presented, requester, user_id};
use crate::client_ip::Peer;
use crate::error::{ApiError, ApiJson, ApiPath, ErrorCode};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterStartRequest {
    #[schema(value_type = crate::openapi::UserId)]
    pub user: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterStartResponse {
    /// Send back with the credential (base64url).
    pub ceremony_id: String,
    pub expires_at: String,
    /// `{ "publicKey": PublicKeyCredentialCreationOptions }`, binary fields base64url.
    #[schema(value_type = Object)]
    pub options: CreationChallengeResponse,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterFinishRequest {
    #[schema(value_type = crate::openapi::OpaqueId)]
    pub ceremony_id: String,
    /// The browser's `PublicKeyCredential` from `navigator.credentials.create()`,
    /// binary fields base64url.
    #[schema(value_type = crate::openapi::RegistrationCredential)]
    pub credential: RegisterPublicKeyCredential,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterFinishResponse {
    pub user: String,
    /// The registered credential id (base64url).
    pub credential_id: String,
    pub created_at: String,
    pub backup_eligible: bool,
    pub backup_state: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginStartRequest {
    /// The user to log in; omit for a usernameless login.
    #[schema(value_type = Option<crate::openapi::UserId>)]
    pub user: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginStartResponse {
    pub ceremony_id: String,
    pub expires_at: String,
    /// `{ "publicKey": PublicKeyCredentialRequestOptions }`, binary fields base64url.
    #[schema(value_type = Object)]
    pub options: RequestChallengeResponse,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginFinishRequest {
    #[schema(value_type = crate::openapi::OpaqueId)]
    pub ceremony_id: String,
    /// The browser's `PublicKeyCredential` from `navigator.credentials.get()`,
    /// binary fields base64url.
    #[schema(value_type = crate::openapi::AssertionCredential)]
    pub credential: PublicKeyCredential,
    /// The device the session is bound to: an id string or named
    /// components. In cookie mode the session is bound to the device
    /// cookie instead, and this binds only the identity proof, if any.
    #[schema(value_type = crate::openapi::Device)]
    pub device: DeviceInput,
    /// When passkey logins also require the identity stage: a Schnorr proof
    /// bound to this ceremony's challenge, base64url.
    #[schema(value_type = Option<crate::openapi::Base64Url>)]
    pub identity_proof: Option<String>,
    /// The origin the identity proof was made for (see `/v1/auth/full`).
    #[schema(value_type = Option<crate::openapi::Audience>)]
    pub audience: Option<String>,
    /// When passkey logins also require the biometric stage: an encrypted
    /// probe, base64url.
    #[schema(value_type = Option<crate::openapi::BiometricCiphertext>)]
    pub biometric_probe: Option<String>,
}

fn ceremony_id(text: &str) -> Result<CeremonyId, ApiError> {
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(CeremonyId)
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidCeremonyId,
                "ceremony_id is not a Postern ceremony id",
            )
        })
}

/// Start registering a passkey.
#[utoipa::path(post, path = "/v1/passkeys/register/start", request_body = RegisterStartRequest,
    security((), ("bearer" = [])),
    params(("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "The device the session is bound to"),
        ("X-Postern-Operation" = Option<String>, Header, description = "The operation about to be performed (sensitive ones need a step-up)")),
    responses((status = 200, body = RegisterStartResponse),
        (status = 400, description = "`invalid_user`, `invalid_device`, `malformed_token` (cookie mode), or a body that is not JSON of this schema", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (the bearer token is not a Postern token), or the session is refused: `full_auth_required` with `decision` and `reason`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`step_up_required`, `forbidden`, `cross_origin`, or `reauth_required`: the session's full authentication is older than reauth_max_age", body = crate::openapi::ErrorBody),
        (status = 429, description = "`rate_limited`: too many outstanding registrations overall, from this client or for this user; with `Retry-After` for the last two", body = crate::openapi::ErrorBody, headers(("retry-after" = u64, description = "Seconds until a ceremony of this client or user frees"))),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn register_start(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RegisterStartRequest>,
) -> Result<ApiJson<RegisterStartResponse>, ApiError> {
    let user = user_id(&body.user)?;
    // A session presented is well formed even where the account needs
    // none: a malformed token or device is refused, never ignored.
    match presented(&state, &headers) {
        Ok((text, source)) => drop(credential_from(&state, text, source)?),
        Err(ApiError::MissingToken) => {}
        Err(other) => return Err(other),
    }
    header_device(&headers)?;
    let worker = state.clone();
    let for_store = user.clone();
    let claimed = blocking(move || Ok(has_credentials(worker.store.as_ref(), &for_store)?)).await?;
    let enrolment = if claimed {
        let (_, session, _) = OwnSession::<Changing>::from_headers(&state, &headers)?
            .recent_of_user(&state, &body.user)?;
        let authorized_by = session.context().credential;
        // A session that names no credential could vouch for a passkey
        // that no revocation would ever suspend.
        if authorized_by == [0; 16] {
            return Err(ApiError::Forbidden);
        }
        Enrolment::ExistingAccount { authorized_by }
    } else {
        Enrolment::NewAccount
    };
    let worker = state.clone();
    let client = requester(&state, &headers, peer);
    let started = blocking(move || {
        let now = worker.clock.now();
        worker
            .passkeys
            .start_registration(
                worker.store.as_ref(),
                &user,
                enrolment,
                &client,
                now,
                &mut OsRng,
            )
            .map_err(|e| ApiError::from_passkey(e, now))
    })
    .await?;
    Ok(ApiJson(RegisterStartResponse {
        ceremony_id: URL_SAFE_NO_PAD.encode(started.ceremony_id.0),
        expires_at: crate::time::rfc3339(started.expires_at),
        options: started.options,
    }))
}

/// Finish registering a passkey: verify the attestation, store the credential.
#[utoipa::path(post, path = "/v1/passkeys/register/finish", request_body = RegisterFinishRequest,
    responses((status = 201, body = RegisterFinishResponse),
        (status = 400, description = "`invalid_ceremony_id`, or a body that is not JSON of this schema", body = crate::openapi::ErrorBody),
        (status = 401, description = "`passkey_rejected` (the attestation does not verify), `ceremony_invalid` or `ceremony_expired`; `full_auth_required` if the credential that authorised the registration was revoked meanwhile", body = crate::openapi::ErrorBody),
        (status = 409, description = "`already_registered` or `already_enrolled`", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn register_finish(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterFinishRequest>,
) -> Result<(StatusCode, ApiJson<RegisterFinishResponse>), ApiError> {
    let id = ceremony_id(&body.ceremony_id)?;
    let worker = state.clone();
    let record = blocking(move || {
        let now = worker.clock.now();
        let record = worker.passkeys.finish_registration(
            worker.store.as_ref(),
            &id,
            &body.credential,
            now,
        )?;
        // The credential that authorised the registration may have been
        // revoked since it started. Checked after the insert, so that a
        // revocation sweep either sees this passkey or is seen here.
        let authorised_by = record.registered_by;
        if authorised_by != [0; 16]
            && !worker
                .authority
                .credential_is_current(&record.user, &authorised_by)?
        {
            // Even if it is the account's last way in: whoever held the
            // revoked credential may have added it.
            worker.store.remove_passkey(&record.credential_id, false)?;
            tracing::info!(user = %record.user, "passkey registration refused: its authorising credential was revoked meanwhile");
            return Err(ApiError::Decision(Decision::FullAuth(Reason::Revoked)));
        }
        Ok(record)
    })
    .await?;
    tracing::info!(user = %record.user, "passkey registered");
    Ok((
        StatusCode::CREATED,
        ApiJson(RegisterFinishResponse {
            user: record.user.to_string(),
            credential_id: URL_SAFE_NO_PAD.encode(&record.credential_id),
            created_at: crate::time::rfc3339(record.created_at),
            backup_eligible: record.backup_eligible,
            backup_state: record.backup_state,
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyRemovedResponse {
    /// The removed passkey's credential id (base64url).
    pub credential_id: String,
    /// Live sessions the passkey authenticated, now revoked, with those of
    /// the passkeys its removal suspended.
    pub revoked_sessions: usize,
    /// The user's passkeys that are now suspended (credential ids,
    /// base64url): those this one authorised, transitively, and any
    /// suspended before. Confirm the ones that are yours.
    pub suspended_passkeys: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyInfo {
    /// The credential id (base64url).
    pub credential_id: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// The credential whose session authorised (or last confirmed) this
    /// passkey (base64url): an identity key's credential id or another
    /// passkey's session credential; `null` if it founded the account.
    pub registered_by: Option<String>,
    /// `active`, or `suspended`: its authoriser was revoked, replaced or
    /// removed; it cannot log in until confirmed or removed.
    pub standing: &'static str,
    /// The credential name this passkey's sessions carry (base64url),
    /// which other passkeys' `registered_by` may name.
    pub session_credential: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    pub user: String,
    pub passkeys: Vec<PasskeyInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyConfirmedResponse {
    /// The confirmed passkey's credential id (base64url).
    pub credential_id: String,
    /// The credential now recorded as its authoriser (base64url): the
    /// confirming session's.
    pub registered_by: String,
    /// Passkeys active again (credential ids, base64url): this one and
    /// those it authorised.
    pub reactivated: Vec<String>,
}

fn credential_id_of(text: &str) -> Result<Vec<u8>, ApiError> {
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()
        .filter(|id| !id.is_empty() && id.len() <= MAX_CREDENTIAL_ID_LEN)
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidCredentialId,
                "credential_id is not a base64url passkey credential id",
            )
        })
}

/// The credential ids (base64url) of `passkeys` that are suspended.
pub(super) fn suspended(passkeys: &[(PasskeyRecord, Standing)]) -> Vec<String> {
    passkeys
        .iter()
        .filter(|(_, standing)| *standing == Standing::Suspended)
        .map(|(p, _)| URL_SAFE_NO_PAD.encode(&p.credential_id))
        .collect()
}

/// Whether the user keeps a credential they can authenticate with if
/// `without` is removed (and the identity key is `identity`): what keeps
/// an owner from locking themselves out.
pub(super) fn keeps_a_way_in(
    identity: Option<[u8; 16]>,
    passkeys: &[(PasskeyRecord, Standing)],
    without: Option<&[u8]>,
) -> bool {
    if identity.is_some() {
        return true;
    }
    let left: Vec<PasskeyRecord> = passkeys
        .iter()
        .map(|(p, _)| p)
        .filter(|p| Some(p.credential_id.as_slice()) != without)
        .cloned()
        .collect();
    standings(None, &left).contains(&Standing::Active)
}

/// List a user's passkeys with their standing.
#[utoipa::path(get, path = "/v1/users/{user}/passkeys", operation_id = "list_passkeys",
    security(("bearer" = [])),
    params(("user" = crate::openapi::UserId, Path, description = "User id"),
        ("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "The device the session is bound to"),
        ("X-Postern-Operation" = Option<String>, Header, description = "The operation about to be performed (sensitive ones need a step-up)")),
    responses((status = 200, body = PasskeyList),
        (status = 400, description = "`invalid_device` (X-Postern-Device), `invalid_user`; in cookie mode `malformed_token` (the cookie holds no Postern token)", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (the bearer token is not a Postern token), or the session is refused: `full_auth_required` with `decision` and `reason`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`step_up_required` (with `decision` and `reason`) or `forbidden` (another user's)", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(user): ApiPath<String>,
    session: OwnSession<Reading>,
) -> Result<ApiJson<PasskeyList>, ApiError> {
    let (user, _) = session.of_user(&user)?;
    let worker = state.clone();
    let for_store = user.clone();
    let (_, passkeys) =
        blocking(move || Ok(worker.authority.passkey_standings(&for_store)?)).await?;
    let t = crate::time::rfc3339;
    Ok(ApiJson(PasskeyList {
        user: user.to_string(),
        passkeys: passkeys
            .into_iter()
            .map(|(p, standing)| PasskeyInfo {
                credential_id: URL_SAFE_NO_PAD.encode(&p.credential_id),
                created_at: t(p.created_at),
                last_used_at: p.last_used_at.map(t),
                registered_by: (p.registered_by != [0; 16])
                    .then(|| URL_SAFE_NO_PAD.encode(p.registered_by)),
                standing: standing.as_str(),
                session_credential: URL_SAFE_NO_PAD.encode(p.session_credential()),
            })
            .collect(),
    }))
}

/// Remove one of a user's passkeys; the sessions it authenticated are
/// revoked, and the passkeys it authorised are suspended (their sessions
/// revoked too). Needs a session of that user from a full authentication
/// at most `reauth_max_age` old (else `403 reauth_required`). A removal
/// that would leave the account no credential in good standing is refused
/// (409 `last_credential`).
#[utoipa::path(delete, path = "/v1/users/{user}/passkeys/{credential_id}",
    security(("bearer" = [])),
    params(("user" = crate::openapi::UserId, Path, description = "User id"),
        ("credential_id" = crate::openapi::CredentialId, Path, description = "The passkey's credential id, base64url"),
        ("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "The device the session is bound to"),
        ("X-Postern-Operation" = Option<String>, Header, description = "The operation about to be performed (sensitive ones need a step-up)")),
    responses((status = 200, body = PasskeyRemovedResponse),
        (status = 400, description = "`invalid_credential_id`, `invalid_device`, `invalid_user`; in cookie mode `malformed_token`", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (the bearer token is not a Postern token), or the session is refused: `full_auth_required` with `decision` and `reason`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`step_up_required`, `forbidden`, `cross_origin`, or `reauth_required`: the session's full authentication is older than reauth_max_age", body = crate::openapi::ErrorBody),
        (status = 404, description = "`not_found`: the user has no such passkey", body = crate::openapi::ErrorBody),
        (status = 409, description = "`last_credential`: the account would be left no credential in good standing", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    ApiPath((user, credential_id)): ApiPath<(String, String)>,
    session: OwnSession<Changing>,
) -> Result<ApiJson<PasskeyRemovedResponse>, ApiError> {
    let (user, _, now) = session.recent_of_user(&state, &user)?;
    let id = credential_id_of(&credential_id)?;
    let worker = state.clone();
    let (revoked_sessions, suspended_passkeys) = blocking(move || {
        let state = worker;
        let (identity, passkeys) = state.authority.passkey_standings(&user)?;
        let record = passkeys
            .iter()
            .map(|(p, _)| p)
            .find(|p| p.credential_id == id)
            .cloned()
            .ok_or(ApiError::NotFound)?;
        // Standing-aware: removing the passkey every other one descends
        // from would suspend them all. The store's own check below (any
        // other passkey or a live key) is the floor under a race with
        // another change to the account.
        if !keeps_a_way_in(identity, &passkeys, Some(&id)) {
            return Err(ApiError::LastCredential);
        }
        match state.store.remove_passkey(&id, true)? {
            PasskeyRemoval::Removed => {}
            PasskeyRemoval::NotRegistered => return Err(ApiError::NotFound),
            PasskeyRemoval::LastWayIn => return Err(ApiError::LastCredential),
        }
        let mut revoked =
            state
                .authority
                .revoke_credential(&user, &record.session_credential(), now)?;
        revoked += state.authority.revoke_not_current(&user, now)?;
        let (_, after) = state.authority.passkey_standings(&user)?;
        let suspended_passkeys = suspended(&after);
        tracing::info!(user = %user, revoked_sessions = revoked, suspended = suspended_passkeys.len(), "passkey removed");
        Ok((revoked, suspended_passkeys))
    })
    .await?;
    Ok(ApiJson(PasskeyRemovedResponse {
        credential_id: credential_id.trim().to_string(),
        revoked_sessions,
        suspended_passkeys,
    }))
}

/// Confirm a suspended passkey: record the caller's credential as the one
/// that authorised it, which makes it (and what it authorised) active
/// again. Needs a session of that user from a full authentication at most
/// `reauth_max_age` old (else `403 reauth_required`), made with a current
/// credential other than this passkey. An active passkey is not confirmed
/// (409 `not_suspended`).
#[utoipa::path(post, path = "/v1/users/{user}/passkeys/{credential_id}/confirm",
    security(("bearer" = [])),
    params(("user" = crate::openapi::UserId, Path, description = "User id"),
        ("credential_id" = crate::openapi::CredentialId, Path, description = "The passkey's credential id, base64url"),
        ("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "The device the session is bound to"),
        ("X-Postern-Operation" = Option<String>, Header, description = "The operation about to be performed (sensitive ones need a step-up)")),
    responses((status = 200, body = PasskeyConfirmedResponse),
        (status = 400, description = "`invalid_credential_id`, `invalid_device`, `invalid_user`; in cookie mode `malformed_token`", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (the bearer token is not a Postern token), or the session is refused: `full_auth_required` with `decision` and `reason`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`step_up_required`, `forbidden` (another user's, or a session that names no credential), `cross_origin`, or `reauth_required`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`not_found`: the user has no such passkey", body = crate::openapi::ErrorBody),
        (status = 409, description = "`not_suspended` (the passkey is active) or `conflict` (it changed meanwhile; retry)", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn confirm(
    State(state): State<AppState>,
    ApiPath((user, credential_id)): ApiPath<(String, String)>,
    session: OwnSession<Changing>,
) -> Result<ApiJson<PasskeyConfirmedResponse>, ApiError> {
    let (user, session, _) = session.recent_of_user(&state, &user)?;
    let by = session.context().credential;
    if by == [0; 16] {
        return Err(ApiError::Forbidden);
    }
    let id = credential_id_of(&credential_id)?;
    let worker = state.clone();
    let reactivated = blocking(move || {
        let state = worker;
        let (identity, passkeys) = state.authority.passkey_standings(&user)?;
        let (record, standing) = passkeys
            .iter()
            .find(|(p, _)| p.credential_id == id)
            .cloned()
            .ok_or(ApiError::NotFound)?;
        if standing == Standing::Active {
            return Err(ApiError::NotSuspended);
        }
        // The confirming credential must be one the user can authenticate
        // with now (a suspended passkey's session is revoked already; this
        // also refuses one a sweep has not reached).
        let current = identity == Some(by)
            || passkeys
                .iter()
                .any(|(p, s)| *s == Standing::Active && p.session_credential() == by);
        if !current || session.revoked_at().is_some() {
            return Err(ApiError::Decision(Decision::FullAuth(Reason::Revoked)));
        }
        if !state
            .store
            .reauthorise_passkey(&id, record.registered_by, by)?
        {
            return Err(ApiError::Conflict);
        }
        let (_, after) = state.authority.passkey_standings(&user)?;
        let reactivated: Vec<String> = passkeys
            .iter()
            .zip(&after)
            .filter(|((_, before), (_, now))| {
                *before == Standing::Suspended && *now == Standing::Active
            })
            .map(|((p, _), _)| URL_SAFE_NO_PAD.encode(&p.credential_id))
            .collect();
        tracing::info!(user = %user, reactivated = reactivated.len(), "suspended passkey confirmed");
        Ok(reactivated)
    })
    .await?;
    Ok(ApiJson(PasskeyConfirmedResponse {
        credential_id: credential_id.trim().to_string(),
        registered_by: URL_SAFE_NO_PAD.encode(by),
        reactivated,
    }))
}

/// Start a passkey login (with a user, or usernameless).
#[utoipa::path(post, path = "/v1/passkeys/login/start", request_body = LoginStartRequest,
    responses((status = 200, body = LoginStartResponse),
        (status = 400, description = "`invalid_user`, or a body that is not JSON of this schema", body = crate::openapi::ErrorBody),
        (status = 429, description = "`rate_limited`: too many outstanding logins overall, from this client or for this user; with `Retry-After` for the last two", body = crate::openapi::ErrorBody, headers(("retry-after" = u64, description = "Seconds until a ceremony of this client or user frees"))),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn login_start(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginStartRequest>,
) -> Result<ApiJson<LoginStartResponse>, ApiError> {
    let user = body.user.as_deref().map(user_id).transpose()?;
    let worker = state.clone();
    let client = requester(&state, &headers, peer);
    let started = blocking(move || {
        let now = worker.clock.now();
        worker
            .passkeys
            .start_login(
                worker.store.as_ref(),
                user.as_ref(),
                &client,
                now,
                &mut OsRng,
            )
            .map_err(|e| ApiError::from_passkey(e, now))
    })
    .await?;
    Ok(ApiJson(LoginStartResponse {
        ceremony_id: URL_SAFE_NO_PAD.encode(started.ceremony_id.0),
        expires_at: crate::time::rfc3339(started.expires_at),
        options: started.options,
    }))
}

/// Finish a passkey login: verify the assertion and mint a session.
#[utoipa::path(post, path = "/v1/passkeys/login/finish", request_body = LoginFinishRequest,
    responses((status = 200, description = "The session; in cookie mode no `token` in the body but two `Set-Cookie`: the session cookie and the device cookie the session is bound to (a fresh random secret, `HttpOnly` like the session cookie)", body = LoginResponse),
        (status = 400, description = "`invalid_ceremony_id`, `invalid_device`, `unknown_audience`, `invalid_identity_proof`, `invalid_biometric_probe`, or a body that is not JSON of this schema", body = crate::openapi::ErrorBody),
        (status = 401, description = "`authentication_failed` with one fixed body whatever failed (unknown, forged, replayed or suspended passkey, another stage), or `ceremony_invalid` / `ceremony_expired`", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn login_finish(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginFinishRequest>,
) -> Result<Response, ApiError> {
    let id = ceremony_id(&body.ceremony_id)?;
    let device = body
        .device
        .fingerprint()
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidDevice, e.to_string()))?;
    let decode = |field: &Option<String>, code: ErrorCode| {
        field
            .as_deref()
            .map(|text| {
                URL_SAFE_NO_PAD
                    .decode(text.trim())
                    .map_err(|_| ApiError::bad_request(code, format!("{code} is not base64url")))
            })
            .transpose()
    };
    let proof = decode(&body.identity_proof, ErrorCode::InvalidIdentityProof)?;
    let audience = audience_of(&state, body.audience.as_deref())?;
    let probe = decode(&body.biometric_probe, ErrorCode::InvalidBiometricProbe)?;
    // The ceremony is consumed now, whatever happens next.
    let ceremony = state.passkeys.take_login(&id, state.clock.now())?;
    let worker = state.clone();
    blocking(move || {
        let state = worker;
        let assertion = body.credential;
        let stored = state.store.get_passkey(&assertion.raw_id)?;
        // The user is the one named at start or, usernameless, the owner of
        // the credential; with neither there is nobody to authenticate.
        let Some(user) = ceremony
            .user()
            .cloned()
            .or_else(|| stored.as_ref().map(|s| s.user.clone()))
        else {
            tracing::info!("passkey login with an unknown credential");
            return Err(refused(&state, StageFailure::Rejected));
        };
        // The passkey stage does not read the identity record; a user with
        // passkeys only has none (an identity stage after it meets a real
        // key nobody holds, and takes as long as for a wrong proof).
        let record = state.store.get_user(&user)?.unwrap_or(UserRecord {
            identity_key: *IdentityPublicKey::stand_in().as_bytes(),
            enrolled_at: 0,
            identity_revoked_at: None,
            biometric_template: None,
        });
        let request = AuthRequest {
            user: &user,
            record: &record,
            device: &device,
            challenge: ceremony.challenge(),
            audience: &audience,
            factors: Factors {
                passkey: Some(PasskeyFactor {
                    ceremony: &ceremony,
                    assertion: &assertion,
                    stored: stored.as_ref(),
                }),
                identity_proof: proof.as_deref(),
                biometric_probe: probe.as_deref(),
            },
        };
        let outcome = state.passkey_pipeline.run(&request);
        let mut stages = Vec::with_capacity(outcome.reports.len() + 2);
        for report in &outcome.reports {
            let StageReport {
                stage,
                outcome,
                nanos,
            } = *report;
            state.metrics.observe_stage(stage, outcome.as_str(), nanos);
            stages.push(StageReportBody::of(stage, outcome, nanos));
        }
        let mut evidence = match outcome.result {
            Ok(evidence) => evidence,
            Err((stage, failure)) => {
                tracing::info!(user = %user, stage, failure = failure.as_str(), "passkey login failed");
                return Err(ApiError::AuthenticationFailed);
            }
        };
        // A suspended passkey verifies but does not log in; the answer is
        // the one a forged assertion gets.
        let used_credential = evidence.passkey.as_ref().map(PasskeyRecord::session_credential);
        if let Some(credential) = used_credential {
            if !state.authority.credential_is_current(&user, &credential)? {
                tracing::info!(user = %user, "passkey login refused: the passkey is suspended");
                return Err(refused(&state, StageFailure::CredentialRevoked));
            }
        }
        // The new counter is durable before any session exists, so a
        // replayed assertion cannot mint a second one after a crash. The
        // store compares and sets it: of two logins that verified against
        // the same stored counter (a cloned authenticator racing the real
        // one), only the first to write gets a session.
        if let Some(mut used) = evidence.passkey.take() {
            used.last_used_at = Some(state.clock.now());
            match state.store.update_passkey(&used)? {
                PasskeyUse::Recorded => {}
                PasskeyUse::UnknownCredential | PasskeyUse::CounterNotAdvanced { .. } => {
                    tracing::warn!(user = %user, "passkey use refused: its signature counter did not advance (possible cloned authenticator)");
                    return Err(refused(&state, StageFailure::Replayed));
                }
            }
        }
        issue_session(&state, user, device, evidence, used_credential, stages)
    })
    .await
}

/// A passkey login refused outside the pipeline: counted in the metrics
/// under the passkey stage, answered with the fixed failure body.
fn refused(state: &AppState, failure: StageFailure) -> ApiError {
    state.metrics.observe_stage("passkey", failure.as_str(), 0);
    ApiError::AuthenticationFailed
}
