//! The passkey stage: verifies a WebAuthn assertion against the login
//! ceremony it answers and the stored credential it names.
//!
//! What it checks, through webauthn-rs (W3C WebAuthn Level 3, §7.2 "Verifying
//! an Authentication Assertion"): the client data's type, challenge and
//! origin; the rp id hash; user presence and user verification; the
//! signature over the authenticator data and the client data hash under
//! the registered public key; and the signature counter ("If
//! authData.signCount is nonzero or storedSignCount is nonzero … if
//! authData.signCount is less than or equal to storedSignCount … this is a
//! signal that the authenticator may be cloned"), which webauthn-rs turns
//! into a refusal. Around that, the stage checks what only Postern knows:
//! the credential belongs to the user being authenticated and, for a
//! usernameless login, the assertion's user handle is that user's.
//!
//! On success the evidence carries the credential as updated by this use
//! (counter, backup flags); the caller persists it. The proof digest is a
//! SHA3-256 of the signed assertion, so the session's identity claim names
//! exactly the assertion that minted it.

use std::sync::Arc;

use postern_store::PasskeyRecord;
use sha3::{Digest, Sha3_256};
use webauthn_rs::prelude::{
    AuthenticationResult, Passkey, PublicKeyCredential, Webauthn, WebauthnError,
};

use crate::relying_party::{LoginKind, PendingLogin, RelyingParty};
use crate::stage::{AuthRequest, Evidence, Stage, StageFailure};

/// What a client presents for the passkey stage.
#[derive(Debug, Clone, Copy)]
pub struct PasskeyFactor<'a> {
    /// The login ceremony, already taken from the book (single use).
    pub ceremony: &'a PendingLogin,
    /// The browser's `PublicKeyCredential` (attacker-controlled).
    pub assertion: &'a PublicKeyCredential,
    /// The stored credential under the assertion's credential id, if any.
    pub stored: Option<&'a PasskeyRecord>,
}

/// Verifies passkey assertions.
#[derive(Clone)]
pub struct PasskeyStage {
    webauthn: Arc<Webauthn>,
}

impl std::fmt::Debug for PasskeyStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasskeyStage")
    }
}

impl PasskeyStage {
    pub fn new(relying_party: &RelyingParty) -> Self {
        Self {
            webauthn: relying_party.webauthn(),
        }
    }

    fn verify(
        &self,
        factor: &PasskeyFactor<'_>,
        passkey: &Passkey,
        stored: &PasskeyRecord,
    ) -> Result<AuthenticationResult, StageFailure> {
        let assertion = factor.assertion;
        let result = match &factor.ceremony.kind {
            LoginKind::Listed(state) => self
                .webauthn
                .finish_passkey_authentication(assertion, state),
            LoginKind::Discoverable(state) => {
                let (handle, _) = self
                    .webauthn
                    .identify_discoverable_authentication(assertion)
                    .map_err(|_| StageFailure::Malformed)?;
                if handle.as_bytes() != &stored.user_handle {
                    return Err(StageFailure::Rejected);
                }
                self.webauthn.finish_discoverable_authentication_v2(
                    assertion,
                    state.clone(),
                    passkey,
                )
            }
        };
        result.map_err(failure_of)
    }
}

/// How a webauthn-rs refusal is reported: input that could not be parsed
/// is `malformed`, everything else (origin, challenge, signature, counter,
/// user verification) `rejected`.
fn failure_of(error: WebauthnError) -> StageFailure {
    match error {
        WebauthnError::ParseNOMFailure
        | WebauthnError::ParseBase64Failure(_)
        | WebauthnError::ParseJSONFailure(_)
        | WebauthnError::ParseInsufficientBytesAvailable
        | WebauthnError::ParseCBORFailure(_) => StageFailure::Malformed,
        _ => StageFailure::Rejected,
    }
}

impl Stage for PasskeyStage {
    fn name(&self) -> &'static str {
        "passkey"
    }

    fn run(&self, request: &AuthRequest<'_>, evidence: &mut Evidence) -> Result<(), StageFailure> {
        let factor = request.factors.passkey.ok_or(StageFailure::Missing)?;
        let stored = factor.stored.ok_or(StageFailure::Rejected)?;
        if &stored.user != request.user
            || factor.ceremony.user().is_some_and(|u| u != request.user)
            || stored.credential_id != factor.assertion.raw_id
        {
            return Err(StageFailure::Rejected);
        }
        let mut passkey: Passkey =
            serde_json::from_slice(&stored.credential).map_err(|_| StageFailure::Rejected)?;
        let result = self.verify(&factor, &passkey, stored)?;
        if !result.user_verified() || result.cred_id().as_slice() != stored.credential_id {
            return Err(StageFailure::Rejected);
        }
        passkey.update_credential(&result);
        let credential = serde_json::to_vec(&passkey).map_err(|_| StageFailure::Rejected)?;
        evidence.passkey = Some(PasskeyRecord {
            credential,
            counter: result.counter(),
            backup_eligible: result.backup_eligible(),
            backup_state: result.backup_state(),
            ..stored.clone()
        });
        evidence.proof_digest = assertion_digest(factor.assertion);
        // A session the identity key took part in carries the identity
        // credential, whatever the stage order, so that revoking the key
        // revokes it (the identity stage likewise overrides this one).
        if evidence.identity_key.is_none() {
            evidence.credential = stored.session_credential();
        }
        Ok(())
    }
}

/// SHA3-256 over the signed parts of an assertion, domain-separated.
fn assertion_digest(assertion: &PublicKeyCredential) -> [u8; 32] {
    let response = &assertion.response;
    let mut hash = Sha3_256::new();
    hash.update(b"postern passkey assertion v1");
    for part in [
        &response.authenticator_data,
        &response.client_data_json,
        &response.signature,
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}
