//! The v1 HTTP API: one module per group of endpoints.

pub mod auth;
pub mod biometric;
mod check_answer;
pub mod enroll;
pub mod identity;
pub mod issue;
pub mod jwt;
pub mod ops;
pub mod own_session;
pub mod page;
pub mod passkeys;
pub mod session;
pub mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{delete, get, on, post, MethodFilter};
use axum::Router;
use tower::{Layer, Service};

use crate::client_ip::Peer;
use crate::config::SessionMode;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;
use crate::request_id;
use crate::state::AppState;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The name per-client limits charge a request to: the TCP peer, or the
/// client a trusted proxy names (`--trusted-proxies`; see
/// [`crate::client_ip::client_of`]).
pub(crate) fn requester(state: &AppState, headers: &HeaderMap, peer: Peer) -> String {
    crate::client_ip::client_of(&state.trusted_proxies, headers, peer.ip())
}

/// Builds the router the server serves (with `/metrics` unless
/// `metrics_elsewhere`: then [`metrics_router`] serves it on its own
/// listener and the main one answers 404).
pub fn router(state: AppState, max_body_bytes: usize, metrics_elsewhere: bool) -> Router {
    let mut router = Router::new();
    if !metrics_elsewhere {
        router = router.route("/metrics", get(ops::metrics));
    }
    router
        .route(
            "/v1/users/{user}/enroll",
            post(enroll::enroll).layer(DefaultBodyLimit::max(
                max_body_bytes.max(biometric::CIPHERTEXT_BODY_BYTES),
            )),
        )
        .route("/v1/biometric/public-key", get(biometric::public_key))
        .route("/v1/auth/challenge", post(auth::challenge))
        .route(
            "/v1/auth/full",
            post(auth::full).layer(DefaultBodyLimit::max(
                max_body_bytes.max(biometric::CIPHERTEXT_BODY_BYTES),
            )),
        )
        .route(
            "/v1/passkeys/register/start",
            post(passkeys::register_start),
        )
        .route(
            "/v1/passkeys/register/finish",
            post(passkeys::register_finish),
        )
        .route("/v1/passkeys/login/start", post(passkeys::login_start))
        .route(
            "/v1/passkeys/login/finish",
            post(passkeys::login_finish).layer(DefaultBodyLimit::max(
                max_body_bytes.max(biometric::CIPHERTEXT_BODY_BYTES),
            )),
        )
        .route("/v1/session/resume", post(session::resume))
        .route("/v1/session/logout", post(session::logout))
        // Every standard method, and any path under it: Envoy's ext_authz
        // keeps the original method and appends the original path (`App`
        // takes these before the router; the router answers them the
        // same). Another method (CONNECT, an extension such as QUERY) is
        // a 405, which every proxy treats as a refusal.
        .route("/v1/check", on(check_methods(), session::check))
        .route(
            "/v1/check/{*rest}",
            on(check_methods(), session::check_under),
        )
        .route(
            "/v1/users/{user}/sessions",
            get(users::list).delete(users::revoke_all),
        )
        .route(
            "/v1/users/{user}/sessions/{session}",
            delete(users::revoke_one),
        )
        .route("/v1/users/{user}/passkeys", get(passkeys::list))
        .route(
            "/v1/users/{user}/passkeys/{credential_id}",
            delete(passkeys::remove),
        )
        .route(
            "/v1/users/{user}/passkeys/{credential_id}/confirm",
            post(passkeys::confirm),
        )
        .route(
            "/v1/users/{user}/identity",
            delete(identity::revoke_identity)
                .put(identity::replace_identity)
                .layer(DefaultBodyLimit::max(
                    max_body_bytes.max(biometric::CIPHERTEXT_BODY_BYTES),
                )),
        )
        .route("/v1/session/refresh", post(jwt::refresh))
        .route("/.well-known/jwks.json", get(jwt::jwks))
        .route("/", get(page::root))
        .route("/login", get(page::login))
        .route("/login.js", get(page::script))
        .route("/login.css", get(page::style))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(ops::openapi))
        .fallback(ops::not_found)
        .layer(TrackLayer {
            metrics: state.metrics.clone(),
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Request ids (`crate::request_id`), outermost: a proxy's insane
        // id is dropped, a missing one generated, the `TraceLayer` span
        // carries it through every log line of the request, and the
        // response echoes it.
        .layer(
            tower::ServiceBuilder::new()
                .map_request(request_id::drop_insane)
                .layer(SetRequestIdLayer::new(
                    request_id::X_REQUEST_ID.clone(),
                    request_id::CounterIds::new(),
                ))
                .layer(TraceLayer::new_for_http().make_span_with(request_id::span_for))
                .layer(PropagateRequestIdLayer::new(
                    request_id::X_REQUEST_ID.clone(),
                )),
        )
        .with_state(state)
}

/// The service `postern serve` runs: [`router`], with `/v1/check` (any
/// method, and any path under it: see `is_check_path`) taken before it.
///
/// Why: `/v1/check` is the forward-auth hot path, called once per request
/// of every service behind the proxy. Through the router it pays route
/// matching, a clone of each route layer's boxed service, extension inserts
/// (matched path, body limit) and their futures, several times what a cache
/// hit itself costs (`BENCHMARKS.md`, gate throughput). Taken here, it runs
/// the same handler code (`session::check_request`) and is counted and
/// timed in the same metrics under the same labels; every other request
/// goes through the router unchanged. The request's body is never read:
/// it is dropped with the request.
#[derive(Clone)]
pub struct App {
    parts: Arc<AppParts>,
    /// The connection's TCP peer, handed to every request on it (as
    /// `ConnectInfo`) for per-client limits (`crate::client_ip`).
    peer: Option<SocketAddr>,
}

struct AppParts {
    router: Router,
    state: AppState,
    /// Whether `GET /v1/check` is taken before the router (the main
    /// listener); the metrics listener serves `/metrics` alone.
    early_check: bool,
}

impl App {
    pub fn new(state: AppState, max_body_bytes: usize, metrics_elsewhere: bool) -> Self {
        Self {
            parts: Arc::new(AppParts {
                router: router(state.clone(), max_body_bytes, metrics_elsewhere),
                state,
                early_check: true,
            }),
            peer: None,
        }
    }

    /// `/metrics` alone ([`metrics_router`]), for `--metrics-listen`: served
    /// by the same accept loop, so with the same timeouts and a cap.
    pub fn metrics_only(state: AppState) -> Self {
        Self {
            parts: Arc::new(AppParts {
                router: metrics_router(state.clone()),
                state,
                early_check: false,
            }),
            peer: None,
        }
    }

    /// The same app, serving one connection from `peer`.
    pub fn for_peer(&self, peer: SocketAddr) -> Self {
        Self {
            parts: self.parts.clone(),
            peer: Some(peer),
        }
    }
}

impl Service<Request> for App {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The router is always ready (axum's `Router::poll_ready` is too).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.respond(request)
    }
}

impl App {
    /// [`Service::call`] without `&mut self`: the server calls it on the
    /// connection's app, so that a request clones the shared parts once
    /// (a reference count both cores touch), not the app and then the parts.
    pub fn respond(
        &self,
        mut request: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>> {
        let parts = self.parts.clone();
        let peer = self.peer;
        let method = method_label(request.method());
        if parts.early_check && is_check_path(request.uri().path()) && method != OTHER_METHOD {
            return Box::pin(async move {
                let started = Instant::now();
                // The proxy's id, echoed: a reference-counted copy, and no
                // span on this path unless it logs (`crate::request_id`).
                let request_id = request_id::sane_id(request.headers());
                let response = match session::check_request(
                    &parts.state,
                    request.headers(),
                    crate::client_ip::Peer(peer),
                )
                .await
                {
                    Ok(response) => response,
                    Err(error) if error.logs_above_debug() => {
                        request_id::check_span(request_id.as_ref())
                            .in_scope(|| axum::response::IntoResponse::into_response(error))
                    }
                    Err(error) => axum::response::IntoResponse::into_response(error),
                };
                parts.state.metrics.observe_check(
                    method,
                    response.status().as_u16(),
                    started.elapsed().as_secs_f64(),
                );
                let mut response = response;
                harden(&mut response, true);
                if let Some(id) = request_id {
                    response
                        .headers_mut()
                        .insert(request_id::X_REQUEST_ID.clone(), id);
                }
                Ok(response)
            });
        }
        let api = request.uri().path().starts_with("/v1/");
        if let Some(peer) = peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let mut router = parts.router.clone();
        Box::pin(async move {
            let mut response = router.call(request).await?;
            harden(&mut response, api);
            Ok(response)
        })
    }
}

/// `/v1/check` and every path under it (`/v1/check/...`), whatever the
/// method: Envoy's HTTP `ext_authz` calls its path prefix with the original
/// request's method and path appended. Two comparisons, no allocation.
fn is_check_path(path: &str) -> bool {
    match path.strip_prefix("/v1/check") {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The methods `/v1/check` answers: those OpenAPI can describe (its
/// document lists each), which are the ones proxies send.
fn check_methods() -> MethodFilter {
    MethodFilter::GET
        .or(MethodFilter::HEAD)
        .or(MethodFilter::POST)
        .or(MethodFilter::PUT)
        .or(MethodFilter::DELETE)
        .or(MethodFilter::PATCH)
        .or(MethodFilter::OPTIONS)
        .or(MethodFilter::TRACE)
}

/// Headers every answer carries: `X-Content-Type-Options: nosniff` (a
/// browser never guesses a type, e.g. runs a JSON error as script), and on
/// the API (`/v1/`: sessions, tokens, users, passkeys) `Cache-Control:
/// no-store`, so no browser or shared cache keeps a session token or a
/// user's data. Set here, once, for the router and the early `/v1/check`
/// alike (a static header value: no allocation).
fn harden(response: &mut Response, api: bool) {
    use axum::http::{header, HeaderValue};
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Counts and times every request by its route template: a plain tower
/// layer that calls the route directly and boxes one future, with static
/// labels (no allocation per request).
#[derive(Clone)]
struct TrackLayer {
    metrics: Arc<Metrics>,
}

impl<S> Layer<S> for TrackLayer {
    type Service = TrackService<S>;
    fn layer(&self, inner: S) -> TrackService<S> {
        TrackService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
struct TrackService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request> for TrackService<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Labels are static strings: no allocation per request.
        let endpoint = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", |p| route_label(p.as_str()));
        let method = method_label(request.method());
        let started = Instant::now();
        let response = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let response = response.await?;
            metrics.observe_request(
                endpoint,
                method,
                response.status().as_u16(),
                started.elapsed().as_secs_f64(),
            );
            Ok(response)
        })
    }
}

/// `/metrics` alone, for `--metrics-listen`: counted in the same metrics.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .layer(TrackLayer {
            metrics: state.metrics.clone(),
        })
        .with_state(state)
}

/// Every route template the router serves, as metric labels (the OpenAPI
/// document lists the same paths: `crate::openapi`'s tests).
pub(crate) const ROUTES: [&str; 28] = [
    "/v1/users/{user}/enroll",
    "/v1/biometric/public-key",
    "/v1/auth/challenge",
    "/v1/auth/full",
    "/v1/passkeys/register/start",
    "/v1/passkeys/register/finish",
    "/v1/passkeys/login/start",
    "/v1/passkeys/login/finish",
    "/",
    "/login",
    "/login.js",
    "/login.css",
    "/v1/session/resume",
    "/v1/session/logout",
    "/v1/check",
    "/v1/check/{rest}",
    "/v1/users/{user}/sessions",
    "/v1/users/{user}/sessions/{session}",
    "/v1/users/{user}/passkeys",
    "/v1/users/{user}/passkeys/{credential_id}",
    "/v1/users/{user}/passkeys/{credential_id}/confirm",
    "/v1/users/{user}/identity",
    "/v1/session/refresh",
    "/.well-known/jwks.json",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
];

fn route_label(template: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|r| **r == template)
        .copied()
        .unwrap_or("unmatched")
}

/// The label of every method without one of its own: CONNECT and
/// extension methods, exactly those [`check_methods`] leaves out (the
/// early check takes a request only when its label is another).
const OTHER_METHOD: &str = "OTHER";

fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        _ => OTHER_METHOD,
    }
}

/// Where a request's session token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Header,
    Cookie,
}

/// The token a request presents: `Authorization: Bearer` first and, only
/// when that header is absent, the session cookie (in cookie mode). A
/// present but bad header is an error, never a fall-through to the cookie.
/// The token is never logged.
pub(crate) fn presented<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
) -> Result<(&'h str, Source), ApiError> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        return Ok((bearer_value(value)?, Source::Header));
    }
    if state.delivery.mode == SessionMode::Cookie {
        if let Some(token) = state.delivery.cookie.read(headers) {
            return Ok((token, Source::Cookie));
        }
    }
    Err(ApiError::MissingToken)
}

/// Cross-site request forgery guard for a cookie-authenticated request
/// that changes state: browsers send `Origin` on every such request, and
/// it must be one of the configured passkey origins, exactly (scheme, host
/// and port). (Browsers never attach a bearer header on their own, so
/// header-authenticated requests need no guard.)
pub(crate) fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    match origin {
        Some(origin) if state.delivery.origins.iter().any(|o| o == origin) => Ok(()),
        _ => Err(ApiError::CrossOrigin),
    }
}

/// The raw bearer token of a request. The token is never logged.
pub(crate) fn bearer_text(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(ApiError::MissingToken)?;
    bearer_value(value)
}

/// The token of an `Authorization` header value. Never logged. A value
/// that is no `<scheme> <token>` is an invalid token (401, RFC 6750 §3.1).
fn bearer_value(value: &axum::http::HeaderValue) -> Result<&str, ApiError> {
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingToken);
    }
    Ok(token.trim())
}

/// Whether a bearer token is one of Postern's own (else, in gate mode, it
/// belongs to the upstream identity provider).
pub(crate) fn is_postern_token(token: &str) -> bool {
    token.starts_with("pst1.")
}

pub(crate) fn malformed_token() -> ApiError {
    ApiError::bad_request(
        ErrorCode::MalformedToken,
        "the token is not a Postern session token",
    )
}

pub(crate) fn user_id(text: &str) -> Result<postern_core::context::UserId, ApiError> {
    postern_core::context::UserId::parse(text)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidUser, e.to_string()))
}

/// The audience a request's identity proof is bound to: the one it names,
/// if this server accepts it, else the server's first. A proof made for a
/// look-alike server names that server's origin and is refused here.
pub(crate) fn audience_of(state: &AppState, named: Option<&str>) -> Result<String, ApiError> {
    let Some(named) = named else {
        return state
            .audiences
            .first()
            .cloned()
            .ok_or(ApiError::Internal("no audience configured"));
    };
    let named = named.trim().trim_end_matches('/');
    state
        .audiences
        .iter()
        .find(|a| a.as_str() == named)
        .cloned()
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::UnknownAudience,
                format!(
                    "this server accepts identity proofs made for {}, not for the audience named",
                    state.audiences.join(", ")
                ),
            )
        })
}

/// Runs blocking store work off the async workers.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::Internal("blocking task failed"))?
}

#[cfg(test)]
mod tests {
    use super::is_check_path;

    #[test]
    fn the_check_prefix_is_the_path_or_a_segment_boundary() {
        for path in [
            "/v1/check",
            "/v1/check/",
            "/v1/check/api/orders",
            "/v1/check//x",
        ] {
            assert!(is_check_path(path), "{path}");
        }
        for path in [
            "/v1/checkout",
            "/v1/check-x",
            "/v1/chec",
            "/",
            "/v2/check",
            "/x/v1/check",
        ] {
            assert!(!is_check_path(path), "{path}");
        }
    }
}
