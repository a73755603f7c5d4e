//! Session JWTs: what issuing (`sign`) and accepting (`verify`) one costs
//! with each algorithm, and how large the token is. Run:
//! `cargo bench -p postern-server --bench jwt -- --warm-up-time 1 --measurement-time 3`

// A benchmark that cannot set up has nothing to measure: it stops.
#![allow(clippy::panic)]

use criterion::{criterion_group, criterion_main, Criterion};
use postern_core::keyring::Keyring;
use postern_core::SECOND;
use postern_server::jwt::{device_binding_hash, JwtAlgorithm, JwtKeys, SessionClaims};

const NOW: u64 = 1_800_000_000;

fn claims() -> SessionClaims {
    SessionClaims {
        iss: "https://auth.example".into(),
        aud: "postern".into(),
        sub: "alice@example.com".into(),
        sid: "Qm9vdHN0cmFwcGVkU2Vzc2lvbg".into(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 900,
        dbh: device_binding_hash(b"device-binding-mac"),
    }
}

fn jwt(c: &mut Criterion) {
    let ring = Keyring::generate(NOW * SECOND, &mut rand::thread_rng());
    let mut group = c.benchmark_group("jwt");
    for algorithm in [JwtAlgorithm::EdDsa, JwtAlgorithm::MlDsa65] {
        let keys = match JwtKeys::from_keyring(&ring, "https://auth.example", algorithm) {
            Ok(keys) => keys,
            Err(e) => panic!("keys: {e}"),
        };
        let token = match keys.sign(&claims()) {
            Ok(token) => token,
            Err(e) => panic!("sign: {e}"),
        };
        eprintln!(
            "{}: a session JWT is {} bytes",
            algorithm.name(),
            token.len()
        );
        group.bench_function(format!("sign/{}", algorithm.name()), |b| {
            b.iter(|| keys.sign(&claims()))
        });
        group.bench_function(format!("verify/{}", algorithm.name()), |b| {
            b.iter(|| keys.verify(&token, NOW + 1))
        });
    }
    group.finish();
}

criterion_group!(benches, jwt);
criterion_main!(benches);
