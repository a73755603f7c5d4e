//! Outstanding WebAuthn ceremonies: single use, expiring, bounded.
//!
//! A WebAuthn ceremony is two calls with server-side state between them
//! (the challenge and what the authenticator must prove). webauthn-rs warns
//! that this state must stay on the server, or a client could replay an old
//! challenge; so the state lives here, under a random 128-bit id that the
//! client sends back, in the [`SingleUseBook`] that challenges use too: the
//! first `take` of an id removes it, whatever the outcome, so a ceremony can
//! never be finished twice; it expires `ttl` after it was opened; the book
//! is bounded, with per-client and per-user shares.

use postern_core::UnixNanos;
use rand::{CryptoRng, RngCore};

pub use crate::book::Asker;
use crate::book::SingleUseBook;
use crate::quota::{Exhausted, ShareLimits};

/// Why a ceremony could not be opened or finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CeremonyError {
    #[error("unknown or already finished ceremony")]
    Unknown,
    #[error("ceremony expired")]
    Expired,
    #[error("too many outstanding ceremonies")]
    TooMany,
    /// The asking client's or the user's share is full until `retry_at`.
    #[error("too many outstanding ceremonies for this client or user")]
    ShareExhausted {
        whose: Exhausted,
        retry_at: UnixNanos,
    },
}

crate::book::refusals_from_book!(CeremonyError);

/// The id a client sends back to finish a ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CeremonyId(pub [u8; 16]);

/// Outstanding ceremonies, each holding its server-side state `T`.
pub struct CeremonyBook<T> {
    book: SingleUseBook<T>,
}

impl<T> CeremonyBook<T> {
    /// `ttl` in ns; `capacity` bounds outstanding ceremonies; `shares`
    /// bounds those of one client and of one user.
    pub fn new(ttl: u64, capacity: usize, shares: ShareLimits) -> Self {
        Self {
            book: SingleUseBook::new(ttl, capacity, shares),
        }
    }

    /// Opens a ceremony holding `state` for `asker`; returns its id and
    /// expiry.
    pub fn open<R: RngCore + CryptoRng>(
        &self,
        state: T,
        asker: Asker<'_>,
        now: UnixNanos,
        rng: &mut R,
    ) -> Result<(CeremonyId, UnixNanos), CeremonyError> {
        let (id, expires_at) = self.book.open(state, asker, now, rng)?;
        Ok((CeremonyId(id), expires_at))
    }

    /// Takes a ceremony's state. Whatever the result, the ceremony is gone.
    pub fn take(&self, id: &CeremonyId, now: UnixNanos) -> Result<T, CeremonyError> {
        Ok(self.book.take(&id.0, now)?)
    }

    pub fn outstanding(&self) -> usize {
        self.book.outstanding()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_core::context::UserId;

    const ANYONE: Asker<'static> = Asker {
        client: "c",
        user: None,
    };

    #[test]
    fn a_ceremony_is_finished_once() {
        let book = CeremonyBook::new(100, 10, ShareLimits::UNLIMITED);
        let (id, expires_at) = book
            .open("state", ANYONE, 0, &mut rand::thread_rng())
            .unwrap();
        assert_eq!(expires_at, 100);
        assert_eq!(book.take(&id, 99), Ok("state"));
        assert_eq!(book.take(&id, 99), Err(CeremonyError::Unknown));
    }

    #[test]
    fn an_expired_ceremony_is_refused_and_gone() {
        let book = CeremonyBook::new(100, 10, ShareLimits::UNLIMITED);
        let (id, _) = book.open(1u8, ANYONE, 0, &mut rand::thread_rng()).unwrap();
        assert_eq!(book.take(&id, 100), Err(CeremonyError::Expired));
        assert_eq!(book.take(&id, 1), Err(CeremonyError::Unknown));
        assert_eq!(book.outstanding(), 0);
    }

    #[test]
    fn the_book_is_bounded_but_reclaims_expired_entries() {
        let book = CeremonyBook::new(100, 2, ShareLimits::UNLIMITED);
        let mut rng = rand::thread_rng();
        book.open(1u8, ANYONE, 0, &mut rng).unwrap();
        book.open(2u8, ANYONE, 10, &mut rng).unwrap();
        assert_eq!(
            book.open(3u8, ANYONE, 50, &mut rng),
            Err(CeremonyError::TooMany)
        );
        // At 105 the first has expired, the second has not.
        assert!(book.open(3u8, ANYONE, 105, &mut rng).is_ok());
        assert_eq!(book.outstanding(), 2);
        assert_eq!(
            book.open(4u8, ANYONE, 105, &mut rng),
            Err(CeremonyError::TooMany)
        );
    }

    #[test]
    fn one_client_or_one_user_holds_only_its_share_of_ceremonies() {
        let limits = ShareLimits {
            per_client: 2,
            per_user: 1,
        };
        let book = CeremonyBook::new(100, 1000, limits);
        let mut rng = rand::thread_rng();
        let alice = UserId::parse("alice").unwrap();
        let flood = Asker {
            client: "mallory",
            user: None,
        };
        book.open(1u8, flood, 0, &mut rng).unwrap();
        book.open(2u8, flood, 0, &mut rng).unwrap();
        assert_eq!(
            book.open(3u8, flood, 1, &mut rng),
            Err(CeremonyError::ShareExhausted {
                whose: Exhausted::Client,
                retry_at: 100
            })
        );
        let for_alice = |client| Asker {
            client,
            user: Some(&alice),
        };
        let (first, _) = book.open(4u8, for_alice("bot-1"), 5, &mut rng).unwrap();
        assert_eq!(
            book.open(5u8, for_alice("bot-2"), 6, &mut rng),
            Err(CeremonyError::ShareExhausted {
                whose: Exhausted::User,
                retry_at: 105
            })
        );
        assert_eq!(book.take(&first, 7), Ok(4));
        assert!(book
            .open(6u8, for_alice("alice's phone"), 8, &mut rng)
            .is_ok());
        assert!(book
            .open(
                7u8,
                Asker {
                    client: "bob's laptop",
                    user: None
                },
                9,
                &mut rng
            )
            .is_ok());
    }
}
