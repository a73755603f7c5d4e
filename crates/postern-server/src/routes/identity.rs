//! A user's identity key after enrollment: revoke it, or replace it.
//!
//! Both change the user record by compare-and-set and only then sweep the
//! old key's sessions, in that order: from the moment the record changes no
//! login can mint with the old key (`issue_session` re-reads the record
//! after minting), and every session minted before is revoked by the sweep.
//! A sweep that fails part way is finished by calling the route again, or at
//! the latest when the server next starts (the authority's restore).
//!
//! Replacing a key is how a user whose key was revoked gets back in without
//! reopening the unauthenticated enroll route: it needs a session of that
//! user from a full authentication no older than `[auth] reauth_max_age`
//! (say, a passkey login, or a login with the key being rotated out).
//! Revoking needs the same.
//!
//! Passkeys added with a session of the retired key, and what they added
//! in turn, are suspended (see `passkeys.rs`), and their sessions revoked
//! in the same sweep: whoever stole the key could have added them. So
//! replacing a stolen key locks out a thief's passkey; the owner then
//! confirms their own passkeys from a session of the new key. Revoking
//! without a replacement would suspend every passkey that descends from the
//! key; when that leaves the account no credential in good standing it is
//! refused (409 `last_credential`) unless the caller asks to freeze the
//! account (`?freeze=true`), so an owner never locks themselves out by
//! accident.

use axum::extract::State;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use postern_core::context::UserId;
use postern_core::identity::IdentityPublicKey;
use postern_core::policy::{Decision, Reason};
use postern_core::UnixNanos;
use postern_store::UserRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::blocking;
use super::enroll::{decode_enrollment, EnrollRequest};
use super::own_session::{Changing, OwnSession};
use super::passkeys::{keeps_a_way_in, suspended};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorCode};
use crate::state::AppState;

/// How many times a compare-and-set on the user record is retried when a
/// concurrent change wins it.
const UPDATE_ATTEMPTS: usize = 3;

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityRevokedResponse {
    /// The revoked identity key's credential id (base64url).
    pub credential_id: String,
    pub revoked_at: String,
    /// Live sessions minted with that key, now revoked.
    pub revoked_sessions: usize,
    /// Verified proofs of that key forgotten from the proof cache.
    pub forgotten_proofs: usize,
    /// Passkeys (credential ids, base64url) registered with a session of
    /// that key. Whoever held the key could have added any of them, so
    /// they are suspended (and so is what they added).
    pub passkeys_registered_with_it: Vec<String>,
    /// Every passkey of the user now suspended (credential ids, base64url):
    /// they cannot log in until confirmed from another current credential
    /// or removed.
    pub suspended_passkeys: Vec<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevokeQuery {
    /// Revoke even if no credential in good standing is left: the account
    /// is then frozen (nobody, the owner included, can log in).
    #[serde(default)]
    pub freeze: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityReplacedResponse {
    pub user: String,
    /// The new key's credential id (base64url).
    pub credential_id: String,
    pub enrolled_at: String,
    /// The replaced key's credential id (base64url).
    pub replaced_credential_id: String,
    /// Whether every session of the replaced key was revoked. `false`
    /// means a store write failed after the new key was enrolled: the
    /// old key's sessions are refused in memory; call again to retry.
    pub sweep_complete: bool,
    /// Live sessions minted with the replaced key, now revoked (the
    /// caller's own included, if the replaced key minted it).
    pub revoked_sessions: usize,
    pub forgotten_proofs: usize,
    /// Every passkey of the user now suspended (credential ids, base64url):
    /// those added with a session of the replaced key, transitively.
    /// Confirm yours with a session of the new key.
    pub suspended_passkeys: Vec<String>,
}

/// What the sweep of a retired key did.
struct Swept {
    revoked_sessions: usize,
    forgotten_proofs: usize,
}

/// Forgets the proofs of the key `credential` and revokes its sessions,
/// and those of the passkeys its retirement suspended.
fn sweep(
    state: &AppState,
    user: &UserId,
    credential: &[u8; 16],
    now: UnixNanos,
) -> Result<Swept, ApiError> {
    let forgotten_proofs = state.proofs.forget_credential(user, credential);
    // Nothing derived from the retired enrollment stays in memory (the
    // cache could not serve a changed template anyway: it compares the
    // stored bytes).
    if let Some(biometric) = &state.biometric {
        biometric.prepared.forget(user);
    }
    let mut revoked_sessions = state.authority.revoke_credential(user, credential, now)?;
    // The passkeys the key authorised are suspended from the moment the
    // record changed; their sessions go now.
    revoked_sessions += state.authority.revoke_not_current(user, now)?;
    Ok(Swept {
        revoked_sessions,
        forgotten_proofs,
    })
}

fn credential_of(record: &UserRecord) -> Result<[u8; 16], ApiError> {
    Ok(IdentityPublicKey::from_bytes(&record.identity_key)
        .map_err(|_| ApiError::Internal("the enrolled identity key does not decode"))?
        .credential_id())
}

/// Revoke a user's identity key: its proofs are forgotten, every session
/// derived from it is revoked (and resumes as `revoked`), and full
/// authentication with it fails from then on. The passkeys it authorised
/// are suspended. Needs a session of that user from a full authentication
/// at most `reauth_max_age` old (else `403 reauth_required`). When no
/// credential in good standing would be left, refused with 409
/// `last_credential` (replace the key instead) unless `freeze=true`.
///
/// Idempotent: if the key is already revoked (say an earlier call failed
/// part way through its sweep), the sweep runs again and the answer keeps
/// the original `revoked_at`, so a retry always finishes the job.
#[utoipa::path(delete, path = "/v1/users/{user}/identity",
    security(("bearer" = [])),
    params(("user" = crate::openapi::UserId, Path, description = "User id"),
        RevokeQuery,
        ("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "The device the session is bound to"),
        ("X-Postern-Operation" = Option<String>, Header, description = "The operation about to be performed (sensitive ones need a step-up)")),
    responses((status = 200, body = IdentityRevokedResponse),
        (status = 400, description = "`invalid_query` (`freeze` is not `true` or `false`), `invalid_device`, `invalid_user`; in cookie mode `malformed_token`", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (the bearer token is not a Postern token), or the session is refused: `full_auth_required` with `decision` and `reason`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`step_up_required`, `forbidden`, `cross_origin`, or `reauth_required`: the session's full authentication is older than reauth_max_age", body = crate::openapi::ErrorBody),
        (status = 404, description = "`not_found`: the user has no identity key (a passkey-only account)", body = crate::openapi::ErrorBody),
        (status = 409, description = "`last_credential` (no credential in good standing would be left: replace the key, or `freeze=true`) or `conflict` (retry)", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn revoke_identity(
    State(state): State<AppState>,
    ApiPath(user): ApiPath<String>,
    ApiQuery(query): ApiQuery<RevokeQuery>,
    session: OwnSession<Changing>,
) -> Result<ApiJson<IdentityRevokedResponse>, ApiError> {
    let (user, _, _) = session.recent_of_user(&state, &user)?;
    let worker = state.clone();
    let for_store = user.clone();
    let (credential, revoked_at, (swept, registered_with_it, suspended_passkeys)) =
        blocking(move || {
            let state = worker;
            let now = state.clock.now();
            for _ in 0..UPDATE_ATTEMPTS {
                let record = state
                    .store
                    .get_user(&for_store)?
                    .ok_or(ApiError::NotFound)?;
                let credential = credential_of(&record)?;
                let revoked_at = match record.identity_revoked_at {
                    Some(at) => at,
                    None => {
                        // Read before the write and not in it: a passkey change
                        // racing this one can still leave the account frozen.
                        let (_, passkeys) = state.authority.passkey_standings(&for_store)?;
                        if !query.freeze && !keeps_a_way_in(None, &passkeys, None) {
                            return Err(ApiError::LastCredential);
                        }
                        let revoked = UserRecord {
                            identity_revoked_at: Some(now),
                            ..record.clone()
                        };
                        if !state.store.update_user(&for_store, &record, &revoked)? {
                            continue;
                        }
                        now
                    }
                };
                let swept = sweep(&state, &for_store, &credential, now)?;
                let registered_with_it: Vec<String> = state
                    .store
                    .list_passkeys(&for_store)?
                    .iter()
                    .filter(|p| p.registered_by == credential)
                    .map(|p| URL_SAFE_NO_PAD.encode(&p.credential_id))
                    .collect();
                let (_, after) = state.authority.passkey_standings(&for_store)?;
                return Ok((
                    credential,
                    revoked_at,
                    (swept, registered_with_it, suspended(&after)),
                ));
            }
            Err(ApiError::Conflict)
        })
        .await?;
    tracing::info!(user = %user, revoked_sessions = swept.revoked_sessions, "identity key revoked");
    Ok(ApiJson(IdentityRevokedResponse {
        credential_id: URL_SAFE_NO_PAD.encode(credential),
        revoked_at: crate::time::rfc3339(revoked_at),
        revoked_sessions: swept.revoked_sessions,
        forgotten_proofs: swept.forgotten_proofs,
        passkeys_registered_with_it: registered_with_it,
        suspended_passkeys,
    }))
}

/// Replace a user's identity key (revoked or live) with a new one. Needs a
/// session of that user whose full authentication is recent
/// (`[auth] reauth_max_age`, else `403 reauth_required`). Every session
/// minted with the replaced key is revoked, and the passkeys added with it
/// are suspended (listed in the answer; confirm yours with a session of
/// the new key); the biometric template is kept (sending one is a 400).
#[utoipa::path(put, path = "/v1/users/{user}/identity", request_body = crate::openapi::IdentityReplaceRequest,
    security(("bearer" = [])),
    params(("user" = crate::openapi::UserId, Path, description = "User id"),
        ("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "The device the session is bound to"),
        ("X-Postern-Operation" = Option<String>, Header, description = "The operation about to be performed (sensitive ones need a step-up)")),
    responses((status = 200, body = IdentityReplacedResponse),
        (status = 400, description = "`invalid_identity_key`, `same_identity_key`, `biometric_template_not_replaceable`, `invalid_device`, `invalid_user`; in cookie mode `malformed_token`, or a body that is not JSON of this schema", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, or the session is refused (`full_auth_required`, with `decision` and `reason`; also when it or its key was revoked meanwhile)", body = crate::openapi::ErrorBody),
        (status = 403, description = "`step_up_required`, `forbidden`, `cross_origin`, or `reauth_required`: the session's full authentication is older than reauth_max_age", body = crate::openapi::ErrorBody),
        (status = 404, description = "`not_found`: the user has no identity key to replace", body = crate::openapi::ErrorBody),
        (status = 409, description = "`conflict`: the record changed while this request was handled; retry", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the session store cannot be reached; retry", body = crate::openapi::ErrorBody)))]
pub async fn replace_identity(
    State(state): State<AppState>,
    ApiPath(user): ApiPath<String>,
    session: OwnSession<Changing>,
    ApiJson(body): ApiJson<EnrollRequest>,
) -> Result<ApiJson<IdentityReplacedResponse>, ApiError> {
    let (user, session, now) = session.recent_of_user(&state, &user)?;
    // The biometric template is not replaced here: a session from a
    // single factor (a passkey login) must not be able to swap the
    // biometric factor out.
    if body.biometric_template.is_some() {
        return Err(ApiError::bad_request(
            ErrorCode::BiometricTemplateNotReplaceable,
            "replacing the identity key keeps the enrolled biometric template",
        ));
    }
    let (key, _) = decode_enrollment(&state, &body)?;
    let worker = state.clone();
    let for_store = user.clone();
    let (replaced, swept, suspended_passkeys) = blocking(move || {
        let state = worker;
        // A passkey-only account has no key to replace: adding one is not
        // what this route does.
        let record = state
            .store
            .get_user(&for_store)?
            .ok_or(ApiError::NotFound)?;
        let current = credential_of(&record)?;
        // Checked against the record the write compares with: a session
        // revoked meanwhile, or one of a key revoked meanwhile, replaces
        // nothing.
        if session.revoked_at().is_some()
            || (session.context().credential == current && record.identity_revoked_at.is_some())
        {
            return Err(ApiError::Decision(Decision::FullAuth(Reason::Revoked)));
        }
        if &record.identity_key == key.as_bytes() {
            return Err(ApiError::bad_request(
                ErrorCode::SameIdentityKey,
                "the new identity key is the one enrolled",
            ));
        }
        let replacement = UserRecord {
            identity_key: *key.as_bytes(),
            enrolled_at: now,
            identity_revoked_at: None,
            biometric_template: record.biometric_template.clone(),
        };
        // No retry: the record this request was checked against changed.
        if !state.store.update_user(&for_store, &record, &replacement)? {
            return Err(ApiError::Conflict);
        }
        // The new key is enrolled from here on: a failed sweep is reported,
        // not turned into an error the client would read as "nothing
        // changed" (the next start finishes it for a revoked key).
        let swept = match sweep(&state, &for_store, &current, now) {
            Ok(swept) => Some(swept),
            Err(e) => {
                tracing::error!(user = %for_store, error = %e, "identity key replaced, sweep of the old key incomplete");
                None
            }
        };
        let suspended_passkeys = match state.authority.passkey_standings(&for_store) {
            Ok((_, after)) => suspended(&after),
            Err(e) => {
                tracing::error!(user = %for_store, error = %e, "identity key replaced, passkeys not listed");
                Vec::new()
            }
        };
        Ok((current, swept, suspended_passkeys))
    })
    .await?;
    tracing::info!(user = %user, sweep_complete = swept.is_some(), "identity key replaced");
    Ok(ApiJson(IdentityReplacedResponse {
        user: user.to_string(),
        credential_id: URL_SAFE_NO_PAD.encode(key.credential_id()),
        enrolled_at: crate::time::rfc3339(now),
        replaced_credential_id: URL_SAFE_NO_PAD.encode(replaced),
        sweep_complete: swept.is_some(),
        revoked_sessions: swept.as_ref().map_or(0, |s| s.revoked_sessions),
        forgotten_proofs: swept.as_ref().map_or(0, |s| s.forgotten_proofs),
        suspended_passkeys,
    }))
}
