//! The identity-proof stage: verifies the client's Schnorr proof of its
//! enrolled identity secret, bound to this server's one-time challenge, the
//! user id and the device hash (see `postern_core::identity`).

use postern_core::identity::{
    proof_digest, verify_proof, IdentityPublicKey, ProofError, Statement,
};

use std::sync::Arc;

use crate::proof_cache::{CachedProof, ProofCache, Recorded};
use crate::stage::{AuthRequest, Evidence, Stage, StageFailure};

/// Verifies the identity proof; with a [`ProofCache`], refuses a reused
/// proof in one lookup and records each verified one.
#[derive(Debug, Clone, Default)]
pub struct IdentityStage {
    proofs: Option<Arc<ProofCache>>,
}

impl IdentityStage {
    pub fn with_cache(proofs: Arc<ProofCache>) -> Self {
        Self {
            proofs: Some(proofs),
        }
    }
}

impl Stage for IdentityStage {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn run(&self, request: &AuthRequest<'_>, evidence: &mut Evidence) -> Result<(), StageFailure> {
        if request.record.identity_revoked_at.is_some() {
            return Err(StageFailure::CredentialRevoked);
        }
        let proof = request
            .factors
            .identity_proof
            .ok_or(StageFailure::Missing)?;
        let public = IdentityPublicKey::from_bytes(&request.record.identity_key)
            .map_err(|_| StageFailure::Rejected)?;
        let device_hash = request.device.hash();
        let statement = Statement {
            challenge: request.challenge,
            audience: request.audience,
            user: request.user.as_str(),
            device_hash: &device_hash,
        };
        let digest = proof_digest(proof, &statement);
        if let Some(cache) = &self.proofs {
            if cache.contains(&digest) {
                return Err(StageFailure::Replayed);
            }
        }
        verify_proof(&public, &statement, proof).map_err(|e| match e {
            ProofError::Malformed => StageFailure::Malformed,
            ProofError::BadPublicKey | ProofError::Invalid => StageFailure::Rejected,
        })?;
        if let Some(cache) = &self.proofs {
            let entry = CachedProof {
                user: request.user.clone(),
                credential: public.credential_id(),
            };
            // Two concurrent presentations of one proof: only the first wins.
            if cache.record(digest, entry) == Recorded::Reused {
                return Err(StageFailure::Replayed);
            }
        }
        evidence.proof_digest = digest;
        evidence.credential = public.credential_id();
        evidence.identity_key = Some(*public.as_bytes());
        // The session authority adds the identity claim (valued by this
        // digest) when it mints the session.
        Ok(())
    }
}
