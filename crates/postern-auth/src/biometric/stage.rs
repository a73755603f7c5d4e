//! The biometric stage of the full-authentication pipeline: the enrolled
//! encrypted template against the presented encrypted probe, passing when
//! the score reaches the threshold.

use std::sync::Arc;

use super::batch::Batcher;
use super::cache::PreparedCache;
use super::eval::Evaluator;
use super::keyholder::KeyHolder;
use super::quantise::MAX_GENUINE_SCORE;
use crate::stage::{AuthRequest, Evidence, Stage, StageFailure};

/// How the stage evaluates.
#[derive(Clone)]
pub enum BiometricMode {
    /// One user per evaluation: lowest latency.
    Standard {
        evaluator: Arc<Evaluator>,
        key_holder: Arc<dyn KeyHolder>,
    },
    /// Shared batches of up to 32 users: highest throughput.
    Turbo(Arc<Batcher>),
}

/// Verifies the encrypted biometric match.
#[derive(Clone)]
pub struct BiometricStage {
    mode: BiometricMode,
    threshold: i64,
    /// Prepared templates of recent users; without it every request parses
    /// its stored template.
    prepared: Option<Arc<PreparedCache>>,
}

impl std::fmt::Debug for BiometricStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            BiometricMode::Standard { .. } => "standard",
            BiometricMode::Turbo(_) => "turbo",
        };
        f.debug_struct("BiometricStage")
            .field("mode", &mode)
            .field("threshold", &self.threshold)
            .field("prepared", &self.prepared)
            .finish()
    }
}

impl BiometricStage {
    /// `threshold` is in score units (see `quantise::threshold_for_cosine`).
    pub fn new(mode: BiometricMode, threshold: i64) -> Self {
        Self {
            mode,
            threshold,
            prepared: None,
        }
    }

    /// Keeps recent users' templates prepared in `cache` (shared with
    /// whoever must [`forget`](PreparedCache::forget) a revoked user).
    pub fn with_prepared_cache(mut self, cache: Arc<PreparedCache>) -> Self {
        self.prepared = Some(cache);
        self
    }

    fn evaluator(&self) -> &Evaluator {
        match &self.mode {
            BiometricMode::Standard { evaluator, .. } => evaluator,
            BiometricMode::Turbo(batcher) => batcher.evaluator(),
        }
    }
}

impl Stage for BiometricStage {
    fn name(&self) -> &'static str {
        "biometric"
    }

    fn run(&self, request: &AuthRequest<'_>, evidence: &mut Evidence) -> Result<(), StageFailure> {
        let template = request
            .record
            .biometric_template
            .as_deref()
            .ok_or(StageFailure::Missing)?;
        let probe = request
            .factors
            .biometric_probe
            .ok_or(StageFailure::Missing)?;
        let evaluator = self.evaluator();
        let probe = evaluator
            .decode_probe(probe)
            .map_err(|_| StageFailure::Malformed)?;
        // A stored template that does not parse fails closed (and is not
        // cached).
        // A cache that can hold nobody would prepare every template for one
        // use, which costs more than the plain product.
        let cache = self.prepared.as_ref().filter(|c| c.capacity() > 0);
        let (score, slot) = match cache {
            Some(cache) => {
                let (template, _) = cache
                    .get_or_prepare(evaluator, request.user, template)
                    .map_err(|_| StageFailure::Rejected)?;
                match &self.mode {
                    BiometricMode::Standard { key_holder, .. } => (
                        evaluator
                            .score_prepared(&template, probe, key_holder.as_ref())
                            .map_err(|_| StageFailure::Rejected)?,
                        None,
                    ),
                    BiometricMode::Turbo(batcher) => {
                        let outcome = batcher
                            .submit_prepared(&template, probe)
                            .map_err(|_| StageFailure::Rejected)?;
                        (outcome.score, Some(outcome.slot))
                    }
                }
            }
            None => {
                let template = evaluator
                    .decode_template(template)
                    .map_err(|_| StageFailure::Rejected)?;
                match &self.mode {
                    BiometricMode::Standard { key_holder, .. } => (
                        evaluator
                            .score(&template, &probe, key_holder.as_ref())
                            .map_err(|_| StageFailure::Rejected)?,
                        None,
                    ),
                    BiometricMode::Turbo(batcher) => {
                        let outcome = batcher
                            .submit(&template, &probe)
                            .map_err(|_| StageFailure::Rejected)?;
                        (outcome.score, Some(outcome.slot))
                    }
                }
            }
        };
        // A malformed probe (components outside [-31, 31], or not a quantised
        // unit vector) cannot be detected in the ciphertext; it decrypts to a
        // score spread over all of Z_t. Refusing scores no genuine pair can
        // reach cuts such a blind guess to about 0.6% (see docs/biometric.md).
        if score < self.threshold || score > MAX_GENUINE_SCORE {
            return Err(StageFailure::Rejected);
        }
        evidence.batch_slot = slot;
        // postern-core has no biometric claim kind; the verdict and the
        // batch slot are what the session context records.
        Ok(())
    }
}
