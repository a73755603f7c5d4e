//! What an upstream identity provider answers, for a gate in front of it
//! (`postern_tower::upstream`): RFC 7662 introspection JSON, Auth1 session
//! JSON, a JWKS document and the JWT header peek. A malicious upstream
//! controls every byte; the gate must answer a typed error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_tower::upstream::{auth1, introspection, peek_jwt, UpstreamError};

const NOW: u64 = 1_800_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    match introspection::decode_answer(data, NOW) {
        Ok(validated) => {
            assert!(!validated.scopes.iter().any(|s| s.is_empty()));
            assert!(validated.principal().is_some_and(|p| !p.is_empty()));
            let _ = validated.weight();
        }
        Err(e) => assert!(matches!(
            e,
            UpstreamError::Malformed(_) | UpstreamError::Rejected(_)
        )),
    }
    match auth1::decode_answer(data, NOW) {
        Ok(validated) => {
            assert!(validated.expires_at == 0 || validated.expires_at >= NOW);
            let _ = validated.weight();
        }
        Err(e) => assert!(matches!(e, UpstreamError::Malformed(_))),
    }
    if let Some(kids) = postern_tower::jwks::key_ids(data) {
        let _ = postern_tower::jwks::removed(&kids, &Default::default()).count();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some((kid, _)) = peek_jwt(text) {
            assert!(kid.is_none_or(|k| k.len() <= 256));
        }
    }
});
