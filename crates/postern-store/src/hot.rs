//! The hot tier: verified, decoded sessions in a concurrent map.
//!
//! Entries enter only after their sealed record opened and their ML-DSA-65
//! signature verified (or, for a session minted here, after it was signed),
//! so a hit never re-verifies anything. Each entry keeps its activity time in
//! an atomic: every resume records activity without taking a lock or writing
//! to disk, and a periodic flush persists the times that moved.
//!
//! Memory: an entry is the decoded context (about 230 bytes plus its claims)
//! behind an `Arc`, and a 16-byte key in a `DashMap` shard; the signature
//! (3,309 bytes) is not kept — it was checked, and the sealed record on disk
//! still carries it. `benches/resume.rs` measures the bytes per session.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use postern_core::context::SessionContext;
use postern_core::token::{SessionId, VerifierHash};
use postern_core::UnixNanos;

/// The finest step in which [`HotSession::touch`] records activity: 1 ms.
pub const TOUCH_GRANULARITY: UnixNanos = 1_000_000;

/// A verified session held in memory.
#[derive(Debug)]
pub struct HotSession {
    context: SessionContext,
    last_seen: AtomicU64,
    persisted_last_seen: AtomicU64,
    /// 0 while live; the revocation time once revoked (never 0 itself).
    revoked_at: AtomicU64,
}

impl HotSession {
    pub fn new(
        context: SessionContext,
        last_seen: UnixNanos,
        revoked_at: Option<UnixNanos>,
    ) -> Self {
        Self {
            context,
            last_seen: AtomicU64::new(last_seen),
            persisted_last_seen: AtomicU64::new(last_seen),
            revoked_at: AtomicU64::new(revoked_at.map_or(0, |t| t.max(1))),
        }
    }

    pub fn context(&self) -> &SessionContext {
        &self.context
    }

    pub fn last_seen(&self) -> UnixNanos {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Records activity; time only moves forward, in steps of at least
    /// [`TOUCH_GRANULARITY`].
    ///
    /// Why the step: a session checked on every request from two cores
    /// would otherwise take a write to this entry per request, and each
    /// write takes the entry's cache line away from the other core, which
    /// is reading the context beside it. Read first, write only when the
    /// recorded time is a step behind: the idle timeout (minutes) may then
    /// count from up to a millisecond before the last request.
    pub fn touch(&self, now: UnixNanos) {
        if now.saturating_sub(self.last_seen.load(Ordering::Relaxed)) >= TOUCH_GRANULARITY {
            self.last_seen.fetch_max(now, Ordering::Relaxed);
        }
    }

    pub fn revoked_at(&self) -> Option<UnixNanos> {
        match self.revoked_at.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    pub fn mark_revoked(&self, at: UnixNanos) {
        let _ = self
            .revoked_at
            .compare_exchange(0, at.max(1), Ordering::AcqRel, Ordering::Acquire);
    }

    /// If activity moved at least `interval` past what was persisted, marks
    /// it persisted and returns the time to write.
    fn take_unpersisted(&self, interval: u64) -> Option<UnixNanos> {
        let seen = self.last_seen();
        let persisted = self.persisted_last_seen.load(Ordering::Relaxed);
        if seen >= persisted.saturating_add(interval) && seen > persisted {
            self.persisted_last_seen.store(seen, Ordering::Relaxed);
            Some(seen)
        } else {
            None
        }
    }
}

/// What the hot tier holds for a session id.
#[derive(Debug, Clone)]
pub enum Slot {
    Live(Arc<HotSession>),
    /// The stored record failed to open or verify; presenting this id
    /// answers `tampered`.
    Tampered,
}

/// What a token's selector and verifier find in the hot tier.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The verifier matched this session (whatever its state).
    Found(Arc<HotSession>),
    /// The selector names a record that failed verification at load.
    Tampered,
    /// No session has this selector, or the verifier did not match.
    Unknown,
}

/// The concurrent map of verified sessions.
#[derive(Debug, Default)]
pub struct HotTier {
    map: DashMap<SessionId, Slot, foldhash::fast::RandomState>,
}

impl HotTier {
    pub fn get(&self, id: &SessionId) -> Option<Slot> {
        self.map.get(id).map(|e| e.value().clone())
    }

    /// Finds the session a token proves possession of. Exactly one
    /// constant-time verifier comparison runs whether or not the selector
    /// exists, and the session is cloned out only on a match, so an unknown
    /// selector and a wrong verifier cost the same (see `benches/resume.rs`).
    pub fn find(&self, id: &SessionId, presented: &VerifierHash) -> Lookup {
        match self.map.get(id) {
            Some(entry) => match entry.value() {
                Slot::Live(session) => {
                    if session.context.verifier_hash.matches(presented) {
                        Lookup::Found(session.clone())
                    } else {
                        Lookup::Unknown
                    }
                }
                Slot::Tampered => Lookup::Tampered,
            },
            None => {
                let _ = VerifierHash::dummy().matches(presented);
                Lookup::Unknown
            }
        }
    }

    pub fn insert(&self, id: SessionId, slot: Slot) {
        self.map.insert(id, slot);
    }

    pub fn remove(&self, id: &SessionId) {
        self.map.remove(id);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Live (not revoked, not expired at `now`) sessions.
    pub fn count_active(&self, now: UnixNanos) -> usize {
        self.map
            .iter()
            .filter(|e| matches!(e.value(), Slot::Live(s) if s.revoked_at().is_none() && s.context.expires_at > now))
            .count()
    }

    /// Activity times that moved at least `interval` since last persisted.
    pub fn unpersisted_activity(&self, interval: u64) -> Vec<(SessionId, UnixNanos)> {
        self.map
            .iter()
            .filter_map(|e| match e.value() {
                Slot::Live(s) => s.take_unpersisted(interval).map(|t| (*e.key(), t)),
                Slot::Tampered => None,
            })
            .collect()
    }

    /// Drops sessions that expired before `before`; returns how many.
    pub fn remove_expired(&self, before: UnixNanos) -> usize {
        let start = self.map.len();
        self.map.retain(|_, slot| match slot {
            Slot::Live(s) => s.context.expires_at >= before,
            Slot::Tampered => true,
        });
        start - self.map.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod touch_tests {
    use super::*;

    fn session_seen_at(last_seen: UnixNanos) -> HotSession {
        use postern_core::context::{UserId, Verdict};
        let context = SessionContext {
            session_id: SessionId::from_bytes([1; 16]),
            verifier_hash: VerifierHash::from_bytes([2; 32]),
            user: UserId::parse("alice").unwrap(),
            verdict: Verdict::new(true, 6),
            auth_time: 1_000,
            expires_at: u64::MAX,
            resume_until: u64::MAX,
            device_mac: [3; 32],
            batch_slot: None,
            proof_digest: [5; 32],
            credential: [6; 16],
            claims: Vec::new(),
            key_id: 1,
        };
        HotSession::new(context, last_seen, None)
    }

    #[test]
    fn activity_moves_forward_in_steps_of_the_granularity_and_never_back() {
        let start = 10 * TOUCH_GRANULARITY;
        let session = session_seen_at(start);
        session.touch(start + TOUCH_GRANULARITY - 1);
        assert_eq!(session.last_seen(), start, "within a step: not written");
        session.touch(start + TOUCH_GRANULARITY);
        assert_eq!(session.last_seen(), start + TOUCH_GRANULARITY);
        session.touch(start);
        assert_eq!(session.last_seen(), start + TOUCH_GRANULARITY, "never back");
        session.touch(start + 5 * TOUCH_GRANULARITY + 7);
        assert_eq!(session.last_seen(), start + 5 * TOUCH_GRANULARITY + 7);
    }
}
