//! The encrypted biometric match end to end: the real client encrypts, the
//! stage evaluates in `standard` and `turbo`, the key holder decrypts.

// Fixture helpers unwrap too: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use postern_auth::biometric::{
    threshold_for_cosine, Batcher, BatcherConfig, BiometricMode, BiometricStage, EncryptedScores,
    Encryptor, Evaluator, KeyHolder, LocalKeyHolder, Quantised, VectorKind, CIPHERTEXT_BYTES,
};
use postern_auth::stage::{AuthRequest, Evidence, Factors, Stage, StageFailure};
use postern_client::biometric::{BiometricClient, TestPerson};
use postern_core::context::UserId;
use postern_core::device::Fingerprint;
use postern_store::UserRecord;

struct World {
    key_holder: Arc<LocalKeyHolder>,
    evaluator: Arc<Evaluator>,
    client: BiometricClient,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let key_holder = Arc::new(LocalKeyHolder::generate().unwrap());
        World {
            evaluator: Arc::new(Evaluator::new(key_holder.public_key()).unwrap()),
            client: BiometricClient::new(key_holder.public_key()).unwrap(),
            key_holder,
        }
    })
}

fn record(template: Option<Vec<u8>>) -> UserRecord {
    UserRecord {
        identity_key: [0; 32],
        enrolled_at: 0,
        identity_revoked_at: None,
        biometric_template: template,
    }
}

fn run(
    stage: &dyn Stage,
    record: &UserRecord,
    probe: Option<&[u8]>,
) -> (Result<(), StageFailure>, Evidence) {
    let user = UserId::parse("alice").unwrap();
    let device = Fingerprint::single("laptop").unwrap();
    let request = AuthRequest {
        user: &user,
        record,
        device: &device,
        challenge: &[0; 32],
        audience: "https://auth.example",
        factors: Factors {
            biometric_probe: probe,
            ..Factors::default()
        },
    };
    let mut evidence = Evidence::default();
    (stage.run(&request, &mut evidence), evidence)
}

fn standard_stage() -> BiometricStage {
    let w = world();
    BiometricStage::new(
        BiometricMode::Standard {
            evaluator: w.evaluator.clone(),
            key_holder: w.key_holder.clone(),
        },
        threshold_for_cosine(0.8),
    )
}

#[test]
fn the_same_person_passes_and_another_person_fails() {
    let w = world();
    let stage = standard_stage();
    let alice = TestPerson::new(1);
    let enrolled = record(Some(w.client.template(&alice.embedding()).unwrap()));
    for capture in 0..3 {
        let probe = w.client.probe(&alice.capture(0.3, capture)).unwrap();
        let (result, evidence) = run(&stage, &enrolled, Some(&probe));
        assert_eq!(result, Ok(()));
        assert_eq!(evidence.batch_slot, None);
    }
    for seed in 2..5 {
        let probe = w.client.probe(&TestPerson::new(seed).embedding()).unwrap();
        assert_eq!(
            run(&stage, &enrolled, Some(&probe)).0,
            Err(StageFailure::Rejected)
        );
    }
    assert_eq!(stage.name(), "biometric");
}

#[test]
fn encrypted_scores_equal_plaintext_scores_of_the_quantised_vectors() {
    let w = world();
    let encryptor = Encryptor::new(w.key_holder.public_key()).unwrap();
    for seed in 0..4u64 {
        let a = Quantised::from_embedding(&TestPerson::new(seed).embedding()).unwrap();
        let b = Quantised::from_embedding(&TestPerson::new(seed + 100).capture(0.5, seed)).unwrap();
        let t = w
            .evaluator
            .decode_template(&encryptor.encrypt_template(&a).unwrap())
            .unwrap();
        let p = w
            .evaluator
            .decode_probe(&encryptor.encrypt_probe(&b).unwrap())
            .unwrap();
        assert_eq!(
            w.evaluator.score(&t, &p, w.key_holder.as_ref()).unwrap(),
            a.score(&b)
        );
    }
}

#[test]
fn templates_are_ciphertexts_that_only_the_key_holder_opens() {
    let w = world();
    let alice = TestPerson::new(1).embedding();
    let one = w.client.template(&alice).unwrap();
    let two = w.client.template(&alice).unwrap();
    assert_eq!(one.len(), CIPHERTEXT_BYTES);
    assert_ne!(one, two, "encryption is randomised");

    // The server holds the evaluator, the stored template and the probe; it
    // has no decryption at all. Another key holder's secret key gets a wrong
    // score, so only the right key holder can answer.
    let t = w.evaluator.decode_template(&one).unwrap();
    let p = w
        .evaluator
        .decode_probe(&w.client.probe(&alice).unwrap())
        .unwrap();
    let sealed: EncryptedScores = w
        .evaluator
        .seal(w.evaluator.product(&t, &p, 0).unwrap(), 1)
        .unwrap();
    let right = w.key_holder.decrypt_scores(&sealed).unwrap();
    let q = Quantised::from_embedding(&alice).unwrap();
    assert_eq!(right, vec![q.score(&q)]);
    let stranger = LocalKeyHolder::generate().unwrap();
    assert_ne!(stranger.decrypt_scores(&sealed).unwrap(), right);
}

#[test]
fn missing_and_malformed_factors_fail_with_their_own_outcome_and_never_panic() {
    let w = world();
    let stage = standard_stage();
    let alice = TestPerson::new(1);
    let template = w.client.template(&alice.embedding()).unwrap();
    let enrolled = record(Some(template.clone()));
    let probe = w.client.probe(&alice.embedding()).unwrap();
    assert_eq!(
        run(&stage, &record(None), Some(&probe)).0,
        Err(StageFailure::Missing)
    );
    assert_eq!(run(&stage, &enrolled, None).0, Err(StageFailure::Missing));

    let mut bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![1],
        probe[..probe.len() / 2].to_vec(),
        probe[..probe.len() - 1].to_vec(),
        [probe.as_slice(), &[0]].concat(),
        vec![0xff; 10 * CIPHERTEXT_BYTES],
        template.clone(), // a template is not a probe
    ];
    let mut wrong_version = probe.clone();
    wrong_version[0] = 9;
    bad.push(wrong_version);
    let mut unreduced = probe.clone();
    unreduced[2..20].fill(0xff);
    bad.push(unreduced);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for len in [3usize, 1000, CIPHERTEXT_BYTES - 7, CIPHERTEXT_BYTES + 7] {
        let bytes = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        bad.push(bytes);
    }
    for bytes in &bad {
        assert_eq!(
            run(&stage, &enrolled, Some(bytes)).0,
            Err(StageFailure::Malformed)
        );
    }

    // Well-formed but meaningless (the zero ciphertext): evaluated, refused.
    let mut zero = vec![0u8; CIPHERTEXT_BYTES];
    zero[0] = 1;
    zero[1] = 2;
    assert_eq!(
        run(&stage, &enrolled, Some(&zero)).0,
        Err(StageFailure::Rejected)
    );
    // A corrupt stored template fails closed.
    assert_eq!(
        run(&stage, &record(Some(vec![1, 1, 0])), Some(&probe)).0,
        Err(StageFailure::Rejected)
    );
}

#[test]
fn turbo_gives_thirty_two_concurrent_callers_their_own_scores_and_slots() {
    let w = world();
    let batcher = Arc::new(
        Batcher::new(
            w.evaluator.clone(),
            w.key_holder.clone(),
            BatcherConfig {
                max_lanes: 32,
                deadline: Duration::from_secs(30),
            },
        )
        .unwrap(),
    );
    let encryptor = Arc::new(Encryptor::new(w.key_holder.public_key()).unwrap());
    let barrier = Arc::new(Barrier::new(32));
    let handles: Vec<_> = (0..32u64)
        .map(|i| {
            let (batcher, encryptor, barrier) =
                (batcher.clone(), encryptor.clone(), barrier.clone());
            std::thread::spawn(move || {
                let a = Quantised::from_embedding(&TestPerson::new(i).embedding()).unwrap();
                let b = Quantised::from_embedding(&TestPerson::new(i % 3).capture(0.2, i)).unwrap();
                let ev = batcher.evaluator();
                let t = ev
                    .decode_template(&encryptor.encrypt(VectorKind::Template, &a).unwrap())
                    .unwrap();
                let p = ev
                    .decode_probe(&encryptor.encrypt(VectorKind::Probe, &b).unwrap())
                    .unwrap();
                // Half the callers bring a template prepared at a home lane
                // (homes collide: 0 to 10), so some get their home and the
                // rest are moved.
                let prepared = ev.prepare_template_at(&t, (i as usize * 7) % 11).unwrap();
                barrier.wait();
                let outcome = if i % 2 == 0 {
                    batcher.submit(&t, &p)
                } else {
                    batcher.submit_prepared(&prepared, p)
                };
                (outcome.unwrap(), a.score(&b))
            })
        })
        .collect();
    let mut slots = Vec::new();
    for h in handles {
        let (outcome, expected) = h.join().unwrap();
        assert_eq!(outcome.score, expected);
        assert_eq!(outcome.batch_size, 32);
        slots.push(outcome.slot);
    }
    slots.sort_unstable();
    assert_eq!(slots, (0..32).collect::<Vec<u8>>());
}

#[test]
fn the_deadline_flushes_a_partial_batch_and_the_stage_records_the_slot() {
    let w = world();
    let deadline = Duration::from_millis(50);
    let batcher = Arc::new(
        Batcher::new(
            w.evaluator.clone(),
            w.key_holder.clone(),
            BatcherConfig {
                max_lanes: 32,
                deadline,
            },
        )
        .unwrap(),
    );
    let stage = Arc::new(BiometricStage::new(
        BiometricMode::Turbo(batcher),
        threshold_for_cosine(0.8),
    ));
    let inputs: Vec<_> = (0..3u64)
        .map(|i| {
            let person = TestPerson::new(40 + i);
            let enrolled = record(Some(w.client.template(&person.embedding()).unwrap()));
            // The third caller presents someone else.
            let shown = if i == 2 { TestPerson::new(99) } else { person };
            (enrolled, w.client.probe(&shown.capture(0.3, i)).unwrap())
        })
        .collect();
    let started = Instant::now();
    let handles: Vec<_> = inputs
        .into_iter()
        .map(|(enrolled, probe)| {
            let stage = stage.clone();
            std::thread::spawn(move || run(stage.as_ref(), &enrolled, Some(&probe)))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        started.elapsed() >= deadline,
        "a partial batch waits for its deadline"
    );
    assert!(started.elapsed() < deadline * 40);
    let mut slots: Vec<u8> = results
        .iter()
        .take(2)
        .map(|(r, e)| {
            assert_eq!(*r, Ok(()));
            e.batch_slot.unwrap()
        })
        .collect();
    assert_eq!(results[2].0, Err(StageFailure::Rejected));
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), 2);
    assert!(slots.iter().all(|s| *s < 3));
}

#[test]
fn a_lone_caller_gets_its_home_lane_and_the_partial_batch_decides_it() {
    let w = world();
    let batcher = Batcher::new(
        w.evaluator.clone(),
        w.key_holder.clone(),
        BatcherConfig {
            max_lanes: 32,
            deadline: Duration::from_millis(5),
        },
    )
    .unwrap();
    let encryptor = Encryptor::new(w.key_holder.public_key()).unwrap();
    let a = Quantised::from_embedding(&TestPerson::new(7).embedding()).unwrap();
    let b = Quantised::from_embedding(&TestPerson::new(7).capture(0.2, 1)).unwrap();
    let ev = batcher.evaluator();
    let t = ev
        .decode_template(&encryptor.encrypt(VectorKind::Template, &a).unwrap())
        .unwrap();
    let p = ev
        .decode_probe(&encryptor.encrypt(VectorKind::Probe, &b).unwrap())
        .unwrap();
    let prepared = ev.prepare_template_at(&t, 9).unwrap();
    let outcome = batcher.submit_prepared(&prepared, p).unwrap();
    assert_eq!((outcome.slot, outcome.batch_size), (9, 1));
    assert_eq!(outcome.score, a.score(&b));
}

#[test]
fn a_batcher_refuses_impossible_lane_counts() {
    let w = world();
    for max_lanes in [0, 33] {
        assert!(Batcher::new(
            w.evaluator.clone(),
            w.key_holder.clone(),
            BatcherConfig {
                max_lanes,
                deadline: Duration::from_millis(1)
            }
        )
        .is_err());
    }
    assert_eq!(BatcherConfig::default().max_lanes, 32);
}
