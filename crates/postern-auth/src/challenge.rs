//! One-time challenges for full authentication.
//!
//! A challenge is 32 random bytes, issued for one user, valid until its
//! expiry, and consumed by the first attempt to use it, successful or not,
//! so a proof can never be replayed. Outstanding challenges are kept in the
//! [`SingleUseBook`] that WebAuthn ceremonies use too: bounded (when full,
//! expired ones are dropped, then new ones refused: the server answers 429
//! rather than grow without limit), and within that, one client and one
//! user may each hold only their share ([`crate::quota`]), so a flood from
//! one client, or aimed at one user, cannot take every slot.
//!
//! Challenges live in process memory: a client must complete full
//! authentication on the instance that issued its challenge (sticky routing),
//! which is what one challenge/response round trip needs anyway.

use postern_core::context::UserId;
use postern_core::UnixNanos;
use rand::{CryptoRng, RngCore};

use crate::book::{Asker, SingleUseBook};
use crate::quota::{Exhausted, ShareLimits};

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
    /// The asking client's or the user's share is full until `retry_at`.
    #[error("too many outstanding challenges for this client or user")]
    ShareExhausted {
        whose: Exhausted,
        retry_at: UnixNanos,
    },
}

crate::book::refusals_from_book!(ChallengeError);

/// A challenge handed to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub id: [u8; 16],
    pub challenge: [u8; 32],
    pub expires_at: UnixNanos,
}

/// What the book keeps for a challenge until it is used.
struct Pending {
    user: UserId,
    challenge: [u8; 32],
}

/// Outstanding challenges.
pub struct ChallengeBook {
    book: SingleUseBook<Pending>,
}

impl ChallengeBook {
    /// `ttl` in ns; `capacity` bounds outstanding challenges; `shares`
    /// bounds those of one client and of one user.
    pub fn new(ttl: u64, capacity: usize, shares: ShareLimits) -> Self {
        Self {
            book: SingleUseBook::new(ttl, capacity, shares),
        }
    }

    /// Issues a challenge for `user`, asked for by `client` (the server's
    /// name for where the request came from).
    pub fn issue<R: RngCore + CryptoRng>(
        &self,
        user: &UserId,
        client: &str,
        now: UnixNanos,
        rng: &mut R,
    ) -> Result<Issued, ChallengeError> {
        let mut challenge = [0u8; 32];
        rng.fill_bytes(&mut challenge);
        let pending = Pending {
            user: user.clone(),
            challenge,
        };
        let asker = Asker {
            client,
            user: Some(user),
        };
        let (id, expires_at) = self.book.open(pending, asker, now, rng)?;
        Ok(Issued {
            id,
            challenge,
            expires_at,
        })
    }

    /// Consumes a challenge. Whatever the result, the challenge is gone.
    pub fn take(
        &self,
        id: &[u8; 16],
        user: &UserId,
        now: UnixNanos,
    ) -> Result<[u8; 32], ChallengeError> {
        let pending = self.book.take(id, now)?;
        if &pending.user != user {
            return Err(ChallengeError::WrongUser);
        }
        Ok(pending.challenge)
    }

    pub fn outstanding(&self) -> usize {
        self.book.outstanding()
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
        let book = ChallengeBook::new(100, 10, ShareLimits::UNLIMITED);
        let issued = book
            .issue(&user("alice"), "c", 0, &mut rand::thread_rng())
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
        let book = ChallengeBook::new(100, 10, ShareLimits::UNLIMITED);
        let late = book
            .issue(&user("alice"), "c", 0, &mut rand::thread_rng())
            .unwrap();
        assert_eq!(
            book.take(&late.id, &user("alice"), 100),
            Err(ChallengeError::Expired)
        );
        let foreign = book
            .issue(&user("alice"), "c", 0, &mut rand::thread_rng())
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
        let book = ChallengeBook::new(100, 2, ShareLimits::UNLIMITED);
        let mut rng = rand::thread_rng();
        book.issue(&user("a"), "c", 0, &mut rng).unwrap();
        book.issue(&user("b"), "c", 0, &mut rng).unwrap();
        assert_eq!(
            book.issue(&user("c"), "c", 50, &mut rng),
            Err(ChallengeError::TooMany)
        );
        assert!(book.issue(&user("c"), "c", 100, &mut rng).is_ok());
        assert_eq!(book.outstanding(), 1);
    }

    #[test]
    fn one_client_or_one_user_cannot_take_every_challenge() {
        let shares = ShareLimits {
            per_client: 3,
            per_user: 2,
        };
        let book = ChallengeBook::new(100, 1000, shares);
        let mut rng = rand::thread_rng();
        let flood = |book: &ChallengeBook, client: &str, name: &str, now| {
            book.issue(&user(name), client, now, &mut rand::thread_rng())
        };
        flood(&book, "mallory", "a", 0).unwrap();
        flood(&book, "mallory", "b", 0).unwrap();
        flood(&book, "mallory", "c", 10).unwrap();
        assert_eq!(
            flood(&book, "mallory", "d", 20),
            Err(ChallengeError::ShareExhausted {
                whose: Exhausted::Client,
                retry_at: 100
            })
        );
        // Aimed at one user from many clients: that user's share fills.
        flood(&book, "bot-1", "alice", 0).unwrap();
        flood(&book, "bot-2", "alice", 5).unwrap();
        assert_eq!(
            flood(&book, "bot-3", "alice", 20),
            Err(ChallengeError::ShareExhausted {
                whose: Exhausted::User,
                retry_at: 100
            })
        );
        // Everyone else still gets a challenge, and a taken one gives its
        // share back.
        let bob = book
            .issue(&user("bob"), "bob's laptop", 20, &mut rng)
            .unwrap();
        assert!(book.take(&bob.id, &user("bob"), 21).is_ok());
        let first = flood(&book, "bot-4", "bob", 22).unwrap();
        flood(&book, "bot-4", "bob", 22).unwrap();
        assert!(flood(&book, "bot-4", "bob", 23).is_err());
        assert!(book.take(&first.id, &user("bob"), 24).is_ok());
        assert!(flood(&book, "bot-4", "bob", 25).is_ok());
        // Shares free themselves when their challenges expire.
        assert!(flood(&book, "mallory", "e", 100).is_ok());
    }
}
