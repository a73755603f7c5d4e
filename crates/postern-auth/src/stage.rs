//! The contract of a full-authentication stage.

use postern_core::claims::Claim;
use postern_core::context::UserId;
use postern_core::device::Fingerprint;
use postern_store::{PasskeyRecord, UserRecord};

use crate::passkey::PasskeyFactor;

/// The factors a client presented. Each stage reads the one it verifies.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factors<'a> {
    /// A Schnorr identity proof (64 bytes).
    pub identity_proof: Option<&'a [u8]>,
    /// A WebAuthn assertion with the ceremony it answers.
    pub passkey: Option<PasskeyFactor<'a>>,
    /// An encrypted biometric probe (`biometric::wire`, 111,618 bytes).
    pub biometric_probe: Option<&'a [u8]>,
}

/// Everything a stage may look at. All of it is attacker-influenced except
/// `record` (the enrolled user) and `challenge` (issued by this server).
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    pub user: &'a UserId,
    pub record: &'a UserRecord,
    pub device: &'a Fingerprint,
    /// The one-time challenge, already consumed from the book.
    pub challenge: &'a [u8; 32],
    /// The deployment the client meant its proofs for, already checked to
    /// be one this server accepts (see `postern_core::identity::Statement`).
    pub audience: &'a str,
    pub factors: Factors<'a>,
}

/// What passed stages establish, accumulated across the pipeline and minted
/// into the session context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub proof_digest: [u8; 32],
    pub credential: [u8; 16],
    /// The identity public key the identity stage verified a proof with:
    /// the caller re-checks after minting that it is still the user's live
    /// key (a revocation or replacement may have raced the login).
    pub identity_key: Option<[u8; 32]>,
    pub batch_slot: Option<u8>,
    pub claims: Vec<Claim>,
    /// The passkey as updated by an accepted assertion (signature counter,
    /// backup flags); the caller persists it before minting.
    pub passkey: Option<PasskeyRecord>,
}

/// Why a stage refused. The wire code goes into responses and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StageFailure {
    #[error("the factor this stage verifies was not presented")]
    Missing,
    #[error("the presented factor is malformed")]
    Malformed,
    #[error("the presented factor does not verify")]
    Rejected,
    #[error("the enrolled credential for this factor was revoked")]
    CredentialRevoked,
    #[error("the presented factor was already used")]
    Replayed,
}

impl StageFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            StageFailure::Missing => "missing",
            StageFailure::Malformed => "malformed",
            StageFailure::Rejected => "rejected",
            StageFailure::CredentialRevoked => "credential_revoked",
            StageFailure::Replayed => "replayed",
        }
    }
}

/// A verifier in the full-authentication pipeline.
///
/// Security contract: `run` sees attacker-controlled factors; it must never
/// panic, must not log secret material, and must fail closed.
pub trait Stage: Send + Sync {
    /// Stable name used in responses and metric labels.
    fn name(&self) -> &'static str;
    fn run(&self, request: &AuthRequest<'_>, evidence: &mut Evidence) -> Result<(), StageFailure>;
}
