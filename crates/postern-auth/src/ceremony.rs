//! Outstanding WebAuthn ceremonies: single use, expiring, bounded.
//!
//! A WebAuthn ceremony is two calls with server-side state between them
//! (the challenge and what the authenticator must prove). webauthn-rs warns
//! that this state must stay on the server, or a client could replay an old
//! challenge; so the state lives here, under a random 128-bit id that the
//! client sends back. The first `take` of an id removes it, whatever the
//! outcome, so a ceremony can never be finished twice. An entry expires
//! `ttl` after it was opened. The book holds at most `capacity` entries:
//! when full it first drops expired ones, then refuses to open more (the
//! server answers 429) rather than grow without limit.
//!
//! Like challenges, ceremonies live in process memory: a client finishes a
//! ceremony on the instance that started it (sticky routing).

use std::collections::HashMap;

use parking_lot::Mutex;
use postern_core::UnixNanos;
use rand::{CryptoRng, RngCore};

/// Why a ceremony could not be opened or finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CeremonyError {
    #[error("unknown or already finished ceremony")]
    Unknown,
    #[error("ceremony expired")]
    Expired,
    #[error("too many outstanding ceremonies")]
    TooMany,
}

/// The id a client sends back to finish a ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CeremonyId(pub [u8; 16]);

struct Open<T> {
    state: T,
    expires_at: UnixNanos,
}

/// Outstanding ceremonies, each holding its server-side state `T`.
pub struct CeremonyBook<T> {
    ttl: u64,
    capacity: usize,
    // Held only for map operations; never across verification or an await.
    open: Mutex<HashMap<CeremonyId, Open<T>>>,
}

impl<T> CeremonyBook<T> {
    /// `ttl` in ns; `capacity` bounds outstanding ceremonies.
    pub fn new(ttl: u64, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a ceremony holding `state`; returns its id and expiry.
    pub fn open<R: RngCore + CryptoRng>(
        &self,
        state: T,
        now: UnixNanos,
        rng: &mut R,
    ) -> Result<(CeremonyId, UnixNanos), CeremonyError> {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let id = CeremonyId(id);
        let expires_at = now.saturating_add(self.ttl);
        let mut open = self.open.lock();
        if open.len() >= self.capacity {
            open.retain(|_, o| o.expires_at > now);
            if open.len() >= self.capacity {
                return Err(CeremonyError::TooMany);
            }
        }
        open.insert(id, Open { state, expires_at });
        Ok((id, expires_at))
    }

    /// Takes a ceremony's state. Whatever the result, the ceremony is gone.
    pub fn take(&self, id: &CeremonyId, now: UnixNanos) -> Result<T, CeremonyError> {
        let open = self.open.lock().remove(id).ok_or(CeremonyError::Unknown)?;
        if now >= open.expires_at {
            return Err(CeremonyError::Expired);
        }
        Ok(open.state)
    }

    pub fn outstanding(&self) -> usize {
        self.open.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ceremony_is_finished_once() {
        let book = CeremonyBook::new(100, 10);
        let (id, expires_at) = book.open("state", 0, &mut rand::thread_rng()).unwrap();
        assert_eq!(expires_at, 100);
        assert_eq!(book.take(&id, 99), Ok("state"));
        assert_eq!(book.take(&id, 99), Err(CeremonyError::Unknown));
    }

    #[test]
    fn an_expired_ceremony_is_refused_and_gone() {
        let book = CeremonyBook::new(100, 10);
        let (id, _) = book.open(1u8, 0, &mut rand::thread_rng()).unwrap();
        assert_eq!(book.take(&id, 100), Err(CeremonyError::Expired));
        assert_eq!(book.take(&id, 1), Err(CeremonyError::Unknown));
        assert_eq!(book.outstanding(), 0);
    }

    #[test]
    fn the_book_is_bounded_but_reclaims_expired_entries() {
        let book = CeremonyBook::new(100, 2);
        let mut rng = rand::thread_rng();
        book.open(1u8, 0, &mut rng).unwrap();
        book.open(2u8, 10, &mut rng).unwrap();
        assert_eq!(book.open(3u8, 50, &mut rng), Err(CeremonyError::TooMany));
        // At 105 the first has expired, the second has not.
        assert!(book.open(3u8, 105, &mut rng).is_ok());
        assert_eq!(book.outstanding(), 2);
        assert_eq!(book.open(4u8, 105, &mut rng), Err(CeremonyError::TooMany));
    }
}
