//! # postern-store
//!
//! Where sessions live once full authentication has minted them.
//!
//! # Layout
//!
//! - [`store`]: the [`SessionStore`] contract every durable backend meets,
//!   and the row format it persists (sealed records only, never tokens).
//! - [`passkey`]: registered passkeys as the store keeps them (the
//!   credential opaque, its counter and backup flags in the clear).
//! - [`memory`]: an in-memory [`SessionStore`], for tests and ephemeral runs.
//! - [`embedded`]: the default durable backend, an embedded redb database.
//! - [`hot`]: the hot tier — verified, decoded sessions in a concurrent map.
//! - [`authority`]: [`SessionAuthority`], which mints, resumes, revokes and
//!   restores sessions over a keyring, the hot tier and a store.
//! - [`batch_mint`]: gathers concurrent mints into batches that share one
//!   ML-DSA signature (a Merkle root) and one durable write (turbo mode).
//!
//! The split keeps the resume path free of I/O: a context read from a store
//! is unsealed and its ML-DSA-65 signature verified once, when it enters the
//! hot tier; every resume after that is a map lookup, a constant-time
//! verifier comparison, a device MAC and a pure policy decision.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use postern_core::{keyring::Keyring, policy::ResumePolicy, device::Fingerprint, context::UserId};
//! use postern_store::{SessionAuthority, AuthorityConfig, NewSession, memory::MemoryStore};
//!
//! let mut rng = rand::thread_rng();
//! let now = 1_700_000_000_000_000_000u64;
//! let keyring = Arc::new(Keyring::generate(now, &mut rng));
//! let (authority, _report) = SessionAuthority::restore(keyring, Arc::new(MemoryStore::default()), AuthorityConfig::default(), now).unwrap();
//! let device = Fingerprint::single("laptop").unwrap();
//! let minted = authority.mint(NewSession::verified(UserId::parse("alice").unwrap(), &device), now, &mut rng).unwrap();
//! let outcome = authority.resume(&minted.token, Some(&device), None, None, now + 1);
//! assert_eq!(outcome.decision.as_str(), "resumed");
//! ```

pub mod authority;
pub mod batch_mint;
pub mod embedded;
pub mod hot;
pub mod memory;
pub mod passkey;
pub mod store;

pub use authority::{
    AuthorityConfig, Minted, NewSession, RestoreReport, ResumeOutcome, SessionAuthority,
    SessionSummary,
};
pub use passkey::{
    standings, AccountClaim, PasskeyInsert, PasskeyRecord, PasskeyRemoval, PasskeyUse, Standing,
};
pub use store::{SessionRow, SessionStore, StoreError, UserRecord};
