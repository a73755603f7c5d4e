//! The durable-store contract.
//!
//! A [`SessionStore`] persists [`SessionRow`]s — a session's sealed context
//! plus the few fields needed to index and expire it — and enrolled users.
//! It never sees a token: rows are keyed by the token's selector, and the
//! verifier's hash lives inside the sealed, signed context.
//!
//! # Contract
//!
//! - `insert` and `revoke` are durable when they return `Ok`: a crash right
//!   after cannot lose the session or resurrect it. The server acknowledges a
//!   login or a logout only after they return.
//! - A revocation is permanent: `insert` never overwrites a revoked row, and
//!   revoked rows are kept (so a presented token keeps answering `revoked`)
//!   until `remove_expired` drops them after their expiry.
//! - `touch_many` may be lost in a crash (it records activity, which only
//!   ever moves forward; losing it makes an idle timeout fire sooner, never
//!   later).
//! - Passkeys: `insert_passkey` and `update_passkey` are durable when they
//!   return `Ok`. A credential id is registered to at most one user, ever
//!   (`insert_passkey` never overwrites). `update_passkey` records a use
//!   as a compare-and-set on the signature counter: a use whose counter
//!   does not advance past the stored one changes nothing (see
//!   [`PasskeyRecord::after_use`]), and no use changes the owner, the user
//!   handle or the creation time. A user's WebAuthn user handle is chosen
//!   once, by the first `insert_passkey` for that user (in the same write),
//!   and never changes; reading it (`passkey_user_handle`) writes nothing,
//!   so starting a registration for a name leaves no trace.
//! - Claiming an account is atomic: `insert_user` refuses a user who has a
//!   passkey, and `insert_passkey` with [`AccountClaim::NewAccount`]
//!   refuses a user who has an identity key or a passkey, each checked in
//!   the same write that inserts. Of an identity enrollment and a first
//!   passkey registration racing for one name, exactly one wins.
//! - Every method is synchronous: callers on an async runtime run them on a
//!   blocking thread. Implementations must be `Send + Sync`.
//!
//! The embedded deployment restores every row into the hot tier at start, so
//! there a hot-tier miss is an unknown session; a shared store (Redis) will
//! also fill misses and broadcast revocations.

use postern_core::context::UserId;
use postern_core::row_auth::{RowKey, ROW_TAG_LEN};
use postern_core::token::SessionId;
use postern_core::UnixNanos;

use crate::passkey::{AccountClaim, PasskeyInsert, PasskeyRecord, PasskeyRemoval, PasskeyUse};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored row is corrupt: {0}")]
    CorruptRow(&'static str),
    #[error("store is shutting down")]
    Closed,
}

impl PartialEq for StoreError {
    /// Database errors compare by kind only (the cause is kept for logs).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StoreError::Database(_), StoreError::Database(_))
            | (StoreError::Closed, StoreError::Closed) => true,
            (StoreError::CorruptRow(a), StoreError::CorruptRow(b)) => a == b,
            _ => false,
        }
    }
}

/// One persisted session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: SessionId,
    pub user: UserId,
    pub expires_at: UnixNanos,
    pub last_seen: UnixNanos,
    pub revoked_at: Option<UnixNanos>,
    /// The AES-256-GCM-sealed, ML-DSA-65-signed session context.
    pub sealed: Vec<u8>,
    /// Read from a store that tags its rows ([`RowKey`]) and this row's tag
    /// did not verify: its revocation or activity may have been edited on
    /// disk. Such a row answers `tampered`. Always `false` on rows made in
    /// memory.
    pub tampered: bool,
}

/// v1: no tag. v2: `version ‖ expires ‖ last_seen ‖ revoked ‖ |user| ‖ user
/// ‖ tag (32) ‖ sealed`, the tag being HMAC-SHA256 over the id, the fields
/// before it and the sealed bytes (see `postern_core::row_auth`).
const ROW_VERSION: u8 = 2;
const UNTAGGED_ROW_VERSION: u8 = 1;
const ROW_HEADER_LEN: usize = 1 + 8 + 8 + 8 + 1;

impl SessionRow {
    /// The row's bytes at rest, tagged with `key` (a zero tag without one:
    /// such rows read back only through a store without a key).
    pub fn encode(&self, key: Option<&RowKey>) -> Vec<u8> {
        let user = self.user.as_str().as_bytes();
        let mut out =
            Vec::with_capacity(ROW_HEADER_LEN + user.len() + ROW_TAG_LEN + self.sealed.len());
        out.push(ROW_VERSION);
        out.extend_from_slice(&self.expires_at.to_le_bytes());
        out.extend_from_slice(&self.last_seen.to_le_bytes());
        out.extend_from_slice(&self.revoked_at.unwrap_or(0).to_le_bytes());
        // UserId guarantees at most 64 bytes.
        out.push(user.len() as u8);
        out.extend_from_slice(user);
        let tag = key.map_or([0; ROW_TAG_LEN], |key| {
            key.tag(&[self.id.as_bytes(), &out, &self.sealed])
        });
        out.extend_from_slice(&tag);
        out.extend_from_slice(&self.sealed);
        out
    }

    /// Reads a row. With `key`, a row whose tag does not verify (edited, or
    /// written before rows were tagged) comes back marked
    /// [`SessionRow::tampered`]. Attacker-controlled input: never panics.
    pub fn decode(id: SessionId, bytes: &[u8], key: Option<&RowKey>) -> Result<Self, StoreError> {
        let (&version, rest) = bytes.split_first().ok_or(StoreError::CorruptRow("empty"))?;
        if version != ROW_VERSION && version != UNTAGGED_ROW_VERSION {
            return Err(StoreError::CorruptRow("version"));
        }
        let u64_at = |at: usize| -> Result<u64, StoreError> {
            rest.get(at..at + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or(StoreError::CorruptRow("truncated"))
        };
        let expires_at = u64_at(0)?;
        let last_seen = u64_at(8)?;
        let revoked = u64_at(16)?;
        let user_len = usize::from(*rest.get(24).ok_or(StoreError::CorruptRow("truncated"))?);
        let user = rest
            .get(25..25 + user_len)
            .ok_or(StoreError::CorruptRow("truncated"))?;
        let user = std::str::from_utf8(user)
            .ok()
            .and_then(|u| UserId::parse(u).ok())
            .ok_or(StoreError::CorruptRow("user"))?;
        let header_len = ROW_HEADER_LEN + user_len;
        let (tag, sealed) = if version == ROW_VERSION {
            let tag = bytes
                .get(header_len..header_len + ROW_TAG_LEN)
                .ok_or(StoreError::CorruptRow("truncated"))?;
            (
                Some(tag),
                bytes.get(header_len + ROW_TAG_LEN..).unwrap_or_default(),
            )
        } else {
            (None, bytes.get(header_len..).unwrap_or_default())
        };
        let tampered = match (key, tag) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(key), Some(tag)) => {
                !key.verify(&[id.as_bytes(), &bytes[..header_len], sealed], tag)
            }
        };
        Ok(Self {
            id,
            user,
            expires_at,
            last_seen,
            revoked_at: (revoked != 0).then_some(revoked),
            sealed: sealed.to_vec(),
            tampered,
        })
    }
}

/// An enrolled user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Ristretto255 identity public key.
    pub identity_key: [u8; 32],
    pub enrolled_at: UnixNanos,
    /// When the identity key was revoked, if it was.
    pub identity_revoked_at: Option<UnixNanos>,
    /// The encrypted biometric template, if one was enrolled: a BFV
    /// ciphertext only the key holder can decrypt (opaque bytes here).
    pub biometric_template: Option<Vec<u8>>,
}

/// A user record without a biometric template (the first format).
const USER_ROW_V1: u8 = 1;
/// A user row with a biometric template: the version 1 fields, then the
/// template's length (u32, little-endian) and bytes. Rows without a
/// template keep the 49-byte version 1 layout.
const USER_ROW_WITH_TEMPLATE: u8 = 2;
/// Length of a version 1 user row.
const USER_ROW_V1_LEN: usize = 49;
/// Largest template a row may hold (an encrypted template is 111,618 bytes).
pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;

impl UserRecord {
    pub fn encode(&self) -> Vec<u8> {
        let template = self.biometric_template.as_deref();
        let mut out = Vec::with_capacity(USER_ROW_V1_LEN + template.map_or(0, |t| 4 + t.len()));
        out.push(match template {
            Some(_) => USER_ROW_WITH_TEMPLATE,
            None => USER_ROW_V1,
        });
        out.extend_from_slice(&self.identity_key);
        out.extend_from_slice(&self.enrolled_at.to_le_bytes());
        out.extend_from_slice(&self.identity_revoked_at.unwrap_or(0).to_le_bytes());
        if let Some(template) = template {
            // Enrollment bounds templates by MAX_TEMPLATE_BYTES.
            out.extend_from_slice(&(template.len() as u32).to_le_bytes());
            out.extend_from_slice(template);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::CorruptRow("user record");
        let biometric_template = match bytes.first() {
            Some(&USER_ROW_V1) if bytes.len() == USER_ROW_V1_LEN => None,
            Some(&USER_ROW_WITH_TEMPLATE) => {
                let len = bytes
                    .get(USER_ROW_V1_LEN..USER_ROW_V1_LEN + 4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_le_bytes)
                    .ok_or_else(corrupt)?;
                let template = &bytes[USER_ROW_V1_LEN + 4..];
                if template.len() != len as usize || template.len() > MAX_TEMPLATE_BYTES {
                    return Err(corrupt());
                }
                Some(template.to_vec())
            }
            _ => return Err(corrupt()),
        };
        let mut identity_key = [0u8; 32];
        identity_key.copy_from_slice(&bytes[1..33]);
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[33..41]);
        let enrolled_at = u64::from_le_bytes(word);
        word.copy_from_slice(&bytes[41..49]);
        let revoked = u64::from_le_bytes(word);
        Ok(Self {
            identity_key,
            enrolled_at,
            identity_revoked_at: (revoked != 0).then_some(revoked),
            biometric_template,
        })
    }
}

/// Durable storage of sessions and users. See the module docs for the contract.
pub trait SessionStore: Send + Sync {
    /// Persists a new session durably. Refuses to overwrite an existing row.
    fn insert(&self, row: &SessionRow) -> Result<(), StoreError>;
    /// Persists several new sessions in one durable write: all or none.
    fn insert_many(&self, rows: &[SessionRow]) -> Result<(), StoreError>;
    /// Marks a session revoked, durably. `Ok(false)` if no such session.
    fn revoke(&self, id: &SessionId, at: UnixNanos) -> Result<bool, StoreError>;
    /// Records activity times. Best effort; see the module docs.
    fn touch_many(&self, updates: &[(SessionId, UnixNanos)]) -> Result<(), StoreError>;
    fn get(&self, id: &SessionId) -> Result<Option<SessionRow>, StoreError>;
    /// The ids of a user's sessions, live or revoked.
    fn list_user(&self, user: &UserId) -> Result<Vec<SessionId>, StoreError>;
    /// Visits every row (used to restore the hot tier at start).
    fn for_each(&self, visit: &mut dyn FnMut(SessionRow)) -> Result<(), StoreError>;
    /// Drops rows that expired before `before`; returns how many.
    fn remove_expired(&self, before: UnixNanos) -> Result<usize, StoreError>;
    /// Enrolls a user. `Ok(false)` if the user already exists or has a
    /// passkey (unchanged).
    fn insert_user(&self, user: &UserId, record: &UserRecord) -> Result<bool, StoreError>;
    /// Replaces a user's record if it is still `expected` (compare and
    /// set). `Ok(false)` if there is none or it changed; nothing changes
    /// then.
    fn update_user(
        &self,
        user: &UserId,
        expected: &UserRecord,
        record: &UserRecord,
    ) -> Result<bool, StoreError>;
    fn get_user(&self, user: &UserId) -> Result<Option<UserRecord>, StoreError>;
    /// The user's WebAuthn user handle, if a passkey was ever registered
    /// for the user. Reads only.
    fn passkey_user_handle(&self, user: &UserId) -> Result<Option<[u8; 16]>, StoreError>;
    /// Registers a passkey, durably, unless its credential id is already
    /// registered (to anyone) or `claim` finds the account claimed; nothing
    /// changes then. If the user has no user handle yet, the record's
    /// becomes it, in the same write.
    fn insert_passkey(
        &self,
        record: &PasskeyRecord,
        claim: AccountClaim,
    ) -> Result<PasskeyInsert, StoreError>;
    /// Records a verified use of a registered passkey, durably, if its
    /// signature counter advances (see the module docs).
    fn update_passkey(&self, record: &PasskeyRecord) -> Result<PasskeyUse, StoreError>;
    /// The passkey registered under `credential_id`, whoever owns it.
    fn get_passkey(&self, credential_id: &[u8]) -> Result<Option<PasskeyRecord>, StoreError>;
    /// A user's passkeys, in credential-id order.
    fn list_passkeys(&self, user: &UserId) -> Result<Vec<PasskeyRecord>, StoreError>;
    /// Removes a passkey, durably. With `keep_last_way_in`, a passkey that
    /// is its owner's last way in (no identity key that is not revoked, no
    /// other passkey) is kept, checked in the same write as the removal.
    fn remove_passkey(
        &self,
        credential_id: &[u8],
        keep_last_way_in: bool,
    ) -> Result<PasskeyRemoval, StoreError>;
    /// Records `by` as the credential that authorised a passkey, durably,
    /// if its `registered_by` is still `expected` (compare and set; how a
    /// suspended passkey is confirmed). `Ok(false)` if there is no such
    /// passkey or it changed; nothing changes then.
    fn reauthorise_passkey(
        &self,
        credential_id: &[u8],
        expected: [u8; 16],
        by: [u8; 16],
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alice's session, revoked at 7, as a store would hold it.
    fn revoked_row() -> SessionRow {
        SessionRow {
            id: SessionId::from_bytes([1; 16]),
            user: UserId::parse("alice").unwrap(),
            expires_at: 10,
            last_seen: 5,
            revoked_at: Some(7),
            sealed: vec![9; 40],
            tampered: false,
        }
    }

    #[test]
    fn rows_round_trip_and_corruption_is_typed() {
        let row = revoked_row();
        let bytes = row.encode(None);
        assert_eq!(SessionRow::decode(row.id, &bytes, None).unwrap(), row);
        assert_eq!(
            SessionRow::decode(row.id, &[], None).unwrap_err(),
            StoreError::CorruptRow("empty")
        );
        assert_eq!(
            SessionRow::decode(row.id, &bytes[..10], None).unwrap_err(),
            StoreError::CorruptRow("truncated")
        );
        let mut v = bytes.clone();
        v[0] = 9;
        assert_eq!(
            SessionRow::decode(row.id, &v, None).unwrap_err(),
            StoreError::CorruptRow("version")
        );
    }

    fn row_key(byte: u8) -> RowKey {
        RowKey::from_bytes(zeroize::Zeroizing::new([byte; 32]))
    }

    #[test]
    fn a_row_edited_on_disk_reads_as_tampered() {
        let key = row_key(3);
        let row = revoked_row();
        let bytes = row.encode(Some(&key));
        assert_eq!(SessionRow::decode(row.id, &bytes, Some(&key)).unwrap(), row);
        // Un-revoke: zero the revocation time in place.
        let mut unrevoked = bytes.clone();
        unrevoked[17..25].fill(0);
        let read = SessionRow::decode(row.id, &unrevoked, Some(&key)).unwrap();
        assert_eq!((read.revoked_at, read.tampered), (None, true));
        // Every other byte is covered too, and so is the row's id.
        for i in 1..bytes.len() {
            let mut edited = bytes.clone();
            edited[i] ^= 1;
            if let Ok(read) = SessionRow::decode(row.id, &edited, Some(&key)) {
                assert!(read.tampered, "byte {i}");
            }
        }
        let moved = SessionRow::decode(SessionId::from_bytes([2; 16]), &bytes, Some(&key)).unwrap();
        assert!(moved.tampered, "a row copied under another session id");
        // Another instance's key, a zero tag and an untagged v1 row.
        assert!(
            SessionRow::decode(row.id, &bytes, Some(&row_key(4)))
                .unwrap()
                .tampered
        );
        assert!(
            SessionRow::decode(row.id, &row.encode(None), Some(&key))
                .unwrap()
                .tampered
        );
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&bytes[1..31]);
        v1.extend_from_slice(&row.sealed);
        let read = SessionRow::decode(row.id, &v1, Some(&key)).unwrap();
        assert!(read.tampered, "a row from before rows were tagged");
        assert_eq!(read.sealed, row.sealed);
    }

    #[test]
    fn user_records_round_trip() {
        let rec = UserRecord {
            identity_key: [4; 32],
            enrolled_at: 3,
            identity_revoked_at: None,
            biometric_template: None,
        };
        assert_eq!(rec.encode().len(), 49);
        assert_eq!(UserRecord::decode(&rec.encode()).unwrap(), rec);
        assert_eq!(
            UserRecord::decode(&[1, 2]).unwrap_err(),
            StoreError::CorruptRow("user record")
        );
        let with = UserRecord {
            biometric_template: Some(vec![5; 1000]),
            identity_revoked_at: Some(9),
            ..rec.clone()
        };
        let bytes = with.encode();
        assert_eq!(UserRecord::decode(&bytes).unwrap(), with);
        for cut in [49, 52, 53, bytes.len() - 1] {
            assert_eq!(
                UserRecord::decode(&bytes[..cut]).unwrap_err(),
                StoreError::CorruptRow("user record")
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(UserRecord::decode(&longer).is_err());
    }

    #[test]
    fn rows_written_before_templates_existed_still_decode() {
        // A version 1 row exactly as the previous encoder wrote it.
        let mut row = vec![1u8];
        row.extend_from_slice(&[7u8; 32]);
        row.extend_from_slice(&11u64.to_le_bytes());
        row.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(row.len(), 49);
        assert_eq!(
            UserRecord::decode(&row).unwrap(),
            UserRecord {
                identity_key: [7; 32],
                enrolled_at: 11,
                identity_revoked_at: None,
                biometric_template: None,
            }
        );
        let mut long_v1 = row.clone();
        long_v1.push(0);
        assert!(UserRecord::decode(&long_v1).is_err());
    }
}
