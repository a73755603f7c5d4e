//! The WebAuthn relying party: starts and finishes passkey registration,
//! and starts passkey login (which the [`crate::passkey::PasskeyStage`]
//! finishes inside the pipeline).
//!
//! Ceremony state never leaves the server: each start puts it in a
//! [`CeremonyBook`] (single use, expiring, bounded) and hands the client
//! only the options for `navigator.credentials` and an opaque ceremony id.
//!
//! Registration asks for a discoverable credential (`residentKey:
//! "preferred"`) so the same passkey also serves usernameless login;
//! webauthn-rs's passkey defaults discourage one. Nothing on the server
//! depends on the authenticator honouring the preference: a credential
//! that is not discoverable still works for login with a username.

use std::sync::Arc;

use postern_core::context::UserId;
use postern_core::UnixNanos;
use postern_store::{AccountClaim, PasskeyInsert, PasskeyRecord, SessionStore, StoreError};
use rand::{CryptoRng, RngCore};
use serde::Deserialize;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid,
    Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use crate::ceremony::{Asker, CeremonyBook, CeremonyError, CeremonyId};
use crate::quota::ShareLimits;

/// Where passkeys are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingPartyConfig {
    /// The relying-party id: the origin's host or a registrable suffix of it.
    pub rp_id: String,
    /// The origins (scheme, host, port) browsers may use the passkeys
    /// from, e.g. a web app and its admin console; at least one. Each
    /// host must be the rp id or a subdomain of it, so one passkey serves
    /// them all.
    pub origins: Vec<Url>,
    /// Shown to users by their authenticator.
    pub rp_name: String,
    /// How long a ceremony may take (ns).
    pub ceremony_ttl: u64,
    /// Most outstanding ceremonies of each kind (registration, login).
    pub max_ceremonies: usize,
    /// Most outstanding ceremonies of each kind per client and per user.
    pub shares: ShareLimits,
}

/// Why a passkey operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("invalid relying-party configuration (the rp id must be the origin's host or a parent domain of it)")]
    Configuration(#[source] WebauthnError),
    #[error(transparent)]
    Ceremony(#[from] CeremonyError),
    #[error("the account was claimed by another registration meanwhile")]
    AccountClaimed,
    #[error("the authenticator's response does not verify: {0}")]
    Verification(#[source] WebauthnError),
    #[error("this credential is already registered")]
    AlreadyRegistered,
    #[error("could not encode the credential for storage")]
    Encoding(#[source] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whom a registration adds a passkey to; the caller decides which it is
/// allowed to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrolment {
    /// A user with no credential at all (no identity key, no passkey):
    /// first come, first served, like identity enrollment. Finishing
    /// re-checks that the account is still unclaimed, in the same store
    /// write that registers the passkey.
    NewAccount,
    /// A user who already has credentials; the caller has authenticated
    /// a session of that user, minted with the credential `authorized_by`
    /// (recorded as the passkey's `registered_by`).
    ExistingAccount { authorized_by: [u8; 16] },
}

/// A registration in progress.
struct PendingRegistration {
    user: UserId,
    handle: [u8; 16],
    enrolment: Enrolment,
    state: PasskeyRegistration,
}

/// A login in progress: the state the passkey stage verifies against.
#[derive(Debug)]
pub struct PendingLogin {
    /// The user named at start, if any (a usernameless login names none).
    pub(crate) user: Option<UserId>,
    pub(crate) kind: LoginKind,
    /// The challenge the assertion must sign.
    pub(crate) challenge: [u8; 32],
}

#[derive(Debug)]
pub(crate) enum LoginKind {
    /// The user's own credentials were offered (`allowCredentials`).
    Listed(PasskeyAuthentication),
    /// The authenticator chooses a discoverable credential.
    Discoverable(DiscoverableAuthentication),
}

impl PendingLogin {
    /// The user named when the login started, if any.
    pub fn user(&self) -> Option<&UserId> {
        self.user.as_ref()
    }

    /// The one-time challenge of this ceremony (what the pipeline's
    /// `AuthRequest::challenge` carries).
    pub fn challenge(&self) -> &[u8; 32] {
        &self.challenge
    }
}

/// A started ceremony, as handed to the client.
#[derive(Debug)]
pub struct Started<T> {
    pub ceremony_id: CeremonyId,
    pub expires_at: UnixNanos,
    /// The options for `navigator.credentials.create` / `.get`.
    pub options: T,
}

/// The relying party and its outstanding ceremonies.
pub struct RelyingParty {
    webauthn: Arc<Webauthn>,
    registrations: CeremonyBook<PendingRegistration>,
    logins: CeremonyBook<PendingLogin>,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("origins", &self.webauthn.get_allowed_origins())
            .finish_non_exhaustive()
    }
}

impl RelyingParty {
    pub fn new(config: &RelyingPartyConfig) -> Result<Self, PasskeyError> {
        let Some((first, others)) = config.origins.split_first() else {
            return Err(PasskeyError::Configuration(WebauthnError::Configuration));
        };
        // The builder checks the rp id against its first origin only; an
        // appended one is taken as given, so each is checked here alike.
        if !others.iter().all(|o| within_rp_id(&config.rp_id, o)) {
            return Err(PasskeyError::Configuration(WebauthnError::Configuration));
        }
        let mut builder = WebauthnBuilder::new(&config.rp_id, first)
            .map_err(PasskeyError::Configuration)?
            .rp_name(&config.rp_name);
        for origin in others {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder.build().map_err(PasskeyError::Configuration)?;
        Ok(Self {
            webauthn: Arc::new(webauthn),
            registrations: CeremonyBook::new(
                config.ceremony_ttl,
                config.max_ceremonies,
                config.shares,
            ),
            logins: CeremonyBook::new(config.ceremony_ttl, config.max_ceremonies, config.shares),
        })
    }

    /// The origins assertions and attestations may come from.
    pub fn origins(&self) -> &[Url] {
        self.webauthn.get_allowed_origins()
    }

    pub(crate) fn webauthn(&self) -> Arc<Webauthn> {
        self.webauthn.clone()
    }

    /// Starts registering a new passkey for `user`, asked for by `client`.
    /// The user's existing passkeys are excluded, so one authenticator is
    /// registered once.
    pub fn start_registration<R: RngCore + CryptoRng>(
        &self,
        store: &dyn SessionStore,
        user: &UserId,
        enrolment: Enrolment,
        client: &str,
        now: UnixNanos,
        rng: &mut R,
    ) -> Result<Started<CreationChallengeResponse>, PasskeyError> {
        // Nothing is written until a registration finishes: a start for an
        // unused name leaves no trace (its handle lives in the ceremony).
        let handle = match store.passkey_user_handle(user)? {
            Some(handle) => handle,
            None => {
                let mut fresh = [0u8; 16];
                rng.fill_bytes(&mut fresh);
                fresh
            }
        };
        let existing: Vec<_> = store
            .list_passkeys(user)?
            .into_iter()
            .map(|p| p.credential_id)
            .collect();
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(
                Uuid::from_bytes(handle),
                user.as_str(),
                user.as_str(),
                Some(existing),
            )
            .map_err(PasskeyError::Verification)?;
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Preferred);
        }
        let pending = PendingRegistration {
            user: user.clone(),
            handle,
            enrolment,
            state,
        };
        let asker = Asker {
            client,
            user: Some(user),
        };
        let (ceremony_id, expires_at) = self.registrations.open(pending, asker, now, rng)?;
        Ok(Started {
            ceremony_id,
            expires_at,
            options,
        })
    }

    /// Finishes a registration: verifies the authenticator's attestation
    /// against the ceremony (challenge, origin, rp id, user verification)
    /// and stores the credential. The ceremony is consumed whatever happens.
    pub fn finish_registration(
        &self,
        store: &dyn SessionStore,
        id: &CeremonyId,
        response: &RegisterPublicKeyCredential,
        now: UnixNanos,
    ) -> Result<PasskeyRecord, PasskeyError> {
        let pending = self.registrations.take(id, now)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(response, &pending.state)
            .map_err(PasskeyError::Verification)?;
        let (claim, registered_by) = match pending.enrolment {
            Enrolment::NewAccount => (AccountClaim::NewAccount, [0; 16]),
            Enrolment::ExistingAccount { authorized_by } => {
                (AccountClaim::ExistingAccount, authorized_by)
            }
        };
        let mut record = record_of(&passkey, pending.user, pending.handle, now)?;
        record.registered_by = registered_by;
        match store.insert_passkey(&record, claim)? {
            PasskeyInsert::Inserted => Ok(record),
            PasskeyInsert::CredentialTaken => Err(PasskeyError::AlreadyRegistered),
            PasskeyInsert::AccountClaimed => Err(PasskeyError::AccountClaimed),
        }
    }

    /// Starts a login. With a user, the user's passkeys are offered
    /// (`allowCredentials`); a user with none, known or not, gets a
    /// discoverable ceremony that only that user's credential can finish.
    /// Like every username-first WebAuthn login, the offered list shows
    /// whether a user has passkeys; a usernameless login shows nothing.
    /// Without a user the authenticator picks a discoverable credential.
    pub fn start_login<R: RngCore + CryptoRng>(
        &self,
        store: &dyn SessionStore,
        user: Option<&UserId>,
        client: &str,
        now: UnixNanos,
        rng: &mut R,
    ) -> Result<Started<RequestChallengeResponse>, PasskeyError> {
        let passkeys: Vec<Passkey> = match user {
            Some(user) => store
                .list_passkeys(user)?
                .iter()
                .filter_map(|p| serde_json::from_slice(&p.credential).ok())
                .collect(),
            None => Vec::new(),
        };
        let (mut options, kind) = if passkeys.is_empty() {
            let (options, state) = self
                .webauthn
                .start_discoverable_authentication()
                .map_err(PasskeyError::Verification)?;
            (options, LoginKind::Discoverable(state))
        } else {
            let (options, state) = self
                .webauthn
                .start_passkey_authentication(&passkeys)
                .map_err(PasskeyError::Verification)?;
            (options, LoginKind::Listed(state))
        };
        // webauthn-rs marks discoverable requests for conditional UI
        // (autofill); this is an explicit, modal sign-in instead.
        options.mediation = None;
        let challenge = <[u8; 32]>::try_from(options.public_key.challenge.as_slice())
            .map_err(|_| PasskeyError::Verification(WebauthnError::MismatchedChallenge))?;
        let pending = PendingLogin {
            user: user.cloned(),
            kind,
            challenge,
        };
        let (ceremony_id, expires_at) =
            self.logins
                .open(pending, Asker { client, user }, now, rng)?;
        Ok(Started {
            ceremony_id,
            expires_at,
            options,
        })
    }

    /// Takes a login ceremony for the passkey stage to verify. Consumed
    /// whatever happens next.
    pub fn take_login(
        &self,
        id: &CeremonyId,
        now: UnixNanos,
    ) -> Result<PendingLogin, PasskeyError> {
        Ok(self.logins.take(id, now)?)
    }
}

/// Whether `user` has any credential: an identity key or a passkey.
pub fn has_credentials(store: &dyn SessionStore, user: &UserId) -> Result<bool, StoreError> {
    Ok(store.get_user(user)?.is_some() || !store.list_passkeys(user)?.is_empty())
}

/// The fields of webauthn-rs's serialised credential that the store keeps
/// in the clear. (webauthn-rs keeps its serialised form stable: it is what
/// deployments store.)
#[derive(Deserialize)]
struct SerialisedPasskey {
    cred: SerialisedCredential,
}

#[derive(Deserialize)]
struct SerialisedCredential {
    counter: u32,
    backup_eligible: bool,
    backup_state: bool,
}

/// The store's record of `passkey`, owned by `user`.
pub(crate) fn record_of(
    passkey: &Passkey,
    user: UserId,
    user_handle: [u8; 16],
    now: UnixNanos,
) -> Result<PasskeyRecord, PasskeyError> {
    let credential = serde_json::to_vec(passkey).map_err(PasskeyError::Encoding)?;
    let flags: SerialisedPasskey =
        serde_json::from_slice(&credential).map_err(PasskeyError::Encoding)?;
    Ok(PasskeyRecord {
        credential_id: passkey.cred_id().to_vec(),
        user,
        user_handle,
        credential,
        counter: flags.cred.counter,
        backup_eligible: flags.cred.backup_eligible,
        backup_state: flags.cred.backup_state,
        created_at: now,
        last_used_at: None,
        registered_by: [0; 16],
    })
}

/// Whether `origin`'s host is `rp_id` or a subdomain of it: WebAuthn's
/// rule that the rp id be "a registrable domain suffix of or equal to the
/// caller's origin's effective domain", as `WebauthnBuilder::new` checks it.
fn within_rp_id(rp_id: &str, origin: &Url) -> bool {
    origin
        .domain()
        .is_some_and(|host| host == rp_id || host.ends_with(&format!(".{rp_id}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_store::memory::MemoryStore;

    fn config(rp_id: &str, origin: &str) -> RelyingPartyConfig {
        RelyingPartyConfig {
            rp_id: rp_id.into(),
            origins: vec![Url::parse(origin).unwrap()],
            rp_name: "Postern".into(),
            ceremony_ttl: 100,
            max_ceremonies: 10,
            shares: ShareLimits::UNLIMITED,
        }
    }

    #[test]
    fn the_rp_id_must_be_the_origins_domain_or_a_parent_of_it() {
        assert!(RelyingParty::new(&config("example.com", "https://login.example.com")).is_ok());
        assert!(matches!(
            RelyingParty::new(&config("example.com", "https://login.example.org")),
            Err(PasskeyError::Configuration(_))
        ));
    }

    #[test]
    fn every_origin_must_lie_within_the_rp_id_and_all_are_allowed() {
        let mut two = config("example.com", "https://app.example.com");
        two.origins
            .push(Url::parse("https://admin.example.com:8443").unwrap());
        let rp = RelyingParty::new(&two).unwrap();
        let allowed: Vec<&str> = rp.origins().iter().map(Url::as_str).collect();
        assert_eq!(
            allowed,
            [
                "https://app.example.com/",
                "https://admin.example.com:8443/"
            ]
        );
        // An appended origin outside the rp id is refused like the first.
        for outside in ["https://admin.example.org", "https://notexample.com"] {
            let mut bad = config("example.com", "https://app.example.com");
            bad.origins.push(Url::parse(outside).unwrap());
            assert!(
                matches!(RelyingParty::new(&bad), Err(PasskeyError::Configuration(_))),
                "{outside}"
            );
        }
        let mut none = config("example.com", "https://app.example.com");
        none.origins.clear();
        assert!(matches!(
            RelyingParty::new(&none),
            Err(PasskeyError::Configuration(_))
        ));
    }

    #[test]
    fn registration_asks_for_a_discoverable_credential_and_writes_nothing_at_start() {
        let rp = RelyingParty::new(&config("localhost", "http://localhost:8080")).unwrap();
        let store = MemoryStore::default();
        let alice = UserId::parse("alice").unwrap();
        let mut rng = rand::thread_rng();
        let first = rp
            .start_registration(&store, &alice, Enrolment::NewAccount, "c", 0, &mut rng)
            .unwrap();
        let second = rp
            .start_registration(&store, &alice, Enrolment::NewAccount, "c", 0, &mut rng)
            .unwrap();
        let options = &first.options.public_key;
        assert_eq!(
            options
                .authenticator_selection
                .as_ref()
                .and_then(|s| s.resident_key),
            Some(ResidentKeyRequirement::Preferred)
        );
        assert_ne!(first.ceremony_id, second.ceremony_id);
        assert_eq!(first.expires_at, 100);
        // Starting wrote nothing: each start of an unused name holds its
        // own fresh handle in its ceremony, and the store has none.
        assert_ne!(options.user.id, second.options.public_key.user.id);
        assert_eq!(store.passkey_user_handle(&alice).unwrap(), None);
        // Once a registration has stored one, every start uses it.
        let mut record = record_of_test(&alice);
        record.user_handle = [9; 16];
        store
            .insert_passkey(&record, postern_store::AccountClaim::NewAccount)
            .unwrap();
        let third = rp
            .start_registration(&store, &alice, Enrolment::NewAccount, "c", 0, &mut rng)
            .unwrap();
        let id: &[u8] = third.options.public_key.user.id.as_ref();
        assert_eq!(id, &[9u8; 16][..]);
    }

    fn record_of_test(user: &UserId) -> PasskeyRecord {
        PasskeyRecord {
            credential_id: vec![1; 16],
            user: user.clone(),
            user_handle: [0; 16],
            credential: b"{}".to_vec(),
            counter: 0,
            backup_eligible: false,
            backup_state: false,
            created_at: 0,
            last_used_at: None,
            registered_by: [0; 16],
        }
    }

    #[test]
    fn login_ceremonies_are_modal_single_use_and_remember_the_user() {
        let rp = RelyingParty::new(&config("localhost", "http://localhost:8080")).unwrap();
        let store = MemoryStore::default();
        let alice = UserId::parse("alice").unwrap();
        let mut rng = rand::thread_rng();
        let started = rp
            .start_login(&store, Some(&alice), "c", 0, &mut rng)
            .unwrap();
        assert!(started.options.mediation.is_none());
        assert!(started.options.public_key.allow_credentials.is_empty());
        let pending = rp.take_login(&started.ceremony_id, 1).unwrap();
        assert_eq!(pending.user(), Some(&alice));
        assert_eq!(
            pending.challenge().as_slice(),
            started.options.public_key.challenge.as_slice()
        );
        assert!(matches!(
            rp.take_login(&started.ceremony_id, 1),
            Err(PasskeyError::Ceremony(CeremonyError::Unknown))
        ));
    }
}
