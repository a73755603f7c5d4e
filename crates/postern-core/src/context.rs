//! The session context: a compact, versioned, signed binary record.
//!
//! Layout of version 1 (all integers little-endian):
//!
//! | field | bytes |
//! |---|---|
//! | format version (`1`) | 1 |
//! | verdict: bit 7 pass, bits 0-2 confidence, others zero | 1 |
//! | session id (token selector) | 16 |
//! | SHA-256 of the token verifier | 32 |
//! | user id length, user id | 1 + 1..=64 |
//! | auth time, expiry, resume-window end (ns since epoch) | 3 × 8 |
//! | device-binding MAC | 32 |
//! | biometric batch slot (`0xFF` = none) | 1 |
//! | identity-proof digest (SHA3-256) | 32 |
//! | credential id (digest of the identity key used) | 16 |
//! | claim count, claims (kind, digest, verified-at, TTL s) | 1 + n × 45 |
//! | signing key id | 4 |
//! | ML-DSA-65 signature over all preceding bytes | 3309 |
//!
//! [`SessionContext::decode_verified`] takes attacker-controlled bytes: it
//! rejects truncated, oversized, wrong-version and trailing-garbage input
//! with a typed [`ContextError`], never panics, and returns a context only
//! after its signature verified under the key its key id names.

use rand::{CryptoRng, RngCore};

use crate::claims::{self, Claim, ClaimKind, MAX_CLAIMS};
use crate::device::DeviceMac;
use crate::signing::{SigningFailed, SigningKey, VerifyingKey, SIGNATURE_LEN};
use crate::token::{SessionId, VerifierHash};
use crate::wire::{Reader, Truncated};
use crate::UnixNanos;

/// The current format version.
pub const VERSION: u8 = 1;
/// The largest encoded context, signature included.
pub const MAX_ENCODED_LEN: usize =
    FIXED_BODY_LEN + MAX_USER_LEN + MAX_CLAIMS * claims::ENCODED_LEN + SIGNATURE_LEN;
const FIXED_BODY_LEN: usize = 1 + 1 + 16 + 32 + 1 + 24 + 32 + 1 + 32 + 16 + 1 + 4;
/// Longest user id, in bytes.
pub const MAX_USER_LEN: usize = 64;
const NO_SLOT: u8 = 0xFF;

/// Why a context was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("session context is truncated")]
    Truncated,
    #[error("session context is larger than {MAX_ENCODED_LEN} bytes")]
    Oversized,
    #[error("session context has unknown format version {0}")]
    UnknownVersion(u8),
    #[error("session context has {0} bytes after its signature")]
    TrailingBytes(usize),
    #[error("session context field `{0}` is invalid")]
    InvalidField(&'static str),
    #[error("session context was signed with key {0}, which this keyring does not hold")]
    UnknownKey(u32),
    #[error("session context signature does not verify")]
    BadSignature,
}

impl From<Truncated> for ContextError {
    fn from(_: Truncated) -> Self {
        ContextError::Truncated
    }
}

/// Why a user id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a user id is 1 to 64 characters of A-Z a-z 0-9 . _ @ -")]
pub struct InvalidUserId;

/// A validated user id: 1..=64 bytes of `[A-Za-z0-9._@-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Box<str>);

impl UserId {
    pub fn parse(text: &str) -> Result<Self, InvalidUserId> {
        let ok = !text.is_empty()
            && text.len() <= MAX_USER_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
        if ok {
            Ok(Self(text.into()))
        } else {
            Err(InvalidUserId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The outcome of full authentication: pass/fail and a confidence of 0-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    confidence: u8,
}

impl Verdict {
    /// Confidence is clamped to the 3 bits the format holds.
    pub fn new(passed: bool, confidence: u8) -> Self {
        Self {
            passed,
            confidence: confidence.min(7),
        }
    }

    pub fn confidence(&self) -> u8 {
        self.confidence
    }

    fn encode(self) -> u8 {
        (u8::from(self.passed) << 7) | self.confidence
    }

    fn decode(byte: u8) -> Result<Self, ContextError> {
        if byte & 0b0111_1000 != 0 {
            return Err(ContextError::InvalidField("verdict"));
        }
        Ok(Self {
            passed: byte & 0x80 != 0,
            confidence: byte & 0x07,
        })
    }
}

/// A session context: what full authentication established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    pub session_id: SessionId,
    pub verifier_hash: VerifierHash,
    pub user: UserId,
    pub verdict: Verdict,
    pub auth_time: UnixNanos,
    pub expires_at: UnixNanos,
    pub resume_until: UnixNanos,
    pub device_mac: DeviceMac,
    pub batch_slot: Option<u8>,
    pub proof_digest: [u8; 32],
    pub credential: [u8; 16],
    pub claims: Vec<Claim>,
    pub key_id: u32,
}

impl SessionContext {
    /// The bytes the signature covers.
    fn encode_body(&self) -> Result<Vec<u8>, ContextError> {
        if self.claims.len() > MAX_CLAIMS {
            return Err(ContextError::InvalidField("claims"));
        }
        if self.batch_slot == Some(NO_SLOT) {
            return Err(ContextError::InvalidField("batch_slot"));
        }
        let user = self.user.as_str().as_bytes();
        let mut out = Vec::with_capacity(MAX_ENCODED_LEN);
        out.push(VERSION);
        out.push(self.verdict.encode());
        out.extend_from_slice(self.session_id.as_bytes());
        out.extend_from_slice(self.verifier_hash.as_bytes());
        // UserId guarantees 1..=64 bytes.
        out.push(user.len() as u8);
        out.extend_from_slice(user);
        out.extend_from_slice(&self.auth_time.to_le_bytes());
        out.extend_from_slice(&self.expires_at.to_le_bytes());
        out.extend_from_slice(&self.resume_until.to_le_bytes());
        out.extend_from_slice(&self.device_mac);
        out.push(self.batch_slot.unwrap_or(NO_SLOT));
        out.extend_from_slice(&self.proof_digest);
        out.extend_from_slice(&self.credential);
        out.push(self.claims.len() as u8);
        for claim in &self.claims {
            out.push(claim.kind.code());
            out.extend_from_slice(&claim.value_digest);
            out.extend_from_slice(&claim.verified_at.to_le_bytes());
            out.extend_from_slice(&claim.ttl_secs.to_le_bytes());
        }
        out.extend_from_slice(&self.key_id.to_le_bytes());
        Ok(out)
    }

    /// Encodes and signs. `key` must be the key that `self.key_id` names.
    pub fn sign<R: RngCore + CryptoRng>(
        &self,
        key: &SigningKey,
        rng: &mut R,
    ) -> Result<Vec<u8>, SignError> {
        let mut out = self.encode_body()?;
        let signature = key.sign(&out, rng)?;
        out.extend_from_slice(&signature);
        Ok(out)
    }

    /// Decodes a signed context and verifies its signature with the key
    /// `verifying_key(key_id)` returns. Attacker-controlled input.
    pub fn decode_verified<'k, F>(bytes: &[u8], verifying_key: F) -> Result<Self, ContextError>
    where
        F: FnOnce(u32) -> Option<&'k VerifyingKey>,
    {
        if bytes.len() > MAX_ENCODED_LEN {
            return Err(ContextError::Oversized);
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(ContextError::UnknownVersion(version));
        }
        let verdict = Verdict::decode(r.u8()?)?;
        let session_id = SessionId::from_bytes(r.array()?);
        let verifier_hash = VerifierHash::from_bytes(r.array()?);
        let user_len = usize::from(r.u8()?);
        let user = std::str::from_utf8(r.take(user_len)?)
            .ok()
            .and_then(|u| UserId::parse(u).ok())
            .ok_or(ContextError::InvalidField("user"))?;
        let auth_time = r.u64()?;
        let expires_at = r.u64()?;
        let resume_until = r.u64()?;
        let device_mac = r.array()?;
        let batch_slot = match r.u8()? {
            NO_SLOT => None,
            slot => Some(slot),
        };
        let proof_digest = r.array()?;
        let credential = r.array()?;
        let claim_count = usize::from(r.u8()?);
        if claim_count > MAX_CLAIMS {
            return Err(ContextError::InvalidField("claims"));
        }
        let mut claims = Vec::with_capacity(claim_count);
        for _ in 0..claim_count {
            let kind =
                ClaimKind::from_code(r.u8()?).ok_or(ContextError::InvalidField("claim kind"))?;
            claims.push(Claim {
                kind,
                value_digest: r.array()?,
                verified_at: r.u64()?,
                ttl_secs: r.u32()?,
            });
        }
        let key_id = r.u32()?;
        let signed_len = r.position();
        let signature: [u8; SIGNATURE_LEN] = r.array()?;
        if r.remaining() != 0 {
            return Err(ContextError::TrailingBytes(r.remaining()));
        }
        if auth_time > resume_until || resume_until > expires_at {
            return Err(ContextError::InvalidField("times"));
        }
        let key = verifying_key(key_id).ok_or(ContextError::UnknownKey(key_id))?;
        if !key.verify(&bytes[..signed_len], &signature) {
            return Err(ContextError::BadSignature);
        }
        Ok(Self {
            session_id,
            verifier_hash,
            user,
            verdict,
            auth_time,
            expires_at,
            resume_until,
            device_mac,
            batch_slot,
            proof_digest,
            credential,
            claims,
            key_id,
        })
    }
}

/// Why signing a context failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Invalid(#[from] ContextError),
    #[error(transparent)]
    Signing(#[from] SigningFailed),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::from_seed([42u8; 32]))
    }

    fn vk() -> &'static VerifyingKey {
        static VK: OnceLock<VerifyingKey> = OnceLock::new();
        VK.get_or_init(|| key().verifying_key())
    }

    fn sample() -> SessionContext {
        SessionContext {
            session_id: SessionId::from_bytes([1; 16]),
            verifier_hash: VerifierHash::from_bytes([2; 32]),
            user: UserId::parse("alice@example.com").unwrap(),
            verdict: Verdict::new(true, 6),
            auth_time: 1_000,
            expires_at: 9_000,
            resume_until: 5_000,
            device_mac: [3; 32],
            batch_slot: Some(4),
            proof_digest: [5; 32],
            credential: [6; 16],
            claims: vec![Claim {
                kind: ClaimKind::Identity,
                value_digest: [7; 32],
                verified_at: 1_000,
                ttl_secs: 60,
            }],
            key_id: 9,
        }
    }

    fn decode(bytes: &[u8]) -> Result<SessionContext, ContextError> {
        SessionContext::decode_verified(bytes, |id| (id == 9).then(vk))
    }

    #[test]
    fn a_signed_context_round_trips() {
        let ctx = sample();
        let bytes = ctx.sign(key(), &mut rand::thread_rng()).unwrap();
        assert_eq!(decode(&bytes).unwrap(), ctx);
    }

    #[test]
    fn every_single_byte_flip_of_a_signed_record_is_rejected() {
        let bytes = sample().sign(key(), &mut rand::thread_rng()).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at byte {i} was accepted");
        }
    }

    #[test]
    fn every_truncation_is_rejected_as_truncated() {
        let bytes = sample().sign(key(), &mut rand::thread_rng()).unwrap();
        for len in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..len]).unwrap_err(),
                ContextError::Truncated,
                "length {len}"
            );
        }
    }

    #[test]
    fn framing_errors_are_precise() {
        let bytes = sample().sign(key(), &mut rand::thread_rng()).unwrap();
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            decode(&trailing).unwrap_err(),
            ContextError::TrailingBytes(1)
        );
        assert_eq!(
            decode(&vec![1u8; MAX_ENCODED_LEN + 1]).unwrap_err(),
            ContextError::Oversized
        );
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(decode(&v2).unwrap_err(), ContextError::UnknownVersion(2));
        assert_eq!(
            SessionContext::decode_verified(&bytes, |_| None).unwrap_err(),
            ContextError::UnknownKey(9)
        );
    }

    #[test]
    fn a_context_with_inconsistent_times_is_refused_before_verification() {
        let mut ctx = sample();
        ctx.resume_until = ctx.expires_at + 1;
        let bytes = ctx.sign(key(), &mut rand::thread_rng()).unwrap();
        assert_eq!(
            decode(&bytes).unwrap_err(),
            ContextError::InvalidField("times")
        );
    }

    #[test]
    fn user_ids_are_validated() {
        assert!(UserId::parse("bob.smith_1@x-y").is_ok());
        assert_eq!(UserId::parse(""), Err(InvalidUserId));
        assert_eq!(UserId::parse("a b"), Err(InvalidUserId));
        assert_eq!(UserId::parse(&"a".repeat(65)), Err(InvalidUserId));
    }

    #[test]
    fn the_largest_context_fits_the_bound() {
        let mut ctx = sample();
        ctx.user = UserId::parse(&"u".repeat(MAX_USER_LEN)).unwrap();
        ctx.claims = vec![ctx.claims[0]; MAX_CLAIMS];
        let bytes = ctx.sign(key(), &mut rand::thread_rng()).unwrap();
        assert_eq!(bytes.len(), MAX_ENCODED_LEN);
        assert_eq!(decode(&bytes).unwrap(), ctx);
    }

    fn arb_context() -> impl Strategy<Value = SessionContext> {
        (
            "[a-z0-9@._-]{1,64}",
            any::<[u8; 16]>(),
            any::<[u8; 32]>(),
            (any::<bool>(), 0u8..8),
            (0u64..u64::MAX / 4, 0u64..1 << 40, 0u64..1 << 40),
            proptest::option::of(0u8..32),
            proptest::collection::vec(
                (0usize..6, any::<[u8; 32]>(), any::<u64>(), any::<u32>()),
                0..=MAX_CLAIMS,
            ),
            any::<u32>(),
        )
            .prop_map(
                |(
                    user,
                    id,
                    digest,
                    (passed, conf),
                    (auth, window, extra),
                    slot,
                    claims,
                    key_id,
                )| SessionContext {
                    session_id: SessionId::from_bytes(id),
                    verifier_hash: VerifierHash::from_bytes(digest),
                    user: UserId::parse(&user).unwrap(),
                    verdict: Verdict::new(passed, conf),
                    auth_time: auth,
                    resume_until: auth + window,
                    expires_at: auth + window + extra,
                    device_mac: digest,
                    batch_slot: slot,
                    proof_digest: digest,
                    credential: id,
                    claims: claims
                        .into_iter()
                        .map(|(k, d, at, ttl)| Claim {
                            kind: ClaimKind::ALL[k],
                            value_digest: d,
                            verified_at: at,
                            ttl_secs: ttl,
                        })
                        .collect(),
                    key_id,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_context_round_trips(ctx in arb_context()) {
            let bytes = ctx.sign(key(), &mut rand::thread_rng()).unwrap();
            let back = SessionContext::decode_verified(&bytes, |_| Some(vk())).unwrap();
            prop_assert_eq!(back, ctx);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..4500)) {
            prop_assert!(decode(&bytes).is_err());
        }
    }
}
