//! # postern-client
//!
//! The real client side of Postern's full authentication, used by the
//! `postern client` CLI and by the integration tests.
//!
//! # Layout
//!
//! - [`identity_file`]: creates, stores (mode 0600) and loads the user's
//!   Ristretto255 identity secret.
//! - [`biometric`]: quantises and encrypts a biometric template or probe
//!   under the key holder's BFV public key; deterministic test embeddings.
//! - [`embedding`]: reads an embedding from a JSON array of 128 numbers
//!   (the CLI's `--biometric FILE`), with an error for each way it is wrong.
//! - [`device`]: turns what a caller knows about its device into the
//!   canonical fingerprint the server binds sessions to.
//! - [`http`]: a typed client for the v1 HTTP API: enroll, challenge and
//!   full authentication (with the proof computed locally), resume, check,
//!   logout, and session management.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), postern_client::http::ClientError> {
//! use postern_client::{http::PosternClient, identity_file::IdentityFile, device::DeviceInput};
//!
//! let client = PosternClient::new("http://127.0.0.1:8080")?;
//! let identity = IdentityFile::generate("alice").map_err(postern_client::http::ClientError::Identity)?;
//! client.enroll(&identity).await?;
//! let device = DeviceInput::Id("laptop-1".into());
//! let login = client.login(&identity, &device).await?;
//! let resumed = client.resume(&login.token, Some(&device), None).await?;
//! assert_eq!(resumed.decision, "resumed");
//! # Ok(()) }
//! ```

pub mod biometric;
pub mod device;
pub mod embedding;
pub mod http;
pub mod identity_file;
