//! The encrypted biometric match (BFV, fhe.rs).
//!
//! The server stores only an encrypted template and sees only an encrypted
//! probe; it computes their inner product homomorphically, and the key
//! holder, the only holder of the secret key, decrypts nothing but the
//! score. Each module has one job:
//!
//! - [`params`]: the parameter set and why it is 128-bit secure.
//! - [`quantise`]: float embedding to 6-bit signed integers.
//! - [`wire`]: the bytes clients send and the key holder receives, parsed
//!   with typed errors and exact sizes.
//! - [`encrypt`]: the client's encryption (wrapped by `postern-client`).
//! - [`keyholder`]: the [`KeyHolder`] trait and its in-process default.
//! - [`eval`]: the server's evaluation and sanitisation.
//! - `sanitise`: the randomness a result gets before the key holder sees it.
//! - `phase`: reading one decrypted coefficient without an inverse NTT.
//! - [`batch`]: `turbo` batching of concurrent callers.
//! - [`cache`]: prepared templates of recent users, bounded in bytes.
//! - [`stage`]: the pipeline stage.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use postern_auth::biometric::{Encryptor, Evaluator, KeyHolder, LocalKeyHolder, Quantised};
//!
//! let key_holder = LocalKeyHolder::generate()?;
//! let client = Encryptor::new(key_holder.public_key())?;
//! let server = Evaluator::new(key_holder.public_key())?;
//!
//! let enrolled = Quantised::from_components([3; 128])?;
//! let template = server.decode_template(&client.encrypt_template(&enrolled)?)?;
//! let probe = server.decode_probe(&client.encrypt_probe(&enrolled)?)?;
//! assert_eq!(server.score(&template, &probe, &key_holder)?, 128 * 9);
//! # Ok::<(), postern_auth::biometric::BiometricError>(())
//! ```

pub mod batch;
pub mod cache;
pub mod encrypt;
pub mod eval;
pub mod keyholder;
pub mod params;
mod phase;
pub mod quantise;
mod sanitise;
pub mod stage;
pub mod wire;

pub use batch::{choose_lane, BatchOutcome, Batcher, BatcherConfig};
pub use cache::{Lookup, PreparedCache};
pub use encrypt::Encryptor;
pub use eval::{Evaluator, PreparedTemplate, Product};
pub use keyholder::{EncryptedScores, KeyHolder, LocalKeyHolder};
pub use params::{Params, DIMENSIONS, LANES};
pub use quantise::{threshold_for_cosine, Quantised, MAX_GENUINE_SCORE};
pub use stage::{BiometricMode, BiometricStage};
pub use wire::{EncryptedVector, VectorKind, CIPHERTEXT_BYTES};

/// Why a biometric operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BiometricError {
    #[error("an embedding must have 128 finite components, not all zero, and quantised ones lie in [-31, 31]")]
    BadEmbedding,
    #[error("ciphertext is {got} bytes, expected {expected}")]
    WrongLength { expected: usize, got: usize },
    #[error("unsupported wire version {0}")]
    Version(u8),
    #[error("expected a {expected:?} ciphertext, got kind byte {got}")]
    WrongKind { expected: VectorKind, got: u8 },
    #[error("a ciphertext coefficient is not reduced modulo its modulus")]
    CoefficientOutOfRange,
    #[error("malformed public key bundle")]
    PublicKey,
    #[error("lane {0} is out of range")]
    Lane(usize),
    #[error("key holder: {0}")]
    KeyHolder(&'static str),
    #[error("homomorphic arithmetic failed: {0}")]
    Fhe(String),
}
