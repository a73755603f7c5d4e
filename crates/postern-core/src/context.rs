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
//! Version 2 is the same body (with version byte `2`) attested as one leaf
//! of a *batch*: when many sessions are decided at once (turbo mode), one
//! ML-DSA signature covers the root of a SHA3-256 Merkle tree over all their
//! bodies, and each context carries its leaf index and authentication path
//! instead of a signature of its own. Signing cost is then paid once per
//! batch instead of once per user, and each record still verifies alone:
//!
//! | field | bytes |
//! |---|---|
//! | body, as above, version `2` | … |
//! | leaf index, tree depth (0..=6) | 1 + 1 |
//! | authentication path (sibling hashes, leaf upwards) | depth × 32 |
//! | ML-DSA-65 signature over `"postern/context-batch/v1" ‖ depth ‖ root` | 3309 |
//!
//! Leaves and inner nodes are hashed under distinct domain labels, so a
//! node can never be passed off as a leaf (no second-preimage splicing).
//!
//! [`SessionContext::decode_verified`] takes attacker-controlled bytes: it
//! rejects truncated, oversized, wrong-version and trailing-garbage input
//! with a typed [`ContextError`], never panics, and returns a context only
//! after its signature verified under the key its key id names.

use rand::{CryptoRng, RngCore};
use sha3::{Digest, Sha3_256};

use crate::claims::{self, Claim, ClaimKind, MAX_CLAIMS};
use crate::device::DeviceMac;
use crate::signing::{SigningFailed, SigningKey, VerifyingKey, SIGNATURE_LEN};
use crate::token::{SessionId, VerifierHash};
use crate::wire::{Reader, Truncated};
use crate::UnixNanos;

/// The format version of a singly signed context.
pub const VERSION: u8 = 1;
/// The format version of a batch-attested context.
pub const VERSION_BATCH: u8 = 2;
/// Most contexts one batch signature covers.
pub const MAX_BATCH: usize = 1 << MAX_BATCH_DEPTH;
const MAX_BATCH_DEPTH: usize = 6;
/// The largest encoded context, signature (and batch path) included.
pub const MAX_ENCODED_LEN: usize = FIXED_BODY_LEN
    + MAX_USER_LEN
    + MAX_CLAIMS * claims::ENCODED_LEN
    + 2
    + MAX_BATCH_DEPTH * 32
    + SIGNATURE_LEN;
const LEAF_LABEL: &[u8] = b"postern/context-leaf/v1";
const NODE_LABEL: &[u8] = b"postern/context-node/v1";
const BATCH_LABEL: &[u8] = b"postern/context-batch/v1";
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
    #[error("a batch holds 1 to {MAX_BATCH} contexts signed by one key")]
    InvalidBatch,
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
    /// The bytes the signature covers (a batch leaf hashes them).
    fn encode_body(&self, version: u8) -> Result<Vec<u8>, ContextError> {
        if self.claims.len() > MAX_CLAIMS {
            return Err(ContextError::InvalidField("claims"));
        }
        if self.batch_slot == Some(NO_SLOT) {
            return Err(ContextError::InvalidField("batch_slot"));
        }
        let user = self.user.as_str().as_bytes();
        let mut out = Vec::with_capacity(MAX_ENCODED_LEN);
        out.push(version);
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
        let mut out = self.encode_body(VERSION)?;
        let signature = key.sign(&out, rng)?;
        out.extend_from_slice(&signature);
        Ok(out)
    }

    /// Encodes and attests up to [`MAX_BATCH`] contexts with ONE signature
    /// over the Merkle root of their bodies; returns each one's record, in
    /// order. All must carry the key id of `key`.
    pub fn sign_batch<R: RngCore + CryptoRng>(
        contexts: &[SessionContext],
        key: &SigningKey,
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, SignError> {
        let first_key = contexts.first().map(|c| c.key_id);
        if contexts.is_empty()
            || contexts.len() > MAX_BATCH
            || contexts.iter().any(|c| Some(c.key_id) != first_key)
        {
            return Err(ContextError::InvalidBatch.into());
        }
        let bodies = contexts
            .iter()
            .map(|c| c.encode_body(VERSION_BATCH))
            .collect::<Result<Vec<_>, _>>()?;
        let depth = depth_for(contexts.len());
        // Level 0 padded to a power of two with copies of the last leaf; a
        // padding leaf is never a record, so it proves nothing by itself.
        let mut levels: Vec<Vec<[u8; 32]>> = Vec::with_capacity(depth + 1);
        let mut level: Vec<[u8; 32]> = bodies.iter().map(|b| leaf_hash(b)).collect();
        while level.len() < (1 << depth) {
            let last = level[level.len() - 1];
            level.push(last);
        }
        levels.push(level);
        for d in 0..depth {
            let next = levels[d]
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(next);
        }
        let root = levels[depth][0];
        let signature = key.sign(&batch_message(depth, &root), rng)?;
        Ok(bodies
            .into_iter()
            .enumerate()
            .map(|(index, mut out)| {
                out.push(index as u8);
                out.push(depth as u8);
                let mut at = index;
                for level in levels.iter().take(depth) {
                    out.extend_from_slice(&level[at ^ 1]);
                    at >>= 1;
                }
                out.extend_from_slice(&signature);
                out
            })
            .collect())
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
        if version != VERSION && version != VERSION_BATCH {
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
        let body_len = r.position();
        let batch = if version == VERSION_BATCH {
            let index = usize::from(r.u8()?);
            let depth = usize::from(r.u8()?);
            if depth > MAX_BATCH_DEPTH || index >= (1 << depth) {
                return Err(ContextError::InvalidField("batch path"));
            }
            let mut node = leaf_hash(&bytes[..body_len]);
            let mut at = index;
            for _ in 0..depth {
                let sibling: [u8; 32] = r.array()?;
                node = if at & 1 == 0 {
                    node_hash(&node, &sibling)
                } else {
                    node_hash(&sibling, &node)
                };
                at >>= 1;
            }
            Some(batch_message(depth, &node))
        } else {
            None
        };
        let signature: [u8; SIGNATURE_LEN] = r.array()?;
        if r.remaining() != 0 {
            return Err(ContextError::TrailingBytes(r.remaining()));
        }
        if auth_time > resume_until || resume_until > expires_at {
            return Err(ContextError::InvalidField("times"));
        }
        let key = verifying_key(key_id).ok_or(ContextError::UnknownKey(key_id))?;
        let signed = batch.as_deref().unwrap_or(&bytes[..body_len]);
        if !key.verify(signed, &signature) {
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

/// Tree depth for `n` leaves: the smallest `d` with `2^d >= n`.
fn depth_for(n: usize) -> usize {
    n.next_power_of_two().trailing_zeros() as usize
}

fn leaf_hash(body: &[u8]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(LEAF_LABEL);
    h.update(body);
    h.finalize().into()
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(NODE_LABEL);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

fn batch_message(depth: usize, root: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(BATCH_LABEL.len() + 33);
    m.extend_from_slice(BATCH_LABEL);
    m.push(depth as u8);
    m.extend_from_slice(root);
    m
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
        let mut v3 = bytes.clone();
        v3[0] = 3;
        assert_eq!(decode(&v3).unwrap_err(), ContextError::UnknownVersion(3));
        assert_eq!(
            SessionContext::decode_verified(&bytes, |_| None).unwrap_err(),
            ContextError::UnknownKey(9)
        );
    }

    fn batch_of(n: usize) -> Vec<SessionContext> {
        (0..n)
            .map(|i| {
                let mut c = sample();
                c.session_id = SessionId::from_bytes([i as u8; 16]);
                c.batch_slot = Some((i % 32) as u8);
                c
            })
            .collect()
    }

    #[test]
    fn every_member_of_a_batch_verifies_alone_under_one_signature() {
        for n in [1, 2, 3, 5, 8, 31, 32, MAX_BATCH] {
            let batch = batch_of(n);
            let records =
                SessionContext::sign_batch(&batch, key(), &mut rand::thread_rng()).unwrap();
            assert_eq!(records.len(), n);
            let signatures: std::collections::HashSet<&[u8]> = records
                .iter()
                .map(|r| &r[r.len() - SIGNATURE_LEN..])
                .collect();
            assert_eq!(signatures.len(), 1, "one signature for the batch of {n}");
            for (record, ctx) in records.iter().zip(&batch) {
                assert_eq!(record[0], VERSION_BATCH);
                assert_eq!(&decode(record).unwrap(), ctx);
            }
        }
    }

    #[test]
    fn a_batch_record_with_any_byte_flipped_or_a_path_swapped_is_rejected() {
        let records =
            SessionContext::sign_batch(&batch_of(5), key(), &mut rand::thread_rng()).unwrap();
        let bytes = &records[2];
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at byte {i} was accepted");
        }
        // Member 3's body with member 2's path and index: wrong root.
        let body_len = records[3].len() - SIGNATURE_LEN - 2 - 3 * 32;
        let mut spliced = records[3][..body_len].to_vec();
        spliced.extend_from_slice(&records[2][body_len..]);
        assert_eq!(decode(&spliced).unwrap_err(), ContextError::BadSignature);
        // A batch record relabelled as a single one does not verify either.
        let mut single = records[0].clone();
        single[0] = VERSION;
        assert!(decode(&single).is_err());
        for len in 0..bytes.len() {
            assert_eq!(decode(&bytes[..len]).unwrap_err(), ContextError::Truncated);
        }
    }

    #[test]
    fn batches_must_be_non_empty_bounded_and_of_one_key() {
        let mut rng = rand::thread_rng();
        let invalid = SignError::Invalid(ContextError::InvalidBatch);
        assert_eq!(
            SessionContext::sign_batch(&[], key(), &mut rng).unwrap_err(),
            invalid
        );
        let too_many = batch_of(MAX_BATCH + 1);
        assert_eq!(
            SessionContext::sign_batch(&too_many, key(), &mut rng).unwrap_err(),
            invalid
        );
        let mut mixed = batch_of(2);
        mixed[1].key_id = 10;
        assert_eq!(
            SessionContext::sign_batch(&mixed, key(), &mut rng).unwrap_err(),
            invalid
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
        assert_eq!(bytes.len(), MAX_ENCODED_LEN - 2 - MAX_BATCH_DEPTH * 32);
        assert_eq!(decode(&bytes).unwrap(), ctx);
        let mut batch = vec![ctx.clone(); MAX_BATCH];
        batch[0] = ctx.clone();
        let records = SessionContext::sign_batch(&batch, key(), &mut rand::thread_rng()).unwrap();
        assert_eq!(records[0].len(), MAX_ENCODED_LEN);
        assert_eq!(decode(&records[0]).unwrap(), ctx);
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
