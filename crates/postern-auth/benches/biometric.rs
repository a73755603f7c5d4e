//! Encrypted biometric benchmarks: what the BFV match costs the server, per
//! operation, per stage and end to end, in `standard` and `turbo`, beside
//! the straightforward SIMD design as a baseline in the same run.
//!
//! Group `biometric_ops` (one operation each):
//! - `client_encrypt`: the client's fhe.rs public-key encryption of a
//!   quantised probe and its wire packing (client work, for reference).
//! - `decode_ciphertext`: parsing and range-checking one 111,618-byte
//!   ciphertext.
//! - `product_lane0` / `product_shifted`: one user's tensor product
//!   (Karatsuba, NTT domain), without and with the move to a turbo lane.
//! - `prepare_template` / `product_prepared_shifted`: turning a template
//!   into Shoup form once, and a lane product with it.
//! - `seal`: t^2 scaling, re-randomisation, mask and noise flood (once per
//!   evaluation).
//! - `keyholder_decrypt_1` / `keyholder_decrypt_32`: the key holder's
//!   degree-2 decryption of 1 or 32 scores.
//! - `fhe_ct_ct_mul` / `fhe_ct_ct_mul_relin`: fhe.rs's own BFV multiplication
//!   (basis extension and t/q rescaling), without and with relinearisation.
//! - `fhe_ct_pt_mul`: fhe.rs ciphertext x SIMD plaintext.
//! - `fhe_rotate_and_sum`: 7 column rotations and additions (summing each
//!   128-slot lane).
//! - `fhe_decrypt`: fhe.rs decryption of a degree-1 ciphertext.
//!
//! Group `biometric_auth` (server CPU, single thread):
//! - `standard_stage`: `BiometricStage::run` in standard mode: decode probe
//!   and template, product, seal, in-process key holder decryption,
//!   threshold.
//! - `turbo_batch_32`: the server work for 32 users of one turbo batch:
//!   32 x (decode both ciphertexts, shifted product, accumulate), then one
//!   seal and one decryption of 32 scores. Divide by 32 for per user.
//! - `turbo_batch_32_prepared`: the same with templates kept prepared
//!   (`Evaluator::prepare_template`, Shoup form) across authentications:
//!   per user only the probe is decoded.
//! - `turbo_batch_32_cached`: what the server's stage does per user in
//!   turbo with its prepared-template cache warm (`PreparedCache` lookup,
//!   which compares the stored template bytes, probe decode, lane product
//!   with the probe moved in), then one seal and one decryption. Templates
//!   are prepared at their users' home lanes (hash of the user id) and
//!   lanes are given by the batcher's rule (`choose_lane`), so users whose
//!   homes collide are moved, as in the server; the run prints how many
//!   were at home.
//! - `standard_stage_cached`: `standard_stage` with the stage's prepared
//!   cache warm (a returning user).
//! - `naive_simd_batch_32`: the straightforward design for the same 32 users
//!   (fhe.rs, t = 8,380,417, SIMD slots): ct x ct multiply, relinearise,
//!   7 rotate-and-add, decrypt.
//! - `end_to_end_standard`: challenge take, user lookup, the pipeline
//!   [identity, biometric(standard)], and `SessionAuthority::mint`
//!   (ML-DSA-65 sign, AES-GCM seal, memory store).
//! - `end_to_end_turbo_32`: the same for 32 users whose biometric stages are
//!   decided in one batch (computed as the batcher does, on one thread):
//!   32 x (take, lookup, identity), one batch, 32 x mint.
//! - `end_to_end_turbo_32_batch_attested`: the same with one
//!   `SessionAuthority::mint_batch` (one ML-DSA-65 signature over the
//!   Merkle root of the 32 contexts), as the server mints in turbo mode.
//!
//! Client work (proofs, encryption) is prepared outside the timed loops.
//! Run: `cargo bench -p postern-auth --bench biometric -- --warm-up-time 1
//! --measurement-time 3`.

// A benchmark's setup failing must abort the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use fhe::bfv::{
    BfvParametersBuilder, Encoding, EvaluationKeyBuilder, Multiplicator, Plaintext,
    RelinearizationKey, SecretKey,
};
use fhe_traits::{FheDecoder, FheDecrypter, FheEncoder, FheEncrypter};
use postern_auth::biometric::{
    choose_lane, threshold_for_cosine, BiometricMode, BiometricStage, Encryptor, Evaluator,
    KeyHolder, LocalKeyHolder, Lookup, PreparedCache, Quantised, LANES,
};
use postern_auth::challenge::ChallengeBook;
use postern_auth::identity::IdentityStage;
use postern_auth::pipeline::Pipeline;
use postern_auth::quota::ShareLimits;
use postern_auth::stage::{AuthRequest, Evidence, Factors, Stage};
use postern_client::biometric::{BiometricClient, TestPerson};
use postern_core::context::{UserId, Verdict};
use postern_core::device::Fingerprint;
use postern_core::identity::{IdentitySecret, Statement};
use postern_core::keyring::Keyring;
use postern_core::SECOND;
use postern_store::memory::MemoryStore;
use postern_store::{AuthorityConfig, NewSession, SessionAuthority, SessionStore, UserRecord};
use rand::rngs::OsRng;

const T0: u64 = 1_700_000_000_000_000_000;
const T1: u64 = T0 + SECOND;

struct User {
    id: UserId,
    secret: IdentitySecret,
    device: Fingerprint,
    record: UserRecord,
    probe: Vec<u8>,
    quantised_template: Quantised,
    quantised_probe: Quantised,
}

fn users(n: usize, client: &BiometricClient) -> Vec<User> {
    (0..n)
        .map(|i| {
            let secret = IdentitySecret::generate(&mut OsRng);
            let person = TestPerson::new(i as u64);
            let capture = person.capture(0.3, 1000 + i as u64);
            User {
                id: UserId::parse(&format!("user{i}")).unwrap(),
                device: Fingerprint::single(&format!("device{i}")).unwrap(),
                record: UserRecord {
                    identity_key: *secret.public_key().as_bytes(),
                    enrolled_at: T0,
                    identity_revoked_at: None,
                    biometric_template: Some(client.template(&person.embedding()).unwrap()),
                },
                probe: client.probe(&capture).unwrap(),
                quantised_template: Quantised::from_embedding(&person.embedding()).unwrap(),
                quantised_probe: Quantised::from_embedding(&capture).unwrap(),
                secret,
            }
        })
        .collect()
}

fn prove(user: &User, challenge: &[u8; 32]) -> [u8; 64] {
    user.secret.prove(
        &Statement {
            challenge,
            audience: "https://auth.example",
            user: user.id.as_str(),
            device_hash: &user.device.hash(),
        },
        &mut OsRng,
    )
}

fn request<'a>(
    user: &'a User,
    record: &'a UserRecord,
    challenge: &'a [u8; 32],
    proof: &'a [u8],
) -> AuthRequest<'a> {
    AuthRequest {
        user: &user.id,
        record,
        device: &user.device,
        challenge,
        audience: "https://auth.example",
        factors: Factors {
            identity_proof: Some(proof),
            biometric_probe: Some(&user.probe),
            ..Factors::default()
        },
    }
}

fn session(user: &User, evidence: Evidence) -> NewSession {
    NewSession {
        user: user.id.clone(),
        device: user.device.clone(),
        verdict: Verdict::new(true, 7),
        proof_digest: evidence.proof_digest,
        credential: evidence.credential,
        batch_slot: evidence.batch_slot,
        extra_claims: evidence.claims,
    }
}

fn bench_biometric(c: &mut Criterion) {
    let key_holder = Arc::new(LocalKeyHolder::generate().unwrap());
    let evaluator = Arc::new(Evaluator::new(key_holder.public_key()).unwrap());
    let encryptor = Encryptor::new(key_holder.public_key()).unwrap();
    let client = BiometricClient::new(key_holder.public_key()).unwrap();
    let batch = users(LANES, &client);
    let threshold = threshold_for_cosine(0.8);

    // --- checks, outside every timed loop ---
    let templates: Vec<_> = batch
        .iter()
        .map(|u| {
            evaluator
                .decode_template(u.record.biometric_template.as_deref().unwrap())
                .unwrap()
        })
        .collect();
    let probes: Vec<_> = batch
        .iter()
        .map(|u| evaluator.decode_probe(&u.probe).unwrap())
        .collect();
    let turbo_batch = || {
        let mut acc = None;
        for (lane, u) in batch.iter().enumerate() {
            let t = evaluator
                .decode_template(u.record.biometric_template.as_deref().unwrap())
                .unwrap();
            let p = evaluator.decode_probe(&u.probe).unwrap();
            let product = evaluator.product(&t, &p, lane).unwrap();
            match &mut acc {
                None => acc = Some(product),
                Some(acc) => acc.add(&product),
            }
        }
        key_holder
            .decrypt_scores(&evaluator.seal(acc.unwrap(), LANES).unwrap())
            .unwrap()
    };
    let expected: Vec<i64> = batch
        .iter()
        .map(|u| u.quantised_template.score(&u.quantised_probe))
        .collect();
    assert_eq!(turbo_batch(), expected);
    assert!(
        expected.iter().all(|s| *s >= threshold),
        "genuine captures pass"
    );
    let standard = BiometricStage::new(
        BiometricMode::Standard {
            evaluator: evaluator.clone(),
            key_holder: key_holder.clone(),
        },
        threshold,
    );
    let challenge = [9u8; 32];
    let proof0 = prove(&batch[0], &challenge);
    let req0 = request(&batch[0], &batch[0].record, &challenge, &proof0);
    standard.run(&req0, &mut Evidence::default()).unwrap();

    // The naive SIMD baseline.
    let mut rng = rand09::rng();
    let simd = BfvParametersBuilder::new()
        .set_degree(4096)
        .set_plaintext_modulus(8_380_417)
        .set_moduli(&[0xffffee001, 0xffffc4001, 0x1ffffe0001])
        .build_arc()
        .unwrap();
    let sk = SecretKey::random(&simd, &mut rng);
    let rk = RelinearizationKey::new(&sk, &mut rng).unwrap();
    let multiplicator = Multiplicator::default(&rk).unwrap();
    let mut builder = EvaluationKeyBuilder::new(&sk).unwrap();
    for r in [1, 2, 4, 8, 16, 32, 64] {
        builder.enable_column_rotation(r).unwrap();
    }
    let ek = builder.build(&mut rng).unwrap();
    let slots = |pick: &dyn Fn(&User) -> Quantised| -> Vec<i64> {
        batch
            .iter()
            .flat_map(|u| pick(u).0.map(i64::from))
            .collect()
    };
    let simd_t = sk
        .try_encrypt(
            &Plaintext::try_encode(&slots(&|u| u.quantised_template), Encoding::simd(), &simd)
                .unwrap(),
            &mut rng,
        )
        .unwrap();
    let simd_p = sk
        .try_encrypt(
            &Plaintext::try_encode(&slots(&|u| u.quantised_probe), Encoding::simd(), &simd)
                .unwrap(),
            &mut rng,
        )
        .unwrap();
    let simd_pt =
        Plaintext::try_encode(&slots(&|u| u.quantised_probe), Encoding::simd(), &simd).unwrap();
    let naive = || {
        let mut prod = multiplicator.multiply(&simd_t, &simd_p).unwrap();
        for r in [1, 2, 4, 8, 16, 32, 64] {
            prod = &prod + &ek.rotates_columns_by(&prod, r).unwrap();
        }
        Vec::<u64>::try_decode(&sk.try_decrypt(&prod).unwrap(), Encoding::simd()).unwrap()
    };
    let naive_out = naive();
    let t_simd = 8_380_417i64;
    for (lane, want) in expected.iter().enumerate() {
        // Column rotations wrap within each half row of 2048 slots; slot 128
        // lane (the start of the lane) holds the sum of slots lane*128 ..
        // lane*128 + 127.
        let v = naive_out[lane * 128] as i64;
        let v = if v > t_simd / 2 { v - t_simd } else { v };
        assert_eq!(v, *want, "naive lane {lane}");
    }

    // End to end.
    let keyring = Arc::new(Keyring::generate(T0, &mut OsRng));
    let store = Arc::new(MemoryStore::default());
    for u in &batch {
        assert!(store.insert_user(&u.id, &u.record).unwrap());
    }
    let authority =
        SessionAuthority::restore(keyring, store.clone(), AuthorityConfig::default(), T0)
            .unwrap()
            .0;
    let book = ChallengeBook::new(60 * SECOND, 100_000, ShareLimits::UNLIMITED);
    let identity_only = Pipeline::new(vec![Box::new(IdentityStage::default())]);
    let full_standard = Pipeline::new(vec![
        Box::new(IdentityStage::default()),
        Box::new(standard.clone()),
    ]);

    // --- timed ---
    let mut group = c.benchmark_group("biometric_ops");
    group.bench_function("client_encrypt", |b| {
        b.iter(|| {
            encryptor
                .encrypt_probe(black_box(&batch[0].quantised_probe))
                .unwrap()
        })
    });
    group.bench_function("decode_ciphertext", |b| {
        b.iter(|| evaluator.decode_probe(black_box(&batch[0].probe)).unwrap())
    });
    group.bench_function("product_lane0", |b| {
        b.iter(|| {
            evaluator
                .product(black_box(&templates[0]), black_box(&probes[0]), 0)
                .unwrap()
        })
    });
    group.bench_function("product_shifted", |b| {
        b.iter(|| {
            evaluator
                .product(black_box(&templates[0]), black_box(&probes[0]), 5)
                .unwrap()
        })
    });
    let prepared: Vec<_> = templates
        .iter()
        .map(|t| evaluator.prepare_template(t).unwrap())
        .collect();
    group.bench_function("prepare_template", |b| {
        b.iter(|| {
            evaluator
                .prepare_template(black_box(&templates[0]))
                .unwrap()
        })
    });
    group.bench_function("product_prepared_shifted", |b| {
        b.iter(|| {
            evaluator
                .product_prepared(black_box(&prepared[0]), black_box(probes[0].clone()), 5)
                .unwrap()
        })
    });
    let one = evaluator.product(&templates[0], &probes[0], 0).unwrap();
    group.bench_function("seal", |b| {
        b.iter(|| evaluator.seal(black_box(one.clone()), 1).unwrap())
    });
    let sealed1 = evaluator.seal(one.clone(), 1).unwrap();
    let sealed32 = evaluator.seal(one.clone(), LANES).unwrap();
    group.bench_function("keyholder_decrypt_1", |b| {
        b.iter(|| key_holder.decrypt_scores(black_box(&sealed1)).unwrap())
    });
    group.bench_function("keyholder_decrypt_32", |b| {
        b.iter(|| key_holder.decrypt_scores(black_box(&sealed32)).unwrap())
    });
    group.bench_function("fhe_ct_ct_mul", |b| {
        b.iter(|| black_box(&simd_t) * black_box(&simd_p))
    });
    group.bench_function("fhe_ct_ct_mul_relin", |b| {
        b.iter(|| {
            multiplicator
                .multiply(black_box(&simd_t), black_box(&simd_p))
                .unwrap()
        })
    });
    group.bench_function("fhe_ct_pt_mul", |b| {
        b.iter(|| black_box(&simd_t) * black_box(&simd_pt))
    });
    let relin = multiplicator.multiply(&simd_t, &simd_p).unwrap();
    group.bench_function("fhe_rotate_and_sum", |b| {
        b.iter(|| {
            let mut prod = relin.clone();
            for r in [1, 2, 4, 8, 16, 32, 64] {
                prod = &prod + &ek.rotates_columns_by(&prod, r).unwrap();
            }
            prod
        })
    });
    group.bench_function("fhe_decrypt", |b| {
        b.iter(|| sk.try_decrypt(black_box(&relin)).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("biometric_auth");
    group.bench_function("standard_stage", |b| {
        b.iter(|| {
            standard
                .run(black_box(&req0), &mut Evidence::default())
                .unwrap()
        })
    });
    let standard_cached = standard
        .clone()
        .with_prepared_cache(Arc::new(PreparedCache::new(64 << 20)));
    standard_cached
        .run(&req0, &mut Evidence::default())
        .unwrap();
    group.bench_function("standard_stage_cached", |b| {
        b.iter(|| {
            standard_cached
                .run(black_box(&req0), &mut Evidence::default())
                .unwrap()
        })
    });
    group.bench_function("turbo_batch_32", |b| b.iter(turbo_batch));
    // As the server runs turbo: the cache prepares each user's template at
    // its home lane (a hash of the user id, so homes collide as they would
    // among real users) and the batcher's rule gives each arriving user its
    // home lane if free, else the lowest free lane.
    let cache = PreparedCache::new(64 << 20).with_home_lanes(LANES);
    let mut used = 0u32;
    let lanes: Vec<usize> = batch
        .iter()
        .map(|u| {
            let lane = choose_lane(used, Some(cache.home_of(&u.id)), LANES).unwrap();
            used |= 1 << lane;
            lane
        })
        .collect();
    let at_home = batch
        .iter()
        .zip(&lanes)
        .filter(|(u, lane)| cache.home_of(&u.id) == **lane)
        .count();
    eprintln!("turbo_batch_32_cached: {at_home} of {LANES} users in their home lane");
    let turbo_cached = || {
        let mut acc = None;
        for (u, &lane) in batch.iter().zip(&lanes) {
            let stored = u.record.biometric_template.as_deref().unwrap();
            let (template, lookup) = cache.get_or_prepare(&evaluator, &u.id, stored).unwrap();
            let p = evaluator.decode_probe(&u.probe).unwrap();
            let product = evaluator.product_prepared(&template, p, lane).unwrap();
            match &mut acc {
                None => acc = Some(product),
                Some(acc) => acc.add(&product),
            }
            black_box(lookup);
        }
        key_holder
            .decrypt_scores(&evaluator.seal(acc.unwrap(), LANES).unwrap())
            .unwrap()
    };
    let by_lane = turbo_cached();
    for (lane, want) in lanes.iter().zip(&expected) {
        assert_eq!(by_lane[*lane], *want);
    }
    assert_eq!(
        cache
            .get_or_prepare(
                &evaluator,
                &batch[0].id,
                batch[0].record.biometric_template.as_deref().unwrap()
            )
            .unwrap()
            .1,
        Lookup::Hit
    );
    group.bench_function("turbo_batch_32_cached", |b| b.iter(turbo_cached));
    let turbo_prepared = || {
        let mut acc = None;
        for (lane, (u, template)) in batch.iter().zip(&prepared).enumerate() {
            let p = evaluator.decode_probe(&u.probe).unwrap();
            let product = evaluator.product_prepared(template, p, lane).unwrap();
            match &mut acc {
                None => acc = Some(product),
                Some(acc) => acc.add(&product),
            }
        }
        key_holder
            .decrypt_scores(&evaluator.seal(acc.unwrap(), LANES).unwrap())
            .unwrap()
    };
    assert_eq!(turbo_prepared(), expected);
    group.bench_function("turbo_batch_32_prepared", |b| b.iter(turbo_prepared));
    group.bench_function("naive_simd_batch_32", |b| b.iter(naive));
    group.bench_function("end_to_end_standard", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let u = &batch[0];
                let issued = book.issue(&u.id, "bench", T0, &mut OsRng).unwrap();
                let proof = prove(u, &issued.challenge);
                let started = std::time::Instant::now();
                let challenge = book.take(&issued.id, &u.id, T1).unwrap();
                let record = store.get_user(&u.id).unwrap().unwrap();
                let evidence = full_standard
                    .run(&request(u, &record, &challenge, &proof))
                    .result
                    .unwrap();
                black_box(
                    authority
                        .mint(session(u, evidence), T1, &mut OsRng)
                        .unwrap(),
                );
                total += started.elapsed();
            }
            total
        })
    });
    for batch_attested in [false, true] {
        let name = if batch_attested {
            "end_to_end_turbo_32_batch_attested"
        } else {
            "end_to_end_turbo_32"
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let issued: Vec<_> = batch
                        .iter()
                        .map(|u| book.issue(&u.id, "bench", T0, &mut OsRng).unwrap())
                        .collect();
                    let proofs: Vec<_> = batch
                        .iter()
                        .zip(&issued)
                        .map(|(u, i)| prove(u, &i.challenge))
                        .collect();
                    let started = std::time::Instant::now();
                    let mut evidences = Vec::with_capacity(LANES);
                    let mut acc = None;
                    for (lane, ((u, issued), proof)) in
                        batch.iter().zip(&issued).zip(&proofs).enumerate()
                    {
                        let challenge = book.take(&issued.id, &u.id, T1).unwrap();
                        let record = store.get_user(&u.id).unwrap().unwrap();
                        let mut evidence = identity_only
                            .run(&request(u, &record, &challenge, proof))
                            .result
                            .unwrap();
                        let t = evaluator
                            .decode_template(record.biometric_template.as_deref().unwrap())
                            .unwrap();
                        let p = evaluator.decode_probe(&u.probe).unwrap();
                        let product = evaluator.product(&t, &p, lane).unwrap();
                        match &mut acc {
                            None => acc = Some(product),
                            Some(acc) => acc.add(&product),
                        }
                        evidence.batch_slot = Some(lane as u8);
                        evidences.push(evidence);
                    }
                    let scores = key_holder
                        .decrypt_scores(&evaluator.seal(acc.unwrap(), LANES).unwrap())
                        .unwrap();
                    let mut news = Vec::with_capacity(LANES);
                    for ((u, evidence), score) in batch.iter().zip(evidences).zip(scores) {
                        assert!(score >= threshold);
                        news.push(session(u, evidence));
                    }
                    if batch_attested {
                        // One ML-DSA signature over the batch's Merkle root.
                        black_box(authority.mint_batch(news, T1, &mut OsRng).unwrap());
                    } else {
                        for new in news {
                            black_box(authority.mint(new, T1, &mut OsRng).unwrap());
                        }
                    }
                    total += started.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_biometric);
criterion_main!(benches);
