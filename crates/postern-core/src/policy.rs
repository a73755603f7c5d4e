//! The resume decision, as one pure function.
//!
//! [`decide_resume`] takes what the session established (its times), what
//! the request presents (device check, operation, risk, revocation) and `now`,
//! and returns a [`Decision`] that always carries a machine-readable
//! [`Reason`] when it is not `Resumed`. The checks run in a fixed order, so the
//! reason is the most fundamental one that applies:
//!
//! 1. revoked — a revoked session is never resumed, whatever else holds;
//! 2. expired — `now >= expires_at` (the absolute lifetime, `ttl`);
//! 3. resume_window_elapsed — `now >= resume_until` (`resume_window` after the
//!    full authentication, the seed's "resume without re-auth" window);
//! 4. idle_timeout — `now >= last_seen + idle_timeout` (OWASP's idle timeout;
//!    every resume counts as activity);
//! 5. device_mismatch — device binding is required and the presented
//!    fingerprint's MAC differs from the bound one, or none was presented;
//! 6. risk_above_threshold — the caller's risk score exceeds the threshold;
//! 7. sensitive_operation — the operation is listed as sensitive: `step_up`.
//!
//! Defaults follow the OWASP Session Management Cheat Sheet: an idle timeout
//! of 30 minutes and an absolute timeout of 8 hours for a typical
//! application; the resume window (1 h) mirrors the seed's default.

use crate::{UnixNanos, SECOND};

/// Why a session could not simply be resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Expired,
    ResumeWindowElapsed,
    IdleTimeout,
    DeviceMismatch,
    LocationJump,
    RiskAboveThreshold,
    SensitiveOperation,
    Revoked,
    Tampered,
    Unknown,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::Expired,
        Reason::ResumeWindowElapsed,
        Reason::IdleTimeout,
        Reason::DeviceMismatch,
        Reason::LocationJump,
        Reason::RiskAboveThreshold,
        Reason::SensitiveOperation,
        Reason::Revoked,
        Reason::Tampered,
        Reason::Unknown,
    ];

    /// The wire name used in HTTP responses and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Expired => "expired",
            Reason::ResumeWindowElapsed => "resume_window_elapsed",
            Reason::IdleTimeout => "idle_timeout",
            Reason::DeviceMismatch => "device_mismatch",
            Reason::LocationJump => "location_jump",
            Reason::RiskAboveThreshold => "risk_above_threshold",
            Reason::SensitiveOperation => "sensitive_operation",
            Reason::Revoked => "revoked",
            Reason::Tampered => "tampered",
            Reason::Unknown => "unknown",
        }
    }
}

/// The answer to a resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The session continues; no further proof needed.
    Resumed,
    /// The session is valid, but this operation needs a fresh factor.
    StepUp(Reason),
    /// The session cannot be used; authenticate fully again.
    FullAuth(Reason),
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Resumed => "resumed",
            Decision::StepUp(_) => "step_up",
            Decision::FullAuth(_) => "full_auth_required",
        }
    }

    pub fn reason(self) -> Option<Reason> {
        match self {
            Decision::Resumed => None,
            Decision::StepUp(r) | Decision::FullAuth(r) => Some(r),
        }
    }
}

/// Whether resumes must present the device the session is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceBinding {
    /// A resume without a matching fingerprint is `device_mismatch`.
    Required,
    /// Fingerprints are not checked.
    Off,
}

/// Resume configuration. Durations are in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePolicy {
    /// Absolute session lifetime from full authentication.
    pub ttl: u64,
    /// How long after full authentication a session may be resumed.
    pub resume_window: u64,
    /// Longest gap between two resumes.
    pub idle_timeout: u64,
    pub device_binding: DeviceBinding,
    /// Risk scores (0.0-1.0) strictly above this require full authentication.
    pub risk_threshold: f32,
    /// Operations that need a step-up even on a valid session.
    pub sensitive_operations: Vec<String>,
}

impl Default for ResumePolicy {
    fn default() -> Self {
        Self {
            ttl: 8 * 3_600 * SECOND,
            resume_window: 3_600 * SECOND,
            idle_timeout: 30 * 60 * SECOND,
            device_binding: DeviceBinding::Required,
            risk_threshold: 0.7,
            sensitive_operations: vec!["transfer".into(), "delete".into(), "export".into()],
        }
    }
}

/// Why a policy is inconsistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("ttl must be positive")]
    ZeroTtl,
    #[error("resume_window must be positive and no longer than ttl")]
    BadResumeWindow,
    #[error("idle_timeout must be positive")]
    ZeroIdleTimeout,
    #[error("risk_threshold must be between 0 and 1")]
    BadRiskThreshold,
}

impl ResumePolicy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.ttl == 0 {
            return Err(PolicyError::ZeroTtl);
        }
        if self.resume_window == 0 || self.resume_window > self.ttl {
            return Err(PolicyError::BadResumeWindow);
        }
        if self.idle_timeout == 0 {
            return Err(PolicyError::ZeroIdleTimeout);
        }
        if !(0.0..=1.0).contains(&self.risk_threshold) {
            return Err(PolicyError::BadRiskThreshold);
        }
        Ok(())
    }

    pub fn is_sensitive(&self, operation: &str) -> bool {
        self.sensitive_operations.iter().any(|op| op == operation)
    }
}

/// The times that bound a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimes {
    pub auth_time: UnixNanos,
    pub expires_at: UnixNanos,
    pub resume_until: UnixNanos,
    /// The last successful resume (or the authentication itself).
    pub last_seen: UnixNanos,
}

/// The outcome of the constant-time device check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCheck {
    Match,
    Mismatch,
    NotPresented,
}

/// What the request presents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResumeFacts<'a> {
    pub device: DeviceCheck,
    pub operation: Option<&'a str>,
    /// A risk score from 0.0 to 1.0, if the caller computed one.
    pub risk_score: Option<f32>,
    pub revoked: bool,
}

/// Decides a resume. Pure: same inputs, same answer.
pub fn decide_resume(
    times: &SessionTimes,
    facts: &ResumeFacts<'_>,
    now: UnixNanos,
    policy: &ResumePolicy,
) -> Decision {
    if facts.revoked {
        return Decision::FullAuth(Reason::Revoked);
    }
    if now >= times.expires_at {
        return Decision::FullAuth(Reason::Expired);
    }
    if now >= times.resume_until {
        return Decision::FullAuth(Reason::ResumeWindowElapsed);
    }
    if now >= times.last_seen.saturating_add(policy.idle_timeout) {
        return Decision::FullAuth(Reason::IdleTimeout);
    }
    if policy.device_binding == DeviceBinding::Required && facts.device != DeviceCheck::Match {
        return Decision::FullAuth(Reason::DeviceMismatch);
    }
    // A NaN score is treated as maximal risk: it fails closed.
    if let Some(score) = facts.risk_score {
        if score.is_nan() || score > policy.risk_threshold {
            return Decision::FullAuth(Reason::RiskAboveThreshold);
        }
    }
    if facts.operation.is_some_and(|op| policy.is_sensitive(op)) {
        return Decision::StepUp(Reason::SensitiveOperation);
    }
    Decision::Resumed
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60 * SECOND;

    fn times() -> SessionTimes {
        SessionTimes {
            auth_time: 0,
            expires_at: 480 * MIN,
            resume_until: 60 * MIN,
            last_seen: 0,
        }
    }

    fn ok_facts() -> ResumeFacts<'static> {
        ResumeFacts {
            device: DeviceCheck::Match,
            operation: None,
            risk_score: None,
            revoked: false,
        }
    }

    #[test]
    fn every_reason_comes_back_where_it_applies() {
        let p = ResumePolicy::default();
        let t = times();
        let f = ok_facts();
        let cases: Vec<(&str, SessionTimes, ResumeFacts, u64, Decision)> = vec![
            ("fresh session resumes", t, f, MIN, Decision::Resumed),
            (
                "revoked wins over everything",
                t,
                ResumeFacts {
                    revoked: true,
                    device: DeviceCheck::Mismatch,
                    ..f
                },
                999 * MIN,
                Decision::FullAuth(Reason::Revoked),
            ),
            (
                "expiry is exclusive",
                SessionTimes {
                    resume_until: 480 * MIN,
                    last_seen: 479 * MIN,
                    ..t
                },
                f,
                480 * MIN,
                Decision::FullAuth(Reason::Expired),
            ),
            (
                "one ns before expiry still resumes",
                SessionTimes {
                    resume_until: 480 * MIN,
                    last_seen: 479 * MIN,
                    ..t
                },
                f,
                480 * MIN - 1,
                Decision::Resumed,
            ),
            (
                "resume window elapses",
                SessionTimes {
                    last_seen: 59 * MIN,
                    ..t
                },
                f,
                60 * MIN,
                Decision::FullAuth(Reason::ResumeWindowElapsed),
            ),
            (
                "idle timeout",
                t,
                f,
                30 * MIN,
                Decision::FullAuth(Reason::IdleTimeout),
            ),
            (
                "activity defers idle timeout",
                SessionTimes {
                    last_seen: 20 * MIN,
                    ..t
                },
                f,
                30 * MIN,
                Decision::Resumed,
            ),
            (
                "device mismatch",
                t,
                ResumeFacts {
                    device: DeviceCheck::Mismatch,
                    ..f
                },
                MIN,
                Decision::FullAuth(Reason::DeviceMismatch),
            ),
            (
                "no device presented",
                t,
                ResumeFacts {
                    device: DeviceCheck::NotPresented,
                    ..f
                },
                MIN,
                Decision::FullAuth(Reason::DeviceMismatch),
            ),
            (
                "risk above threshold",
                t,
                ResumeFacts {
                    risk_score: Some(0.71),
                    ..f
                },
                MIN,
                Decision::FullAuth(Reason::RiskAboveThreshold),
            ),
            (
                "risk at threshold passes",
                t,
                ResumeFacts {
                    risk_score: Some(0.7),
                    ..f
                },
                MIN,
                Decision::Resumed,
            ),
            (
                "NaN risk fails closed",
                t,
                ResumeFacts {
                    risk_score: Some(f32::NAN),
                    ..f
                },
                MIN,
                Decision::FullAuth(Reason::RiskAboveThreshold),
            ),
            (
                "sensitive operation steps up",
                t,
                ResumeFacts {
                    operation: Some("transfer"),
                    ..f
                },
                MIN,
                Decision::StepUp(Reason::SensitiveOperation),
            ),
            (
                "ordinary operation resumes",
                t,
                ResumeFacts {
                    operation: Some("read"),
                    ..f
                },
                MIN,
                Decision::Resumed,
            ),
            (
                "device beats sensitivity",
                t,
                ResumeFacts {
                    operation: Some("delete"),
                    device: DeviceCheck::Mismatch,
                    ..f
                },
                MIN,
                Decision::FullAuth(Reason::DeviceMismatch),
            ),
        ];
        for (name, t, f, now, expected) in cases {
            assert_eq!(decide_resume(&t, &f, now, &p), expected, "{name}");
        }
    }

    #[test]
    fn device_binding_off_ignores_the_fingerprint() {
        let p = ResumePolicy {
            device_binding: DeviceBinding::Off,
            ..ResumePolicy::default()
        };
        let f = ResumeFacts {
            device: DeviceCheck::NotPresented,
            ..ok_facts()
        };
        assert_eq!(decide_resume(&times(), &f, MIN, &p), Decision::Resumed);
    }

    #[test]
    fn decisions_and_reasons_have_stable_wire_names() {
        assert_eq!(Decision::Resumed.as_str(), "resumed");
        assert_eq!(
            Decision::StepUp(Reason::SensitiveOperation).as_str(),
            "step_up"
        );
        assert_eq!(
            Decision::FullAuth(Reason::Expired).as_str(),
            "full_auth_required"
        );
        let names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "expired",
                "resume_window_elapsed",
                "idle_timeout",
                "device_mismatch",
                "location_jump",
                "risk_above_threshold",
                "sensitive_operation",
                "revoked",
                "tampered",
                "unknown"
            ]
        );
    }

    #[test]
    fn inconsistent_policies_are_refused() {
        let d = ResumePolicy::default();
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(
            ResumePolicy {
                ttl: 0,
                ..d.clone()
            }
            .validate(),
            Err(PolicyError::ZeroTtl)
        );
        assert_eq!(
            ResumePolicy {
                resume_window: d.ttl + 1,
                ..d.clone()
            }
            .validate(),
            Err(PolicyError::BadResumeWindow)
        );
        assert_eq!(
            ResumePolicy {
                idle_timeout: 0,
                ..d.clone()
            }
            .validate(),
            Err(PolicyError::ZeroIdleTimeout)
        );
        assert_eq!(
            ResumePolicy {
                risk_threshold: 1.5,
                ..d
            }
            .validate(),
            Err(PolicyError::BadRiskThreshold)
        );
    }

    #[test]
    fn time_never_goes_backwards_into_a_resume() {
        // Exhaustive over a grid of (now, last_seen): once expired, always expired.
        let p = ResumePolicy::default();
        for now_min in (0..600).step_by(7) {
            for seen_min in (0..480).step_by(11) {
                let t = SessionTimes {
                    last_seen: seen_min * MIN,
                    ..times()
                };
                let d = decide_resume(&t, &ok_facts(), now_min * MIN, &p);
                if now_min >= 60 {
                    assert_ne!(d, Decision::Resumed, "now {now_min} seen {seen_min}");
                }
            }
        }
    }
}
