//! A circuit breaker that stops hammering a dead upstream.
//!
//! Closed: calls flow; `threshold` consecutive failures open it. Open: calls
//! are refused until `cooldown` has passed. Half-open: exactly one probe is
//! let through; its success closes the breaker, its failure re-opens it for
//! another `cooldown`. Pure: time is a parameter.
//!
//! Only the upstream's own failures count (transport errors, timeouts,
//! 5xx: `upstream::Blame::Upstream`). An answer that refuses a token is a
//! success; an answer Postern cannot use for one token is
//! [`Breaker::inconclusive`]: it proves the upstream answers, and says
//! nothing else about it, so one bad token cannot open the circuit for
//! every client.

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

    /// The upstream answered, but with an answer that says nothing about
    /// its health. A half-open probe answered: the upstream is reachable,
    /// so the breaker closes (else the probe's slot would stay taken and
    /// no call would ever pass again). A closed breaker's count of
    /// consecutive failures is left as it is.
    pub fn inconclusive(&mut self) {
        if self.state == BreakerState::HalfOpen {
            self.state = BreakerState::Closed { failures: 0 };
        }
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
    fn inconclusive_answers_neither_count_nor_reset_and_a_probe_that_gets_one_closes() {
        let mut b = Breaker::new(2, 100);
        for _ in 0..10 {
            b.inconclusive();
        }
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        b.failure(0);
        b.inconclusive();
        assert_eq!(b.state(), BreakerState::Closed { failures: 1 });
        b.failure(1);
        assert_eq!(b.state(), BreakerState::Open { until: 101 });
        b.inconclusive();
        assert_eq!(
            b.state(),
            BreakerState::Open { until: 101 },
            "no call was let through"
        );
        assert!(b.allow(101));
        b.inconclusive();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        assert!(b.allow(102));
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
