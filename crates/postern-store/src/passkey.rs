//! Registered passkeys (WebAuthn credentials) as the store keeps them.
//!
//! The store does not understand WebAuthn: the credential itself (public
//! key, algorithm, registration policy) is an opaque blob that the passkey
//! stage serialises and verifies. What the store does know is what it must
//! index and keep current: the credential id (for usernameless login, where
//! the assertion names only the credential), the owner and the owner's
//! WebAuthn user handle, the signature counter and the backup flags.
//!
//! A record holds no secret: a passkey's private key never leaves the
//! authenticator.

use postern_core::context::UserId;
use postern_core::UnixNanos;

use crate::store::StoreError;

/// The longest credential id WebAuthn allows (Level 3, §5.1: "at most 1023
/// bytes").
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// One registered passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// The authenticator-chosen credential id (1 to 1023 bytes).
    pub credential_id: Vec<u8>,
    pub user: UserId,
    /// The owner's WebAuthn user handle, as registered with the credential.
    pub user_handle: [u8; 16],
    /// The credential as the passkey stage serialised it (opaque here).
    pub credential: Vec<u8>,
    /// The authenticator's signature counter at the last accepted use.
    pub counter: u32,
    /// The credential may be backed up (synced) to other devices.
    pub backup_eligible: bool,
    /// The credential is backed up, as of the last accepted use.
    pub backup_state: bool,
    pub created_at: UnixNanos,
    pub last_used_at: Option<UnixNanos>,
    /// The credential of the session that authorised registering this
    /// passkey on an existing account (an identity key's `credential_id`
    /// or another passkey's [`session_credential`]); all zero when the
    /// passkey founded the account. When that credential stops being one
    /// the user can authenticate with (revoked, replaced or removed), this
    /// passkey is suspended (see [`standings`]): whoever held it could
    /// have added it. Confirming the passkey from another credential
    /// records that credential here instead.
    pub registered_by: [u8; 16],
}

/// Version 1 had no `registered_by`; it reads back as all zero.
const RECORD_VERSION_1: u8 = 1;
const RECORD_VERSION: u8 = 2;
const BACKUP_ELIGIBLE: u8 = 1;
const BACKUP_STATE: u8 = 2;
/// After the version (and, from version 2, `registered_by`): handle,
/// counter, flags, created, last used, user length.
const FIXED_LEN: usize = 16 + 4 + 1 + 8 + 8 + 1;

/// The 16-byte credential name a session records when a passkey
/// authenticated it (an identity key's is its `credential_id`).
pub fn session_credential(credential_id: &[u8]) -> [u8; 16] {
    use sha3::{Digest, Sha3_256};
    let digest: [u8; 32] = Sha3_256::new()
        .chain_update(b"postern passkey credential v1")
        .chain_update(credential_id)
        .finalize()
        .into();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

impl PasskeyRecord {
    /// The credential name sessions this passkey authenticated carry.
    pub fn session_credential(&self) -> [u8; 16] {
        session_credential(&self.credential_id)
    }

    /// Encodes everything but the credential id (the key it is stored under).
    pub fn encode(&self) -> Vec<u8> {
        let user = self.user.as_str().as_bytes();
        let mut out = Vec::with_capacity(17 + FIXED_LEN + user.len() + self.credential.len());
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.registered_by);
        out.extend_from_slice(&self.user_handle);
        out.extend_from_slice(&self.counter.to_le_bytes());
        let mut flags = 0;
        if self.backup_eligible {
            flags |= BACKUP_ELIGIBLE;
        }
        if self.backup_state {
            flags |= BACKUP_STATE;
        }
        out.push(flags);
        out.extend_from_slice(&self.created_at.to_le_bytes());
        out.extend_from_slice(&self.last_used_at.unwrap_or(0).to_le_bytes());
        // UserId guarantees at most 64 bytes.
        out.push(user.len() as u8);
        out.extend_from_slice(user);
        out.extend_from_slice(&self.credential);
        out
    }

    /// Decodes a record stored under `credential_id`. Corrupt input is a
    /// typed error, never a panic.
    pub fn decode(credential_id: &[u8], bytes: &[u8]) -> Result<Self, StoreError> {
        if credential_id.is_empty() || credential_id.len() > MAX_CREDENTIAL_ID_LEN {
            return Err(StoreError::CorruptRow("passkey credential id"));
        }
        let mut registered_by = [0u8; 16];
        let bytes = match bytes.split_first() {
            Some((&RECORD_VERSION_1, body)) => body,
            Some((&RECORD_VERSION, rest)) if rest.len() >= 16 => {
                registered_by.copy_from_slice(&rest[..16]);
                &rest[16..]
            }
            Some((&RECORD_VERSION, _)) => return Err(StoreError::CorruptRow("truncated")),
            _ => return Err(StoreError::CorruptRow("version")),
        };
        if bytes.len() < FIXED_LEN {
            return Err(StoreError::CorruptRow("truncated"));
        }
        let mut user_handle = [0u8; 16];
        user_handle.copy_from_slice(&bytes[0..16]);
        let mut word = [0u8; 4];
        word.copy_from_slice(&bytes[16..20]);
        let counter = u32::from_le_bytes(word);
        let flags = bytes[20];
        if flags & !(BACKUP_ELIGIBLE | BACKUP_STATE) != 0 {
            return Err(StoreError::CorruptRow("passkey flags"));
        }
        let mut long = [0u8; 8];
        long.copy_from_slice(&bytes[21..29]);
        let created_at = u64::from_le_bytes(long);
        long.copy_from_slice(&bytes[29..37]);
        let last_used = u64::from_le_bytes(long);
        let user_len = usize::from(bytes[37]);
        let user = bytes
            .get(FIXED_LEN..FIXED_LEN + user_len)
            .ok_or(StoreError::CorruptRow("truncated"))?;
        let user = std::str::from_utf8(user)
            .ok()
            .and_then(|u| UserId::parse(u).ok())
            .ok_or(StoreError::CorruptRow("user"))?;
        let credential = bytes[FIXED_LEN + user_len..].to_vec();
        if credential.is_empty() {
            return Err(StoreError::CorruptRow("passkey credential"));
        }
        Ok(Self {
            credential_id: credential_id.to_vec(),
            user,
            user_handle,
            credential,
            counter,
            backup_eligible: flags & BACKUP_ELIGIBLE != 0,
            backup_state: flags & BACKUP_STATE != 0,
            created_at,
            last_used_at: (last_used != 0).then_some(last_used),
            registered_by,
        })
    }

    /// This record after the use described by `used`, or why that use is
    /// refused. The contract of [`crate::SessionStore::update_passkey`]:
    /// the owner, handle and creation time never change, and the signature
    /// counter must move forward (WebAuthn Level 3, §7.2 step 22: if
    /// either the stored or the presented count is nonzero, a presented
    /// count that is not greater than the stored one signals a cloned
    /// authenticator). Applied inside the store's write, this is a
    /// compare-and-set: of two uses that read the same stored counter, the
    /// second to write is refused.
    pub fn after_use(&self, used: &PasskeyRecord) -> Result<PasskeyRecord, PasskeyUse> {
        let counts = self.counter != 0 || used.counter != 0;
        if counts && used.counter <= self.counter {
            return Err(PasskeyUse::CounterNotAdvanced {
                stored: self.counter,
            });
        }
        Ok(PasskeyRecord {
            credential_id: self.credential_id.clone(),
            user: self.user.clone(),
            user_handle: self.user_handle,
            credential: used.credential.clone(),
            counter: used.counter,
            backup_eligible: used.backup_eligible,
            backup_state: used.backup_state,
            created_at: self.created_at,
            last_used_at: used.last_used_at.or(self.last_used_at),
            registered_by: self.registered_by,
        })
    }
}

/// Whether a passkey may be used, as [`standings`] judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It founded the account (`registered_by` all zero), or the
    /// credential that authorised it is one the user can authenticate
    /// with now.
    Active,
    /// The credential that authorised it, or transitively the one that
    /// authorised that, was revoked, replaced or removed. A suspended
    /// passkey cannot log in, and sessions it authenticated are revoked,
    /// until it is confirmed from another current credential or removed.
    Suspended,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Active => "active",
            Standing::Suspended => "suspended",
        }
    }
}

/// The standing of each of one user's `passkeys` (same order), given the
/// credential id of the user's identity key if it is live (not revoked).
///
/// The rule: a credential that was revoked, replaced or removed may have
/// been stolen, and so may everything it authorised. A passkey is active
/// when it founded the account or when its `registered_by` names a live
/// identity key or an active passkey (by [`session_credential`]); every
/// other passkey is suspended. This is the least fixed point from the
/// founders and the live key, so a chain (a stolen key added passkey A, A
/// added B) is suspended whole, and so is a cycle with no live root.
///
/// Pure and derived on every read, never stored: there is no suspension
/// write to lose in a crash or to race with, and confirming a passkey is
/// re-pointing its `registered_by` at the confirming credential.
/// Quadratic in the number of passkeys in the worst case (a chain listed
/// backwards), which is a handful per user.
pub fn standings(live_identity: Option<[u8; 16]>, passkeys: &[PasskeyRecord]) -> Vec<Standing> {
    let mut standing = vec![Standing::Suspended; passkeys.len()];
    let mut current: Vec<[u8; 16]> = live_identity.into_iter().collect();
    loop {
        let mut changed = false;
        for (passkey, standing) in passkeys.iter().zip(standing.iter_mut()) {
            if *standing == Standing::Suspended
                && (passkey.registered_by == [0; 16] || current.contains(&passkey.registered_by))
            {
                *standing = Standing::Active;
                current.push(passkey.session_credential());
                changed = true;
            }
        }
        if !changed {
            return standing;
        }
    }
}

/// What [`crate::SessionStore::update_passkey`] did with a use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyUse {
    /// The use is recorded, durably.
    Recorded,
    /// No passkey is registered under that credential id.
    UnknownCredential,
    /// The presented signature counter is not greater than the stored one
    /// (a replayed, concurrent or cloned use); nothing changed.
    CounterNotAdvanced { stored: u32 },
}

/// Whom [`crate::SessionStore::insert_passkey`] may register a passkey for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountClaim {
    /// A user with no credential at all: the registration claims the
    /// account, so it is refused if the user has an identity key or a
    /// passkey by the time it is written.
    NewAccount,
    /// A user whose session the caller has authenticated.
    ExistingAccount,
}

/// What [`crate::SessionStore::remove_passkey`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyRemoval {
    Removed,
    /// No passkey is registered under the credential id.
    NotRegistered,
    /// Kept: it is its owner's last way in (no identity key that is not
    /// revoked, no other passkey), and the caller asked to keep that.
    LastWayIn,
}

/// What [`crate::SessionStore::insert_passkey`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyInsert {
    Inserted,
    /// The credential id is already registered (to anyone); nothing changed.
    CredentialTaken,
    /// A [`AccountClaim::NewAccount`] registration found the account
    /// already claimed; nothing changed.
    AccountClaimed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PasskeyRecord {
        PasskeyRecord {
            credential_id: vec![7; 32],
            user: UserId::parse("alice").unwrap(),
            user_handle: [3; 16],
            credential: b"{\"cred\":1}".to_vec(),
            counter: 41,
            backup_eligible: true,
            backup_state: false,
            created_at: 10,
            last_used_at: Some(12),
            registered_by: [5; 16],
        }
    }

    #[test]
    fn records_round_trip_and_corruption_is_typed() {
        let r = record();
        let bytes = r.encode();
        assert_eq!(PasskeyRecord::decode(&r.credential_id, &bytes).unwrap(), r);
        assert_eq!(
            PasskeyRecord::decode(&r.credential_id, &bytes[..20]).unwrap_err(),
            StoreError::CorruptRow("truncated")
        );
        assert_eq!(
            PasskeyRecord::decode(&[], &bytes).unwrap_err(),
            StoreError::CorruptRow("passkey credential id")
        );
        let mut bad = bytes.clone();
        bad[0] = 3;
        assert_eq!(
            PasskeyRecord::decode(&r.credential_id, &bad).unwrap_err(),
            StoreError::CorruptRow("version")
        );
        // A version 1 record (no `registered_by`) reads back with none.
        let mut v1 = vec![RECORD_VERSION_1];
        v1.extend_from_slice(&bytes[17..]);
        let old = PasskeyRecord::decode(&r.credential_id, &v1).unwrap();
        assert_eq!(
            old,
            PasskeyRecord {
                registered_by: [0; 16],
                ..r.clone()
            }
        );
        let mut bad = bytes.clone();
        bad[17 + 20] = 0x80;
        assert_eq!(
            PasskeyRecord::decode(&r.credential_id, &bad).unwrap_err(),
            StoreError::CorruptRow("passkey flags")
        );
        let header_only = &bytes[..17 + FIXED_LEN + 5];
        assert_eq!(
            PasskeyRecord::decode(&r.credential_id, header_only).unwrap_err(),
            StoreError::CorruptRow("passkey credential")
        );
    }

    #[test]
    fn a_use_moves_the_counter_forward_and_keeps_the_owner() {
        let stored = record();
        let used = PasskeyRecord {
            user: UserId::parse("mallory").unwrap(),
            user_handle: [9; 16],
            counter: 42,
            backup_state: true,
            last_used_at: Some(99),
            created_at: 0,
            credential: b"new".to_vec(),
            ..record()
        };
        let merged = stored.after_use(&used).unwrap();
        assert_eq!(merged.user.as_str(), "alice");
        assert_eq!(merged.user_handle, [3; 16]);
        assert_eq!(merged.counter, 42);
        assert_eq!(merged.credential, b"new");
        assert!(merged.backup_state);
        assert_eq!(merged.last_used_at, Some(99));
        assert_eq!(merged.created_at, 10);
    }

    fn authorised_by(id: u8, by: [u8; 16]) -> PasskeyRecord {
        PasskeyRecord {
            credential_id: vec![id; 8],
            registered_by: by,
            ..record()
        }
    }

    #[test]
    fn passkeys_authorised_by_a_dead_credential_are_suspended_transitively() {
        use Standing::{Active, Suspended};
        let key = [1; 16];
        let founder = authorised_by(10, [0; 16]);
        let by_key = authorised_by(11, key);
        // Listed before its authoriser: the order does not matter.
        let by_by_key = authorised_by(12, by_key.session_credential());
        let by_founder = authorised_by(13, founder.session_credential());
        let all = [
            by_by_key.clone(),
            founder.clone(),
            by_key.clone(),
            by_founder.clone(),
        ];
        assert_eq!(
            standings(Some(key), &all),
            vec![Active, Active, Active, Active]
        );
        // The key revoked or replaced: what it added, and what that added,
        // is suspended; the founder's line is not.
        assert_eq!(
            standings(None, &all),
            vec![Suspended, Active, Suspended, Active]
        );
        assert_eq!(
            standings(Some([2; 16]), &all),
            vec![Suspended, Active, Suspended, Active]
        );
        // The founder removed: its line is suspended.
        assert_eq!(
            standings(Some(key), &[by_founder, by_key.clone()]),
            vec![Suspended, Active]
        );
        // Two passkeys that authorised each other have no live root.
        let a = authorised_by(20, authorised_by(21, [0; 16]).session_credential());
        let b = authorised_by(21, a.session_credential());
        assert_eq!(standings(None, &[a, b]), vec![Suspended, Suspended]);
        assert_eq!(standings(None, &[]), Vec::<Standing>::new());
    }

    #[test]
    fn a_counter_that_does_not_advance_is_refused_unless_both_are_zero() {
        let at = |counter| PasskeyRecord {
            counter,
            ..record()
        };
        for (stored, used, accepted) in [
            (0, 0, true),
            (0, 1, true),
            (41, 42, true),
            (41, u32::MAX, true),
            (41, 41, false),
            (41, 40, false),
            (41, 0, false),
            (u32::MAX, u32::MAX, false),
        ] {
            let outcome = at(stored).after_use(&at(used));
            assert_eq!(outcome.is_ok(), accepted, "stored {stored}, used {used}");
            if let Err(refusal) = outcome {
                assert_eq!(refusal, PasskeyUse::CounterNotAdvanced { stored });
            }
        }
    }
}
