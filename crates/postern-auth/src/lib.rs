//! # postern-auth
//!
//! Full authentication — the main gate — as a pipeline of verifier stages.
//!
//! # Layout
//!
//! - [`challenge`]: one-time server challenges (expire, single use, bounded).
//! - [`quota`]: the per-client and per-user shares of the challenge and
//!   ceremony books.
//! - [`stage`]: the [`Stage`](stage::Stage) trait every verifier implements, the request it
//!   sees and the evidence it contributes.
//! - [`identity`]: the identity-proof stage (Schnorr over Ristretto255).
//! - [`proof_cache`]: verified proofs by SHA3-256 digest (reuse refused in
//!   one lookup; forgotten when their identity key is revoked).
//! - [`ceremony`]: outstanding WebAuthn ceremonies (single use, expiring,
//!   bounded), generic over their server-side state.
//! - [`relying_party`]: the WebAuthn relying party (`webauthn-rs`): passkey
//!   registration, and the start of passkey login.
//! - [`passkey`]: the passkey stage, which verifies a login's assertion.
//! - [`pipeline`]: runs the required stages in order, times each, and stops
//!   at the first failure.
//!
//! - [`biometric`]: the encrypted biometric match (BFV): client encryption,
//!   the key holder, `standard` and `turbo` evaluation, and its stage.
//!
//! Adding a factor (such as the passkey or the encrypted biometric) is a new [`Stage`](stage::Stage)
//! implementation and one more entry in the deployment's stage list; the
//! pipeline, the reports and the metrics need no change.
//!
//! # Example
//!
//! ```
//! use postern_auth::{challenge::ChallengeBook, quota::ShareLimits, identity::IdentityStage, pipeline::Pipeline, stage::{AuthRequest, Factors}};
//! use postern_core::{context::UserId, device::Fingerprint, identity::{IdentitySecret, Statement}};
//! use postern_store::UserRecord;
//!
//! let mut rng = rand::thread_rng();
//! let secret = IdentitySecret::generate(&mut rng);
//! let user = UserId::parse("alice").unwrap();
//! let record = UserRecord { identity_key: *secret.public_key().as_bytes(), enrolled_at: 0, identity_revoked_at: None, biometric_template: None };
//! let device = Fingerprint::single("laptop").unwrap();
//!
//! let book = ChallengeBook::new(60_000_000_000, 1_000, ShareLimits { per_client: 100, per_user: 8 });
//! let issued = book.issue(&user, "192.0.2.7", 0, &mut rng).unwrap();
//! let proof = secret.prove(&Statement { challenge: &issued.challenge, audience: "https://auth.example", user: "alice", device_hash: &device.hash() }, &mut rng);
//!
//! let challenge = book.take(&issued.id, &user, 1).unwrap();
//! let request = AuthRequest { user: &user, record: &record, device: &device, challenge: &challenge, audience: "https://auth.example", factors: Factors { identity_proof: Some(&proof), passkey: None, biometric_probe: None } };
//! let outcome = Pipeline::new(vec![Box::new(IdentityStage::default())]).run(&request);
//! assert!(outcome.result.is_ok());
//! assert_eq!(outcome.reports[0].stage, "identity");
//! ```

pub mod biometric;
pub mod book;
pub mod ceremony;
pub mod challenge;
pub mod identity;
pub mod passkey;
pub mod pipeline;
pub mod proof_cache;
pub mod quota;
pub mod relying_party;
pub mod stage;
