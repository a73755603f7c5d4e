//! Resume-path benchmarks for the hot tier, beside the seed system's design.
//!
//! What it measures, all in one run on the same machine:
//!
//! - `resume/postern_hit`: the full in-process hit path as the server runs
//!   it — `SessionToken::parse` of the presented string, then
//!   `SessionAuthority::resume` (hot-tier lookup, constant-time verifier
//!   check, expiry/window/idle checks, HMAC-SHA256 device check, policy).
//!   Fingerprint canonicalisation is excluded: the server builds the
//!   `Fingerprint` from the request JSON before calling the authority.
//! - `resume/postern_hit_preparsed`: `resume` alone, with a parsed token.
//! - `resume/seed_design_verify_every_time`: the seed system's design — the
//!   same parse and `resume`, plus decoding the signed session context and
//!   verifying its ML-DSA-65 signature on every resume
//!   (`SessionContext::decode_verified`), which Postern does once, when the
//!   session enters the hot tier.
//! - `resume/miss_unknown_selector` and `resume/miss_wrong_verifier`: the
//!   two ways a well-formed token fails; they should cost the same, so that
//!   timing does not reveal whether a selector exists.
//! - `device_mac/hmac_sha256` (Postern's `DeviceBinder::bind`) against
//!   `device_mac/hmac_sha3_256` (the seed's MAC), both from a pre-keyed state
//!   cloned per call, over the same ~120-byte canonical fingerprint.
//! - `token/sha256_verifier` (`SessionToken::verifier_hash`) and
//!   `token/parse` (`SessionToken::parse`).
//!
//! Why: the hot tier exists so that a resume costs microseconds rather than
//! a signature verification; this bench shows by how much, and backs the
//! choice of HMAC-SHA256 over HMAC-SHA3-256 for device binding.
//!
//! Setup: a fresh keyring and an authority over `MemoryStore` holding 10,000
//! minted sessions (about 0.2 ms each, for the ML-DSA signature), so lookups
//! hit a populated map. The setup asserts that the benchmarked hit really
//! answers `Resumed` before anything is timed.
//!
//! Run: `cargo bench -p postern-store --bench resume`
//! (shorter: append `-- --warm-up-time 1 --measurement-time 3`). Criterion's
//! median estimate is the p50 reported.

// A benchmark's setup failing must abort the run loudly: unwrap/expect are
// the clearest way to do that here, and no production code path is involved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, Mac};
use postern_core::context::{SessionContext, UserId};
use postern_core::device::Fingerprint;
use postern_core::keyring::Keyring;
use postern_core::policy::Decision;
use postern_core::token::SessionToken;
use postern_core::SECOND;
use postern_store::memory::MemoryStore;
use postern_store::{AuthorityConfig, NewSession, SessionAuthority};
use sha3::Sha3_256;

const SESSIONS: usize = 10_000;
/// The session whose token the hit benchmarks present.
const PICKED: usize = 4_321;
const T0: u64 = 1_700_000_000_000_000_000;

struct Fixture {
    keyring: Arc<Keyring>,
    authority: SessionAuthority,
    token_text: String,
    device: Fingerprint,
    /// The picked session's context, signed as the seed stores it.
    signed_context: Vec<u8>,
    now: u64,
}

fn fixture() -> Fixture {
    let mut rng = rand::thread_rng();
    let keyring = Arc::new(Keyring::generate(T0, &mut rng));
    let (authority, _) = SessionAuthority::restore(
        keyring.clone(),
        Arc::new(MemoryStore::default()),
        AuthorityConfig::default(),
        T0,
    )
    .expect("restore over an empty store");

    let mut picked = None;
    for i in 0..SESSIONS {
        let device = Fingerprint::single(&format!("laptop-{i}")).unwrap();
        let user = UserId::parse(&format!("user{i}@example.org")).unwrap();
        let minted = authority
            .mint(NewSession::verified(user, &device), T0, &mut rng)
            .expect("mint");
        if i == PICKED {
            picked = Some((minted, device));
        }
    }
    let (minted, device) = picked.expect("picked session minted");
    assert_eq!(authority.hot().len(), SESSIONS);

    // The seed keeps the signed context and verifies it on each resume;
    // re-sign the picked session's context with the key that minted it.
    let generation = keyring.current();
    assert_eq!(generation.id(), minted.session.context().key_id);
    let signed_context = minted
        .session
        .context()
        .sign(generation.signing(), &mut rng)
        .expect("sign context");

    Fixture {
        token_text: minted.token.expose(),
        keyring,
        authority,
        device,
        signed_context,
        now: T0 + SECOND,
    }
}

fn seed_resume(f: &Fixture, token_text: &str) -> Decision {
    let token = SessionToken::parse(token_text).expect("token parses");
    let context = SessionContext::decode_verified(&f.signed_context, |id| {
        f.keyring.generation(id).map(|g| g.verifying())
    })
    .expect("context verifies");
    black_box(&context);
    f.authority
        .resume(&token, Some(&f.device), None, None, f.now)
        .decision
}

fn bench_resume(c: &mut Criterion) {
    let f = fixture();
    let token = SessionToken::parse(&f.token_text).unwrap();

    // Outside the timed loops: every path must really be a hit.
    let outcome = f
        .authority
        .resume(&token, Some(&f.device), None, None, f.now);
    assert_eq!(outcome.decision, Decision::Resumed);
    let decoded = SessionContext::decode_verified(&f.signed_context, |id| {
        f.keyring.generation(id).map(|g| g.verifying())
    })
    .unwrap();
    assert_eq!(&decoded, outcome.session.unwrap().context());
    assert_eq!(seed_resume(&f, &f.token_text), Decision::Resumed);

    let mut group = c.benchmark_group("resume");
    group.bench_function("postern_hit", |b| {
        b.iter(|| {
            let token = SessionToken::parse(black_box(&f.token_text)).unwrap();
            f.authority
                .resume(&token, Some(black_box(&f.device)), None, None, f.now)
                .decision
        })
    });
    group.bench_function("postern_hit_preparsed", |b| {
        b.iter(|| {
            f.authority
                .resume(
                    black_box(&token),
                    Some(black_box(&f.device)),
                    None,
                    None,
                    f.now,
                )
                .decision
        })
    });
    group.bench_function("seed_design_verify_every_time", |b| {
        b.iter(|| seed_resume(&f, black_box(&f.token_text)))
    });
    // A presented token must not reveal whether its selector exists: an
    // unknown selector and a known selector with a wrong verifier should
    // cost the same.
    let unknown = SessionToken::generate(&mut rand::thread_rng());
    let wrong_verifier = {
        let forged = format!(
            "{}{}",
            &f.token_text[..27],
            "A".repeat(f.token_text.len() - 27)
        );
        SessionToken::parse(&forged).unwrap()
    };
    assert_eq!(wrong_verifier.id(), token.id());
    for probe in [&unknown, &wrong_verifier] {
        let d = f
            .authority
            .resume(probe, Some(&f.device), None, None, f.now)
            .decision;
        assert_eq!(d, Decision::FullAuth(postern_core::policy::Reason::Unknown));
    }
    group.bench_function("miss_unknown_selector", |b| {
        b.iter(|| {
            f.authority
                .resume(black_box(&unknown), Some(&f.device), None, None, f.now)
                .decision
        })
    });
    group.bench_function("miss_wrong_verifier", |b| {
        b.iter(|| {
            f.authority
                .resume(
                    black_box(&wrong_verifier),
                    Some(&f.device),
                    None,
                    None,
                    f.now,
                )
                .decision
        })
    });
    group.finish();
}

fn bench_device_mac(c: &mut Criterion) {
    let fingerprint = Fingerprint::canonical([
        ("ua", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128"),
        ("platform", "Linux"),
        ("screen", "1920x1080"),
        ("timezone", "Europe/Paris"),
        ("language", "en-GB"),
    ])
    .unwrap();
    let canonical = fingerprint.as_bytes();
    assert!((100..=140).contains(&canonical.len()));
    eprintln!(
        "device_mac: canonical fingerprint is {} bytes",
        canonical.len()
    );

    let keyring = Keyring::generate(T0, &mut rand::thread_rng());
    let binder = keyring.current().binder().clone();
    let sha3_keyed = <Hmac<Sha3_256> as Mac>::new_from_slice(&[7u8; 32]).unwrap();

    let mut group = c.benchmark_group("device_mac");
    group.bench_function("hmac_sha256", |b| {
        b.iter(|| binder.bind(black_box(&fingerprint)))
    });
    group.bench_function("hmac_sha3_256", |b| {
        b.iter(|| {
            let mut mac = sha3_keyed.clone();
            mac.update(black_box(canonical));
            let out: [u8; 32] = mac.finalize().into_bytes().into();
            out
        })
    });
    group.finish();
}

fn bench_token(c: &mut Criterion) {
    let token = SessionToken::generate(&mut rand::thread_rng());
    let text = token.expose();
    let mut group = c.benchmark_group("token");
    group.bench_function("sha256_verifier", |b| {
        b.iter(|| black_box(&token).verifier_hash())
    });
    group.bench_function("parse", |b| {
        b.iter(|| SessionToken::parse(black_box(&text)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_resume, bench_device_mac, bench_token);
criterion_main!(benches);
