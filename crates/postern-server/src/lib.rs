//! # postern-server
//!
//! The `postern` binary as a library, so that tests (and embedders) can
//! build the exact router the binary serves.
//!
//! # Layout
//!
//! - [`config`]: configuration from a TOML file, then environment variables,
//!   then flags (later ones win), validated once.
//! - [`keys`]: the instance key, the wrapped keyring file, `keys
//!   init|rotate|show`.
//! - [`state`]: what handlers share ([`state::AppState`]) and the clock.
//! - [`cookie`]: the session cookie (cookie mode): set, clear, read.
//! - [`error`]: the one mapping from failures to HTTP statuses and the JSON
//!   error shape `{ "error", "message" }`.
//! - [`routes`]: one module per group of endpoints of the v1 API.
//! - [`metrics`]: Prometheus counters and histograms.
//! - [`request_id`]: `X-Request-Id`, taken from the proxy or generated,
//!   echoed, and carried by every log line of its request.
//! - [`openapi`]: the OpenAPI document, generated from the handlers.
//! - [`server`]: [`server::run`] — serve a listener until a shutdown future
//!   completes, then drain, flush and stop background work.
//! - [`client_ip`]: who a request comes from (the TCP peer, or what
//!   trusted proxies say), for per-client limits.
//! - [`cli`]: the command line (`serve`, `client …`, `keys …`).

pub mod cli;
pub mod client_ip;
pub mod config;
pub mod cookie;
pub mod error;
pub mod error_code;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod request_id;
pub mod routes;
pub mod server;
pub mod state;
mod time;
