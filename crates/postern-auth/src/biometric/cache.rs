//! Prepared templates of the most recently authenticated users, bounded in
//! bytes.
//!
//! # Why
//!
//! Per request, a user's stored template must otherwise be parsed and
//! range-checked (about as much as a probe) and its products run in the
//! slower non-Shoup form; a [`PreparedTemplate`] skips both, which is what
//! brings `turbo` near its per-user budget. A prepared template is large
//! ([`ENTRY_BYTES`] with the stored bytes it was built from), so the cache
//! holds at most `budget / ENTRY_BYTES` users and evicts the least recently
//! used.
//!
//! # Staleness is impossible by construction
//!
//! An entry keeps the exact stored template bytes it was prepared from, and
//! a lookup compares them with the bytes the caller just read from the user
//! record (a memory comparison, a few microseconds; hashing 111 KB with
//! SHA3 would cost more than the saving). A template that changed, for any
//! reason and on any instance, therefore misses and is prepared afresh. On
//! top of that, [`forget`](PreparedCache::forget) drops a user's entry when
//! its identity is revoked, so nothing derived from a revoked user's
//! enrollment stays in memory.
//!
//! # Home lanes (`turbo`)
//!
//! With [`with_home_lanes`](PreparedCache::with_home_lanes), each user's
//! template is prepared already moved to a lane derived from its user id
//! (a fixed hash, so it survives eviction), and the batcher gives a caller
//! that lane when it is free: its lane product then costs three products
//! instead of five. Users whose home is taken in their batch pay the two
//! shift products as before. The hash is not a security boundary: user
//! ids chosen to collide only cost those two products.
//!
//! # Locking
//!
//! One mutex guards the map; it is held for a lookup or an insertion, never
//! while bytes are compared or a template is parsed or prepared. Two concurrent misses for the
//! same user both prepare it and the second insertion wins: harmless, the
//! results are equal. Eviction scans for the least recently used entry
//! (O(entries), on a miss only, which costs a preparation anyway).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::Mutex;
use postern_core::context::UserId;

use super::eval::{Evaluator, PreparedTemplate};
use super::params::{DEGREE, LANES, MODULI};
use super::wire::CIPHERTEXT_BYTES;
use super::BiometricError;

/// Bytes one cached user costs: three polynomials with their Shoup
/// companions (3 x 2 x 3 x 4,096 u64) plus the stored bytes they came from.
pub const ENTRY_BYTES: usize = 3 * 2 * MODULI.len() * DEGREE * 8 + CIPHERTEXT_BYTES;

struct Entry {
    stored: Arc<[u8]>,
    prepared: Arc<PreparedTemplate>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<UserId, Entry>,
    clock: u64,
}

/// What a lookup did, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The entry matched the stored bytes.
    Hit,
    /// No entry, or one prepared from other bytes: prepared now.
    Prepared,
}

/// A bounded map from user to prepared template.
pub struct PreparedCache {
    capacity: usize,
    /// Users' templates are prepared at a home lane below this (1: lane 0).
    home_lanes: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for PreparedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl PreparedCache {
    /// A cache using at most `budget_bytes` (rounded down to whole
    /// entries); a budget below one entry caches nothing.
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            capacity: budget_bytes / ENTRY_BYTES,
            home_lanes: 1,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Prepares each user's template at a home lane below `lanes` (the
    /// turbo batch size; clamped to 1..=32) instead of lane 0.
    pub fn with_home_lanes(mut self, lanes: usize) -> Self {
        self.home_lanes = lanes.clamp(1, LANES);
        self
    }

    /// The lane `user`'s template is prepared at.
    pub fn home_of(&self, user: &UserId) -> usize {
        if self.home_lanes == 1 {
            return 0;
        }
        // SipHash with fixed keys: the same lane on every instance and
        // after every restart.
        let mut hasher = std::hash::DefaultHasher::new();
        user.as_str().hash(&mut hasher);
        (hasher.finish() % self.home_lanes as u64) as usize
    }

    /// Users it can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Users it holds.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `user`'s template prepared from exactly `stored` (the bytes of its
    /// user record), from the cache or prepared now and cached. A stored
    /// template that does not parse is an error and is not cached.
    pub fn get_or_prepare(
        &self,
        evaluator: &Evaluator,
        user: &UserId,
        stored: &[u8],
    ) -> Result<(Arc<PreparedTemplate>, Lookup), BiometricError> {
        let found = {
            let mut inner = self.inner.lock();
            inner.clock += 1;
            let now = inner.clock;
            inner.entries.get_mut(user).map(|entry| {
                entry.last_used = now;
                (entry.stored.clone(), entry.prepared.clone())
            })
        };
        // Compared outside the lock: 111 KB per lookup would otherwise
        // serialise a batch's callers.
        if let Some((cached, prepared)) = found {
            if *cached == *stored {
                return Ok((prepared, Lookup::Hit));
            }
        }
        let prepared = Arc::new(
            evaluator
                .prepare_template_at(&evaluator.decode_template(stored)?, self.home_of(user))?,
        );
        if self.capacity > 0 {
            let mut inner = self.inner.lock();
            inner.clock += 1;
            let now = inner.clock;
            if !inner.entries.contains_key(user) && inner.entries.len() >= self.capacity {
                let oldest = inner
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(u, _)| u.clone());
                if let Some(oldest) = oldest {
                    inner.entries.remove(&oldest);
                }
            }
            inner.entries.insert(
                user.clone(),
                Entry {
                    stored: stored.into(),
                    prepared: prepared.clone(),
                    last_used: now,
                },
            );
        }
        Ok((prepared, Lookup::Prepared))
    }

    /// Drops `user`'s entry (identity revoked, user removed); true if there
    /// was one.
    pub fn forget(&self, user: &UserId) -> bool {
        self.inner.lock().entries.remove(user).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::biometric::{Encryptor, KeyHolder, LocalKeyHolder, Quantised};

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn the_cache_holds_the_budget_evicts_the_least_recent_and_never_serves_stale_bytes() {
        let kh = LocalKeyHolder::generate().unwrap();
        let ev = Evaluator::new(kh.public_key()).unwrap();
        let enc = Encryptor::new(kh.public_key()).unwrap();
        let v = Quantised::from_components([4; 128]).unwrap();
        let w = Quantised::from_components([-4; 128]).unwrap();
        let t1 = enc.encrypt_template(&v).unwrap();
        let t2 = enc.encrypt_template(&w).unwrap();
        let probe = ev.decode_probe(&enc.encrypt_probe(&v).unwrap()).unwrap();

        let cache = PreparedCache::new(2 * ENTRY_BYTES + ENTRY_BYTES / 2);
        assert_eq!(cache.capacity(), 2);
        let (a, b, c) = (user("a"), user("b"), user("c"));
        assert_eq!(
            cache.get_or_prepare(&ev, &a, &t1).unwrap().1,
            Lookup::Prepared
        );
        assert_eq!(cache.get_or_prepare(&ev, &a, &t1).unwrap().1, Lookup::Hit);
        assert_eq!(
            cache.get_or_prepare(&ev, &b, &t1).unwrap().1,
            Lookup::Prepared
        );
        // a is used again, so b is the least recent when c arrives.
        assert_eq!(cache.get_or_prepare(&ev, &a, &t1).unwrap().1, Lookup::Hit);
        assert_eq!(
            cache.get_or_prepare(&ev, &c, &t1).unwrap().1,
            Lookup::Prepared
        );
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get_or_prepare(&ev, &a, &t1).unwrap().1, Lookup::Hit);
        assert_eq!(
            cache.get_or_prepare(&ev, &b, &t1).unwrap().1,
            Lookup::Prepared
        );

        // A changed template misses and the new one is what is used.
        let (prepared, lookup) = cache.get_or_prepare(&ev, &a, &t2).unwrap();
        assert_eq!(lookup, Lookup::Prepared);
        let sealed = ev
            .seal(ev.product_prepared(&prepared, probe.clone(), 0).unwrap(), 1)
            .unwrap();
        assert_eq!(kh.decrypt_scores(&sealed).unwrap(), vec![w.score(&v)]);
        assert_eq!(cache.get_or_prepare(&ev, &a, &t2).unwrap().1, Lookup::Hit);

        // Forgetting (identity revoked) drops the entry.
        assert!(cache.forget(&a));
        assert!(!cache.forget(&a));
        assert_eq!(
            cache.get_or_prepare(&ev, &a, &t2).unwrap().1,
            Lookup::Prepared
        );

        // Garbage is an error and is not cached; a zero budget caches nothing.
        assert!(cache.get_or_prepare(&ev, &c, &t1[..100]).is_err());
        // Home lanes: spread over the configured lanes, fixed per user, and
        // the prepared template lives there.
        let homes = PreparedCache::new(4 * ENTRY_BYTES).with_home_lanes(32);
        let lanes: std::collections::HashSet<usize> = (0..64)
            .map(|i| homes.home_of(&user(&format!("user{i}"))))
            .collect();
        assert!(
            lanes.len() > 16 && lanes.iter().all(|&l| l < 32),
            "{lanes:?}"
        );
        assert_eq!(homes.home_of(&a), homes.home_of(&a));
        let (prepared, _) = homes.get_or_prepare(&ev, &b, &t2).unwrap();
        assert_eq!(prepared.home(), homes.home_of(&b));
        assert_eq!(PreparedCache::new(0).home_of(&b), 0);
        assert!(PreparedCache::new(0)
            .with_home_lanes(4)
            .home_of(&user("zed"))
            .lt(&4));
        let none = PreparedCache::new(ENTRY_BYTES - 1);
        assert_eq!(
            none.get_or_prepare(&ev, &a, &t1).unwrap().1,
            Lookup::Prepared
        );
        assert_eq!(
            none.get_or_prepare(&ev, &a, &t1).unwrap().1,
            Lookup::Prepared
        );
        assert!(none.is_empty());
    }
}
