//! ML-DSA-65 (FIPS 204): `libcrux-ml-dsa` against RustCrypto `ml-dsa`.
//!
//! Why this exists: the ML-DSA crate behind `postern_core::signing` is chosen
//! by measurement, not by reputation. This bench times key generation,
//! signing and verification of a ~500-byte message (about the size of a
//! session context body) with both implementations in the same run, on the
//! same machine, with the same key seed and the same FIPS 204 context string
//! ([`postern_core::signing::CONTEXT`]).
//!
//! - `libcrux` goes through the crate's own wrapper
//!   ([`postern_core::signing::SigningKey`] / `VerifyingKey`), i.e. exactly
//!   what production runs: libcrux with its AVX2 path (`simd256`, picked at
//!   run time when the CPU has AVX2), hedged signing with `rand::thread_rng()`.
//! - `rustcrypto` uses `ml-dsa` directly: hedged signing
//!   (`ExpandedSigningKey::sign_randomized`) with the same `thread_rng()`, and
//!   `VerifyingKey::verify_with_context`. Signatures are encoded to bytes
//!   inside the sign loop and decoded from bytes inside the verify loop, since
//!   production moves signatures as bytes (the libcrux wrapper does the same
//!   work inside its calls).
//! - `verify/rustcrypto_vk_from_bytes` also decodes the verification key in
//!   the loop. RustCrypto's `VerifyingKey` caches the expanded matrix `Â`,
//!   libcrux re-expands it from the key bytes on every call, so this variant
//!   shows how much of the gap is that cache.
//!
//! The setup (outside the timed loops) checks that both implementations
//! derive the same verification key from the same 32-byte seed, that each
//! signature verifies under its own implementation, and that signatures
//! interoperate in both directions; a failure aborts the benchmark.
//!
//! Run (a separate target dir keeps it from blocking the main build):
//!
//! ```text
//! CARGO_TARGET_DIR=$HOME/.cache/postern/target-helper \
//!   cargo bench -p postern-core --bench mldsa -- --warm-up-time 1 --measurement-time 4
//! ```

// A failed setup (a signature that does not verify) must abort the benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ml_dsa::signature::rand_core::{TryCryptoRng, TryRng};
use ml_dsa::{ExpandedSigningKey, Keypair, MlDsa65, Signature};
use postern_core::signing::{SigningKey, VerifyingKey, CONTEXT, SIGNATURE_LEN};
use rand::RngCore;

type RcSigningKey = ml_dsa::SigningKey<MlDsa65>;
type RcVerifyingKey = ml_dsa::VerifyingKey<MlDsa65>;

const SEED: [u8; 32] = [0x42; 32];
const MESSAGE_LEN: usize = 500;

fn message() -> Vec<u8> {
    (0..MESSAGE_LEN)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect()
}

/// `ml-dsa` 0.1.2 takes a `rand_core` 0.10 RNG, the workspace has rand 0.8
/// (`rand_core` 0.6). This adapter lets both implementations draw their
/// 32-byte signing randomness from the same `thread_rng()`.
struct ThreadRng(rand::rngs::ThreadRng);

impl TryRng for ThreadRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

impl TryCryptoRng for ThreadRng {}

fn rc_sign(
    sk: &ExpandedSigningKey<MlDsa65>,
    msg: &[u8],
    rng: &mut ThreadRng,
) -> [u8; SIGNATURE_LEN] {
    let sig = sk.sign_randomized(msg, CONTEXT, rng).unwrap();
    sig.encode().as_slice().try_into().unwrap()
}

fn rc_verify(vk: &RcVerifyingKey, msg: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
    match Signature::<MlDsa65>::try_from(&sig[..]) {
        Ok(sig) => vk.verify_with_context(msg, CONTEXT, &sig),
        Err(_) => false,
    }
}

struct Fixture {
    msg: Vec<u8>,
    lc_sk: SigningKey,
    lc_vk: VerifyingKey,
    lc_sig: [u8; SIGNATURE_LEN],
    rc_sk: ExpandedSigningKey<MlDsa65>,
    rc_vk: RcVerifyingKey,
    rc_vk_bytes: Vec<u8>,
    rc_sig: [u8; SIGNATURE_LEN],
}

/// Builds both key pairs from [`SEED`], signs once with each, and checks
/// key equality, self-verification and cross-verification.
fn fixture() -> Fixture {
    let msg = message();
    let mut rng = ThreadRng(rand::thread_rng());

    let lc_sk = SigningKey::from_seed(SEED);
    let lc_vk = lc_sk.verifying_key();
    let rc_sk = ExpandedSigningKey::<MlDsa65>::from_seed(&SEED.into());
    let rc_vk = RcSigningKey::from_seed(&SEED.into()).verifying_key();
    let rc_vk_bytes = rc_vk.encode().as_slice().to_vec();

    // Same seed, same FIPS 204 KeyGen_internal: the public keys must be equal.
    let lc_vk_bytes = lc_vk.as_bytes();
    if let Some(i) =
        (0..lc_vk_bytes.len().min(rc_vk_bytes.len())).find(|&i| lc_vk_bytes[i] != rc_vk_bytes[i])
    {
        let part = if i < 32 { "rho" } else { "t1" };
        eprintln!("verification keys from the same seed differ: first at byte {i} ({part})");
    }
    assert_eq!(
        lc_vk_bytes,
        &rc_vk_bytes[..],
        "libcrux and RustCrypto derive different verification keys from the same seed"
    );
    // The expanded signing key derives the same public key.
    assert_eq!(rc_sk.verifying_key().encode(), rc_vk.encode());

    let lc_sig = lc_sk.sign(&msg, &mut rng.0).unwrap();
    let rc_sig = rc_sign(&rc_sk, &msg, &mut rng);

    let mut other = msg.clone();
    other[0] ^= 1;
    assert!(
        lc_vk.verify(&msg, &lc_sig),
        "libcrux: own signature rejected"
    );
    assert!(
        !lc_vk.verify(&other, &lc_sig),
        "libcrux: changed message accepted"
    );
    assert!(
        rc_verify(&rc_vk, &msg, &rc_sig),
        "RustCrypto: own signature rejected"
    );
    assert!(
        !rc_verify(&rc_vk, &other, &rc_sig),
        "RustCrypto: changed message accepted"
    );
    assert!(
        rc_verify(&rc_vk, &msg, &lc_sig),
        "cross-check: RustCrypto rejects a libcrux signature"
    );
    assert!(
        lc_vk.verify(&msg, &rc_sig),
        "cross-check: libcrux rejects a RustCrypto signature"
    );
    eprintln!(
        "mldsa65 setup: same verification key from the same seed ({} bytes); \
         own signatures verify; cross-check libcrux->RustCrypto and RustCrypto->libcrux ok; \
         avx2 detected: {}",
        rc_vk_bytes.len(),
        std::is_x86_feature_detected!("avx2"),
    );

    Fixture {
        msg,
        lc_sk,
        lc_vk,
        lc_sig,
        rc_sk,
        rc_vk,
        rc_vk_bytes,
        rc_sig,
    }
}

fn bench_mldsa(c: &mut Criterion) {
    let f = fixture();

    let mut g = c.benchmark_group("mldsa65/keygen");
    g.bench_function("libcrux", |b| {
        b.iter(|| SigningKey::from_seed(black_box(SEED)))
    });
    g.bench_function("rustcrypto", |b| {
        b.iter(|| RcSigningKey::from_seed(black_box(&SEED.into())))
    });
    g.finish();

    let mut g = c.benchmark_group("mldsa65/sign");
    g.bench_function("libcrux", |b| {
        let mut rng = rand::thread_rng();
        b.iter(|| f.lc_sk.sign(black_box(&f.msg), &mut rng).unwrap())
    });
    g.bench_function("rustcrypto", |b| {
        let mut rng = ThreadRng(rand::thread_rng());
        b.iter(|| rc_sign(&f.rc_sk, black_box(&f.msg), &mut rng))
    });
    g.finish();

    let mut g = c.benchmark_group("mldsa65/verify");
    g.bench_function("libcrux", |b| {
        b.iter(|| f.lc_vk.verify(black_box(&f.msg), black_box(&f.lc_sig)))
    });
    g.bench_function("rustcrypto", |b| {
        b.iter(|| rc_verify(&f.rc_vk, black_box(&f.msg), black_box(&f.rc_sig)))
    });
    g.bench_function("rustcrypto_vk_from_bytes", |b| {
        b.iter(|| {
            let enc = black_box(&f.rc_vk_bytes[..]).try_into().unwrap();
            let vk = RcVerifyingKey::decode(&enc);
            rc_verify(&vk, black_box(&f.msg), black_box(&f.rc_sig))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_mldsa);
criterion_main!(benches);
