//! The session authority: mint, resume, revoke, restore.
//!
//! [`SessionAuthority`] ties a [`Keyring`], the [`HotTier`] and a durable
//! [`SessionStore`] together. Its resume path does no I/O and no signature
//! verification:
//!
//! hot-tier lookup → constant-time verifier check → expiry, window and idle
//! checks → constant-time device-binding check → risk and sensitivity → decision.
//!
//! A lookup miss does the same verifier comparison against a dummy hash
//! ([`HotTier::find`]), so that a well-formed token answers `unknown` in the
//! same time whether or not its selector exists. Minting and revoking write to the store first and
//! touch the hot tier only once the store has acknowledged, so a failed
//! write never leaves a half-made or half-revoked session.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use postern_core::claims::{Claim, ClaimKind};
use postern_core::context::{ContextError, SessionContext, SignError, UserId, Verdict, MAX_BATCH};
use postern_core::device::Fingerprint;
use postern_core::identity::IdentityPublicKey;
use postern_core::keyring::Keyring;
use postern_core::policy::{
    decide_resume, Decision, DeviceCheck, Reason, ResumeFacts, ResumePolicy, SessionTimes,
};
use postern_core::seal::{OpenError, SealFailed};
use postern_core::token::{SessionId, SessionToken};
use postern_core::{UnixNanos, SECOND};
use rand::{CryptoRng, RngCore};

use crate::hot::{HotSession, HotTier, Lookup, Slot};
use crate::passkey::{standings, PasskeyRecord, Standing};
use crate::store::{SessionRow, SessionStore, StoreError};

/// Authority settings beyond the resume policy.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    pub policy: ResumePolicy,
    /// Activity is written to the store at most once per this interval per
    /// session (ns). Resumes themselves never write.
    pub last_seen_interval: u64,
    /// How long expired and revoked rows are kept after expiry (ns), so a
    /// presented token answers `expired`/`revoked` rather than `unknown`.
    pub expired_retention: u64,
}

impl Default for AuthorityConfig {
    fn default() -> Self {
        Self {
            policy: ResumePolicy::default(),
            last_seen_interval: 60 * SECOND,
            expired_retention: 24 * 3_600 * SECOND,
        }
    }
}

/// What full authentication established, to be minted into a session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user: UserId,
    pub device: Fingerprint,
    pub verdict: Verdict,
    pub proof_digest: [u8; 32],
    /// The credential that authenticated the user: an identity key's
    /// `credential_id`, or a passkey's `PasskeyRecord::session_credential`;
    /// all zero for none. Revoking or replacing that credential revokes the
    /// session, and at restore a session whose credential is no longer its
    /// user's is revoked.
    pub credential: [u8; 16],
    pub batch_slot: Option<u8>,
    /// Claims verified by the stages, beyond the identity and device claims
    /// the authority adds itself.
    pub extra_claims: Vec<Claim>,
}

impl NewSession {
    /// A passed verdict with full confidence and no stage evidence; for
    /// callers that verified the user by other means (and for examples).
    pub fn verified(user: UserId, device: &Fingerprint) -> Self {
        Self {
            user,
            device: device.clone(),
            verdict: Verdict::new(true, 7),
            proof_digest: [0; 32],
            credential: [0; 16],
            batch_slot: None,
            extra_claims: Vec::new(),
        }
    }
}

/// A freshly minted session.
#[derive(Debug)]
pub struct Minted {
    /// The bearer token. Hand it to the client; never log it.
    pub token: SessionToken,
    pub session: Arc<HotSession>,
    /// Time spent signing (ML-DSA-65) and sealing (AES-256-GCM) the context.
    pub attestation_nanos: u64,
    /// Time spent making the session durable in the store.
    pub persist_nanos: u64,
}

/// Why minting failed. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("full authentication did not pass")]
    VerdictFailed,
    #[error("could not sign the session context")]
    Sign(#[from] SignError),
    #[error("could not seal the session context")]
    Seal(#[from] SealFailed),
    #[error("could not store the session")]
    Store(#[from] StoreError),
}

/// The answer to a resume.
#[derive(Debug, Clone)]
pub struct ResumeOutcome {
    pub decision: Decision,
    /// The session, when the token proved possession of it (even if the
    /// decision is not `Resumed`, e.g. `device_mismatch`).
    pub session: Option<Arc<HotSession>>,
}

impl ResumeOutcome {
    fn unknown() -> Self {
        Self {
            decision: Decision::FullAuth(Reason::Unknown),
            session: None,
        }
    }
}

/// What restoring the hot tier from the store found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    pub restored: usize,
    pub revoked: usize,
    pub expired_skipped: usize,
    pub tampered: usize,
    /// Live sessions revoked at restore because the credential that minted
    /// them is no longer their user's: an identity key revoked or replaced
    /// by a sweep that was cut short earlier.
    pub identity_revoked: usize,
}

/// Which matching sessions a revocation sweep writes to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    /// Only those still live in memory.
    LiveOnly,
    /// Also those already refused in memory (a retried sweep).
    AllMatching,
}

/// A session as listed to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub id: SessionId,
    pub auth_time: UnixNanos,
    pub expires_at: UnixNanos,
    pub resume_until: UnixNanos,
    pub last_seen: UnixNanos,
    pub revoked_at: Option<UnixNanos>,
}

impl SessionSummary {
    fn of(session: &HotSession) -> Self {
        let ctx = session.context();
        Self {
            id: ctx.session_id,
            auth_time: ctx.auth_time,
            expires_at: ctx.expires_at,
            resume_until: ctx.resume_until,
            last_seen: session.last_seen(),
            revoked_at: session.revoked_at(),
        }
    }
}

/// Mints, resumes, revokes and restores sessions.
pub struct SessionAuthority {
    keyring: Arc<Keyring>,
    hot: HotTier,
    store: Arc<dyn SessionStore>,
    config: AuthorityConfig,
}

impl std::fmt::Debug for SessionAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAuthority")
            .field("hot_sessions", &self.hot.len())
            .finish_non_exhaustive()
    }
}

/// The credential id of a user's identity key if it is live, and each of
/// the user's passkeys with its standing
/// ([`SessionAuthority::passkey_standings`]).
pub type PasskeyStandings = (Option<[u8; 16]>, Vec<(PasskeyRecord, Standing)>);

/// Why a stored row could not enter the hot tier.
#[derive(Debug, thiserror::Error)]
enum RowError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("row does not match its context")]
    Mismatch,
    #[error("the row's tag does not verify: its revocation or activity was edited at rest")]
    BadTag,
}

impl SessionAuthority {
    /// Builds the authority and restores every stored session into the hot
    /// tier: each record is unsealed and its signature verified once here.
    pub fn restore(
        keyring: Arc<Keyring>,
        store: Arc<dyn SessionStore>,
        config: AuthorityConfig,
        now: UnixNanos,
    ) -> Result<(Self, RestoreReport), StoreError> {
        let authority = Self {
            keyring,
            hot: HotTier::default(),
            store,
            config,
        };
        let mut report = RestoreReport::default();
        // Each user's credentials that live sessions were minted with.
        let mut users: HashMap<UserId, HashSet<[u8; 16]>> = HashMap::new();
        authority.store.for_each(&mut |row| {
            if row.expires_at.saturating_add(authority.config.expired_retention) < now {
                report.expired_skipped += 1;
                return;
            }
            match authority.verify_row(&row) {
                Ok(context) => {
                    if row.revoked_at.is_some() {
                        report.revoked += 1;
                    }
                    if row.revoked_at.is_none() && context.credential != [0; 16] {
                        users
                            .entry(row.user.clone())
                            .or_default()
                            .insert(context.credential);
                    }
                    let session = HotSession::new(context, row.last_seen, row.revoked_at);
                    authority.hot.insert(row.id, Slot::Live(Arc::new(session)));
                    report.restored += 1;
                }
                Err(error) => {
                    tracing::warn!(session = ?row.id, %error, "stored session failed verification; it will answer `tampered`");
                    authority.hot.insert(row.id, Slot::Tampered);
                    report.tampered += 1;
                }
            }
        })?;
        report.identity_revoked = authority.finish_identity_revocations(users, now)?;
        Ok((authority, report))
    }

    /// Revokes the live sessions whose credential is no longer one of
    /// their user's: minted with an identity key that was since revoked or
    /// replaced, when that sweep was cut short (a store error, a crash). It
    /// finishes here, at the latest on the next start. A user's credentials
    /// are the identity key (unless revoked) and the passkeys in good
    /// standing (so a suspended passkey's sessions go too); a session that
    /// records no credential is left alone.
    fn finish_identity_revocations(
        &self,
        users: HashMap<UserId, HashSet<[u8; 16]>>,
        now: UnixNanos,
    ) -> Result<usize, StoreError> {
        let mut revoked = 0;
        for (user, minted_with) in users {
            let current = match self.current_credentials(&user) {
                Ok(current) => current,
                Err(error) => {
                    // Fail as before this check existed: the user's sessions
                    // stay as they were stored; the next start tries again.
                    tracing::warn!(user = %user, %error, "cannot read the user's credentials; their sessions are restored unchecked");
                    continue;
                }
            };
            if minted_with.is_subset(&current) {
                continue;
            }
            // Restored sessions carry their rows' revocation, so only rows
            // still live in the store need a write (no rewrite each start).
            revoked += self.revoke_matching(&user, now, Rewrite::LiveOnly, |s| {
                let credential = s.context().credential;
                credential != [0; 16] && !current.contains(&credential)
            })?;
        }
        Ok(revoked)
    }

    /// Whether `credential` is one the user can authenticate with now.
    pub fn credential_is_current(
        &self,
        user: &UserId,
        credential: &[u8; 16],
    ) -> Result<bool, StoreError> {
        Ok(self.current_credentials(user)?.contains(credential))
    }

    /// The credentials a user can authenticate with now: the identity key
    /// unless it is revoked, and every passkey in good standing (see
    /// [`crate::passkey::standings`]: a passkey authorised by a credential
    /// that is no longer current is suspended).
    fn current_credentials(&self, user: &UserId) -> Result<HashSet<[u8; 16]>, StoreError> {
        let (identity, passkeys) = self.passkey_standings(user)?;
        let mut current: HashSet<[u8; 16]> = passkeys
            .iter()
            .filter(|(_, standing)| *standing == Standing::Active)
            .map(|(passkey, _)| passkey.session_credential())
            .collect();
        current.extend(identity);
        Ok(current)
    }

    /// The credential id of the user's identity key if it is live, and
    /// each of the user's passkeys with its standing.
    pub fn passkey_standings(&self, user: &UserId) -> Result<PasskeyStandings, StoreError> {
        let passkeys = self.store.list_passkeys(user)?;
        let identity = match self.store.get_user(user)? {
            Some(record) => match IdentityPublicKey::from_bytes(&record.identity_key) {
                Ok(key) if record.identity_revoked_at.is_none() => Some(key.credential_id()),
                Ok(_) => None,
                Err(_) => {
                    tracing::warn!(user = %user, "the identity key does not decode; sessions minted with it are revoked");
                    None
                }
            },
            None => None,
        };
        let standing = standings(identity, &passkeys);
        Ok((identity, passkeys.into_iter().zip(standing).collect()))
    }

    /// Revokes every session of `user` whose credential is no longer one
    /// the user can authenticate with: a revoked or replaced identity key,
    /// a removed passkey, and every passkey suspended because of them.
    /// Call it after any change to the user's credentials (after the store
    /// write). Returns how many were live; like [`Self::revoke_credential`]
    /// it writes already-refused sessions again, so a retry finishes a
    /// sweep a store error cut short.
    pub fn revoke_not_current(&self, user: &UserId, now: UnixNanos) -> Result<usize, StoreError> {
        let current = self.current_credentials(user)?;
        self.revoke_matching(user, now, Rewrite::AllMatching, |s| {
            let credential = s.context().credential;
            credential != [0; 16] && !current.contains(&credential)
        })
    }

    fn verify_row(&self, row: &SessionRow) -> Result<SessionContext, RowError> {
        if row.tampered {
            return Err(RowError::BadTag);
        }
        let plain = self.keyring.open(row.id.as_bytes(), &row.sealed)?;
        let context = SessionContext::decode_verified(&plain, |id| {
            self.keyring.generation(id).map(|g| g.verifying())
        })?;
        if context.session_id != row.id
            || context.user != row.user
            || context.expires_at != row.expires_at
        {
            return Err(RowError::Mismatch);
        }
        Ok(context)
    }

    pub fn config(&self) -> &AuthorityConfig {
        &self.config
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn hot(&self) -> &HotTier {
        &self.hot
    }

    /// Mints a session. Durable before it returns `Ok`; on error nothing
    /// was stored and the hot tier is unchanged.
    pub fn mint<R: RngCore + CryptoRng>(
        &self,
        new: NewSession,
        now: UnixNanos,
        rng: &mut R,
    ) -> Result<Minted, MintError> {
        let (token, context) = self.prepare(new, now, rng)?;
        let started = Instant::now();
        let signed = context.sign(self.keyring.current().signing(), rng)?;
        let sealed = self.keyring.seal(token.id().as_bytes(), &signed, rng)?;
        let attestation_nanos = elapsed_nanos(started);
        let row = row_of(&context, now, sealed);
        let started = Instant::now();
        self.store.insert(&row)?;
        let persist_nanos = elapsed_nanos(started);
        let session = Arc::new(HotSession::new(context, now, None));
        self.hot.insert(token.id(), Slot::Live(session.clone()));
        Ok(Minted {
            token,
            session,
            attestation_nanos,
            persist_nanos,
        })
    }

    /// Mints up to [`MAX_BATCH`] sessions decided at once (turbo mode) with
    /// ONE ML-DSA signature over their Merkle root (see
    /// `postern_core::context`) and ONE durable write. All or nothing; the
    /// reported times are per session (the batch's time divided by its size).
    pub fn mint_batch<R: RngCore + CryptoRng>(
        &self,
        news: Vec<NewSession>,
        now: UnixNanos,
        rng: &mut R,
    ) -> Result<Vec<Minted>, MintError> {
        if news.is_empty() {
            return Ok(Vec::new());
        }
        if news.len() > MAX_BATCH {
            return Err(MintError::Sign(SignError::Invalid(
                ContextError::InvalidBatch,
            )));
        }
        let prepared = news
            .into_iter()
            .map(|new| self.prepare(new, now, rng))
            .collect::<Result<Vec<_>, _>>()?;
        let count = prepared.len() as u64;
        let started = Instant::now();
        let contexts: Vec<SessionContext> = prepared.iter().map(|(_, c)| c.clone()).collect();
        let signed = SessionContext::sign_batch(&contexts, self.keyring.current().signing(), rng)?;
        let mut rows = Vec::with_capacity(prepared.len());
        for ((token, context), record) in prepared.iter().zip(&signed) {
            let sealed = self.keyring.seal(token.id().as_bytes(), record, rng)?;
            rows.push(row_of(context, now, sealed));
        }
        let attestation_nanos = elapsed_nanos(started) / count;
        let started = Instant::now();
        self.store.insert_many(&rows)?;
        let persist_nanos = elapsed_nanos(started) / count;
        Ok(prepared
            .into_iter()
            .map(|(token, context)| {
                let session = Arc::new(HotSession::new(context, now, None));
                self.hot.insert(token.id(), Slot::Live(session.clone()));
                Minted {
                    token,
                    session,
                    attestation_nanos,
                    persist_nanos,
                }
            })
            .collect())
    }

    /// A fresh token and the (unsigned) context it will name.
    fn prepare<R: RngCore + CryptoRng>(
        &self,
        new: NewSession,
        now: UnixNanos,
        rng: &mut R,
    ) -> Result<(SessionToken, SessionContext), MintError> {
        if !new.verdict.passed {
            return Err(MintError::VerdictFailed);
        }
        let policy = &self.config.policy;
        let generation = self.keyring.current();
        let token = SessionToken::generate(rng);
        let mut claims = vec![
            Claim {
                kind: ClaimKind::Identity,
                value_digest: new.proof_digest,
                verified_at: now,
                ttl_secs: secs(policy.ttl),
            },
            Claim {
                kind: ClaimKind::Device,
                value_digest: new.device.hash(),
                verified_at: now,
                ttl_secs: secs(policy.ttl),
            },
        ];
        claims.extend(
            new.extra_claims
                .iter()
                .copied()
                .take(postern_core::claims::MAX_CLAIMS - 2),
        );
        let context = SessionContext {
            session_id: token.id(),
            verifier_hash: token.verifier_hash(),
            user: new.user,
            verdict: new.verdict,
            auth_time: now,
            expires_at: now.saturating_add(policy.ttl),
            resume_until: now.saturating_add(policy.resume_window.min(policy.ttl)),
            device_mac: generation.binder().bind(&new.device),
            batch_slot: new.batch_slot,
            proof_digest: new.proof_digest,
            credential: new.credential,
            claims,
            key_id: generation.id(),
        };
        Ok((token, context))
    }

    /// Decides a resume. No I/O; records activity in memory on success.
    pub fn resume(
        &self,
        token: &SessionToken,
        device: Option<&Fingerprint>,
        operation: Option<&str>,
        risk_score: Option<f32>,
        now: UnixNanos,
    ) -> ResumeOutcome {
        let session = match self.hot.find(&token.id(), &token.verifier_hash()) {
            Lookup::Found(session) => session,
            Lookup::Tampered => {
                return ResumeOutcome {
                    decision: Decision::FullAuth(Reason::Tampered),
                    session: None,
                };
            }
            Lookup::Unknown => return ResumeOutcome::unknown(),
        };
        self.resume_session(session, device, operation, risk_score, now)
    }

    /// Decides a resume for a session the caller has already authenticated
    /// by other means (a verified JWT naming its id). No I/O.
    pub fn resume_by_id(
        &self,
        id: &SessionId,
        device: Option<&Fingerprint>,
        operation: Option<&str>,
        risk_score: Option<f32>,
        now: UnixNanos,
    ) -> ResumeOutcome {
        match self.hot.get(id) {
            Some(Slot::Live(session)) => {
                self.resume_session(session, device, operation, risk_score, now)
            }
            Some(Slot::Tampered) => ResumeOutcome {
                decision: Decision::FullAuth(Reason::Tampered),
                session: None,
            },
            None => ResumeOutcome::unknown(),
        }
    }

    fn resume_session(
        &self,
        session: Arc<HotSession>,
        device: Option<&Fingerprint>,
        operation: Option<&str>,
        risk_score: Option<f32>,
        now: UnixNanos,
    ) -> ResumeOutcome {
        let ctx = session.context();
        let device_check = match (device, self.keyring.generation(ctx.key_id)) {
            (None, _) => DeviceCheck::NotPresented,
            // The generation was pruned: every session it made has expired,
            // which the policy reports before the device.
            (Some(_), None) => DeviceCheck::Mismatch,
            (Some(fp), Some(generation)) => {
                if generation.binder().verify(fp, &ctx.device_mac) {
                    DeviceCheck::Match
                } else {
                    DeviceCheck::Mismatch
                }
            }
        };
        let times = SessionTimes {
            auth_time: ctx.auth_time,
            expires_at: ctx.expires_at,
            resume_until: ctx.resume_until,
            last_seen: session.last_seen(),
        };
        let facts = ResumeFacts {
            device: device_check,
            operation,
            risk_score,
            revoked: session.revoked_at().is_some(),
        };
        let decision = decide_resume(&times, &facts, now, &self.config.policy);
        if decision == Decision::Resumed {
            session.touch(now);
        }
        ResumeOutcome {
            decision,
            session: Some(session),
        }
    }

    /// The session a token proves possession of, whatever its state
    /// (revoked, expired, ...). A miss costs the same as a wrong verifier.
    pub fn authenticate(&self, token: &SessionToken) -> Option<Arc<HotSession>> {
        match self.hot.find(&token.id(), &token.verifier_hash()) {
            Lookup::Found(session) => Some(session),
            Lookup::Tampered | Lookup::Unknown => None,
        }
    }

    /// Revokes a session durably, then in memory. `Ok(false)` if unknown.
    pub fn revoke(&self, id: &SessionId, now: UnixNanos) -> Result<bool, StoreError> {
        let found = self.store.revoke(id, now)?;
        if let Some(Slot::Live(session)) = self.hot.get(id) {
            session.mark_revoked(now);
        }
        Ok(found)
    }

    /// Revokes every session of `user` ("log out everywhere"); returns how
    /// many were live.
    pub fn revoke_user(&self, user: &UserId, now: UnixNanos) -> Result<usize, StoreError> {
        self.revoke_matching(user, now, Rewrite::LiveOnly, |_| true)
    }

    /// Revokes every session of `user` made with the credential `credential`
    /// (an identity key): used when that key is revoked. Returns how many
    /// were live. Sessions already refused in memory are written to the
    /// store again, so calling it again finishes a sweep that a store error
    /// cut short.
    pub fn revoke_credential(
        &self,
        user: &UserId,
        credential: &[u8; 16],
        now: UnixNanos,
    ) -> Result<usize, StoreError> {
        self.revoke_matching(user, now, Rewrite::AllMatching, |s| {
            &s.context().credential == credential
        })
    }

    fn revoke_matching(
        &self,
        user: &UserId,
        now: UnixNanos,
        rewrite: Rewrite,
        keep: impl Fn(&HotSession) -> bool,
    ) -> Result<usize, StoreError> {
        // Every match is refused in memory first, so resumes stop at once
        // even if a store write below fails; the store writes are then
        // attempted for all of them, and the first failure is reported.
        let matching: Vec<(SessionId, Arc<HotSession>)> = self
            .store
            .list_user(user)?
            .into_iter()
            .filter_map(|id| match self.hot.get(&id) {
                Some(Slot::Live(session))
                    if keep(&session)
                        && (rewrite == Rewrite::AllMatching || session.revoked_at().is_none()) =>
                {
                    Some((id, session))
                }
                _ => None,
            })
            .collect();
        let mut newly = 0;
        for (_, session) in &matching {
            if session.revoked_at().is_none() {
                newly += 1;
            }
            session.mark_revoked(now);
        }
        let mut failure = None;
        for (id, _) in &matching {
            if let Err(e) = self.store.revoke(id, now) {
                failure.get_or_insert(e);
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(newly),
        }
    }

    /// A user's sessions, newest first.
    pub fn list_user(&self, user: &UserId) -> Result<Vec<SessionSummary>, StoreError> {
        let mut out: Vec<SessionSummary> = self
            .store
            .list_user(user)?
            .into_iter()
            .filter_map(|id| match self.hot.get(&id) {
                Some(Slot::Live(s)) => Some(SessionSummary::of(&s)),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| b.auth_time.cmp(&a.auth_time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The session `id` if it belongs to `user`.
    pub fn session_of(&self, user: &UserId, id: &SessionId) -> Option<Arc<HotSession>> {
        match self.hot.get(id) {
            Some(Slot::Live(s)) if &s.context().user == user => Some(s),
            _ => None,
        }
    }

    /// Persists activity that moved at least the configured interval.
    pub fn flush_activity(&self) -> Result<usize, StoreError> {
        let updates = self
            .hot
            .unpersisted_activity(self.config.last_seen_interval);
        self.store.touch_many(&updates)?;
        Ok(updates.len())
    }

    /// Drops sessions whose retention after expiry has passed, from the
    /// store and the hot tier. Returns how many rows the store dropped.
    pub fn sweep(&self, now: UnixNanos) -> Result<usize, StoreError> {
        let before = now.saturating_sub(self.config.expired_retention);
        let removed = self.store.remove_expired(before)?;
        self.hot.remove_expired(before);
        Ok(removed)
    }
}

fn row_of(context: &SessionContext, now: UnixNanos, sealed: Vec<u8>) -> SessionRow {
    SessionRow {
        id: context.session_id,
        user: context.user.clone(),
        expires_at: context.expires_at,
        last_seen: now,
        revoked_at: None,
        sealed,
        tampered: false,
    }
}

fn elapsed_nanos(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn secs(ns: u64) -> u32 {
    u32::try_from(ns / SECOND).unwrap_or(u32::MAX)
}
