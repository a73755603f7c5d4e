//! # postern-core
//!
//! The pure heart of Postern: everything that decides whether a session is
//! genuine and whether it may be resumed, written as plain functions over
//! plain data. Nothing here performs I/O, spawns tasks or reads a clock:
//! time is always a parameter (`now`, in nanoseconds since the Unix epoch),
//! and randomness is passed in as a [`rand::CryptoRng`]. That keeps every
//! decision exhaustively testable and lets the edges (store, server) own the
//! side effects.
//!
//! # Layout
//!
//! - [`token`]: the opaque bearer token, a selector/verifier split.
//! - [`device`]: canonical device fingerprints and the keyed device-binding MAC.
//! - [`claims`]: the claims snapshot carried by a session.
//! - [`context`]: the versioned, ML-DSA-65-signed session-context codec.
//! - [`signing`]: ML-DSA-65 keys (libcrux, chosen by benchmark).
//! - [`seal`]: AES-256-GCM sealing of records at rest.
//! - [`keyring`]: key generations, rotation, and ML-KEM-768 wrapping.
//! - [`wrapped_secret`]: one long-lived secret (the biometric key holder's
//!   seed) wrapped to the instance key, outside the rotating keyring.
//! - [`identity`]: the non-interactive Schnorr identity proof (Ristretto255).
//! - [`policy`]: the resume decision.
//! - [`row_auth`]: tags over stored rows' mutable fields (revocation, last seen).
//!
//! # Example
//!
//! ```
//! use postern_core::policy::{decide_resume, Decision, ResumeFacts, ResumePolicy, SessionTimes, DeviceCheck};
//!
//! let policy = ResumePolicy::default();
//! let minute = 60_000_000_000u64;
//! let times = SessionTimes { auth_time: 0, expires_at: 60 * minute, resume_until: 30 * minute, last_seen: 0 };
//! let facts = ResumeFacts { device: DeviceCheck::Match, operation: None, risk_score: None, revoked: false };
//! assert_eq!(decide_resume(&times, &facts, minute, &policy), Decision::Resumed);
//! ```

pub mod claims;
pub mod context;
pub mod ct;
pub mod device;
pub mod identity;
pub mod keyring;
pub mod policy;
pub mod row_auth;
pub mod seal;
pub mod signing;
pub mod token;
mod wire;
pub mod wrapped_secret;

/// Nanoseconds since the Unix epoch. All times in Postern are carried as this.
pub type UnixNanos = u64;

/// One second in [`UnixNanos`].
pub const SECOND: u64 = 1_000_000_000;
