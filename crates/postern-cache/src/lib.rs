//! # postern-cache
//!
//! The validation cache that sits in front of an upstream identity provider:
//! "is this bearer token valid?" answered from memory on a hit.
//!
//! # Layout
//!
//! - [`key`]: [`KeyDeriver`] turns a presented token into a 128-bit cache
//!   key with a secret-keyed PRF (AES(POLYVAL(token))), fast enough for a
//!   700-byte JWT and safe against an attacker who chooses tokens.
//! - [`sketch`]: a count-min frequency sketch with aging (TinyLFU-style
//!   admission).
//! - [`cache`]: [`Cache`], partitioned tables of `Arc<V>` with per-entry
//!   expiry, admission, entry and byte bounds, tag purges and O(1)
//!   statistics.
//! - `table`: the slot table each partition reads without locks (sequence
//!   locks per slot).
//! - [`reclaim`]: frees what readers might still hold once they cannot
//!   (userspace RCU with `membarrier`: two plain stores per read).
//! - `sync`: the atomics, mutex and backoff the table and the reclamation
//!   use: `std`'s normally, loom's under `--cfg loom` (`tests/loom.rs`).
//! - `huge`: zeroed arrays that large tables and the sketch back with huge
//!   pages.
//! - [`sweeper`]: a background thread that reaps expired entries one
//!   partition at a time.
//!
//! Nothing here is async and nothing reads a clock: `now` (nanoseconds since
//! the Unix epoch) is a parameter, as everywhere in Postern's core.
//!
//! # Example
//!
//! ```
//! use postern_cache::{Cache, CacheConfig, KeyDeriver};
//!
//! let keys = KeyDeriver::random();
//! let cache: Cache<&'static str> = Cache::new(CacheConfig::default());
//! let key = keys.derive(b"eyJhbGciOi...a JWT");
//! let now = 1_000;
//! cache.insert(key, "alice", 1, now + 60_000_000_000, 0, now);
//! assert_eq!(cache.get(key, now).as_deref(), Some(&"alice"));
//! assert!(cache.get(key, now + 60_000_000_000).is_none(), "expired entries are never served");
//! ```

pub mod cache;
mod huge;
pub mod key;
pub mod reclaim;
pub mod sketch;
pub mod sweeper;
mod sync;
mod table;

pub use cache::{Admission, Cache, CacheConfig, CacheStats};
pub use key::{CacheKey, KeyDeriver};
pub use sweeper::unix_now;
