//! Attestation per session: one ML-DSA-65 signature per context, against one
//! signature per batch (a SHA3-256 Merkle root over up to 32 contexts).
//!
//! - `attest/sign_single`: `SessionContext::sign` of one context.
//! - `attest/sign_batch_32`: `SessionContext::sign_batch` of 32 contexts;
//!   criterion reports the batch, and the per-session figure is that / 32
//!   (criterion's throughput line shows it as elements per second).
//! - `mint/single` and `mint/batch_32`: the whole `SessionAuthority::mint`
//!   (token, context, signing, AES-GCM sealing, store, hot tier) against
//!   `mint_batch` of 32, over `MemoryStore` so that disk is not measured.
//! - `verify/batch_member`: what restoring one batch-attested record costs
//!   (path of 5 hashes + one ML-DSA verify), against `verify/single`.
//!
//! Why: turbo mode decides 32 users at once; signing each one separately
//! costs more than the whole per-user budget (150 µs), so the batch shares one
//! signature while every record still verifies on its own.
//!
//! Run: `cargo bench -p postern-store --bench attest`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use postern_core::context::{SessionContext, UserId};
use postern_core::device::Fingerprint;
use postern_core::keyring::Keyring;
use postern_store::memory::MemoryStore;
use postern_store::{AuthorityConfig, NewSession, SessionAuthority};

const T0: u64 = 1_700_000_000_000_000_000;

fn news(n: usize) -> Vec<NewSession> {
    let device = Fingerprint::single("laptop").unwrap();
    (0..n)
        .map(|i| NewSession {
            batch_slot: Some((i % 32) as u8),
            ..NewSession::verified(UserId::parse(&format!("user{i}")).unwrap(), &device)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = rand::thread_rng();
    let keyring = Arc::new(Keyring::generate(T0, &mut rng));
    let (authority, _) = SessionAuthority::restore(
        keyring.clone(),
        Arc::new(MemoryStore::default()),
        AuthorityConfig::default(),
        T0,
    )
    .unwrap();
    let contexts: Vec<SessionContext> = news(32)
        .into_iter()
        .map(|n| {
            let m = authority.mint(n, T0, &mut rng).unwrap();
            m.session.context().clone()
        })
        .collect();
    let key = keyring.current().signing();
    let vk = keyring.current().verifying();

    let mut g = c.benchmark_group("attest");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign_single", |b| {
        b.iter(|| black_box(contexts[0].sign(key, &mut rng).unwrap()))
    });
    g.throughput(Throughput::Elements(32));
    g.bench_function("sign_batch_32", |b| {
        b.iter(|| black_box(SessionContext::sign_batch(&contexts, key, &mut rng).unwrap()))
    });
    g.finish();

    let mut g = c.benchmark_group("mint");
    g.throughput(Throughput::Elements(1));
    g.bench_function("single", |b| {
        b.iter_batched(
            || news(1).pop().unwrap(),
            |n| black_box(authority.mint(n, T0, &mut rand::thread_rng()).unwrap()),
            criterion::BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(32));
    g.bench_function("batch_32", |b| {
        b.iter_batched(
            || news(32),
            |n| {
                black_box(
                    authority
                        .mint_batch(n, T0, &mut rand::thread_rng())
                        .unwrap(),
                )
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();

    let single = contexts[3].sign(key, &mut rng).unwrap();
    let batch = SessionContext::sign_batch(&contexts, key, &mut rng).unwrap();
    let mut g = c.benchmark_group("verify");
    g.bench_function("single", |b| {
        b.iter(|| black_box(SessionContext::decode_verified(&single, |_| Some(vk)).unwrap()))
    });
    g.bench_function("batch_member", |b| {
        b.iter(|| black_box(SessionContext::decode_verified(&batch[3], |_| Some(vk)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
