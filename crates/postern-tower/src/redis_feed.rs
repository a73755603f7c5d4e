//! Revocations shared through a Redis stream.
//!
//! Why a stream and not pub/sub: a pub/sub message sent while an instance
//! is disconnected is lost, and a lost revocation is a revoked token served
//! from a cache. A stream keeps each revocation for `keep_for` (the gate's
//! longest cache lifetime plus a margin: after that no instance can still
//! hold the token's entry, and every local refusal has ended), and its
//! entry ids are timestamps, so
//!
//! - an instance that starts reads the whole stream (at most `keep_for` of
//!   revocations) before it serves its first hit (hits wait for the feed,
//!   see [`crate::shared`]);
//! - a reader that loses its connection resumes after the last id it
//!   applied, missing nothing — unless Redis itself lost entries (a restart
//!   without persistence, a failover to a replica that lagged). A reader
//!   cannot tell what it missed then, so when the server's `run_id` changes
//!   it empties the gate's cache (every token is asked upstream again) and
//!   reads the new stream from its start;
//! - the gate knows up to when it has heard everything, and stops serving
//!   hits when that falls more than `max_lag` behind.
//!
//! One entry per logout, trimmed by age as it is written:
//!
//! ```text
//! XADD <stream> MINID ~ <now − keep_for, ms> * d <token digest, 32 hex> u <until, Unix ns> m <MAC, 64 hex>
//! ```
//!
//! Nothing usable as a token is ever written: `d` is a
//! [`TokenDigest`]. `until` is capped at `keep_for` from now, so an entry
//! cannot refuse a token for longer than a logout here would.
//!
//! # Redis is not trusted with the entries' content
//!
//! `m` is HMAC-SHA256, under a key every instance holds ([`FeedKey`]) and
//! Redis does not, of `"postern-revocation-v1"`, the stream's name, `d`
//! and `u` (each length-prefixed). Entries whose `m` is missing or wrong
//! are dropped: counted ([`RedisRevocations::entries_rejected`]) and
//! logged by entry id, never by digest. So whoever can write to Redis, but
//! does not hold the key, cannot inject a revocation (refusing someone's
//! token) nor rewrite one (lengthening or shortening it, moving it to
//! another token). Replaying a genuine entry re-applies a revocation the
//! instances made, until the `until` they chose: nothing new.
//!
//! What a Redis writer (or anyone between an instance and Redis without
//! TLS) can still do, and no key can prevent: **withhold** entries (trim
//! or delete the stream, answer reads with nothing, drop writes). An
//! instance cannot tell "no logouts happened" from "logouts were hidden";
//! a withheld logout is then not refused by the other instances, unless
//! the upstream itself refuses the token. It can also **delay** them (the
//! feed looks current while it is not). Redis's availability is bounded by
//! `max_lag` (a feed that stops answering stops hits), its honesty is not.

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::streams::{StreamId, StreamReadReply};
use ::redis::{AsyncConnectionConfig, Client, RedisResult};
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::watch;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::shared::{PublishError, RevocationPublisher, TokenDigest};
use crate::tls::TrustRoots;
use crate::Gate;

/// The stream's key when none is configured.
pub const DEFAULT_STREAM: &str = "postern:gate:revocations";

/// How long one read waits for new entries. An idle feed is known complete
/// at least this often, so a `max_lag` of a few times this is safe.
pub const POLL: Duration = Duration::from_secs(1);
/// Entries read per round trip.
const BATCH: usize = 512;
/// Connecting, and any reply beyond the poll's own wait.
const TIMEOUT: Duration = Duration::from_secs(2);

const NANOS_PER_MS: u64 = 1_000_000;

/// Why the feed could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedisFeedError {
    /// The URL is not a Redis URL (the URL itself is not repeated: it may
    /// hold a password).
    #[error("the Redis URL is not valid ({0})")]
    Url(String),
    /// The feed key is shorter than [`FeedKey::MIN_LEN`] bytes.
    #[error("the Redis feed key must be at least {} bytes", FeedKey::MIN_LEN)]
    ShortKey,
}

/// The key that authenticates revocation entries (see the module docs).
/// Every instance sharing a stream holds the same one; Redis never does.
pub struct FeedKey(Hmac<Sha256>);

impl std::fmt::Debug for FeedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedKey(..)")
    }
}

impl FeedKey {
    /// 32 bytes: HMAC-SHA256's own strength.
    pub const MIN_LEN: usize = 32;

    pub fn new(bytes: &[u8]) -> Result<Self, RedisFeedError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(RedisFeedError::ShortKey);
        }
        // HMAC takes keys of any length: this never fails past the check.
        Hmac::<Sha256>::new_from_slice(bytes)
            .map(Self)
            .map_err(|_| RedisFeedError::ShortKey)
    }

    fn mac(&self, stream: &str, digest: &str, until: &str) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        for part in [
            b"postern-revocation-v1".as_slice(),
            stream.as_bytes(),
            digest.as_bytes(),
            until.as_bytes(),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The `m` field for an entry.
    fn sign(&self, stream: &str, digest: &str, until: &str) -> String {
        hex(&self.mac(stream, digest, until).finalize().into_bytes())
    }

    /// Whether `tag` (hex) is the entry's MAC; compared in constant time.
    fn verify(&self, stream: &str, digest: &str, until: &str, tag: &str) -> bool {
        match unhex(tag) {
            Some(tag) => self.mac(stream, digest, until).verify_slice(&tag).is_ok(),
            None => false,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Publishes this instance's logouts to a Redis stream and follows the
/// stream for everyone's.
pub struct RedisRevocations {
    client: Client,
    stream: String,
    keep_for: Duration,
    key: FeedKey,
    /// Entries dropped because their MAC was missing or wrong.
    rejected: AtomicU64,
    // A multiplexed connection is shared by cloning; held only to clone or
    // replace it, never across an await.
    publisher: Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the client: its connection info may hold a password.
        f.debug_struct("RedisRevocations")
            .field("stream", &self.stream)
            .field("keep_for", &self.keep_for)
            .finish_non_exhaustive()
    }
}

impl RedisRevocations {
    /// Checks the URL; connections are made when first needed and remade
    /// after failures, so a Redis that is down at start is not fatal.
    pub fn new(
        url: &str,
        stream: &str,
        keep_for: Duration,
        key: FeedKey,
    ) -> Result<Self, RedisFeedError> {
        Self::with_trust(url, stream, keep_for, key, &TrustRoots::builtin())
    }

    /// As [`RedisRevocations::new`]; a `rediss://` URL trusts only the
    /// private CA of `roots` when it has one (see [`crate::tls`]).
    pub fn with_trust(
        url: &str,
        stream: &str,
        keep_for: Duration,
        key: FeedKey,
        roots: &TrustRoots,
    ) -> Result<Self, RedisFeedError> {
        let client = roots
            .redis_client(url)
            .map_err(|e| RedisFeedError::Url(e.category().to_string()))?;
        Ok(Self {
            client,
            stream: stream.to_string(),
            keep_for,
            key,
            rejected: AtomicU64::new(0),
            publisher: Mutex::new(None),
        })
    }

    async fn connect(&self, response_timeout: Duration) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(response_timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    async fn xadd(&self, digest: TokenDigest, until: u64) -> RedisResult<()> {
        let existing = self.publisher.lock().clone();
        let mut connection = match existing {
            Some(c) => c,
            None => {
                let fresh = self.connect(TIMEOUT).await?;
                *self.publisher.lock() = Some(fresh.clone());
                fresh
            }
        };
        let oldest_kept = postern_cache::unix_now().saturating_sub(nanos(self.keep_for));
        let digest = format!("{digest:032x}");
        let until = until.to_string();
        let mac = self.key.sign(&self.stream, &digest, &until);
        let result = ::redis::cmd("XADD")
            .arg(&self.stream)
            .arg("MINID")
            .arg("~")
            .arg(oldest_kept / NANOS_PER_MS)
            .arg("*")
            .arg("d")
            .arg(&digest)
            .arg("u")
            .arg(&until)
            .arg("m")
            .arg(&mac)
            .query_async::<String>(&mut connection)
            .await;
        if result.is_err() {
            *self.publisher.lock() = None;
        }
        result.map(drop)
    }

    /// Follows the stream until `stop` turns true: every entry goes to
    /// [`Gate::apply_revocation`], and [`Gate::revocations_heard_up_to`]
    /// advances whenever the reader has caught up. Connection failures are
    /// logged once per outage and retried; while they last the gate's lag
    /// grows and its hits go upstream.
    ///
    /// The server's `run_id` is read at every connection and every
    /// [`IDENTITY_CHECK_EVERY`] reads; when it changes, or cannot be read
    /// (an ACL refusing `INFO`) at a reconnection, the stream's history may
    /// be lost: [`Gate::revocation_history_lost`] runs and the stream is
    /// read again from its start.
    pub async fn follow(self: Arc<Self>, gate: Arc<Gate>, mut stop: watch::Receiver<bool>) {
        let mut last = String::from("0-0");
        let mut reader: Option<MultiplexedConnection> = None;
        let mut server = ServerIdentity::default();
        let mut rounds: u64 = 0;
        let mut failing = false;
        loop {
            let round = async {
                let fresh = reader.is_none();
                let connection = match reader.as_mut() {
                    Some(c) => c,
                    None => reader.insert(self.connect(POLL + TIMEOUT).await?),
                };
                rounds += 1;
                let check =
                    fresh || (server.known() && rounds.is_multiple_of(IDENTITY_CHECK_EVERY));
                if check && server.lost_history(server_run_id(connection).await?) {
                    let (cleared, republished) =
                        gate.revocation_history_lost(postern_cache::unix_now());
                    last = String::from("0-0");
                    tracing::warn!(
                            cleared,
                            republished,
                            "Redis restarted or failed over and may have lost revocations: \
                             the gate cache was emptied and this instance's logouts are published again"
                        );
                }
                let sent = postern_cache::unix_now();
                let reply = self.read(connection, &last).await?;
                Ok::<_, ::redis::RedisError>((sent, reply))
            };
            let outcome = tokio::select! {
                _ = stop.changed() => return,
                outcome = round => outcome,
            };
            match outcome {
                Ok((sent, reply)) => {
                    let read = self.apply(&gate, reply, &mut last);
                    if read < BATCH {
                        // Everything in the stream when the read was sent
                        // came back; an empty answer after the wait also
                        // proves nothing arrived during the wait.
                        let complete = if read == 0 {
                            postern_cache::unix_now().min(sent.saturating_add(nanos(POLL)))
                        } else {
                            sent
                        };
                        gate.revocations_heard_up_to(complete);
                    }
                    if failing {
                        tracing::info!("revocation feed from Redis restored");
                        failing = false;
                    }
                }
                Err(e) => {
                    gate.revocations_check_stalled();
                    if !failing {
                        tracing::error!(error = %e, "revocation feed from Redis lost; hits go upstream until it returns");
                        failing = true;
                    }
                    reader = None;
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(POLL / 4) => {}
                    }
                }
            }
        }
    }

    async fn read(
        &self,
        connection: &mut MultiplexedConnection,
        after: &str,
    ) -> RedisResult<Option<StreamReadReply>> {
        ::redis::cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(POLL.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(after)
            .query_async(connection)
            .await
    }

    /// Applies a reply's entries; returns how many it held.
    fn apply(&self, gate: &Gate, reply: Option<StreamReadReply>, last: &mut String) -> usize {
        let now = postern_cache::unix_now();
        let horizon = now.saturating_add(nanos(self.keep_for));
        let mut read = 0;
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            read += 1;
            match parse(&entry, &self.stream, &self.key) {
                Ok((digest, until)) => {
                    gate.apply_revocation(digest, until.min(horizon), now);
                }
                Err(Refused::Malformed) => {
                    tracing::warn!(id = %entry.id, "malformed revocation entry skipped")
                }
                Err(Refused::Forged) => {
                    let rejected = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(
                        id = %entry.id,
                        rejected,
                        "revocation entry with a missing or wrong MAC dropped \
                         (written by something without the feed key)"
                    );
                }
            }
            last.clone_from(&entry.id);
        }
        read
    }

    /// Entries dropped since start because their MAC was missing or wrong.
    pub fn entries_rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

impl RevocationPublisher for RedisRevocations {
    fn publish(&self, digest: TokenDigest, until: u64) -> BoxFuture<'_, Result<(), PublishError>> {
        Box::pin(async move {
            // One retry on a fresh connection: the shared one may have been
            // dropped by Redis while idle.
            match self.xadd(digest, until).await {
                Ok(()) => Ok(()),
                Err(_) => self
                    .xadd(digest, until)
                    .await
                    .map_err(|e| PublishError(e.to_string())),
            }
        })
    }
}

/// How many reads between two checks of the server's `run_id` on a
/// connection that stays up (a failover behind a proxy keeps it up).
pub const IDENTITY_CHECK_EVERY: u64 = 10;

/// What the follower knows of the Redis server behind the URL.
#[derive(Debug, Default)]
struct ServerIdentity {
    checked: bool,
    /// The last `run_id` read.
    last_known: Option<String>,
    /// Whether the last check could read it.
    readable: bool,
    warned: bool,
}

impl ServerIdentity {
    fn known(&self) -> bool {
        self.readable
    }

    /// Records `run_id`, read now (`None`: the server would not say); true
    /// when the stream's history may have been lost since the last check:
    /// another server answers, or it cannot be told (so the worst is
    /// assumed).
    fn lost_history(&mut self, run_id: Option<String>) -> bool {
        let lost = self.checked
            && match &run_id {
                Some(now) => self.last_known.as_deref() != Some(now.as_str()),
                None => true,
            };
        self.checked = true;
        self.readable = run_id.is_some();
        if run_id.is_some() {
            self.last_known.clone_from(&run_id);
        }
        if run_id.is_none() && !self.warned {
            tracing::warn!(
                "cannot read the Redis server's run_id (is INFO refused by an ACL?): \
                 the gate cache will be emptied at every reconnection"
            );
            self.warned = true;
        }
        lost
    }
}

/// The server's `run_id`, which changes whenever it restarts (or another
/// server answers at the same address); `None` if the server will not say
/// (`INFO` refused, e.g. by an ACL, or no `run_id` in it). A lost
/// connection or a timeout is an error: the round failed, nothing is known.
async fn server_run_id(connection: &mut MultiplexedConnection) -> RedisResult<Option<String>> {
    match ::redis::cmd("INFO")
        .arg("server")
        .query_async::<String>(connection)
        .await
    {
        Ok(info) => Ok(run_id_of(&info).map(str::to_string)),
        Err(e)
            if e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_connection_refusal() =>
        {
            Err(e)
        }
        Err(_) => Ok(None),
    }
}

fn run_id_of(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(str::trim)
}

/// Why an entry was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// `d` or `u` missing or not well formed.
    Malformed,
    /// `m` missing or not the MAC of `d` and `u` under the feed key.
    Forged,
}

/// `d` (32 hex digits) and `u` (decimal Unix nanoseconds) of an entry
/// whose `m` authenticates them under `key` for `stream`.
fn parse(entry: &StreamId, stream: &str, key: &FeedKey) -> Result<(TokenDigest, u64), Refused> {
    let digest: String = entry.get("d").ok_or(Refused::Malformed)?;
    let until: String = entry.get("u").ok_or(Refused::Malformed)?;
    let mac: Option<String> = entry.get("m");
    if !mac.is_some_and(|m| key.verify(stream, &digest, &until, &m)) {
        return Err(Refused::Forged);
    }
    if digest.len() != 32 {
        return Err(Refused::Malformed);
    }
    let digest = u128::from_str_radix(&digest, 16).map_err(|_| Refused::Malformed)?;
    let until = until.parse().map_err(|_| Refused::Malformed)?;
    Ok((digest, until))
}

/// The feed's entry parser over an entry given as its field/value pairs:
/// the entry point of `fuzz/fuzz_targets/redis_entry.rs`, not an API.
#[doc(hidden)]
pub fn parse_fields(
    fields: &[(&str, &[u8])],
    stream: &str,
    key: &FeedKey,
) -> Option<(TokenDigest, u64)> {
    let entry = StreamId {
        map: fields
            .iter()
            .map(|(k, v)| (k.to_string(), ::redis::Value::BulkString(v.to_vec())))
            .collect(),
        ..StreamId::default()
    };
    parse(&entry, stream, key).ok()
}

/// The `m` field a publisher holding `key` writes for an entry (for the
/// fuzz target, which must reach the checks behind the MAC).
#[doc(hidden)]
pub fn entry_mac(key: &FeedKey, stream: &str, digest: &str, until: &str) -> String {
    key.sign(stream, digest, until)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::redis::Value;
    use std::collections::HashMap;

    fn entry(fields: &[(&str, &str)]) -> StreamId {
        StreamId {
            id: "1-0".into(),
            map: fields
                .iter()
                .map(|(k, v)| (k.to_string(), Value::BulkString(v.as_bytes().to_vec())))
                .collect::<HashMap<_, _>>(),
            ..StreamId::default()
        }
    }

    fn key() -> FeedKey {
        FeedKey::new(&[7u8; 32]).unwrap()
    }

    /// An entry for `d` and `u`, signed under the test key for stream `s`.
    fn signed(d: &str, u: &str) -> StreamId {
        let m = key().sign("s", d, u);
        entry(&[("d", d), ("u", u), ("m", &m)])
    }

    fn parsed(e: &StreamId) -> Result<(TokenDigest, u64), Refused> {
        parse(e, "s", &key())
    }

    #[test]
    fn entries_parse_only_when_whole() {
        let digest = "000102030405060708090a0b0c0d0e0f";
        assert_eq!(
            parsed(&signed(digest, "42")),
            Ok((0x000102030405060708090a0b0c0d0e0f, 42))
        );
        assert_eq!(parsed(&entry(&[("d", digest)])), Err(Refused::Malformed));
        assert_eq!(parsed(&entry(&[("u", "42")])), Err(Refused::Malformed));
        assert_eq!(parsed(&signed("abc", "42")), Err(Refused::Malformed));
        assert_eq!(
            parsed(&signed(&"g".repeat(32), "42")),
            Err(Refused::Malformed),
            "not hex"
        );
        assert_eq!(parsed(&signed(digest, "-1")), Err(Refused::Malformed));
    }

    #[test]
    fn entries_without_the_right_mac_are_refused_as_forged() {
        let digest = "000102030405060708090a0b0c0d0e0f";
        assert_eq!(
            parsed(&entry(&[("d", digest), ("u", "42")])),
            Err(Refused::Forged),
            "no MAC"
        );
        let good = key().sign("s", digest, "42");
        assert_eq!(good.len(), 64);
        let rewritten = entry(&[("d", digest), ("u", "43"), ("m", &good)]);
        assert_eq!(parsed(&rewritten), Err(Refused::Forged), "until changed");
        let other = "ff0102030405060708090a0b0c0d0e0f";
        let moved = entry(&[("d", other), ("u", "42"), ("m", &good)]);
        assert_eq!(parsed(&moved), Err(Refused::Forged), "digest changed");
        let elsewhere = key().sign("t", digest, "42");
        let replayed = entry(&[("d", digest), ("u", "42"), ("m", &elsewhere)]);
        assert_eq!(parsed(&replayed), Err(Refused::Forged), "another stream");
        let wrong_key = FeedKey::new(&[8u8; 32]).unwrap().sign("s", digest, "42");
        let injected = entry(&[("d", digest), ("u", "42"), ("m", &wrong_key)]);
        assert_eq!(parsed(&injected), Err(Refused::Forged), "another key");
        let junk = entry(&[("d", digest), ("u", "42"), ("m", "zz")]);
        assert_eq!(parsed(&junk), Err(Refused::Forged));
        assert!(matches!(
            FeedKey::new(&[1u8; 31]),
            Err(RedisFeedError::ShortKey)
        ));
        let fields = [("d", digest.as_bytes()), ("u", b"42".as_slice())];
        assert_eq!(parse_fields(&fields, "s", &key()), None, "unsigned");
        let m = entry_mac(&key(), "s", digest, "42");
        let fields = [
            ("d", digest.as_bytes()),
            ("u", b"42".as_slice()),
            ("m", m.as_bytes()),
        ];
        assert_eq!(
            parse_fields(&fields, "s", &key()),
            Some((0x000102030405060708090a0b0c0d0e0f, 42)),
            "the fuzz entry point parses as the feed does"
        );
    }

    #[test]
    fn history_is_lost_when_the_server_changes_or_cannot_be_told() {
        let mut server = ServerIdentity::default();
        assert!(!server.lost_history(Some("a".into())), "first connection");
        assert!(server.known());
        assert!(!server.lost_history(Some("a".into())));
        assert!(server.lost_history(Some("b".into())), "restarted");
        assert!(server.lost_history(None), "cannot tell: assume the worst");
        assert!(!server.known());
        assert!(server.lost_history(None));
        assert!(
            !server.lost_history(Some("b".into())),
            "the same server as the last one read"
        );
        let mut refused = ServerIdentity::default();
        assert!(!refused.lost_history(None), "nothing to lose yet");
        assert!(refused.lost_history(Some("a".into())));
    }

    #[test]
    fn the_run_id_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:4f3c2a\r\ntcp_port:6379\r\n";
        assert_eq!(run_id_of(info), Some("4f3c2a"));
        assert_eq!(run_id_of("# Server\r\n"), None);
    }

    #[test]
    fn a_bad_url_is_refused_without_repeating_it() {
        let e = RedisRevocations::new("http://user:hunter2@x", DEFAULT_STREAM, POLL, key())
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(RedisRevocations::new("redis://127.0.0.1:1", DEFAULT_STREAM, POLL, key()).is_ok());
    }
}
