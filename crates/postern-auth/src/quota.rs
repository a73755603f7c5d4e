//! Per-client and per-user shares of an issuance book (challenges,
//! ceremonies).
//!
//! A book's global capacity alone lets one client, or a flood aimed at one
//! user, take every slot, so that every real login answers 429. Each issue
//! is therefore also charged to the client that asked (`client`, as the
//! server identifies it) and, when there is one, to the user it is for;
//! neither may hold more than its limit of outstanding entries at once. A
//! flood then fills only its own share: its client's, or its target
//! user's (that user still waits; see the README).
//!
//! An entry counts against its keys until it is taken or until it expires,
//! whichever comes first. The shares do not need the book's entries to
//! find expired ones: each key keeps the expiry times of its outstanding
//! entries (at most `limit` of them) and drops those that have passed
//! whenever it is charged again. Keys whose entries have all expired are
//! dropped by `Shares::prune`, which the book calls when it sweeps
//! itself, so the maps never hold more times than the book held entries.

use std::collections::HashMap;
use std::hash::Hash;

use postern_core::UnixNanos;

/// The most outstanding entries one client, and one user, may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareLimits {
    pub per_client: usize,
    pub per_user: usize,
}

impl ShareLimits {
    /// No share limits: only the book's global capacity applies.
    pub const UNLIMITED: ShareLimits = ShareLimits {
        per_client: usize::MAX,
        per_user: usize::MAX,
    };
}

/// Whose share an issue was refused from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    Client,
    User,
}

/// One kind of key's outstanding entries, by expiry time.
#[derive(Debug)]
struct Share<K> {
    limit: usize,
    outstanding: HashMap<K, Vec<UnixNanos>>,
}

impl<K: Hash + Eq + Clone> Share<K> {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            outstanding: HashMap::new(),
        }
    }

    /// Drops `key`'s expired entries; `Err(earliest expiry)` if it still
    /// holds its limit.
    fn check(&mut self, key: &K, now: UnixNanos) -> Result<(), UnixNanos> {
        let Some(times) = self.outstanding.get_mut(key) else {
            return if self.limit == 0 { Err(now) } else { Ok(()) };
        };
        times.retain(|&t| t > now);
        if times.len() >= self.limit {
            return Err(times.iter().copied().min().unwrap_or(now));
        }
        Ok(())
    }

    fn charge(&mut self, key: &K, expires_at: UnixNanos) {
        self.outstanding
            .entry(key.clone())
            .or_default()
            .push(expires_at);
    }

    fn release(&mut self, key: &K, expires_at: UnixNanos) {
        if let Some(times) = self.outstanding.get_mut(key) {
            // Entries issued in the same nanosecond are interchangeable.
            if let Some(at) = times.iter().position(|&t| t == expires_at) {
                times.swap_remove(at);
            }
            if times.is_empty() {
                self.outstanding.remove(key);
            }
        }
    }

    fn prune(&mut self, now: UnixNanos) {
        self.outstanding.retain(|_, times| {
            times.retain(|&t| t > now);
            !times.is_empty()
        });
    }
}

/// The per-client and per-user shares of one book. Not synchronised: the
/// book keeps it under its own lock, beside its entries.
#[derive(Debug)]
pub(crate) struct Shares<U> {
    clients: Share<Box<str>>,
    users: Share<U>,
}

impl<U: Hash + Eq + Clone> Shares<U> {
    pub(crate) fn new(limits: ShareLimits) -> Self {
        Self {
            clients: Share::new(limits.per_client),
            users: Share::new(limits.per_user),
        }
    }

    /// Charges an entry expiring at `expires_at` to `client` and `user`,
    /// or says whose share is full and when its earliest entry expires.
    pub(crate) fn charge(
        &mut self,
        client: &str,
        user: Option<&U>,
        now: UnixNanos,
        expires_at: UnixNanos,
    ) -> Result<(), (Exhausted, UnixNanos)> {
        let client: Box<str> = client.into();
        self.clients
            .check(&client, now)
            .map_err(|at| (Exhausted::Client, at))?;
        if let Some(user) = user {
            self.users
                .check(user, now)
                .map_err(|at| (Exhausted::User, at))?;
            self.users.charge(user, expires_at);
        }
        self.clients.charge(&client, expires_at);
        Ok(())
    }

    /// Gives back the share of an entry that was taken (or dropped).
    pub(crate) fn release(&mut self, client: &str, user: Option<&U>, expires_at: UnixNanos) {
        self.clients.release(&client.into(), expires_at);
        if let Some(user) = user {
            self.users.release(user, expires_at);
        }
    }

    /// Drops every key whose entries have all expired.
    pub(crate) fn prune(&mut self, now: UnixNanos) {
        self.clients.prune(now);
        self.users.prune(now);
    }

    /// How many keys hold a share (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.clients.outstanding.len() + self.users.outstanding.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ShareLimits = ShareLimits {
        per_client: 3,
        per_user: 2,
    };

    #[test]
    fn a_client_and_a_user_each_hold_at_most_their_limit() {
        let mut shares: Shares<&str> = Shares::new(LIMITS);
        assert_eq!(shares.charge("10.0.0.1", Some(&"alice"), 0, 100), Ok(()));
        assert_eq!(shares.charge("10.0.0.1", Some(&"alice"), 1, 101), Ok(()));
        assert_eq!(
            shares.charge("10.0.0.2", Some(&"alice"), 2, 102),
            Err((Exhausted::User, 100))
        );
        assert_eq!(shares.charge("10.0.0.1", Some(&"bob"), 3, 103), Ok(()));
        assert_eq!(
            shares.charge("10.0.0.1", Some(&"carol"), 4, 104),
            Err((Exhausted::Client, 100))
        );
        // A refused charge takes nothing from the other share.
        assert_eq!(shares.charge("10.0.0.3", Some(&"carol"), 4, 104), Ok(()));
        assert_eq!(shares.charge("10.0.0.3", None, 5, 105), Ok(()));
    }

    #[test]
    fn a_share_comes_back_when_its_entry_is_taken_or_expires() {
        let mut shares: Shares<&str> = Shares::new(LIMITS);
        shares.charge("c", Some(&"alice"), 0, 100).unwrap();
        shares.charge("c", Some(&"alice"), 0, 150).unwrap();
        assert!(shares.charge("c", Some(&"alice"), 10, 110).is_err());
        shares.release("c", Some(&"alice"), 150);
        assert_eq!(shares.charge("c", Some(&"alice"), 10, 110), Ok(()));
        assert!(shares.charge("c", Some(&"alice"), 20, 120).is_err());
        // At 100 the first has expired, untaken: its share is free again.
        assert_eq!(shares.charge("c", Some(&"alice"), 100, 200), Ok(()));
    }

    #[test]
    fn pruning_drops_keys_whose_entries_all_expired() {
        let mut shares: Shares<&str> = Shares::new(LIMITS);
        shares.charge("a", Some(&"alice"), 0, 100).unwrap();
        shares.charge("b", Some(&"bob"), 0, 300).unwrap();
        assert_eq!(shares.keys(), 4);
        shares.prune(200);
        assert_eq!(shares.keys(), 2);
        shares.release("b", Some(&"bob"), 300);
        assert_eq!(shares.keys(), 0);
    }
}
