//! # postern-tower
//!
//! Postern in front of an identity provider you already run: answer "is
//! this bearer token valid?" from an in-process cache on a hit, ask the
//! upstream exactly once on a miss, and never be less strict than asking
//! upstream every time.
//!
//! # Layout
//!
//! - [`session`]: [`Validated`] — what the upstream said about a token —
//!   and [`Requirement`], the scopes/audience a route needs, checked on
//!   every hit, not only when the entry was fetched.
//! - [`upstream`]: the validators — OAuth 2.0 token introspection (RFC 7662)
//!   with revocation (RFC 7009), and the "Auth1" session API.
//! - [`breaker`]: a circuit breaker, as a pure state machine over `now`.
//! - [`jwks`]: follows the upstream JWKS and purges tokens of rotated keys.
//! - [`gate`]: [`Gate`] — cache, single-flight misses, fail-closed errors,
//!   local revocation.
//! - [`ratelimit`]: per-client token buckets for cache misses.
//! - `expiry` (private): the bounded, expiry-ordered map behind the revoked sets.
//! - [`tls`]: the roots upstream connections trust (a private CA with
//!   `--upstream-ca`) and the check that refuses cleartext to remote hosts.
//! - [`shared`]: revocations shared between instances (token digests, the
//!   feed's lag), and [`redis_feed`]: that feed over a Redis stream.
//! - [`layer`]: [`GateLayer`], a tower `Layer` for any axum/tower service,
//!   and the [`Authenticated`] extractor handing the handler its session.
//!
//! # Security rules, and where they are enforced
//!
//! - Failures (401, `active: false`, malformed answers) are never cached
//!   ([`Gate::check`] inserts only `Ok` answers).
//! - Only the upstream's own failures (transport, timeout, 5xx) count
//!   toward the circuit breaker; an answer that cannot be used for one
//!   token fails that token alone (502), so no token can open the circuit
//!   for every client ([`upstream::Blame`]).
//! - An entry never outlives the token: its expiry is the earliest of the
//!   upstream's `exp`/`expires_in`, the JWT's own `exp` when the token is a
//!   JWT, and the configured cap.
//! - Upstream errors, timeouts and an open circuit answer `Unavailable`
//!   (HTTP 503): the gate fails closed, never open.
//! - Tokens are never logged or stored: the cache holds a keyed PRF of the
//!   token (see `postern_cache::key`).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{routing::get, Router};
//! use postern_tower::{Authenticated, Gate, GateConfig, GateLayer, Requirement, upstream::Upstream};
//!
//! async fn me(Authenticated(session): Authenticated) -> String {
//!     // A user, or the client of a client-credentials token.
//!     format!("hello {}", session.principal().unwrap_or_default())
//! }
//!
//! # fn build() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = Upstream::introspection("https://idp.example/oauth/introspect", None, "client", "secret")?;
//! let gate = Arc::new(Gate::new(upstream, GateConfig::default()));
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .layer(GateLayer::new(gate).with_requirement(Requirement::scopes(["profile"])));
//! # Ok(()) }
//! ```

pub mod breaker;
mod expiry;
pub mod gate;
pub mod jwks;
pub mod layer;
pub mod ratelimit;
pub mod redis_feed;
pub mod session;
pub mod shared;
pub mod tls;
pub mod upstream;

pub use gate::{Cached, Gate, GateConfig, GateError, GateObserver, Miss};
pub use layer::{Authenticated, GateLayer, GateService};
pub use session::{Rendered, Requirement, Validated};
