//! `turbo` mode: concurrent callers share one evaluation.
//!
//! A caller joins the open batch and gets a lane (its template's home lane
//! if that is free, so its product needs no shift; else the lowest free
//! one; see [`choose_lane`]), computes its own
//! product in its own thread (the per-user work runs in parallel), adds it
//! to the batch, and waits. A batch closes when its lanes are full or its
//! deadline (counted from its first caller) passes; the caller that adds
//! the last product of a closed batch seals it, asks the key holder for the
//! scores and wakes the others, each of which takes its own lane's score.
//! No thread belongs to the batcher, so dropping it leaves nothing running
//! and nothing to join; a batch in flight is owned by its callers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::eval::{Evaluator, PreparedTemplate, Product};
use super::keyholder::KeyHolder;
use super::params::LANES;
use super::wire::EncryptedVector;
use super::BiometricError;

/// How a batch fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Lanes per batch, 1 to 32.
    pub max_lanes: usize,
    /// Longest a batch waits for more callers after its first.
    pub deadline: Duration,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self {
            max_lanes: LANES,
            deadline: Duration::from_millis(3),
        }
    }
}

/// One caller's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub score: i64,
    /// The caller's lane in its batch (the session's batch slot).
    pub slot: u8,
    /// How many callers the batch held.
    pub batch_size: u8,
}

#[derive(Default)]
struct BatchState {
    taken: usize,
    /// Bit j: lane j is taken.
    used: u32,
    added: usize,
    sealed: bool,
    finishing: bool,
    product: Option<Product>,
    result: Option<Result<Vec<i64>, BiometricError>>,
}

struct Batch {
    opened: Instant,
    state: Mutex<BatchState>,
    changed: Condvar,
}

/// Packs concurrent `turbo` evaluations into shared batches.
pub struct Batcher {
    evaluator: Arc<Evaluator>,
    key_holder: Arc<dyn KeyHolder>,
    config: BatcherConfig,
    open: Mutex<Option<Arc<Batch>>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// Refuses a lane count outside 1..=32.
    pub fn new(
        evaluator: Arc<Evaluator>,
        key_holder: Arc<dyn KeyHolder>,
        config: BatcherConfig,
    ) -> Result<Self, BiometricError> {
        if config.max_lanes == 0 || config.max_lanes > LANES {
            return Err(BiometricError::Lane(config.max_lanes));
        }
        Ok(Self {
            evaluator,
            key_holder,
            config,
            open: Mutex::new(None),
        })
    }

    pub fn config(&self) -> BatcherConfig {
        self.config
    }

    pub fn evaluator(&self) -> &Arc<Evaluator> {
        &self.evaluator
    }

    /// Scores `probe` against `template` in a shared batch; blocks until the
    /// batch is decided (at most about the deadline plus one evaluation).
    pub fn submit(
        &self,
        template: &EncryptedVector,
        probe: &EncryptedVector,
    ) -> Result<BatchOutcome, BiometricError> {
        self.submit_with(None, |lane| self.evaluator.product(template, probe, lane))
    }

    /// [`submit`](Self::submit) with a prepared template.
    pub fn submit_prepared(
        &self,
        template: &PreparedTemplate,
        probe: EncryptedVector,
    ) -> Result<BatchOutcome, BiometricError> {
        self.submit_with(Some(template.home()), |lane| {
            self.evaluator.product_prepared(template, probe, lane)
        })
    }

    fn submit_with(
        &self,
        preferred: Option<usize>,
        product: impl FnOnce(usize) -> Result<Product, BiometricError>,
    ) -> Result<BatchOutcome, BiometricError> {
        let (batch, lane) = self.join(preferred);
        let product = product(lane);
        let mut state = batch.state.lock();
        state.added += 1;
        // A failed product leaves its lane empty (that coefficient decrypts
        // to zero) and only this caller sees the error.
        let own_error = match product {
            Ok(p) => {
                match &mut state.product {
                    Some(acc) => acc.add(&p),
                    None => state.product = Some(p),
                }
                None
            }
            Err(e) => Some(e),
        };
        loop {
            if let Some(result) = &state.result {
                if let Some(e) = own_error {
                    return Err(e);
                }
                let scores = result.as_ref().map_err(Clone::clone)?;
                let score = *scores.get(lane).ok_or(BiometricError::Lane(lane))?;
                // Both at most 32.
                return Ok(BatchOutcome {
                    score,
                    slot: lane as u8,
                    batch_size: state.taken as u8,
                });
            }
            if state.sealed && state.added == state.taken && !state.finishing {
                state.finishing = true;
                // Lanes 0 to the highest taken one; a gap decrypts to 0.
                let lanes = (u32::BITS - state.used.leading_zeros()) as usize;
                let result = match state.product.take() {
                    Some(product) => {
                        MutexGuard::unlocked(&mut state, || self.finish(product, lanes))
                    }
                    None => Err(BiometricError::KeyHolder("empty batch")),
                };
                state.result = Some(result);
                batch.changed.notify_all();
                continue;
            }
            if state.sealed {
                batch.changed.wait(&mut state);
            } else {
                let deadline = batch.opened + self.config.deadline;
                if Instant::now() >= deadline {
                    state.sealed = true;
                } else {
                    batch.changed.wait_until(&mut state, deadline);
                }
            }
        }
    }

    /// The open batch and a lane in it, opening a batch if none has room.
    fn join(&self, preferred: Option<usize>) -> (Arc<Batch>, usize) {
        let mut open = self.open.lock();
        if let Some(batch) = open.as_ref() {
            let mut state = batch.state.lock();
            if !state.sealed && Instant::now() < batch.opened + self.config.deadline {
                // An unsealed batch has fewer than max_lanes callers, so a
                // lane is free.
                if let Some(lane) = choose_lane(state.used, preferred, self.config.max_lanes) {
                    state.used |= 1 << lane;
                    state.taken += 1;
                    if state.taken == self.config.max_lanes {
                        state.sealed = true;
                    }
                    return (batch.clone(), lane);
                }
            }
            state.sealed = true;
        }
        let lane = choose_lane(0, preferred, self.config.max_lanes).unwrap_or(0);
        let batch = Arc::new(Batch {
            opened: Instant::now(),
            state: Mutex::new(BatchState {
                taken: 1,
                used: 1 << lane,
                sealed: self.config.max_lanes == 1,
                ..BatchState::default()
            }),
            changed: Condvar::new(),
        });
        *open = Some(batch.clone());
        (batch, lane)
    }

    fn finish(&self, product: Product, lanes: usize) -> Result<Vec<i64>, BiometricError> {
        let sealed = self.evaluator.seal(product, lanes)?;
        self.key_holder.decrypt_scores(&sealed)
    }
}

/// The lane a caller gets when the lanes in `used` (bit j: lane j) are
/// taken: `preferred` (its template's home lane) if it is below `max_lanes`
/// and free, else the lowest free lane below `max_lanes`; `None` when all
/// are taken.
pub fn choose_lane(used: u32, preferred: Option<usize>, max_lanes: usize) -> Option<usize> {
    let max_lanes = max_lanes.min(LANES);
    let free = |lane: usize| lane < max_lanes && used & (1 << lane) == 0;
    match preferred {
        Some(lane) if free(lane) => Some(lane),
        _ => (0..max_lanes).find(|&lane| free(lane)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_gets_its_home_lane_when_free_else_the_lowest_free_one() {
        assert_eq!(choose_lane(0, None, 32), Some(0));
        assert_eq!(choose_lane(0, Some(9), 32), Some(9));
        assert_eq!(choose_lane(1 << 9, Some(9), 32), Some(0));
        assert_eq!(choose_lane(0b111, Some(1), 32), Some(3));
        // A home beyond the configured lanes is ignored.
        assert_eq!(choose_lane(0, Some(20), 8), Some(0));
        assert_eq!(choose_lane(0xff, Some(3), 8), None);
        assert_eq!(choose_lane(u32::MAX, None, 32), None);
        assert_eq!(choose_lane(u32::MAX >> 1, Some(0), 32), Some(31));
    }
}
