//! A circuit breaker that stops hammering a dead upstream.
//!
//! Closed: calls flow; `threshold` consecutive failures open it. Open: calls
//! are refused until `cooldown` has passed. Half-open: exactly one probe is
//! let through; its success closes the breaker, its failure re-opens it for
//! another `cooldown`. Pure: time is a parameter.

/// Breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed { failures: u32 },
    Open { until: u64 },
    HalfOpen,
}

/// A circuit breaker over `now` in nanoseconds.
#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    threshold: u32,
    cooldown: u64,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: u64) -> Self {
        Self {
            state: BreakerState::Closed { failures: 0 },
            threshold: threshold.max(1),
            cooldown,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a call may go upstream now. In half-open state only the
    /// first caller gets through (the probe).
    pub fn allow(&mut self, now: u64) -> bool {
        match self.state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                true
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => false,
        }
    }

    pub fn success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    pub fn failure(&mut self, now: u64) {
        self.state = match self.state {
            BreakerState::Closed { failures } if failures + 1 < self.threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            _ => BreakerState::Open {
                until: now.saturating_add(self.cooldown),
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_cools_down_probes_and_closes() {
        let mut b = Breaker::new(3, 100);
        assert!(b.allow(0));
        b.failure(0);
        b.failure(1);
        assert_eq!(b.state(), BreakerState::Closed { failures: 2 });
        b.failure(2);
        assert_eq!(b.state(), BreakerState::Open { until: 102 });
        assert!(!b.allow(50));
        assert!(b.allow(102), "cool-down over: one probe");
        assert!(!b.allow(103), "only one probe at a time");
        b.failure(110);
        assert_eq!(b.state(), BreakerState::Open { until: 210 });
        assert!(b.allow(210));
        b.success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        assert!(b.allow(211));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut b = Breaker::new(2, 100);
        b.failure(0);
        b.success();
        b.failure(1);
        assert_eq!(b.state(), BreakerState::Closed { failures: 1 });
    }
}
