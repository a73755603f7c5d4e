//! Request ids: one per request, echoed in the response (`X-Request-Id`)
//! and carried by every log line of that request.
//!
//! Why take the proxy's: nginx (`$request_id`), Envoy and most load
//! balancers already name each request; keeping that name lets one search
//! find the request in the proxy's logs and in ours. Why check it first:
//! the header is attacker-controlled and goes into log lines, so only a
//! *sane* value is kept (1 to [`MAX_LEN`] visible ASCII characters: no
//! spaces, no control characters, nothing that could forge or split a log
//! line or blow up its size); any other value is replaced.
//!
//! Where it applies:
//! - Every request through the router ([`crate::routes::router`]): an
//!   insane id is dropped ([`drop_insane`]), tower-http's request-id layer
//!   fills a missing one from [`CounterIds`], a `TraceLayer` span
//!   ([`span_for`]) carries it through every log line of the request, and
//!   the response echoes it.
//! - The forward-auth hot path `GET /v1/check` ([`crate::routes::App`]),
//!   which bypasses the router for speed: a sane id sent by the proxy is
//!   echoed (a copy of the header value, reference-counted: no allocation),
//!   and nothing else happens on a hit or a quiet refusal: no id is
//!   generated and no span is made. A span carrying the proxy's id
//!   ([`check_span`]) is made only where a check does expensive work
//!   anyway and may log: a gate cache miss (an upstream call) and a
//!   refusal logged at `info` or above (upstream unavailable, an internal
//!   or store failure). Proxies that send no id get none back from
//!   `/v1/check`; have them send one (README, "Request ids").
//!
//! Generated ids are `<16 hex digits>-<counter in hex>`: a random prefix
//! drawn once per process (so that two instances' ids do not collide) and
//! a per-process counter. Cheaper than a UUID, and as unique for logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use tower_http::request_id::{MakeRequestId, RequestId};

/// The header, as proxies spell it.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id kept from a proxy (a UUID is 36, nginx's `$request_id` 32).
pub const MAX_LEN: usize = 128;

/// Whether a received id may be kept: 1 to [`MAX_LEN`] bytes, each
/// visible ASCII (`!` to `~`).
pub fn is_sane(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_LEN).contains(&bytes.len()) && bytes.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// The request's id if it is sane (a cheap, reference-counted copy).
pub fn sane_id(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(&X_REQUEST_ID).filter(|v| is_sane(v)).cloned()
}

/// Removes an id that is not sane, so that one is generated instead.
pub fn drop_insane(mut request: Request) -> Request {
    if request
        .headers()
        .get(&X_REQUEST_ID)
        .is_some_and(|v| !is_sane(v))
    {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    request
}

/// Generates ids `<random prefix>-<counter>`; clones share the counter.
#[derive(Debug, Clone)]
pub struct CounterIds {
    prefix: u64,
    next: Arc<AtomicU64>,
}

impl CounterIds {
    pub fn new() -> Self {
        Self {
            prefix: rand::random(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // Hex digits and a dash: always a valid header value.
        HeaderValue::try_from(format!("{:016x}-{n:x}", self.prefix))
            .unwrap_or_else(|_| HeaderValue::from_static("unnamed"))
    }
}

impl Default for CounterIds {
    fn default() -> Self {
        Self::new()
    }
}

impl MakeRequestId for CounterIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        Some(RequestId::new(self.next_id()))
    }
}

/// The span of one request through the router (`TraceLayer`): its id,
/// method and path. Never the query string or a header: a token must
/// not reach a log line.
pub fn span_for(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        request_id = id,
        method = %request.method(),
        path = request.uri().path(),
    )
}

/// The span of a `GET /v1/check` that does expensive work anyway (see
/// the module docs): the proxy's id, if it sent a sane one.
pub fn check_span(id: Option<&HeaderValue>) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = id.and_then(|v| v.to_str().ok()).unwrap_or_default(),
        method = "GET",
        path = "/v1/check",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ascii_ids_are_kept() {
        for ok in [
            "a",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "req:42/x",
            &"x".repeat(MAX_LEN),
        ] {
            assert!(is_sane(&HeaderValue::from_str(ok).unwrap()), "{ok}");
        }
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_static("two words"),
            HeaderValue::from_str(&"x".repeat(MAX_LEN + 1)).unwrap(),
            HeaderValue::from_bytes(b"tab\there").unwrap(),
            HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap(),
        ] {
            assert!(!is_sane(&bad), "{bad:?}");
        }
    }

    #[test]
    fn an_insane_id_is_dropped_and_a_sane_one_kept() {
        let request = |id: &'static [u8]| {
            axum::http::Request::builder()
                .header("x-request-id", HeaderValue::from_bytes(id).unwrap())
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let kept = drop_insane(request(b"abc-123"));
        assert_eq!(kept.headers()["x-request-id"], "abc-123");
        let dropped = drop_insane(request(b"forged\tline"));
        assert!(dropped.headers().get("x-request-id").is_none());
    }

    #[test]
    fn generated_ids_are_distinct_sane_and_share_a_prefix() {
        let ids = CounterIds::new();
        let clone = ids.clone();
        let a = ids.next_id();
        let b = clone.next_id();
        assert_ne!(a, b);
        assert!(is_sane(&a) && is_sane(&b));
        let prefix = |v: &HeaderValue| v.to_str().unwrap().split('-').next().unwrap().to_owned();
        assert_eq!(prefix(&a), prefix(&b));
        assert_eq!(prefix(&a).len(), 16);
        assert_ne!(
            prefix(&a),
            prefix(&CounterIds::new().next_id()),
            "another process draws another prefix"
        );
    }
}
