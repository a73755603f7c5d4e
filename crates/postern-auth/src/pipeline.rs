//! The full-authentication pipeline: required stages in order, each timed,
//! stopping at the first failure (later stages are reported as skipped).

use std::time::Instant;

use crate::stage::{AuthRequest, Evidence, Stage, StageFailure};

/// How one stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageOutcome {
    Passed,
    Failed(StageFailure),
    /// Not run because an earlier stage failed.
    Skipped,
}

impl StageOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StageOutcome::Passed => "passed",
            StageOutcome::Failed(f) => f.as_str(),
            StageOutcome::Skipped => "skipped",
        }
    }
}

/// One stage's outcome and wall time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageReport {
    pub stage: &'static str,
    pub outcome: StageOutcome,
    pub nanos: u64,
}

/// The pipeline's result: evidence, or the stage that refused and why.
#[derive(Debug)]
pub struct PipelineOutcome {
    pub reports: Vec<StageReport>,
    pub result: Result<Evidence, (&'static str, StageFailure)>,
}

/// The stages a deployment requires.
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.stages.iter().map(|s| s.name()))
            .finish()
    }
}

impl Pipeline {
    pub fn new(stages: Vec<Box<dyn Stage>>) -> Self {
        Self { stages }
    }

    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    pub fn run(&self, request: &AuthRequest<'_>) -> PipelineOutcome {
        let mut evidence = Evidence::default();
        let mut reports = Vec::with_capacity(self.stages.len());
        let mut failure = None;
        for stage in &self.stages {
            if failure.is_some() {
                reports.push(StageReport {
                    stage: stage.name(),
                    outcome: StageOutcome::Skipped,
                    nanos: 0,
                });
                continue;
            }
            let started = Instant::now();
            let result = stage.run(request, &mut evidence);
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let outcome = match result {
                Ok(()) => StageOutcome::Passed,
                Err(f) => {
                    failure = Some((stage.name(), f));
                    StageOutcome::Failed(f)
                }
            };
            reports.push(StageReport {
                stage: stage.name(),
                outcome,
                nanos,
            });
        }
        let result = match failure {
            Some(f) => Err(f),
            None if self.stages.is_empty() => Err(("pipeline", StageFailure::Missing)),
            None => Ok(evidence),
        };
        PipelineOutcome { reports, result }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityStage;
    use crate::stage::Factors;
    use postern_core::context::UserId;
    use postern_core::device::Fingerprint;
    use postern_core::identity::{IdentitySecret, Statement};
    use postern_store::UserRecord;

    struct Fixture {
        user: UserId,
        record: UserRecord,
        device: Fingerprint,
        challenge: [u8; 32],
        proof: [u8; 64],
    }

    fn fixture() -> Fixture {
        let mut rng = rand::thread_rng();
        let secret = IdentitySecret::generate(&mut rng);
        let device = Fingerprint::single("laptop").unwrap();
        let challenge = [7u8; 32];
        let proof = secret.prove(
            &Statement {
                challenge: &challenge,
                audience: "https://auth.example",
                user: "alice",
                device_hash: &device.hash(),
            },
            &mut rng,
        );
        Fixture {
            user: UserId::parse("alice").unwrap(),
            record: UserRecord {
                identity_key: *secret.public_key().as_bytes(),
                enrolled_at: 0,
                identity_revoked_at: None,
                biometric_template: None,
            },
            device,
            challenge,
            proof,
        }
    }

    fn request<'a>(f: &'a Fixture, proof: Option<&'a [u8]>) -> AuthRequest<'a> {
        AuthRequest {
            user: &f.user,
            record: &f.record,
            device: &f.device,
            challenge: &f.challenge,
            audience: "https://auth.example",
            factors: Factors {
                identity_proof: proof,
                passkey: None,
                biometric_probe: None,
            },
        }
    }

    struct AlwaysRefuses;
    impl Stage for AlwaysRefuses {
        fn name(&self) -> &'static str {
            "refuser"
        }
        fn run(&self, _: &AuthRequest<'_>, _: &mut Evidence) -> Result<(), StageFailure> {
            Err(StageFailure::Rejected)
        }
    }

    #[test]
    fn a_valid_proof_passes_and_yields_its_digest_and_credential() {
        let f = fixture();
        let out = Pipeline::new(vec![Box::new(IdentityStage::default())])
            .run(&request(&f, Some(&f.proof)));
        let evidence = out.result.unwrap();
        assert_ne!(evidence.proof_digest, [0; 32]);
        let pk =
            postern_core::identity::IdentityPublicKey::from_bytes(&f.record.identity_key).unwrap();
        assert_eq!(evidence.credential, pk.credential_id());
        assert_eq!(out.reports.len(), 1);
        assert_eq!(out.reports[0].outcome, StageOutcome::Passed);
    }

    #[test]
    fn each_identity_failure_has_its_own_outcome() {
        let f = fixture();
        let p = Pipeline::new(vec![Box::new(IdentityStage::default())]);
        assert_eq!(
            p.run(&request(&f, None)).result.unwrap_err(),
            ("identity", StageFailure::Missing)
        );
        assert_eq!(
            p.run(&request(&f, Some(&[1u8; 10]))).result.unwrap_err(),
            ("identity", StageFailure::Malformed)
        );
        let mut bad = f.proof;
        bad[0] ^= 1;
        assert_eq!(
            p.run(&request(&f, Some(&bad))).result.unwrap_err(),
            ("identity", StageFailure::Rejected)
        );
        let mut revoked = fixture();
        revoked.record.identity_revoked_at = Some(1);
        assert_eq!(
            p.run(&request(&revoked, Some(&revoked.proof)))
                .result
                .unwrap_err(),
            ("identity", StageFailure::CredentialRevoked)
        );
    }

    #[test]
    fn a_cached_stage_refuses_a_reused_proof_without_verifying_it_again() {
        let f = fixture();
        let cache = std::sync::Arc::new(crate::proof_cache::ProofCache::new(64));
        let p = Pipeline::new(vec![Box::new(IdentityStage::with_cache(cache.clone()))]);
        let first = p.run(&request(&f, Some(&f.proof))).result.unwrap();
        assert!(cache.contains(&first.proof_digest));
        assert_eq!(
            p.run(&request(&f, Some(&f.proof))).result.unwrap_err(),
            ("identity", StageFailure::Replayed)
        );
        // A wrong proof is not cached, so it cannot poison a later right one.
        let mut bad = f.proof;
        bad[0] ^= 1;
        assert!(p.run(&request(&f, Some(&bad))).result.is_err());
        assert_eq!(cache.len(), 1);
        // Revoking the key forgets its proofs.
        assert_eq!(cache.forget_credential(&f.user, &first.credential), 1);
        assert!(cache.is_empty());
    }

    #[test]
    fn stages_after_a_failure_are_reported_as_skipped() {
        let f = fixture();
        let p = Pipeline::new(vec![
            Box::new(AlwaysRefuses),
            Box::new(IdentityStage::default()),
        ]);
        let out = p.run(&request(&f, Some(&f.proof)));
        assert_eq!(out.result.unwrap_err(), ("refuser", StageFailure::Rejected));
        assert_eq!(
            out.reports[1],
            StageReport {
                stage: "identity",
                outcome: StageOutcome::Skipped,
                nanos: 0
            }
        );
        assert_eq!(p.stage_names(), vec!["refuser", "identity"]);
    }

    #[test]
    fn an_empty_pipeline_never_authenticates() {
        let f = fixture();
        assert!(Pipeline::new(vec![])
            .run(&request(&f, Some(&f.proof)))
            .result
            .is_err());
    }
}
