//! Verified identity proofs, cached by their SHA3-256 digest.
//!
//! The digest (over the proof and the statement it proves: challenge, user,
//! device) is what a session context records as its identity evidence. This
//! cache remembers, for each verified digest, which user and identity key
//! produced it, for two jobs:
//!
//! - **Reuse is refused in one lookup.** A digest already in the cache is a
//!   proof presented a second time; the identity stage refuses it before
//!   any curve arithmetic. (The challenge book already makes challenges
//!   single-use; this is the second, independent line, and the cheap one.)
//! - **Revocation reaches the proofs.** Revoking an identity key forgets
//!   every proof it made ([`ProofCache::forget_credential`]); the session
//!   authority revokes the sessions minted from them.
//!
//! The cache is bounded: past `capacity` the oldest entries go first. A
//! proof is only ever presentable while its challenge is live, so capacity
//! needs to cover the proofs verified within one challenge lifetime.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use postern_core::context::UserId;

/// What a cached digest stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedProof {
    pub user: UserId,
    /// Credential id of the identity key that made the proof.
    pub credential: [u8; 16],
}

/// Whether a digest was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// The digest was already cached: the proof is being reused.
    Reused,
}

/// A bounded map from proof digest to the identity that made it.
#[derive(Debug)]
pub struct ProofCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    by_digest: HashMap<[u8; 32], CachedProof>,
    order: VecDeque<[u8; 32]>,
}

impl ProofCache {
    /// A cache holding at most `capacity` digests (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    /// Whether `digest` was verified before (one hash-map lookup).
    pub fn contains(&self, digest: &[u8; 32]) -> bool {
        self.inner.lock().by_digest.contains_key(digest)
    }

    pub fn get(&self, digest: &[u8; 32]) -> Option<CachedProof> {
        self.inner.lock().by_digest.get(digest).cloned()
    }

    /// Records a verified proof; says whether it was already there.
    pub fn record(&self, digest: [u8; 32], proof: CachedProof) -> Recorded {
        let mut inner = self.inner.lock();
        if inner.by_digest.contains_key(&digest) {
            return Recorded::Reused;
        }
        while inner.by_digest.len() >= self.capacity {
            match inner.order.pop_front() {
                Some(oldest) => {
                    inner.by_digest.remove(&oldest);
                }
                None => break,
            }
        }
        inner.by_digest.insert(digest, proof);
        inner.order.push_back(digest);
        Recorded::New
    }

    /// Forgets every proof made by `credential` of `user`; returns how many.
    pub fn forget_credential(&self, user: &UserId, credential: &[u8; 16]) -> usize {
        let mut inner = self.inner.lock();
        let before = inner.by_digest.len();
        inner
            .by_digest
            .retain(|_, p| !(&p.user == user && &p.credential == credential));
        let Inner { by_digest, order } = &mut *inner;
        order.retain(|d| by_digest.contains_key(d));
        before - by_digest.len()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(user: &str, credential: u8) -> CachedProof {
        CachedProof {
            user: UserId::parse(user).unwrap(),
            credential: [credential; 16],
        }
    }

    #[test]
    fn a_digest_is_new_once_then_reused() {
        let cache = ProofCache::new(8);
        assert_eq!(cache.record([1; 32], proof("alice", 1)), Recorded::New);
        assert_eq!(cache.record([1; 32], proof("alice", 1)), Recorded::Reused);
        assert!(cache.contains(&[1; 32]));
        assert!(!cache.contains(&[2; 32]));
        assert_eq!(cache.get(&[1; 32]), Some(proof("alice", 1)));
    }

    #[test]
    fn the_oldest_entries_go_first_past_capacity() {
        let cache = ProofCache::new(2);
        cache.record([1; 32], proof("a", 1));
        cache.record([2; 32], proof("a", 1));
        cache.record([3; 32], proof("a", 1));
        assert_eq!(cache.len(), 2);
        assert!(!cache.contains(&[1; 32]));
        assert!(cache.contains(&[2; 32]) && cache.contains(&[3; 32]));
    }

    #[test]
    fn forgetting_a_credential_touches_only_that_users_credential() {
        let cache = ProofCache::new(16);
        cache.record([1; 32], proof("alice", 1));
        cache.record([2; 32], proof("alice", 1));
        cache.record([3; 32], proof("alice", 2));
        cache.record([4; 32], proof("bob", 1));
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(cache.forget_credential(&alice, &[1; 16]), 2);
        assert!(!cache.contains(&[1; 32]) && !cache.contains(&[2; 32]));
        assert!(cache.contains(&[3; 32]) && cache.contains(&[4; 32]));
        // Capacity accounting stays right after a forget.
        for d in 5..20u8 {
            cache.record([d; 32], proof("carol", 9));
        }
        assert_eq!(cache.len(), 16);
    }
}
