//! A map whose entries end at a time, bounded by count, pruned in
//! expiry order.
//!
//! Why not a `HashMap` pruned with `retain`: `retain` walks every entry,
//! and the maps built on this one (revoked tokens, cached digests) are read
//! under their lock by every cache miss. A flood of entries would make one
//! unlucky miss pay for walking all of them. Here entries are also kept in
//! a `BTreeSet` ordered by their end, so pruning takes the expired ones off
//! the front: each expired entry is removed once, in O(log n), and one
//! insert prunes at most [`PRUNE_STEP`] of them, so no caller holds the
//! lock for more than O(log n) steps times a constant.
//!
//! Invariants (checked by the tests below):
//! - `map` and `order` hold the same keys: `(until, key)` is in `order`
//!   exactly when `map[key]` ends at `until`;
//! - `map.len() <= cap`: an insert of a new key into a full map (after
//!   pruning) is refused with [`Full`], never made room for by dropping a
//!   live entry. The caller decides what refusing means (see
//!   `crate::gate::Gate::logout` for revocations: the logout is answered
//!   with an error, never silently forgotten).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// Expired entries one insert prunes at most. Two would keep the map from
/// growing with dead entries (each insert adds one); 64 clears a backlog
/// quickly while bounding the work done under the caller's lock.
pub(crate) const PRUNE_STEP: usize = 64;

/// The map is full of live entries: the new key was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the map is full")]
pub(crate) struct Full;

/// Key → (value, until), bounded, pruned in `until` order.
#[derive(Debug)]
pub(crate) struct ExpiryMap<K, V> {
    map: HashMap<K, (V, u64)>,
    order: BTreeSet<(u64, K)>,
    cap: usize,
}

impl<K: Copy + Ord + Hash, V> ExpiryMap<K, V> {
    /// At most `cap` entries (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: BTreeSet::new(),
            cap: cap.max(1),
        }
    }

    /// Removes up to `most` entries that ended at or before `now`.
    fn prune(&mut self, now: u64, most: usize) {
        for _ in 0..most {
            match self.order.first() {
                Some(&(until, key)) if until <= now => {
                    self.order.remove(&(until, key));
                    self.map.remove(&key);
                }
                _ => return,
            }
        }
    }

    /// Inserts `key` until `until`, or replaces the value of a key already
    /// held and keeps the later `until`. A new key in a map full of live
    /// entries is refused.
    pub(crate) fn insert(&mut self, key: K, value: V, until: u64, now: u64) -> Result<(), Full> {
        self.prune(now, PRUNE_STEP);
        if let Some((held_value, held_until)) = self.map.get_mut(&key) {
            *held_value = value;
            if until > *held_until {
                self.order.remove(&(*held_until, key));
                self.order.insert((until, key));
                *held_until = until;
            }
            return Ok(());
        }
        if self.map.len() >= self.cap {
            return Err(Full);
        }
        self.map.insert(key, (value, until));
        self.order.insert((until, key));
        Ok(())
    }

    /// The value of `key` if it has not ended at `now`.
    pub(crate) fn live(&self, key: &K, now: u64) -> Option<&V> {
        self.map
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(value, _)| value)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let (value, until) = self.map.remove(key)?;
        self.order.remove(&(until, *key));
        Some(value)
    }

    /// Entries held, ended ones not yet pruned included.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every entry live at `now`, with its end.
    pub(crate) fn live_entries(&self, now: u64) -> impl Iterator<Item = (K, u64)> + '_ {
        self.order
            .iter()
            .skip_while(move |(until, _)| *until <= now)
            .map(|&(until, key)| (key, until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consistent<V>(m: &ExpiryMap<u128, V>) -> bool {
        m.map.len() == m.order.len()
            && m.order
                .iter()
                .all(|(until, key)| m.map.get(key).is_some_and(|(_, u)| u == until))
    }

    #[test]
    fn a_full_map_refuses_new_keys_but_updates_held_ones() {
        let mut m = ExpiryMap::new(3);
        for key in 0..3u128 {
            assert_eq!(m.insert(key, (), 100, 0), Ok(()));
        }
        assert_eq!(m.insert(3, (), 100, 0), Err(Full));
        assert_eq!(m.len(), 3);
        assert_eq!(m.live(&3, 0), None, "the refused key is not held");
        assert_eq!(m.insert(1, (), 200, 0), Ok(()), "a held key is updated");
        assert_eq!(m.insert(1, (), 150, 0), Ok(()), "never shortened");
        assert_eq!(m.live(&1, 199), Some(&()));
        assert!(consistent(&m));
        // Once entries end, they make room.
        assert_eq!(m.insert(3, (), 300, 100), Ok(()));
        assert_eq!(m.len(), 2, "0 and 2 ended at 100 and went; 1 and 3 stay");
        assert!(consistent(&m));
    }

    #[test]
    fn pruning_takes_only_ended_entries_and_at_most_a_step_per_insert() {
        let mut m = ExpiryMap::new(100_000);
        for key in 0..1_000u128 {
            m.insert(key, (), 10, 0).unwrap();
        }
        for key in 1_000..1_010u128 {
            m.insert(key, (), 1_000, 0).unwrap();
        }
        m.insert(5_000, (), 1_000, 50).unwrap();
        assert_eq!(m.len(), 1_011 - PRUNE_STEP, "one step of the 1,000 ended");
        for key in 5_001..5_020u128 {
            m.insert(key, (), 1_000, 50).unwrap();
        }
        assert_eq!(m.len(), 30, "the backlog is gone; 30 live entries stay");
        assert_eq!(m.live(&1_005, 999), Some(&()));
        assert_eq!(m.live(&1_005, 1_000), None, "until is exclusive");
        assert!(consistent(&m));
    }

    #[test]
    fn removing_keeps_both_indexes_in_step() {
        let mut m = ExpiryMap::new(10);
        m.insert(7u128, 70u64, 100, 0).unwrap();
        m.insert(8, 80, 50, 0).unwrap();
        assert_eq!(m.remove(&7), Some(70));
        assert_eq!(m.remove(&7), None);
        assert!(consistent(&m));
        let live: Vec<_> = m.live_entries(10).collect();
        assert_eq!(live, vec![(8, 50)]);
        assert_eq!(m.live_entries(50).count(), 0);
    }
}
