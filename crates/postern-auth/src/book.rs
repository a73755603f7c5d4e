//! The one book behind challenges and WebAuthn ceremonies: single use,
//! expiring, bounded, with per-client and per-user shares.
//!
//! Both keep server-side state between two calls under a random 128-bit id
//! the client sends back, and both must hold the same invariants:
//! - the first `take` of an id removes it, whatever the outcome, so nothing
//!   is used twice (a replayed proof or a finished ceremony);
//! - an entry expires `ttl` after it was opened;
//! - the book holds at most `capacity` entries: when full it first drops
//!   expired ones, then refuses to open more (the server answers 429) rather
//!   than grow without limit;
//! - within that, one client and one user may each hold only their share
//!   ([`crate::quota`]), so a flood from one client, or aimed at one user,
//!   cannot take every slot.
//!
//! [`crate::challenge::ChallengeBook`] and [`crate::ceremony::CeremonyBook`]
//! are this book with their own state and their own error wording.
//! Entries live in process memory: a client finishes on the instance that
//! opened its entry (sticky routing).

use std::collections::HashMap;

use parking_lot::Mutex;
use postern_core::context::UserId;
use postern_core::UnixNanos;
use rand::{CryptoRng, RngCore};

use crate::quota::{Exhausted, ShareLimits, Shares};

/// Why an entry could not be opened or taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookError {
    /// Never opened, already taken, or dropped after expiring.
    Unknown,
    Expired,
    /// The book is full of live entries.
    TooMany,
    /// The asking client's or the user's share is full until `retry_at`.
    ShareExhausted {
        whose: Exhausted,
        retry_at: UnixNanos,
    },
}

/// `From<BookError>` for an error enum with the same four refusals under
/// its own wording (`Unknown`, `Expired`, `TooMany`, `ShareExhausted`).
macro_rules! refusals_from_book {
    ($error:ty) => {
        impl From<$crate::book::BookError> for $error {
            fn from(error: $crate::book::BookError) -> Self {
                use $crate::book::BookError;
                match error {
                    BookError::Unknown => Self::Unknown,
                    BookError::Expired => Self::Expired,
                    BookError::TooMany => Self::TooMany,
                    BookError::ShareExhausted { whose, retry_at } => {
                        Self::ShareExhausted { whose, retry_at }
                    }
                }
            }
        }
    };
}
pub(crate) use refusals_from_book;

/// Whom an entry is charged to: the client that asked for it and, when it
/// names one, the user it is for.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub client: &'a str,
    pub user: Option<&'a UserId>,
}

struct Entry<T> {
    state: T,
    client: Box<str>,
    user: Option<UserId>,
    expires_at: UnixNanos,
}

struct Entries<T> {
    open: HashMap<[u8; 16], Entry<T>>,
    shares: Shares<UserId>,
}

/// Outstanding entries, each holding its server-side state `T`.
pub struct SingleUseBook<T> {
    ttl: u64,
    capacity: usize,
    // Held only for map operations; never across verification or an await.
    entries: Mutex<Entries<T>>,
}

impl<T> SingleUseBook<T> {
    /// `ttl` in ns; `capacity` bounds outstanding entries; `shares` bounds
    /// those of one client and of one user.
    pub fn new(ttl: u64, capacity: usize, shares: ShareLimits) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(Entries {
                open: HashMap::new(),
                shares: Shares::new(shares),
            }),
        }
    }

    /// Opens an entry holding `state` for `asker`; returns its random id
    /// and its expiry.
    pub fn open<R: RngCore + CryptoRng>(
        &self,
        state: T,
        asker: Asker<'_>,
        now: UnixNanos,
        rng: &mut R,
    ) -> Result<([u8; 16], UnixNanos), BookError> {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let expires_at = now.saturating_add(self.ttl);
        let mut entries = self.entries.lock();
        let entries = &mut *entries;
        if entries.open.len() >= self.capacity {
            entries.open.retain(|_, e| e.expires_at > now);
            entries.shares.prune(now);
            if entries.open.len() >= self.capacity {
                return Err(BookError::TooMany);
            }
        }
        entries
            .shares
            .charge(asker.client, asker.user, now, expires_at)
            .map_err(|(whose, retry_at)| BookError::ShareExhausted { whose, retry_at })?;
        entries.open.insert(
            id,
            Entry {
                state,
                client: asker.client.into(),
                user: asker.user.cloned(),
                expires_at,
            },
        );
        Ok((id, expires_at))
    }

    /// Takes an entry's state. Whatever the result, the entry is gone.
    pub fn take(&self, id: &[u8; 16], now: UnixNanos) -> Result<T, BookError> {
        let entry = {
            let mut entries = self.entries.lock();
            let entry = entries.open.remove(id).ok_or(BookError::Unknown)?;
            entries
                .shares
                .release(&entry.client, entry.user.as_ref(), entry.expires_at);
            entry
        };
        if now >= entry.expires_at {
            return Err(BookError::Expired);
        }
        Ok(entry.state)
    }

    pub fn outstanding(&self) -> usize {
        self.entries.lock().open.len()
    }
}
