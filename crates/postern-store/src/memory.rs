//! An in-memory [`SessionStore`]: nothing survives the process. For tests and
//! for deployments that accept losing sessions on restart.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use parking_lot::Mutex;
use postern_core::context::UserId;
use postern_core::token::SessionId;
use postern_core::UnixNanos;

use crate::passkey::{AccountClaim, PasskeyInsert, PasskeyRecord, PasskeyRemoval, PasskeyUse};
use crate::store::{SessionRow, SessionStore, StoreError, UserRecord};

#[derive(Default)]
struct Inner {
    sessions: BTreeMap<SessionId, SessionRow>,
    by_user: HashMap<UserId, BTreeSet<SessionId>>,
    users: HashMap<UserId, UserRecord>,
    passkeys: BTreeMap<Vec<u8>, PasskeyRecord>,
    passkeys_by_user: HashMap<UserId, BTreeSet<Vec<u8>>>,
    handles: HashMap<UserId, [u8; 16]>,
}

impl Inner {
    fn has_passkeys(&self, user: &UserId) -> bool {
        self.passkeys_by_user
            .get(user)
            .is_some_and(|ids| !ids.is_empty())
    }
}

/// A [`SessionStore`] held in process memory.
#[derive(Default)]
pub struct MemoryStore {
    // One lock for all maps keeps the session and user-index updates atomic;
    // no method holds it across anything slower than a map operation.
    inner: Mutex<Inner>,
}

impl SessionStore for MemoryStore {
    fn insert(&self, row: &SessionRow) -> Result<(), StoreError> {
        self.insert_many(std::slice::from_ref(row))
    }

    fn insert_many(&self, rows: &[SessionRow]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        let mut ids = HashSet::with_capacity(rows.len());
        if rows
            .iter()
            .any(|r| inner.sessions.contains_key(&r.id) || !ids.insert(r.id))
        {
            return Err(StoreError::CorruptRow("duplicate session id"));
        }
        for row in rows {
            inner
                .by_user
                .entry(row.user.clone())
                .or_default()
                .insert(row.id);
            inner.sessions.insert(row.id, row.clone());
        }
        Ok(())
    }

    fn revoke(&self, id: &SessionId, at: UnixNanos) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        Ok(match inner.sessions.get_mut(id) {
            Some(row) => {
                row.revoked_at.get_or_insert(at);
                true
            }
            None => false,
        })
    }

    fn touch_many(&self, updates: &[(SessionId, UnixNanos)]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        for (id, at) in updates {
            if let Some(row) = inner.sessions.get_mut(id) {
                row.last_seen = row.last_seen.max(*at);
            }
        }
        Ok(())
    }

    fn get(&self, id: &SessionId) -> Result<Option<SessionRow>, StoreError> {
        Ok(self.inner.lock().sessions.get(id).cloned())
    }

    fn list_user(&self, user: &UserId) -> Result<Vec<SessionId>, StoreError> {
        Ok(self
            .inner
            .lock()
            .by_user
            .get(user)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default())
    }

    fn for_each(&self, visit: &mut dyn FnMut(SessionRow)) -> Result<(), StoreError> {
        let rows: Vec<SessionRow> = self.inner.lock().sessions.values().cloned().collect();
        rows.into_iter().for_each(visit);
        Ok(())
    }

    fn remove_expired(&self, before: UnixNanos) -> Result<usize, StoreError> {
        let mut inner = self.inner.lock();
        let expired: Vec<(SessionId, UserId)> = inner
            .sessions
            .values()
            .filter(|r| r.expires_at < before)
            .map(|r| (r.id, r.user.clone()))
            .collect();
        for (id, user) in &expired {
            inner.sessions.remove(id);
            if let Some(set) = inner.by_user.get_mut(user) {
                set.remove(id);
                if set.is_empty() {
                    inner.by_user.remove(user);
                }
            }
        }
        Ok(expired.len())
    }

    fn insert_user(&self, user: &UserId, record: &UserRecord) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        if inner.users.contains_key(user) || inner.has_passkeys(user) {
            return Ok(false);
        }
        inner.users.insert(user.clone(), record.clone());
        Ok(true)
    }

    fn update_user(
        &self,
        user: &UserId,
        expected: &UserRecord,
        record: &UserRecord,
    ) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        Ok(match inner.users.get_mut(user) {
            Some(existing) if existing == expected => {
                *existing = record.clone();
                true
            }
            _ => false,
        })
    }

    fn get_user(&self, user: &UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.inner.lock().users.get(user).cloned())
    }

    fn passkey_user_handle(&self, user: &UserId) -> Result<Option<[u8; 16]>, StoreError> {
        Ok(self.inner.lock().handles.get(user).copied())
    }

    fn insert_passkey(
        &self,
        record: &PasskeyRecord,
        claim: AccountClaim,
    ) -> Result<PasskeyInsert, StoreError> {
        let mut inner = self.inner.lock();
        if inner.passkeys.contains_key(&record.credential_id) {
            return Ok(PasskeyInsert::CredentialTaken);
        }
        if claim == AccountClaim::NewAccount
            && (inner.users.contains_key(&record.user) || inner.has_passkeys(&record.user))
        {
            return Ok(PasskeyInsert::AccountClaimed);
        }
        inner
            .passkeys_by_user
            .entry(record.user.clone())
            .or_default()
            .insert(record.credential_id.clone());
        inner
            .passkeys
            .insert(record.credential_id.clone(), record.clone());
        inner
            .handles
            .entry(record.user.clone())
            .or_insert(record.user_handle);
        Ok(PasskeyInsert::Inserted)
    }

    fn update_passkey(&self, record: &PasskeyRecord) -> Result<PasskeyUse, StoreError> {
        let mut inner = self.inner.lock();
        let Some(stored) = inner.passkeys.get_mut(&record.credential_id) else {
            return Ok(PasskeyUse::UnknownCredential);
        };
        Ok(match stored.after_use(record) {
            Ok(updated) => {
                *stored = updated;
                PasskeyUse::Recorded
            }
            Err(refusal) => refusal,
        })
    }

    fn get_passkey(&self, credential_id: &[u8]) -> Result<Option<PasskeyRecord>, StoreError> {
        Ok(self.inner.lock().passkeys.get(credential_id).cloned())
    }

    fn remove_passkey(
        &self,
        credential_id: &[u8],
        keep_last_way_in: bool,
    ) -> Result<PasskeyRemoval, StoreError> {
        let mut inner = self.inner.lock();
        let Some(owner) = inner.passkeys.get(credential_id).map(|p| p.user.clone()) else {
            return Ok(PasskeyRemoval::NotRegistered);
        };
        if keep_last_way_in {
            let other_passkeys = inner
                .passkeys_by_user
                .get(&owner)
                .map_or(0, |ids| ids.len())
                > 1;
            let live_identity = inner
                .users
                .get(&owner)
                .is_some_and(|r| r.identity_revoked_at.is_none());
            if !other_passkeys && !live_identity {
                return Ok(PasskeyRemoval::LastWayIn);
            }
        }
        inner.passkeys.remove(credential_id);
        if let Some(ids) = inner.passkeys_by_user.get_mut(&owner) {
            ids.remove(credential_id);
        }
        Ok(PasskeyRemoval::Removed)
    }

    fn reauthorise_passkey(
        &self,
        credential_id: &[u8],
        expected: [u8; 16],
        by: [u8; 16],
    ) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        Ok(match inner.passkeys.get_mut(credential_id) {
            Some(stored) if stored.registered_by == expected => {
                stored.registered_by = by;
                true
            }
            _ => false,
        })
    }

    fn list_passkeys(&self, user: &UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        let inner = self.inner.lock();
        Ok(inner
            .passkeys_by_user
            .get(user)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| inner.passkeys.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default())
    }
}
