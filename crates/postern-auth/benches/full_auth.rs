//! Full-authentication benchmarks: what one login costs the server, stage by
//! stage and end to end.
//!
//! What it measures (group `full_auth`):
//!
//! - `challenge_issue_take`: `ChallengeBook::issue` then `take` of the same
//!   challenge (two `OsRng` draws, two map operations under the book's lock).
//! - `identity_verify`: the identity stage alone, as the server runs it —
//!   `Pipeline::new(vec![Box::new(IdentityStage::default())]).run(&request)` with a
//!   valid Schnorr proof (Ristretto255 point decompression, SHA-512
//!   challenge scalar, double-scalar multiplication, SHA3-256 digests).
//! - `identity_prove`: the client's `IdentitySecret::prove`, for reference;
//!   it is not server work.
//! - `attestation_sign`: `SessionContext::sign` (ML-DSA-65) with the
//!   keyring's current signing key, over a context shaped like the ones
//!   `SessionAuthority::mint` builds (two claims, a 5-character user).
//! - `seal` / `open`: `Keyring::seal` (AES-256-GCM) of those signed context
//!   bytes (about 3.5 KB), and `Keyring::open` of the result.
//! - `mint_memory_store`: `SessionAuthority::mint` over `MemoryStore` — sign,
//!   seal, in-memory insert, hot-tier insert.
//! - `end_to_end_memory`: the server side of one full authentication —
//!   challenge issue, then `take`, the user-record lookup, the identity
//!   pipeline and `mint` over `MemoryStore`. The client's proof is computed
//!   between issue and take and excluded from the time (`iter_custom`), as
//!   are HTTP, JSON, fingerprint canonicalisation and any fsync.
//! - `mint_redb_store`: `SessionAuthority::mint` over `RedbStore` in a
//!   temporary directory: the same work plus a durable (fsync'd) redb
//!   commit. Slow, so it runs last with `sample_size(20)`.
//!
//! Why: full authentication is the expensive path the hot tier lets most
//! requests skip; these figures say where its time goes (proof check,
//! post-quantum signature, sealing, the durable commit) and what one login
//! costs in server CPU. Every timed server path uses `OsRng`, as the server
//! does. Each fixture is checked outside the timed loops (the proof passes,
//! a mint succeeds, a sealed context opens) before anything is timed.
//!
//! Run: `cargo bench -p postern-auth --bench full_auth`
//! (shorter: append `-- --warm-up-time 1 --measurement-time 3`). Criterion's
//! median estimate is the p50 reported.

// A benchmark's setup failing must abort the run loudly: unwrap/expect are
// the clearest way to do that here, and no production code path is involved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use postern_auth::challenge::ChallengeBook;
use postern_auth::identity::IdentityStage;
use postern_auth::pipeline::Pipeline;
use postern_auth::quota::ShareLimits;
use postern_auth::stage::{AuthRequest, Factors};
use postern_core::claims::{Claim, ClaimKind};
use postern_core::context::{SessionContext, UserId, Verdict};
use postern_core::device::Fingerprint;
use postern_core::identity::{IdentitySecret, Statement};
use postern_core::keyring::Keyring;
use postern_core::policy::ResumePolicy;
use postern_core::token::SessionToken;
use postern_core::SECOND;
use postern_store::embedded::RedbStore;
use postern_store::memory::MemoryStore;
use postern_store::{
    AuthorityConfig, Minted, NewSession, SessionAuthority, SessionStore, UserRecord,
};
use rand::rngs::OsRng;

const T0: u64 = 1_700_000_000_000_000_000;
/// When the client answers its challenge.
const T1: u64 = T0 + SECOND;
const CHALLENGE_TTL: u64 = 60 * SECOND;
const MAX_CHALLENGES: usize = 10_000;

/// One enrolled user on one device, with a proof for one challenge.
struct Client {
    secret: IdentitySecret,
    user: UserId,
    record: UserRecord,
    device: Fingerprint,
    device_hash: [u8; 32],
}

impl Client {
    fn new() -> Self {
        let secret = IdentitySecret::generate(&mut OsRng);
        let device = Fingerprint::canonical([
            ("ua", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128"),
            ("platform", "Linux"),
            ("screen", "1920x1080"),
            ("timezone", "Europe/Paris"),
            ("language", "en-GB"),
        ])
        .expect("fingerprint");
        Self {
            record: UserRecord {
                identity_key: *secret.public_key().as_bytes(),
                enrolled_at: T0,
                identity_revoked_at: None,
                biometric_template: None,
            },
            device_hash: device.hash(),
            secret,
            user: UserId::parse("alice").expect("user id"),
            device,
        }
    }

    fn prove(&self, challenge: &[u8; 32]) -> [u8; 64] {
        self.secret.prove(
            &Statement {
                challenge,
                audience: "https://auth.example",
                user: self.user.as_str(),
                device_hash: &self.device_hash,
            },
            &mut OsRng,
        )
    }

    fn request<'a>(&'a self, challenge: &'a [u8; 32], proof: &'a [u8]) -> AuthRequest<'a> {
        AuthRequest {
            user: &self.user,
            record: &self.record,
            device: &self.device,
            challenge,
            audience: "https://auth.example",
            factors: Factors {
                identity_proof: Some(proof),
                ..Factors::default()
            },
        }
    }
}

fn authority(keyring: &Arc<Keyring>, store: Arc<dyn SessionStore>) -> SessionAuthority {
    SessionAuthority::restore(keyring.clone(), store, AuthorityConfig::default(), T0)
        .expect("restore over an empty store")
        .0
}

/// What the stages established for `client`, as the server mints it.
fn new_session(client: &Client, proof_digest: [u8; 32], credential: [u8; 16]) -> NewSession {
    NewSession {
        user: client.user.clone(),
        device: client.device.clone(),
        verdict: Verdict::new(true, 7),
        proof_digest,
        credential,
        batch_slot: None,
        extra_claims: Vec::new(),
    }
}

/// A context shaped like the ones `SessionAuthority::mint` builds.
fn mint_like_context(keyring: &Keyring, client: &Client, proof_digest: [u8; 32]) -> SessionContext {
    let policy = ResumePolicy::default();
    let generation = keyring.current();
    let token = SessionToken::generate(&mut OsRng);
    let ttl_secs = u32::try_from(policy.ttl / SECOND).expect("ttl fits");
    SessionContext {
        session_id: token.id(),
        verifier_hash: token.verifier_hash(),
        user: client.user.clone(),
        verdict: Verdict::new(true, 7),
        auth_time: T1,
        expires_at: T1 + policy.ttl,
        resume_until: T1 + policy.resume_window.min(policy.ttl),
        device_mac: generation.binder().bind(&client.device),
        batch_slot: None,
        proof_digest,
        credential: [3; 16],
        claims: vec![
            Claim {
                kind: ClaimKind::Identity,
                value_digest: proof_digest,
                verified_at: T1,
                ttl_secs,
            },
            Claim {
                kind: ClaimKind::Device,
                value_digest: client.device_hash,
                verified_at: T1,
                ttl_secs,
            },
        ],
        key_id: generation.id(),
    }
}

/// The server's work after the challenge was issued: take it, look the user
/// up, run the identity pipeline, mint over the authority's store.
fn verify_and_mint(
    book: &ChallengeBook,
    store: &MemoryStore,
    pipeline: &Pipeline,
    authority: &SessionAuthority,
    client: &Client,
    challenge_id: &[u8; 16],
    proof: &[u8],
) -> Minted {
    let challenge = book.take(challenge_id, &client.user, T1).expect("take");
    let record = store
        .get_user(&client.user)
        .expect("user lookup")
        .expect("enrolled user");
    let request = AuthRequest {
        user: &client.user,
        record: &record,
        device: &client.device,
        challenge: &challenge,
        audience: "https://auth.example",
        factors: Factors {
            identity_proof: Some(proof),
            ..Factors::default()
        },
    };
    let evidence = pipeline.run(&request).result.expect("identity passes");
    let new = NewSession {
        user: client.user.clone(),
        device: client.device.clone(),
        verdict: Verdict::new(true, 7),
        proof_digest: evidence.proof_digest,
        credential: evidence.credential,
        batch_slot: evidence.batch_slot,
        extra_claims: evidence.claims,
    };
    authority.mint(new, T1, &mut OsRng).expect("mint")
}

/// A fresh directory for the redb file, on the same disk as `/tmp`.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("postern-bench-full-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn bench_full_auth(c: &mut Criterion) {
    let client = Client::new();
    let keyring = Arc::new(Keyring::generate(T0, &mut OsRng));
    let book = ChallengeBook::new(CHALLENGE_TTL, MAX_CHALLENGES, ShareLimits::UNLIMITED);
    let pipeline = Pipeline::new(vec![Box::new(IdentityStage::default())]);

    // --- checks, outside every timed loop ---
    let issued = book.issue(&client.user, "bench", T0, &mut OsRng).unwrap();
    let challenge = book.take(&issued.id, &client.user, T1).unwrap();
    assert_eq!(challenge, issued.challenge);
    let proof = client.prove(&challenge);
    let request = client.request(&challenge, &proof);
    let outcome = pipeline.run(&request);
    let evidence = outcome.result.expect("a valid proof passes the pipeline");
    assert_eq!(outcome.reports.len(), 1);
    assert_eq!(outcome.reports[0].stage, "identity");

    let context = mint_like_context(&keyring, &client, evidence.proof_digest);
    let generation = keyring.current();
    let signed = context.sign(generation.signing(), &mut OsRng).unwrap();
    assert!(
        (3_400..=3_700).contains(&signed.len()),
        "signed context is {} bytes",
        signed.len()
    );
    let record_key = *context.session_id.as_bytes();
    let sealed = keyring.seal(&record_key, &signed, &mut OsRng).unwrap();
    assert_eq!(keyring.open(&record_key, &sealed).unwrap(), signed);
    eprintln!(
        "full_auth: signed context {} bytes, sealed {} bytes",
        signed.len(),
        sealed.len()
    );

    let memory_authority = authority(&keyring, Arc::new(MemoryStore::default()));
    let new = new_session(&client, evidence.proof_digest, evidence.credential);
    memory_authority
        .mint(new.clone(), T1, &mut OsRng)
        .expect("mint over MemoryStore");

    let e2e_store = Arc::new(MemoryStore::default());
    assert!(e2e_store.insert_user(&client.user, &client.record).unwrap());
    let e2e_authority = authority(&keyring, e2e_store.clone());
    let issued = book.issue(&client.user, "bench", T0, &mut OsRng).unwrap();
    let proof_e2e = client.prove(&issued.challenge);
    let minted = verify_and_mint(
        &book,
        &e2e_store,
        &pipeline,
        &e2e_authority,
        &client,
        &issued.id,
        &proof_e2e,
    );
    assert_eq!(minted.session.context().user, client.user);
    assert_eq!(book.outstanding(), 0);

    // --- timed ---
    let mut group = c.benchmark_group("full_auth");
    group.bench_function("challenge_issue_take", |b| {
        b.iter(|| {
            let issued = book
                .issue(black_box(&client.user), "bench", black_box(T0), &mut OsRng)
                .unwrap();
            book.take(black_box(&issued.id), &client.user, black_box(T1))
                .unwrap()
        })
    });
    group.bench_function("identity_verify", |b| {
        b.iter(|| pipeline.run(black_box(&request)))
    });
    group.bench_function("identity_prove", |b| {
        b.iter(|| client.prove(black_box(&challenge)))
    });
    group.bench_function("attestation_sign", |b| {
        b.iter(|| {
            black_box(&context)
                .sign(generation.signing(), &mut OsRng)
                .unwrap()
        })
    });
    group.bench_function("seal", |b| {
        b.iter(|| {
            keyring
                .seal(black_box(&record_key), black_box(&signed), &mut OsRng)
                .unwrap()
        })
    });
    group.bench_function("open", |b| {
        b.iter(|| {
            keyring
                .open(black_box(&record_key), black_box(&sealed))
                .unwrap()
        })
    });
    group.bench_function("mint_memory_store", |b| {
        b.iter(|| {
            memory_authority
                .mint(black_box(new.clone()), black_box(T1), &mut OsRng)
                .unwrap()
        })
    });
    group.bench_function("end_to_end_memory", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let issued = book
                    .issue(black_box(&client.user), "bench", black_box(T0), &mut OsRng)
                    .unwrap();
                total += started.elapsed();
                // Client side: not server work, not timed.
                let proof = client.prove(&issued.challenge);
                let started = Instant::now();
                let minted = black_box(verify_and_mint(
                    &book,
                    &e2e_store,
                    &pipeline,
                    &e2e_authority,
                    &client,
                    black_box(&issued.id),
                    black_box(&proof),
                ));
                total += started.elapsed();
                drop(minted);
            }
            total
        })
    });

    // Durable: each mint is an fsync'd redb commit.
    let dir = scratch_dir();
    let redb = RedbStore::open(&dir.join("sessions.redb")).expect("open redb");
    let redb_authority = authority(&keyring, Arc::new(redb));
    redb_authority
        .mint(new.clone(), T1, &mut OsRng)
        .expect("mint over RedbStore");
    group.sample_size(20);
    group.bench_function("mint_redb_store", |b| {
        b.iter(|| {
            redb_authority
                .mint(black_box(new.clone()), black_box(T1), &mut OsRng)
                .unwrap()
        })
    });
    group.finish();
    drop(redb_authority);
    std::fs::remove_dir_all(&dir).expect("remove scratch dir");
}

criterion_group!(benches, bench_full_auth);
criterion_main!(benches);
