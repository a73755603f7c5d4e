//! The identity-proof stage: verifies the client's Schnorr proof of its
//! enrolled identity secret, bound to this server's one-time challenge, the
//! user id and the device hash (see `postern_core::identity`).

use postern_core::identity::{
    proof_digest, verify_proof, IdentityPublicKey, ProofError, Statement,
};

use crate::stage::{AuthRequest, Evidence, Stage, StageFailure};

/// Verifies the identity proof.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentityStage;

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
            user: request.user.as_str(),
            device_hash: &device_hash,
        };
        verify_proof(&public, &statement, proof).map_err(|e| match e {
            ProofError::Malformed => StageFailure::Malformed,
            ProofError::BadPublicKey | ProofError::Invalid => StageFailure::Rejected,
        })?;
        let digest = proof_digest(proof, &statement);
        evidence.proof_digest = digest;
        evidence.credential = public.credential_id();
        // The session authority adds the identity claim (valued by this
        // digest) when it mints the session.
        Ok(())
    }
}
