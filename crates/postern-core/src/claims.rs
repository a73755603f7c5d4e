//! The claims snapshot a session carries.
//!
//! A claim records that some fact about the session (who, which device,
//! where, when, how it behaves, what it may do) was verified at a time, for a
//! while, with the digest of the verified value. Full authentication writes the
//! first snapshot; incremental authentication (a later stage of the design)
//! re-verifies only the claims whose value digest changed.

use crate::UnixNanos;

/// Most claims one session context may carry.
pub const MAX_CLAIMS: usize = 16;
/// Encoded size of one claim: kind, digest, verified-at, TTL.
pub(crate) const ENCODED_LEN: usize = 1 + 32 + 8 + 4;

/// What a claim is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClaimKind {
    Identity,
    Device,
    Location,
    Temporal,
    Behavioral,
    Permission,
}

impl ClaimKind {
    pub const ALL: [ClaimKind; 6] = [
        ClaimKind::Identity,
        ClaimKind::Device,
        ClaimKind::Location,
        ClaimKind::Temporal,
        ClaimKind::Behavioral,
        ClaimKind::Permission,
    ];

    pub(crate) fn code(self) -> u8 {
        match self {
            ClaimKind::Identity => 1,
            ClaimKind::Device => 2,
            ClaimKind::Location => 3,
            ClaimKind::Temporal => 4,
            ClaimKind::Behavioral => 5,
            ClaimKind::Permission => 6,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClaimKind::Identity => "identity",
            ClaimKind::Device => "device",
            ClaimKind::Location => "location",
            ClaimKind::Temporal => "temporal",
            ClaimKind::Behavioral => "behavioral",
            ClaimKind::Permission => "permission",
        }
    }
}

/// One verified fact about a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub kind: ClaimKind,
    /// Digest of the verified value (never the value itself).
    pub value_digest: [u8; 32],
    pub verified_at: UnixNanos,
    /// How long the verification holds, in seconds.
    pub ttl_secs: u32,
}

impl Claim {
    /// Whether the claim still holds at `now`.
    pub fn is_fresh(&self, now: UnixNanos) -> bool {
        let ttl = u64::from(self.ttl_secs).saturating_mul(crate::SECOND);
        now < self.verified_at.saturating_add(ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_code() {
        for kind in ClaimKind::ALL {
            assert_eq!(ClaimKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(ClaimKind::from_code(0), None);
        assert_eq!(ClaimKind::from_code(7), None);
    }

    #[test]
    fn a_claim_is_fresh_until_its_ttl_ends() {
        let claim = Claim {
            kind: ClaimKind::Device,
            value_digest: [0; 32],
            verified_at: 10,
            ttl_secs: 1,
        };
        assert!(claim.is_fresh(10));
        assert!(claim.is_fresh(10 + crate::SECOND - 1));
        assert!(!claim.is_fresh(10 + crate::SECOND));
    }
}
