//! The session authority over real keys and a real redb file.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use postern_core::context::UserId;
use postern_core::device::Fingerprint;
use postern_core::keyring::Keyring;
use postern_core::policy::{Decision, Reason};
use postern_core::token::SessionToken;
use postern_core::SECOND;
use postern_store::embedded::RedbStore;
use postern_store::memory::MemoryStore;
use postern_store::{
    AuthorityConfig, NewSession, RestoreReport, SessionAuthority, SessionRow, SessionStore,
};

const T0: u64 = 1_700_000_000 * SECOND;
const MIN: u64 = 60 * SECOND;

fn alice() -> UserId {
    UserId::parse("alice").unwrap()
}

fn laptop() -> Fingerprint {
    Fingerprint::single("laptop").unwrap()
}

fn authority(
    store: Arc<dyn SessionStore>,
    keyring: Arc<Keyring>,
    now: u64,
) -> (SessionAuthority, RestoreReport) {
    SessionAuthority::restore(keyring, store, AuthorityConfig::default(), now).unwrap()
}

#[test]
fn a_minted_session_resumes_on_its_device_only() {
    let mut rng = rand::thread_rng();
    let keyring = Arc::new(Keyring::generate(T0, &mut rng));
    let (auth, _) = authority(Arc::new(MemoryStore::default()), keyring, T0);
    let minted = auth
        .mint(NewSession::verified(alice(), &laptop()), T0, &mut rng)
        .unwrap();
    let t = &minted.token;
    assert_eq!(
        auth.resume(t, Some(&laptop()), None, None, T0 + MIN)
            .decision,
        Decision::Resumed
    );
    let phone = Fingerprint::single("phone").unwrap();
    assert_eq!(
        auth.resume(t, Some(&phone), None, None, T0 + MIN).decision,
        Decision::FullAuth(Reason::DeviceMismatch)
    );
    assert_eq!(
        auth.resume(t, None, None, None, T0 + MIN).decision,
        Decision::FullAuth(Reason::DeviceMismatch)
    );
    assert_eq!(
        auth.resume(t, Some(&laptop()), Some("transfer"), None, T0 + MIN)
            .decision,
        Decision::StepUp(Reason::SensitiveOperation)
    );
}

#[test]
fn a_wrong_verifier_and_an_unknown_selector_both_answer_unknown() {
    let mut rng = rand::thread_rng();
    let keyring = Arc::new(Keyring::generate(T0, &mut rng));
    let (auth, _) = authority(Arc::new(MemoryStore::default()), keyring, T0);
    let minted = auth
        .mint(NewSession::verified(alice(), &laptop()), T0, &mut rng)
        .unwrap();
    // Same selector, different verifier.
    let text = minted.token.expose();
    let forged = format!("{}{}", &text[..27], "A".repeat(text.len() - 27));
    let forged = SessionToken::parse(&forged).unwrap();
    assert_eq!(forged.id(), minted.token.id());
    let outcome = auth.resume(&forged, Some(&laptop()), None, None, T0);
    assert_eq!(outcome.decision, Decision::FullAuth(Reason::Unknown));
    assert!(outcome.session.is_none());
    let stranger = SessionToken::generate(&mut rng);
    assert_eq!(
        auth.resume(&stranger, Some(&laptop()), None, None, T0)
            .decision,
        Decision::FullAuth(Reason::Unknown)
    );
}

#[test]
fn every_resume_counts_as_activity_for_the_idle_timeout() {
    let mut rng = rand::thread_rng();
    let keyring = Arc::new(Keyring::generate(T0, &mut rng));
    let (auth, _) = authority(Arc::new(MemoryStore::default()), keyring, T0);
    let t = auth
        .mint(NewSession::verified(alice(), &laptop()), T0, &mut rng)
        .unwrap()
        .token;
    // Resume every 20 minutes: never idle for 30.
    for step in 1..=2 {
        assert_eq!(
            auth.resume(&t, Some(&laptop()), None, None, T0 + step * 20 * MIN)
                .decision,
            Decision::Resumed
        );
    }
    assert_eq!(
        auth.resume(&t, Some(&laptop()), None, None, T0 + 40 * MIN + 30 * MIN)
            .decision,
        Decision::FullAuth(Reason::ResumeWindowElapsed)
    );
    let t2 = auth
        .mint(NewSession::verified(alice(), &laptop()), T0, &mut rng)
        .unwrap()
        .token;
    assert_eq!(
        auth.resume(&t2, Some(&laptop()), None, None, T0 + 30 * MIN)
            .decision,
        Decision::FullAuth(Reason::IdleTimeout)
    );
}

#[test]
fn sessions_and_revocations_survive_a_restart_and_are_verified_once() {
    let mut rng = rand::thread_rng();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let keyring = Arc::new(Keyring::generate(T0, &mut rng));
    let (kept, gone) = {
        let (auth, _) = authority(
            Arc::new(RedbStore::open(&path).unwrap()),
            keyring.clone(),
            T0,
        );
        let kept = auth
            .mint(NewSession::verified(alice(), &laptop()), T0, &mut rng)
            .unwrap()
            .token;
        let gone = auth
            .mint(NewSession::verified(alice(), &laptop()), T0, &mut rng)
            .unwrap()
            .token;
        assert!(auth.revoke(&gone.id(), T0 + 1).unwrap());
        (kept, gone)
    };
    let (auth, report) = authority(Arc::new(RedbStore::open(&path).unwrap()), keyring, T0 + MIN);
    assert_eq!(
        report,
        RestoreReport {
            restored: 2,
            revoked: 1,
            expired_skipped: 0,
            tampered: 0,
            identity_revoked: 0,
        }
    );
    assert_eq!(
        auth.resume(&kept, Some(&laptop()), None, None, T0 + MIN)
            .decision,
        Decision::Resumed
    );
    assert_eq!(
        auth.resume(&gone, Some(&laptop()), None, None, T0 + MIN)
            .decision,
        Decision::FullAuth(Reason::Revoked)
    );
}

#[test]
fn a_tampered_stored_record_answers_tampered_and_never_resumes() {
    let mut rng = rand::thread_rng();
    let store = Arc::new(MemoryStore::default());
    let keyring = Arc::new(Keyring::generate(T0, &mut rng));
    let token = {
        let (auth, _) = authority(store.clone(), keyring.clone(), T0);
        auth.mint(NewSession::verified(alice(), &laptop()), T0, &mut rng)
            .unwrap()
            .token
    };
    // Flip one byte of the sealed record in a fresh copy of the store.
    let tampered = Arc::new(MemoryStore::default());
    store
        .for_each(&mut |mut row: SessionRow| {
            let last = row.sealed.len() - 1;
            row.sealed[last] ^= 1;
            tampered.insert(&row).unwrap();
        })
        .unwrap();
    let (auth, report) = authority(tampered, keyring, T0);
    assert_eq!(report.tampered, 1);
    assert_eq!(
        auth.resume(&token, Some(&laptop()), None, None, T0)
            .decision,
        Decision::FullAuth(Reason::Tampered)
    );
}

#[test]
fn a_record_from_another_keyring_is_tampered() {
    let mut rng = rand::thread_rng();
    let store = Arc::new(MemoryStore::default());
    let token = {
        let (auth, _) = authority(store.clone(), Arc::new(Keyring::generate(T0, &mut rng)), T0);
        auth.mint(NewSession::verified(alice(), &laptop()), T0, &mut rng)
            .unwrap()
            .token
    };
    let (auth, report) = authority(store, Arc::new(Keyring::generate(T0, &mut rng)), T0);
    assert_eq!(report.tampered, 1);
    assert_eq!(
        auth.resume(&token, Some(&laptop()), None, None, T0)
            .decision,
        Decision::FullAuth(Reason::Tampered)
    );
}

#[test]
fn sessions_made_before_a_rotation_keep_resuming_after_it() {
    let mut rng = rand::thread_rng();
    let store = Arc::new(MemoryStore::default());
    let mut ring = Keyring::generate(T0, &mut rng);
    let old = {
        let (auth, _) = authority(
            store.clone(),
            Arc::new(
                Keyring::unwrap(&ring.wrap(&instance().public_key(), &mut rng), &instance())
                    .unwrap(),
            ),
            T0,
        );
        auth.mint(NewSession::verified(alice(), &laptop()), T0, &mut rng)
            .unwrap()
            .token
    };
    ring.rotate(T0 + MIN, &mut rng).unwrap();
    let (auth, report) = authority(store, Arc::new(ring), T0 + MIN);
    assert_eq!(report.restored, 1);
    let new = auth
        .mint(NewSession::verified(alice(), &laptop()), T0 + MIN, &mut rng)
        .unwrap();
    assert_eq!(new.session.context().key_id, 2);
    assert_eq!(
        auth.resume(&old, Some(&laptop()), None, None, T0 + 2 * MIN)
            .decision,
        Decision::Resumed
    );
    assert_eq!(
        auth.resume(&new.token, Some(&laptop()), None, None, T0 + 2 * MIN)
            .decision,
        Decision::Resumed
    );
}

fn instance() -> postern_core::keyring::InstanceKey {
    postern_core::keyring::InstanceKey::from_seed(&[4u8; 64])
}

#[test]
fn log_out_everywhere_and_credential_revocation_hit_only_what_they_name() {
    let mut rng = rand::thread_rng();
    let (auth, _) = authority(
        Arc::new(MemoryStore::default()),
        Arc::new(Keyring::generate(T0, &mut rng)),
        T0,
    );
    let mut with_key = NewSession::verified(alice(), &laptop());
    with_key.credential = [1; 16];
    let a1 = auth.mint(with_key.clone(), T0, &mut rng).unwrap().token;
    with_key.credential = [2; 16];
    let a2 = auth.mint(with_key, T0, &mut rng).unwrap().token;
    let bob = auth
        .mint(
            NewSession::verified(UserId::parse("bob").unwrap(), &laptop()),
            T0,
            &mut rng,
        )
        .unwrap()
        .token;
    assert_eq!(auth.list_user(&alice()).unwrap().len(), 2);
    assert_eq!(
        auth.revoke_credential(&alice(), &[1; 16], T0 + 1).unwrap(),
        1
    );
    assert_eq!(
        auth.resume(&a1, Some(&laptop()), None, None, T0 + 2)
            .decision,
        Decision::FullAuth(Reason::Revoked)
    );
    assert_eq!(
        auth.resume(&a2, Some(&laptop()), None, None, T0 + 2)
            .decision,
        Decision::Resumed
    );
    assert_eq!(auth.revoke_user(&alice(), T0 + 3).unwrap(), 1);
    assert_eq!(
        auth.resume(&a2, Some(&laptop()), None, None, T0 + 4)
            .decision,
        Decision::FullAuth(Reason::Revoked)
    );
    assert_eq!(
        auth.resume(&bob, Some(&laptop()), None, None, T0 + 4)
            .decision,
        Decision::Resumed
    );
}

#[test]
fn activity_is_flushed_at_most_once_per_interval() {
    let mut rng = rand::thread_rng();
    let store = Arc::new(MemoryStore::default());
    let (auth, _) = authority(store.clone(), Arc::new(Keyring::generate(T0, &mut rng)), T0);
    let minted = auth
        .mint(NewSession::verified(alice(), &laptop()), T0, &mut rng)
        .unwrap();
    auth.resume(&minted.token, Some(&laptop()), None, None, T0 + 10 * SECOND);
    assert_eq!(
        auth.flush_activity().unwrap(),
        0,
        "10 s of activity is below the 60 s interval"
    );
    auth.resume(&minted.token, Some(&laptop()), None, None, T0 + 61 * SECOND);
    assert_eq!(auth.flush_activity().unwrap(), 1);
    assert_eq!(
        store.get(&minted.token.id()).unwrap().unwrap().last_seen,
        T0 + 61 * SECOND
    );
    assert_eq!(auth.flush_activity().unwrap(), 0);
}

#[test]
fn sweeping_drops_sessions_only_after_their_retention() {
    let mut rng = rand::thread_rng();
    let store = Arc::new(MemoryStore::default());
    let (auth, _) = authority(store.clone(), Arc::new(Keyring::generate(T0, &mut rng)), T0);
    let minted = auth
        .mint(NewSession::verified(alice(), &laptop()), T0, &mut rng)
        .unwrap();
    let expiry = minted.session.context().expires_at;
    let retention = auth.config().expired_retention;
    assert_eq!(auth.sweep(expiry + retention).unwrap(), 0);
    assert_eq!(
        auth.resume(&minted.token, Some(&laptop()), None, None, expiry)
            .decision,
        Decision::FullAuth(Reason::Expired)
    );
    assert_eq!(auth.sweep(expiry + retention + 1).unwrap(), 1);
    assert_eq!(
        auth.resume(&minted.token, Some(&laptop()), None, None, expiry)
            .decision,
        Decision::FullAuth(Reason::Unknown)
    );
}

#[test]
fn a_batch_minted_in_one_signature_resumes_per_user_and_survives_a_restart() {
    let mut rng = rand::thread_rng();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let keyring = Arc::new(Keyring::generate(T0, &mut rng));
    let users: Vec<UserId> = (0..32)
        .map(|i| UserId::parse(&format!("user{i}")).unwrap())
        .collect();
    let tokens: Vec<SessionToken> = {
        let (auth, _) = authority(
            Arc::new(RedbStore::open(&path).unwrap()),
            keyring.clone(),
            T0,
        );
        let news = users
            .iter()
            .enumerate()
            .map(|(slot, user)| NewSession {
                batch_slot: Some(slot as u8),
                ..NewSession::verified(user.clone(), &laptop())
            })
            .collect();
        let minted = auth.mint_batch(news, T0, &mut rng).unwrap();
        assert_eq!(minted.len(), 32);
        for (slot, m) in minted.iter().enumerate() {
            assert_eq!(m.session.context().batch_slot, Some(slot as u8));
            assert_eq!(m.session.context().user, users[slot]);
        }
        minted.into_iter().map(|m| m.token).collect()
    };
    // Every record verifies alone on restore, under the one batch signature.
    let (auth, report) = authority(Arc::new(RedbStore::open(&path).unwrap()), keyring, T0 + MIN);
    assert_eq!((report.restored, report.tampered), (32, 0));
    for token in &tokens {
        assert_eq!(
            auth.resume(token, Some(&laptop()), None, None, T0 + MIN)
                .decision,
            Decision::Resumed
        );
    }
    assert!(auth
        .mint_batch(Vec::new(), T0, &mut rng)
        .unwrap()
        .is_empty());
    let too_many = (0..=postern_core::context::MAX_BATCH)
        .map(|_| NewSession::verified(alice(), &laptop()))
        .collect();
    assert!(auth.mint_batch(too_many, T0, &mut rng).is_err());
}

/// A revocation or replacement sweep cut short (the process died after the
/// user record changed, before the sessions did) finishes when the
/// authority restores: a live session survives only while the credential
/// that minted it is still its user's.
#[test]
fn sessions_of_a_revoked_or_replaced_identity_key_are_revoked_at_restore() {
    use postern_core::identity::IdentitySecret;
    use postern_store::{AccountClaim, PasskeyInsert, PasskeyRecord, UserRecord};

    let mut rng = rand::thread_rng();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn SessionStore> =
        Arc::new(RedbStore::open(&dir.path().join("s.redb")).unwrap());
    let keyring = Arc::new(Keyring::generate(T0, &mut rng));
    let first = IdentitySecret::generate(&mut rng).public_key();
    let second = IdentitySecret::generate(&mut rng).public_key();
    let mut record = UserRecord {
        identity_key: *first.as_bytes(),
        enrolled_at: T0,
        identity_revoked_at: None,
        biometric_template: None,
    };
    assert!(store.insert_user(&alice(), &record).unwrap());
    let passkey = PasskeyRecord {
        credential_id: b"alice's authenticator".to_vec(),
        user: alice(),
        user_handle: [7; 16],
        credential: b"{}".to_vec(),
        counter: 0,
        backup_eligible: false,
        backup_state: false,
        created_at: T0,
        last_used_at: None,
        registered_by: [0; 16],
    };
    assert_eq!(
        store
            .insert_passkey(&passkey, AccountClaim::ExistingAccount)
            .unwrap(),
        PasskeyInsert::Inserted
    );
    let (auth, _) = authority(store.clone(), keyring.clone(), T0);
    let mut mint = |credential: [u8; 16]| {
        let mut new = NewSession::verified(alice(), &laptop());
        new.credential = credential;
        auth.mint(new, T0, &mut rng).unwrap().token
    };
    let by_first = mint(first.credential_id());
    let by_passkey = mint(passkey.session_credential());
    let by_nothing = mint([0; 16]);
    let by_a_deleted_credential = mint([9; 16]);
    drop(auth);
    let resume = |auth: &SessionAuthority, token: &SessionToken| {
        auth.resume(token, Some(&laptop()), None, None, T0 + 3)
            .decision
    };

    // The first key is replaced; the sweep never ran.
    let enrolled = record.clone();
    record.identity_key = *second.as_bytes();
    assert!(store.update_user(&alice(), &enrolled, &record).unwrap());
    let (auth, report) = authority(store.clone(), keyring.clone(), T0 + 2);
    let by_second = {
        let mut new = NewSession::verified(alice(), &laptop());
        new.credential = second.credential_id();
        auth.mint(new, T0 + 2, &mut rng).unwrap().token
    };
    assert_eq!(report.identity_revoked, 2);
    let revoked = Decision::FullAuth(Reason::Revoked);
    assert_eq!(resume(&auth, &by_first), revoked);
    assert_eq!(resume(&auth, &by_a_deleted_credential), revoked);
    assert_eq!(resume(&auth, &by_passkey), Decision::Resumed);
    assert_eq!(resume(&auth, &by_nothing), Decision::Resumed);
    assert_eq!(resume(&auth, &by_second), Decision::Resumed);
    drop(auth);

    // The second key is revoked; again the sweep never ran.
    let replaced = record.clone();
    record.identity_revoked_at = Some(T0 + 2);
    assert!(store.update_user(&alice(), &replaced, &record).unwrap());
    let (auth, report) = authority(store.clone(), keyring.clone(), T0 + 3);
    assert_eq!(report.identity_revoked, 1);
    assert_eq!(resume(&auth, &by_second), revoked);
    assert_eq!(resume(&auth, &by_passkey), Decision::Resumed);
    drop(auth);
    // Durably: the next restore finds nothing left to do.
    let (_, report) = authority(store, keyring, T0 + 4);
    assert_eq!((report.identity_revoked, report.revoked), (0, 3));
}
