//! The signed session context (`postern_core::context`): what a store hands
//! back and a batch record carries. Arbitrary bytes must decode to a typed
//! error or to a context whose signature verified; a context built from
//! the input, signed (alone or in a batch), must decode to itself.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use postern_core::claims::{Claim, ClaimKind};
use postern_core::context::{SessionContext, UserId, Verdict, MAX_BATCH};
use postern_core::signing::{SigningKey, VerifyingKey};
use postern_core::token::{SessionId, VerifierHash};
use postern_fuzz::{rng, Cursor};

const KEY_ID: u32 = 7;

fn keys() -> &'static (SigningKey, VerifyingKey) {
    static KEYS: OnceLock<(SigningKey, VerifyingKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let signing = SigningKey::from_seed([0x42; 32]);
        let verifying = signing.verifying_key();
        (signing, verifying)
    })
}

fn lookup(id: u32) -> Option<&'static VerifyingKey> {
    (id == KEY_ID).then_some(&keys().1)
}

/// A context from the input, or none when the input names no valid user.
fn context_from(c: &mut Cursor<'_>) -> Option<SessionContext> {
    let flags = c.u8();
    let session_id = SessionId::from_bytes(c.array());
    let verifier_hash = VerifierHash::from_bytes(c.array());
    let user = UserId::parse(&c.string(80)).ok()?;
    let mut times = [c.u64(), c.u64(), c.u64()];
    times.sort_unstable();
    let slot = c.u8();
    let claim_count = usize::from(c.u8() % 18);
    let mut claims = Vec::new();
    for _ in 0..claim_count {
        let kind = ClaimKind::ALL[usize::from(c.u8()) % ClaimKind::ALL.len()];
        claims.push(Claim {
            kind,
            value_digest: c.array(),
            verified_at: c.u64(),
            ttl_secs: c.u32(),
        });
    }
    Some(SessionContext {
        session_id,
        verifier_hash,
        user,
        verdict: Verdict::new(flags & 0x80 != 0, flags & 0x0f),
        auth_time: times[0],
        resume_until: times[1],
        expires_at: times[2],
        device_mac: c.array(),
        batch_slot: (slot != 0xfe).then_some(slot),
        proof_digest: c.array(),
        credential: c.array(),
        claims,
        key_id: KEY_ID,
    })
}

fuzz_target!(|data: &[u8]| {
    let (signing, _) = keys();
    match SessionContext::decode_verified(data, lookup) {
        Ok(context) => {
            // Only bytes this key signed get here: signed again, they say
            // the same thing.
            let again = context.sign(signing, &mut rng()).unwrap();
            assert_eq!(SessionContext::decode_verified(&again, lookup), Ok(context));
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }

    // Round trips, for inputs that start with a mode byte (signing is slow,
    // so most inputs only exercise the decoder above).
    let mut c = Cursor::new(data);
    match c.u8() {
        b'S' => {
            let Some(context) = context_from(&mut c) else {
                return;
            };
            match context.sign(signing, &mut rng()) {
                Ok(bytes) => {
                    assert_eq!(
                        SessionContext::decode_verified(&bytes, lookup),
                        Ok(context.clone())
                    );
                    // One flipped bit anywhere is refused.
                    let at = usize::from(c.u8()) * 13 % bytes.len();
                    let mut bad = bytes.clone();
                    bad[at] ^= 1 << (c.u8() % 8);
                    assert!(SessionContext::decode_verified(&bad, lookup).is_err());
                }
                Err(_) => assert!(
                    context.claims.len() > postern_core::claims::MAX_CLAIMS
                        || context.batch_slot == Some(0xff)
                ),
            }
        }
        b'B' => {
            let n = usize::from(c.u8()) % (MAX_BATCH + 1);
            let contexts: Vec<_> = (0..n).filter_map(|_| context_from(&mut c)).collect();
            if let Ok(records) = SessionContext::sign_batch(&contexts, signing, &mut rng()) {
                assert_eq!(records.len(), contexts.len());
                for (record, context) in records.iter().zip(&contexts) {
                    assert_eq!(
                        SessionContext::decode_verified(record, lookup),
                        Ok(context.clone())
                    );
                }
            }
        }
        _ => {}
    }
});
