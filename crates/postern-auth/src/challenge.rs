//! One-time challenges for full authentication.
//!
//! A challenge is 32 random bytes, issued for one user, valid until its
//! expiry, and consumed by the first attempt to use it — successful or not —
//! so a proof can never be replayed. The book is bounded: when it holds
//! `capacity` outstanding challenges it first drops expired ones, then
//! refuses new ones (the server answers 429) rather than grow without limit.
//!
//! Challenges live in process memory: a client must complete full
//! authentication on the instance that issued its challenge (sticky routing),
//! which is what one challenge/response round trip needs anyway.

use std::collections::HashMap;

use parking_lot::Mutex;
use postern_core::context::UserId;
use postern_core::UnixNanos;
use rand::{CryptoRng, RngCore};

/// Why a challenge could not be issued or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("unknown or already used challenge")]
    Unknown,
    #[error("challenge expired")]
    Expired,
    #[error("challenge was issued for another user")]
    WrongUser,
    #[error("too many outstanding challenges")]
    TooMany,
}

/// A challenge handed to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub id: [u8; 16],
    pub challenge: [u8; 32],
    pub expires_at: UnixNanos,
}

struct Pending {
    user: UserId,
    challenge: [u8; 32],
    expires_at: UnixNanos,
}

/// Outstanding challenges.
pub struct ChallengeBook {
    ttl: u64,
    capacity: usize,
    // Held only for map operations; never across a stage or an await.
    pending: Mutex<HashMap<[u8; 16], Pending>>,
}

impl ChallengeBook {
    /// `ttl` in ns; `capacity` bounds outstanding challenges.
    pub fn new(ttl: u64, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn issue<R: RngCore + CryptoRng>(
        &self,
        user: &UserId,
        now: UnixNanos,
        rng: &mut R,
    ) -> Result<Issued, ChallengeError> {
        let mut issued = Issued {
            id: [0; 16],
            challenge: [0; 32],
            expires_at: now.saturating_add(self.ttl),
        };
        rng.fill_bytes(&mut issued.id);
        rng.fill_bytes(&mut issued.challenge);
        let mut pending = self.pending.lock();
        if pending.len() >= self.capacity {
            pending.retain(|_, p| p.expires_at > now);
            if pending.len() >= self.capacity {
                return Err(ChallengeError::TooMany);
            }
        }
        pending.insert(
            issued.id,
            Pending {
                user: user.clone(),
                challenge: issued.challenge,
                expires_at: issued.expires_at,
            },
        );
        Ok(issued)
    }

    /// Consumes a challenge. Whatever the result, the challenge is gone.
    pub fn take(
        &self,
        id: &[u8; 16],
        user: &UserId,
        now: UnixNanos,
    ) -> Result<[u8; 32], ChallengeError> {
        let pending = self
            .pending
            .lock()
            .remove(id)
            .ok_or(ChallengeError::Unknown)?;
        if now >= pending.expires_at {
            return Err(ChallengeError::Expired);
        }
        if &pending.user != user {
            return Err(ChallengeError::WrongUser);
        }
        Ok(pending.challenge)
    }

    pub fn outstanding(&self) -> usize {
        self.pending.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn a_challenge_is_used_once() {
        let book = ChallengeBook::new(100, 10);
        let issued = book
            .issue(&user("alice"), 0, &mut rand::thread_rng())
            .unwrap();
        assert_eq!(issued.expires_at, 100);
        assert_eq!(
            book.take(&issued.id, &user("alice"), 50),
            Ok(issued.challenge)
        );
        assert_eq!(
            book.take(&issued.id, &user("alice"), 51),
            Err(ChallengeError::Unknown)
        );
    }

    #[test]
    fn an_expired_or_foreign_challenge_is_refused_and_consumed() {
        let book = ChallengeBook::new(100, 10);
        let late = book
            .issue(&user("alice"), 0, &mut rand::thread_rng())
            .unwrap();
        assert_eq!(
            book.take(&late.id, &user("alice"), 100),
            Err(ChallengeError::Expired)
        );
        let foreign = book
            .issue(&user("alice"), 0, &mut rand::thread_rng())
            .unwrap();
        assert_eq!(
            book.take(&foreign.id, &user("mallory"), 1),
            Err(ChallengeError::WrongUser)
        );
        assert_eq!(
            book.take(&foreign.id, &user("alice"), 2),
            Err(ChallengeError::Unknown)
        );
        assert_eq!(book.outstanding(), 0);
    }

    #[test]
    fn the_book_is_bounded_but_reclaims_expired_entries() {
        let book = ChallengeBook::new(100, 2);
        let mut rng = rand::thread_rng();
        book.issue(&user("a"), 0, &mut rng).unwrap();
        book.issue(&user("b"), 0, &mut rng).unwrap();
        assert_eq!(
            book.issue(&user("c"), 50, &mut rng),
            Err(ChallengeError::TooMany)
        );
        assert!(book.issue(&user("c"), 100, &mut rng).is_ok());
        assert_eq!(book.outstanding(), 1);
    }
}
