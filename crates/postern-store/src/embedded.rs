//! The default durable backend: an embedded [redb](https://docs.rs/redb)
//! database in one file.
//!
//! redb commits are ACID with `Durability::Immediate` by default: when
//! `commit` returns the data is fsynced, which is what the [`SessionStore`]
//! contract asks of `insert` and `revoke`. Activity times (`touch_many`) are
//! committed with `Durability::Eventual`, since losing them is harmless.
//!
//! Tables: `sessions` (selector → encoded [`SessionRow`]), `user_sessions`
//! (user → selectors, a multimap: the per-user index), `users` (user →
//! encoded [`UserRecord`]), `passkeys` (credential id → encoded
//! [`PasskeyRecord`]), `user_passkeys` (user → credential ids, a multimap)
//! and `passkey_handles` (user → WebAuthn user handle). Passkey writes are
//! `Durability::Immediate`: a registration or a counter update acknowledged
//! to a client survives a crash.

use std::path::Path;

use postern_core::context::UserId;
use postern_core::row_auth::RowKey;
use postern_core::token::SessionId;
use postern_core::UnixNanos;
use redb::{
    Database, Durability, MultimapTableDefinition, ReadableMultimapTable, ReadableTable,
    TableDefinition, WriteTransaction,
};

use crate::passkey::{AccountClaim, PasskeyInsert, PasskeyRecord, PasskeyRemoval, PasskeyUse};
use crate::store::{SessionRow, SessionStore, StoreError, UserRecord};

const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
const USER_SESSIONS: MultimapTableDefinition<&str, &[u8]> =
    MultimapTableDefinition::new("user_sessions");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const PASSKEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("passkeys");
const USER_PASSKEYS: MultimapTableDefinition<&str, &[u8]> =
    MultimapTableDefinition::new("user_passkeys");
const PASSKEY_HANDLES: TableDefinition<&str, &[u8]> = TableDefinition::new("passkey_handles");
/// Facts about the deployment kept beside its data (`keyring_revision`).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const KEYRING_REVISION: &str = "keyring_revision";

fn backend<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Database(Box::new(e))
}

/// A [`SessionStore`] in a redb file.
pub struct RedbStore {
    db: Database,
    /// Tags session rows so that an edit on disk (a cleared revocation)
    /// reads back as tampered; `None` only in tests and tools that read a
    /// database without the instance key.
    row_key: Option<RowKey>,
}

impl RedbStore {
    /// Opens (or creates) the database at `path` and its tables.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(backend)?;
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(SESSIONS).map_err(backend)?;
        tx.open_multimap_table(USER_SESSIONS).map_err(backend)?;
        tx.open_table(USERS).map_err(backend)?;
        tx.open_table(PASSKEYS).map_err(backend)?;
        tx.open_multimap_table(USER_PASSKEYS).map_err(backend)?;
        tx.open_table(PASSKEY_HANDLES).map_err(backend)?;
        tx.open_table(META).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(Self { db, row_key: None })
    }

    /// Tags every session row written from now on with `key` and checks
    /// the tag of every row read: a row edited on disk, or written without
    /// the key, reads as [`SessionRow::tampered`]. The server always sets it.
    pub fn with_row_key(mut self, key: RowKey) -> Self {
        self.row_key = Some(key);
        self
    }

    /// The highest keyring revision recorded here (0 if none): a keyring
    /// file with a lower one is an older copy put back.
    pub fn keyring_revision_seen(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let meta = tx.open_table(META).map_err(backend)?;
        let seen = meta.get(KEYRING_REVISION).map_err(backend)?;
        Ok(seen.map_or(0, |v| v.value()))
    }

    /// Records `revision` as seen, durably; never lowers the record.
    pub fn record_keyring_revision(&self, revision: u64) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut meta = tx.open_table(META).map_err(backend)?;
            let seen = meta
                .get(KEYRING_REVISION)
                .map_err(backend)?
                .map_or(0, |v| v.value());
            if revision > seen {
                meta.insert(KEYRING_REVISION, revision).map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }

    fn encode(&self, row: &SessionRow) -> Vec<u8> {
        row.encode(self.row_key.as_ref())
    }

    fn decode(&self, id: SessionId, bytes: &[u8]) -> Result<SessionRow, StoreError> {
        SessionRow::decode(id, bytes, self.row_key.as_ref())
    }
}

/// Whether `user` has an identity record, read inside the write `tx`.
fn has_user(tx: &WriteTransaction, user: &UserId) -> Result<bool, StoreError> {
    let users = tx.open_table(USERS).map_err(backend)?;
    let found = users.get(user.as_str()).map_err(backend)?.is_some();
    Ok(found)
}

/// Whether `user` has a passkey, read inside the write `tx`.
fn has_passkeys(tx: &WriteTransaction, user: &UserId) -> Result<bool, StoreError> {
    let index = tx.open_multimap_table(USER_PASSKEYS).map_err(backend)?;
    let found = !index.get(user.as_str()).map_err(backend)?.is_empty();
    Ok(found)
}

fn id_of(bytes: &[u8]) -> Result<SessionId, StoreError> {
    let raw: [u8; SessionId::LEN] = bytes
        .try_into()
        .map_err(|_| StoreError::CorruptRow("session key"))?;
    Ok(SessionId::from_bytes(raw))
}

impl SessionStore for RedbStore {
    fn insert(&self, row: &SessionRow) -> Result<(), StoreError> {
        self.insert_many(std::slice::from_ref(row))
    }

    fn insert_many(&self, rows: &[SessionRow]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut sessions = tx.open_table(SESSIONS).map_err(backend)?;
            let mut index = tx.open_multimap_table(USER_SESSIONS).map_err(backend)?;
            for row in rows {
                // An early return drops `tx` uncommitted: nothing is written.
                if sessions
                    .get(row.id.as_bytes().as_slice())
                    .map_err(backend)?
                    .is_some()
                {
                    return Err(StoreError::CorruptRow("duplicate session id"));
                }
                sessions
                    .insert(row.id.as_bytes().as_slice(), self.encode(row).as_slice())
                    .map_err(backend)?;
                index
                    .insert(row.user.as_str(), row.id.as_bytes().as_slice())
                    .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }

    fn revoke(&self, id: &SessionId, at: UnixNanos) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let found = {
            let mut sessions = tx.open_table(SESSIONS).map_err(backend)?;
            let existing = match sessions.get(id.as_bytes().as_slice()).map_err(backend)? {
                Some(value) => Some(self.decode(*id, value.value())?),
                None => None,
            };
            match existing {
                Some(mut row) => {
                    if row.revoked_at.is_none() {
                        row.revoked_at = Some(at);
                        sessions
                            .insert(id.as_bytes().as_slice(), self.encode(&row).as_slice())
                            .map_err(backend)?;
                    }
                    true
                }
                None => false,
            }
        };
        tx.commit().map_err(backend)?;
        Ok(found)
    }

    fn touch_many(&self, updates: &[(SessionId, UnixNanos)]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin_write().map_err(backend)?;
        tx.set_durability(Durability::Eventual);
        {
            let mut sessions = tx.open_table(SESSIONS).map_err(backend)?;
            for (id, at) in updates {
                let existing = match sessions.get(id.as_bytes().as_slice()).map_err(backend)? {
                    Some(value) => Some(self.decode(*id, value.value())?),
                    None => None,
                };
                if let Some(mut row) = existing {
                    // A tampered row is never re-tagged by a touch: that
                    // would launder the edit.
                    if *at > row.last_seen && !row.tampered {
                        row.last_seen = *at;
                        sessions
                            .insert(id.as_bytes().as_slice(), self.encode(&row).as_slice())
                            .map_err(backend)?;
                    }
                }
            }
        }
        tx.commit().map_err(backend)
    }

    fn get(&self, id: &SessionId) -> Result<Option<SessionRow>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let sessions = tx.open_table(SESSIONS).map_err(backend)?;
        match sessions.get(id.as_bytes().as_slice()).map_err(backend)? {
            Some(value) => Ok(Some(self.decode(*id, value.value())?)),
            None => Ok(None),
        }
    }

    fn list_user(&self, user: &UserId) -> Result<Vec<SessionId>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let index = tx.open_multimap_table(USER_SESSIONS).map_err(backend)?;
        let mut out = Vec::new();
        for value in index.get(user.as_str()).map_err(backend)? {
            out.push(id_of(value.map_err(backend)?.value())?);
        }
        Ok(out)
    }

    fn for_each(&self, visit: &mut dyn FnMut(SessionRow)) -> Result<(), StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let sessions = tx.open_table(SESSIONS).map_err(backend)?;
        for entry in sessions.iter().map_err(backend)? {
            let (key, value) = entry.map_err(backend)?;
            visit(self.decode(id_of(key.value())?, value.value())?);
        }
        Ok(())
    }

    fn remove_expired(&self, before: UnixNanos) -> Result<usize, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let removed = {
            let mut sessions = tx.open_table(SESSIONS).map_err(backend)?;
            let mut expired = Vec::new();
            for entry in sessions.iter().map_err(backend)? {
                let (key, value) = entry.map_err(backend)?;
                let row = self.decode(id_of(key.value())?, value.value())?;
                if row.expires_at < before {
                    expired.push((row.id, row.user));
                }
            }
            let mut index = tx.open_multimap_table(USER_SESSIONS).map_err(backend)?;
            for (id, user) in &expired {
                sessions.remove(id.as_bytes().as_slice()).map_err(backend)?;
                index
                    .remove(user.as_str(), id.as_bytes().as_slice())
                    .map_err(backend)?;
            }
            expired.len()
        };
        tx.commit().map_err(backend)?;
        Ok(removed)
    }

    fn insert_user(&self, user: &UserId, record: &UserRecord) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let inserted = {
            let mut users = tx.open_table(USERS).map_err(backend)?;
            if users.get(user.as_str()).map_err(backend)?.is_some() || has_passkeys(&tx, user)? {
                false
            } else {
                users
                    .insert(user.as_str(), record.encode().as_slice())
                    .map_err(backend)?;
                true
            }
        };
        tx.commit().map_err(backend)?;
        Ok(inserted)
    }

    fn update_user(
        &self,
        user: &UserId,
        expected: &UserRecord,
        record: &UserRecord,
    ) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let updated = {
            let mut users = tx.open_table(USERS).map_err(backend)?;
            let current = match users.get(user.as_str()).map_err(backend)? {
                Some(value) => Some(UserRecord::decode(value.value())?),
                None => None,
            };
            if current.as_ref() == Some(expected) {
                users
                    .insert(user.as_str(), record.encode().as_slice())
                    .map_err(backend)?;
                true
            } else {
                false
            }
        };
        tx.commit().map_err(backend)?;
        Ok(updated)
    }

    fn get_user(&self, user: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let users = tx.open_table(USERS).map_err(backend)?;
        match users.get(user.as_str()).map_err(backend)? {
            Some(value) => Ok(Some(UserRecord::decode(value.value())?)),
            None => Ok(None),
        }
    }

    fn passkey_user_handle(&self, user: &UserId) -> Result<Option<[u8; 16]>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let handles = tx.open_table(PASSKEY_HANDLES).map_err(backend)?;
        let handle = match handles.get(user.as_str()).map_err(backend)? {
            Some(value) => Some(
                <[u8; 16]>::try_from(value.value())
                    .map_err(|_| StoreError::CorruptRow("passkey user handle"))?,
            ),
            None => None,
        };
        Ok(handle)
    }

    fn insert_passkey(
        &self,
        record: &PasskeyRecord,
        claim: AccountClaim,
    ) -> Result<PasskeyInsert, StoreError> {
        // redb serialises write transactions: the checks and the insert
        // below are one atomic step.
        let tx = self.db.begin_write().map_err(backend)?;
        let outcome = {
            let mut passkeys = tx.open_table(PASSKEYS).map_err(backend)?;
            let id = record.credential_id.as_slice();
            let user = &record.user;
            if passkeys.get(id).map_err(backend)?.is_some() {
                PasskeyInsert::CredentialTaken
            } else if claim == AccountClaim::NewAccount
                && (has_user(&tx, user)? || has_passkeys(&tx, user)?)
            {
                PasskeyInsert::AccountClaimed
            } else {
                passkeys
                    .insert(id, record.encode().as_slice())
                    .map_err(backend)?;
                let mut index = tx.open_multimap_table(USER_PASSKEYS).map_err(backend)?;
                index.insert(user.as_str(), id).map_err(backend)?;
                // The user's handle is chosen by the first registration
                // that finishes, in its own write.
                let mut handles = tx.open_table(PASSKEY_HANDLES).map_err(backend)?;
                if handles.get(user.as_str()).map_err(backend)?.is_none() {
                    handles
                        .insert(user.as_str(), record.user_handle.as_slice())
                        .map_err(backend)?;
                }
                PasskeyInsert::Inserted
            }
        };
        if outcome == PasskeyInsert::Inserted {
            tx.commit().map_err(backend)?;
        } else {
            tx.abort().map_err(backend)?;
        }
        Ok(outcome)
    }

    fn update_passkey(&self, record: &PasskeyRecord) -> Result<PasskeyUse, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let outcome = {
            let mut passkeys = tx.open_table(PASSKEYS).map_err(backend)?;
            let id = record.credential_id.as_slice();
            let stored = match passkeys.get(id).map_err(backend)? {
                Some(value) => Some(PasskeyRecord::decode(id, value.value())?),
                None => None,
            };
            match stored.map(|stored| stored.after_use(record)) {
                None => PasskeyUse::UnknownCredential,
                Some(Err(refusal)) => refusal,
                Some(Ok(updated)) => {
                    passkeys
                        .insert(id, updated.encode().as_slice())
                        .map_err(backend)?;
                    PasskeyUse::Recorded
                }
            }
        };
        if outcome == PasskeyUse::Recorded {
            tx.commit().map_err(backend)?;
        } else {
            tx.abort().map_err(backend)?;
        }
        Ok(outcome)
    }

    fn get_passkey(&self, credential_id: &[u8]) -> Result<Option<PasskeyRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let passkeys = tx.open_table(PASSKEYS).map_err(backend)?;
        match passkeys.get(credential_id).map_err(backend)? {
            Some(value) => Ok(Some(PasskeyRecord::decode(credential_id, value.value())?)),
            None => Ok(None),
        }
    }

    fn remove_passkey(
        &self,
        credential_id: &[u8],
        keep_last_way_in: bool,
    ) -> Result<PasskeyRemoval, StoreError> {
        // One write transaction: the last-way-in check and the removal are
        // one atomic step.
        let tx = self.db.begin_write().map_err(backend)?;
        let outcome = {
            let mut passkeys = tx.open_table(PASSKEYS).map_err(backend)?;
            let stored = match passkeys.get(credential_id).map_err(backend)? {
                Some(value) => Some(PasskeyRecord::decode(credential_id, value.value())?),
                None => None,
            };
            match stored {
                None => PasskeyRemoval::NotRegistered,
                Some(record) => {
                    let owner = record.user.as_str();
                    let mut index = tx.open_multimap_table(USER_PASSKEYS).map_err(backend)?;
                    let last_way_in = keep_last_way_in && {
                        let passkeys_of_owner = index.get(owner).map_err(backend)?.len();
                        let users = tx.open_table(USERS).map_err(backend)?;
                        let live_identity = match users.get(owner).map_err(backend)? {
                            Some(value) => UserRecord::decode(value.value())?
                                .identity_revoked_at
                                .is_none(),
                            None => false,
                        };
                        passkeys_of_owner <= 1 && !live_identity
                    };
                    if last_way_in {
                        PasskeyRemoval::LastWayIn
                    } else {
                        passkeys.remove(credential_id).map_err(backend)?;
                        index.remove(owner, credential_id).map_err(backend)?;
                        PasskeyRemoval::Removed
                    }
                }
            }
        };
        if outcome == PasskeyRemoval::Removed {
            tx.commit().map_err(backend)?;
        } else {
            tx.abort().map_err(backend)?;
        }
        Ok(outcome)
    }

    fn reauthorise_passkey(
        &self,
        credential_id: &[u8],
        expected: [u8; 16],
        by: [u8; 16],
    ) -> Result<bool, StoreError> {
        // One write transaction: the comparison and the write are atomic.
        let tx = self.db.begin_write().map_err(backend)?;
        let updated = {
            let mut passkeys = tx.open_table(PASSKEYS).map_err(backend)?;
            let stored = match passkeys.get(credential_id).map_err(backend)? {
                Some(value) => Some(PasskeyRecord::decode(credential_id, value.value())?),
                None => None,
            };
            match stored {
                Some(mut record) if record.registered_by == expected => {
                    record.registered_by = by;
                    passkeys
                        .insert(credential_id, record.encode().as_slice())
                        .map_err(backend)?;
                    true
                }
                _ => false,
            }
        };
        if updated {
            tx.commit().map_err(backend)?;
        } else {
            tx.abort().map_err(backend)?;
        }
        Ok(updated)
    }

    fn list_passkeys(&self, user: &UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let index = tx.open_multimap_table(USER_PASSKEYS).map_err(backend)?;
        let passkeys = tx.open_table(PASSKEYS).map_err(backend)?;
        let mut out = Vec::new();
        for id in index.get(user.as_str()).map_err(backend)? {
            let id = id.map_err(backend)?;
            let id = id.value();
            if let Some(value) = passkeys.get(id).map_err(backend)? {
                out.push(PasskeyRecord::decode(id, value.value())?);
            }
        }
        Ok(out)
    }
}
