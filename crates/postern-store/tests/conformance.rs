//! One `SessionStore` conformance suite, run on every backend.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postern_core::context::UserId;
use postern_core::token::SessionId;
use postern_store::embedded::RedbStore;
use postern_store::memory::MemoryStore;
use postern_store::{
    AccountClaim, PasskeyInsert, PasskeyRecord, PasskeyRemoval, PasskeyUse, SessionRow,
    SessionStore, StoreError, UserRecord,
};

const EXISTING: AccountClaim = AccountClaim::ExistingAccount;

fn row(id: u8, user: &str, expires_at: u64) -> SessionRow {
    SessionRow {
        id: SessionId::from_bytes([id; 16]),
        user: UserId::parse(user).unwrap(),
        expires_at,
        last_seen: 1,
        revoked_at: None,
        sealed: vec![id; 64],
        tampered: false,
    }
}

fn conformance(store: &dyn SessionStore) {
    inserted_rows_read_back_exactly(store);
    a_session_id_is_never_overwritten(store);
    revocation_is_recorded_once_and_kept(store);
    activity_only_moves_forward(store);
    the_user_index_lists_each_users_sessions(store);
    expired_rows_are_removed_with_their_index_entries(store);
    users_enroll_once_and_update_by_compare_and_set(store);
    a_batch_insert_is_all_or_nothing(store);
    a_user_handle_is_chosen_once(store);
    a_credential_id_is_registered_once(store);
    passkeys_are_found_by_credential_id_and_listed_by_user(store);
    a_passkey_use_moves_the_counter_forward_and_keeps_the_owner(store);
    a_passkey_is_reauthorised_by_compare_and_set(store);
    claiming_an_account_is_exclusive(store);
    racing_claims_for_one_account_have_one_winner(store);
    racing_uses_of_one_counter_have_one_winner(store);
}

fn identity(key: u8) -> UserRecord {
    UserRecord {
        identity_key: [key; 32],
        enrolled_at: 1,
        identity_revoked_at: None,
        biometric_template: None,
    }
}

fn claiming_an_account_is_exclusive(store: &dyn SessionStore) {
    let new = AccountClaim::NewAccount;
    let carol = UserId::parse("carol").unwrap();
    assert_eq!(
        store.insert_passkey(&passkey(20, "carol", 0), new).unwrap(),
        PasskeyInsert::Inserted
    );
    assert!(!store.insert_user(&carol, &identity(1)).unwrap());
    assert_eq!(store.get_user(&carol).unwrap(), None);
    assert_eq!(
        store.insert_passkey(&passkey(21, "carol", 0), new).unwrap(),
        PasskeyInsert::AccountClaimed
    );
    assert_eq!(store.get_passkey(&[21; 20]).unwrap(), None);
    assert_eq!(
        store
            .insert_passkey(&passkey(21, "carol", 0), EXISTING)
            .unwrap(),
        PasskeyInsert::Inserted
    );

    let dave = UserId::parse("dave").unwrap();
    assert!(store.insert_user(&dave, &identity(2)).unwrap());
    assert_eq!(
        store.insert_passkey(&passkey(22, "dave", 0), new).unwrap(),
        PasskeyInsert::AccountClaimed
    );
    assert!(store.list_passkeys(&dave).unwrap().is_empty());
    assert_eq!(store.get_passkey(&[22; 20]).unwrap(), None);
}

/// An identity enrollment and first passkey registrations race for one
/// name: exactly one of them claims it.
fn racing_claims_for_one_account_have_one_winner(store: &dyn SessionStore) {
    let erin = UserId::parse("erin").unwrap();
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for i in 0..8u8 {
            let (erin, wins) = (&erin, &wins);
            scope.spawn(move || {
                let won = if i % 2 == 0 {
                    store.insert_user(erin, &identity(i)).unwrap()
                } else {
                    store
                        .insert_passkey(&passkey(30 + i, "erin", 0), AccountClaim::NewAccount)
                        .unwrap()
                        == PasskeyInsert::Inserted
                };
                if won {
                    wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(wins.into_inner(), 1);
    let enrolled = store.get_user(&erin).unwrap().is_some();
    let passkeys = store.list_passkeys(&erin).unwrap().len();
    assert_eq!(usize::from(enrolled) + passkeys, 1);
}

/// Logins that verified against the same stored counter race to record
/// their use: only one is recorded.
fn racing_uses_of_one_counter_have_one_winner(store: &dyn SessionStore) {
    assert_eq!(
        store
            .insert_passkey(&passkey(40, "frank", 7), AccountClaim::NewAccount)
            .unwrap(),
        PasskeyInsert::Inserted
    );
    let recorded = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for i in 0..8u8 {
            let recorded = &recorded;
            scope.spawn(move || {
                let used = PasskeyRecord {
                    counter: 8,
                    credential: vec![i; 4],
                    ..passkey(40, "frank", 7)
                };
                match store.update_passkey(&used).unwrap() {
                    PasskeyUse::Recorded => {
                        recorded.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    refused => assert_eq!(refused, PasskeyUse::CounterNotAdvanced { stored: 8 }),
                }
            });
        }
    });
    assert_eq!(recorded.into_inner(), 1);
    assert_eq!(store.get_passkey(&[40; 20]).unwrap().unwrap().counter, 8);
}

fn passkey(id: u8, user: &str, counter: u32) -> PasskeyRecord {
    PasskeyRecord {
        credential_id: vec![id; 20],
        user: UserId::parse(user).unwrap(),
        user_handle: [id; 16],
        credential: format!("credential-{id}").into_bytes(),
        counter,
        backup_eligible: false,
        backup_state: false,
        created_at: 100,
        last_used_at: None,
        registered_by: [id.wrapping_add(1); 16],
    }
}

fn a_user_handle_is_chosen_once(store: &dyn SessionStore) {
    let hana = UserId::parse("hana").unwrap();
    // Reading writes nothing: a name nobody registered has no handle.
    assert_eq!(store.passkey_user_handle(&hana).unwrap(), None);
    assert_eq!(store.passkey_user_handle(&hana).unwrap(), None);
    // The first registration to finish chooses it; later ones keep it.
    let first = passkey(90, "hana", 0);
    store
        .insert_passkey(&first, AccountClaim::NewAccount)
        .unwrap();
    assert_eq!(store.passkey_user_handle(&hana).unwrap(), Some([90; 16]));
    store
        .insert_passkey(&passkey(91, "hana", 0), EXISTING)
        .unwrap();
    assert_eq!(store.passkey_user_handle(&hana).unwrap(), Some([90; 16]));
    // A refused registration chooses nothing.
    let ivan = UserId::parse("ivan").unwrap();
    let mut taken = passkey(90, "ivan", 0);
    taken.user_handle = [7; 16];
    assert_eq!(
        store.insert_passkey(&taken, EXISTING).unwrap(),
        PasskeyInsert::CredentialTaken
    );
    assert_eq!(store.passkey_user_handle(&ivan).unwrap(), None);
}

fn a_credential_id_is_registered_once(store: &dyn SessionStore) {
    assert_eq!(
        store
            .insert_passkey(&passkey(10, "alice", 0), EXISTING)
            .unwrap(),
        PasskeyInsert::Inserted
    );
    let mut stolen = passkey(10, "mallory", 0);
    stolen.credential = b"mallory's key".to_vec();
    assert_eq!(
        store.insert_passkey(&stolen, EXISTING).unwrap(),
        PasskeyInsert::CredentialTaken
    );
    assert_eq!(
        store.get_passkey(&[10; 20]).unwrap(),
        Some(passkey(10, "alice", 0))
    );
    assert!(store
        .list_passkeys(&UserId::parse("mallory").unwrap())
        .unwrap()
        .is_empty());
}

fn passkeys_are_found_by_credential_id_and_listed_by_user(store: &dyn SessionStore) {
    assert_eq!(
        store
            .insert_passkey(&passkey(11, "alice", 3), EXISTING)
            .unwrap(),
        PasskeyInsert::Inserted
    );
    assert_eq!(
        store
            .insert_passkey(&passkey(12, "bob", 0), EXISTING)
            .unwrap(),
        PasskeyInsert::Inserted
    );
    let ids: Vec<Vec<u8>> = store
        .list_passkeys(&UserId::parse("alice").unwrap())
        .unwrap()
        .into_iter()
        .map(|p| p.credential_id)
        .collect();
    assert_eq!(ids, vec![vec![10; 20], vec![11; 20]]);
    let bobs = store.get_passkey(&[12; 20]).unwrap().unwrap();
    assert_eq!(bobs, passkey(12, "bob", 0), "read back exactly");
    assert_eq!(store.get_passkey(&[13; 20]).unwrap(), None);

    // Bob has no identity key: his only passkey is his last way in, kept
    // when asked; removal takes it out of both lookups, once.
    assert_eq!(
        store.remove_passkey(&[12; 20], true).unwrap(),
        PasskeyRemoval::LastWayIn
    );
    assert_eq!(store.get_passkey(&[12; 20]).unwrap(), Some(bobs));
    assert_eq!(
        store.remove_passkey(&[12; 20], false).unwrap(),
        PasskeyRemoval::Removed
    );
    assert_eq!(
        store.remove_passkey(&[12; 20], false).unwrap(),
        PasskeyRemoval::NotRegistered
    );
    // Alice has two passkeys: either may go, not both.
    assert_eq!(
        store.remove_passkey(&[10; 20], true).unwrap(),
        PasskeyRemoval::Removed
    );
    assert_eq!(
        store.remove_passkey(&[11; 20], true).unwrap(),
        PasskeyRemoval::LastWayIn
    );
    assert_eq!(store.get_passkey(&[12; 20]).unwrap(), None);
    assert!(store
        .list_passkeys(&UserId::parse("bob").unwrap())
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .insert_passkey(&passkey(12, "bob", 0), EXISTING)
            .unwrap(),
        PasskeyInsert::Inserted,
        "a removed credential id can be registered again"
    );
}

fn a_passkey_use_moves_the_counter_forward_and_keeps_the_owner(store: &dyn SessionStore) {
    let used = PasskeyRecord {
        counter: 9,
        backup_eligible: true,
        backup_state: true,
        last_used_at: Some(200),
        credential: b"updated".to_vec(),
        ..passkey(11, "mallory", 0)
    };
    assert_eq!(store.update_passkey(&used).unwrap(), PasskeyUse::Recorded);
    let stored = store.get_passkey(&[11; 20]).unwrap().unwrap();
    assert_eq!(
        stored,
        PasskeyRecord {
            counter: 9,
            backup_eligible: true,
            backup_state: true,
            last_used_at: Some(200),
            credential: b"updated".to_vec(),
            ..passkey(11, "alice", 3)
        }
    );
    for counter in [4, 9] {
        let replayed = PasskeyRecord {
            counter,
            last_used_at: Some(300),
            credential: b"replayed".to_vec(),
            ..stored.clone()
        };
        assert_eq!(
            store.update_passkey(&replayed).unwrap(),
            PasskeyUse::CounterNotAdvanced { stored: 9 }
        );
        // The stored credential, counter and times stay as they were.
        assert_eq!(store.get_passkey(&[11; 20]).unwrap().unwrap(), stored);
    }
    assert_eq!(
        store.update_passkey(&passkey(14, "alice", 1)).unwrap(),
        PasskeyUse::UnknownCredential
    );
    assert_eq!(store.get_passkey(&[14; 20]).unwrap(), None);
}

fn a_passkey_is_reauthorised_by_compare_and_set(store: &dyn SessionStore) {
    let before = store.get_passkey(&[11; 20]).unwrap().unwrap();
    assert_eq!(before.registered_by, [12; 16]);
    // A stale expectation changes nothing.
    assert!(!store
        .reauthorise_passkey(&[11; 20], [99; 16], [50; 16])
        .unwrap());
    assert_eq!(store.get_passkey(&[11; 20]).unwrap().unwrap(), before);
    assert!(store
        .reauthorise_passkey(&[11; 20], [12; 16], [50; 16])
        .unwrap());
    assert_eq!(
        store.get_passkey(&[11; 20]).unwrap().unwrap(),
        PasskeyRecord {
            registered_by: [50; 16],
            ..before.clone()
        },
        "only the authoriser changed"
    );
    assert!(!store
        .reauthorise_passkey(&[11; 20], [12; 16], [51; 16])
        .unwrap());
    assert!(!store
        .reauthorise_passkey(&[77; 20], [0; 16], [51; 16])
        .unwrap());
    assert!(store
        .reauthorise_passkey(&[11; 20], [50; 16], [12; 16])
        .unwrap());
    assert_eq!(store.get_passkey(&[11; 20]).unwrap().unwrap(), before);
}

fn inserted_rows_read_back_exactly(store: &dyn SessionStore) {
    let r = row(1, "alice", 100);
    store.insert(&r).unwrap();
    assert_eq!(store.get(&r.id).unwrap(), Some(r));
    assert_eq!(store.get(&SessionId::from_bytes([99; 16])).unwrap(), None);
}

fn a_session_id_is_never_overwritten(store: &dyn SessionStore) {
    let mut r = row(1, "alice", 100);
    r.sealed = vec![0xEE; 8];
    assert_eq!(
        store.insert(&r).unwrap_err(),
        StoreError::CorruptRow("duplicate session id")
    );
    assert_eq!(store.get(&r.id).unwrap().unwrap().sealed, vec![1; 64]);
}

fn a_batch_insert_is_all_or_nothing(store: &dyn SessionStore) {
    let batch = [
        row(60, "dora", 100),
        row(61, "dora", 100),
        row(62, "eve", 100),
    ];
    store.insert_many(&batch).unwrap();
    for r in &batch {
        assert_eq!(store.get(&r.id).unwrap().as_ref(), Some(r));
    }
    // One duplicate (with a stored row, or inside the batch) refuses it all.
    for bad in [
        vec![row(63, "dora", 100), row(60, "dora", 100)],
        vec![row(64, "dora", 100), row(64, "dora", 100)],
    ] {
        assert_eq!(
            store.insert_many(&bad).unwrap_err(),
            StoreError::CorruptRow("duplicate session id")
        );
        assert_eq!(store.get(&bad[0].id).unwrap(), None);
    }
    assert_eq!(
        store
            .list_user(&UserId::parse("dora").unwrap())
            .unwrap()
            .len(),
        2
    );
}

fn revocation_is_recorded_once_and_kept(store: &dyn SessionStore) {
    let id = SessionId::from_bytes([1; 16]);
    assert!(store.revoke(&id, 50).unwrap());
    assert!(store.revoke(&id, 60).unwrap());
    assert_eq!(store.get(&id).unwrap().unwrap().revoked_at, Some(50));
    assert!(!store.revoke(&SessionId::from_bytes([98; 16]), 50).unwrap());
}

fn activity_only_moves_forward(store: &dyn SessionStore) {
    let id = SessionId::from_bytes([1; 16]);
    store.touch_many(&[(id, 40)]).unwrap();
    store
        .touch_many(&[(id, 30), (SessionId::from_bytes([97; 16]), 5)])
        .unwrap();
    assert_eq!(store.get(&id).unwrap().unwrap().last_seen, 40);
}

fn the_user_index_lists_each_users_sessions(store: &dyn SessionStore) {
    store.insert(&row(2, "alice", 200)).unwrap();
    store.insert(&row(3, "bob", 300)).unwrap();
    let mut alice = store.list_user(&UserId::parse("alice").unwrap()).unwrap();
    alice.sort();
    assert_eq!(
        alice,
        vec![
            SessionId::from_bytes([1; 16]),
            SessionId::from_bytes([2; 16])
        ]
    );
    assert_eq!(
        store.list_user(&UserId::parse("bob").unwrap()).unwrap(),
        vec![SessionId::from_bytes([3; 16])]
    );
    assert!(store
        .list_user(&UserId::parse("carol").unwrap())
        .unwrap()
        .is_empty());
    let mut all = Vec::new();
    store.for_each(&mut |r| all.push(r.id)).unwrap();
    assert_eq!(all.len(), 3);
}

fn expired_rows_are_removed_with_their_index_entries(store: &dyn SessionStore) {
    assert_eq!(store.remove_expired(200).unwrap(), 1);
    assert_eq!(store.get(&SessionId::from_bytes([1; 16])).unwrap(), None);
    assert_eq!(
        store.list_user(&UserId::parse("alice").unwrap()).unwrap(),
        vec![SessionId::from_bytes([2; 16])]
    );
    assert_eq!(store.remove_expired(200).unwrap(), 0);
}

fn users_enroll_once_and_update_by_compare_and_set(store: &dyn SessionStore) {
    let alice = UserId::parse("alice").unwrap();
    let rec = UserRecord {
        identity_key: [5; 32],
        enrolled_at: 9,
        identity_revoked_at: None,
        biometric_template: None,
    };
    assert!(store.insert_user(&alice, &rec).unwrap());
    let other = UserRecord {
        identity_key: [6; 32],
        ..rec.clone()
    };
    assert!(!store.insert_user(&alice, &other).unwrap());
    assert_eq!(store.get_user(&alice).unwrap(), Some(rec.clone()));
    let revoked = UserRecord {
        identity_revoked_at: Some(11),
        biometric_template: Some(vec![3; 2000]),
        ..rec.clone()
    };
    assert!(store.update_user(&alice, &rec, &revoked).unwrap());
    assert_eq!(store.get_user(&alice).unwrap(), Some(revoked.clone()));
    // A writer that read the record before that update loses.
    assert!(!store.update_user(&alice, &rec, &other).unwrap());
    assert_eq!(store.get_user(&alice).unwrap(), Some(revoked.clone()));
    assert!(!store
        .update_user(&UserId::parse("nobody").unwrap(), &rec, &revoked)
        .unwrap());
    assert_eq!(
        store.get_user(&UserId::parse("nobody").unwrap()).unwrap(),
        None
    );
}

#[test]
fn the_memory_store_meets_the_contract() {
    conformance(&MemoryStore::default());
}

#[test]
fn the_redb_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&RedbStore::open(&dir.path().join("sessions.redb")).unwrap());
}

fn row_key(byte: u8) -> postern_core::row_auth::RowKey {
    postern_core::row_auth::RowKey::from_bytes(zeroize::Zeroizing::new([byte; 32]))
}

#[test]
fn the_redb_store_with_a_row_key_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance(
        &RedbStore::open(&dir.path().join("sessions.redb"))
            .unwrap()
            .with_row_key(row_key(1)),
    );
}

#[test]
fn a_revocation_cleared_on_disk_reads_back_as_tampered_and_is_not_laundered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.redb");
    let id = SessionId::from_bytes([7; 16]);
    {
        let store = RedbStore::open(&path).unwrap().with_row_key(row_key(1));
        store.insert(&row(7, "alice", 100)).unwrap();
        store.revoke(&id, 42).unwrap();
        let back = store.get(&id).unwrap().unwrap();
        assert_eq!((back.revoked_at, back.tampered), (Some(42), false));
    }
    // A disk writer zeroes the revocation time in place (bytes 17..25).
    {
        use redb::ReadableTable;
        let db = redb::Database::create(&path).unwrap();
        let table: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("sessions");
        let tx = db.begin_write().unwrap();
        {
            let mut sessions = tx.open_table(table).unwrap();
            let mut bytes = sessions
                .get(id.as_bytes().as_slice())
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            bytes[17..25].fill(0);
            sessions
                .insert(id.as_bytes().as_slice(), bytes.as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let store = RedbStore::open(&path).unwrap().with_row_key(row_key(1));
    let back = store.get(&id).unwrap().unwrap();
    assert_eq!((back.revoked_at, back.tampered), (None, true));
    // Activity does not re-tag it.
    store.touch_many(&[(id, 90)]).unwrap();
    let back = store.get(&id).unwrap().unwrap();
    assert_eq!((back.last_seen, back.tampered), (1, true));
    // Another instance's key does not verify untouched rows either.
    let other = RedbStore::open(&dir.path().join("other.redb"))
        .unwrap()
        .with_row_key(row_key(1));
    other.insert(&row(8, "bob", 100)).unwrap();
    drop(other);
    let foreign = RedbStore::open(&dir.path().join("other.redb"))
        .unwrap()
        .with_row_key(row_key(2));
    assert!(
        foreign
            .get(&SessionId::from_bytes([8; 16]))
            .unwrap()
            .unwrap()
            .tampered
    );
}

#[test]
fn the_redb_store_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        store.insert(&row(7, "alice", 100)).unwrap();
        store.revoke(&SessionId::from_bytes([7; 16]), 42).unwrap();
        store
            .insert_passkey(&passkey(7, "alice", 1), EXISTING)
            .unwrap();
        store
            .update_passkey(&PasskeyRecord {
                counter: 5,
                backup_state: true,
                last_used_at: Some(50),
                ..passkey(7, "alice", 1)
            })
            .unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    let back = store.get(&SessionId::from_bytes([7; 16])).unwrap().unwrap();
    assert_eq!(back.revoked_at, Some(42));
    assert_eq!(back.sealed, vec![7; 64]);
    let alice = UserId::parse("alice").unwrap();
    let passkeys = store.list_passkeys(&alice).unwrap();
    assert_eq!(passkeys.len(), 1);
    assert_eq!(
        (
            passkeys[0].counter,
            passkeys[0].backup_state,
            passkeys[0].last_used_at
        ),
        (5, true, Some(50))
    );
    assert_eq!(store.passkey_user_handle(&alice).unwrap(), Some([7; 16]));
}
