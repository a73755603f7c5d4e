//! Resume, check and logout.
//!
//! `POST /v1/session/resume` answers with the decision in the body and a
//! status that matches it: 200 `resumed`, 403 `step_up`, 401
//! `full_auth_required` (with the reason). `/v1/check` is the same
//! decision for a forward-auth proxy (nginx `auth_request`, Caddy
//! `forward_auth`, Traefik `forwardAuth`, Envoy `ext_authz`): the token
//! comes from `Authorization: Bearer`, the device from `X-Postern-Device`,
//! the operation from `X-Postern-Operation`, and a 200 carries
//! `X-Postern-User` and `X-Postern-Session`. It answers any method, on
//! `/v1/check` and any path under it (Envoy keeps the original method and
//! appends the original path), and never reads a request body.
//!
//! `/v1/check` answers only what those proxies understand
//! (`docs/forward-auth.md`): 200; 401 with `WWW-Authenticate: Bearer`
//! when no token was sent, and `Bearer error="invalid_token"` for every
//! refused token, malformed ones included (the JSON APIs answer those
//! 400); 403 `Bearer error="insufficient_scope"` for a missing scope or
//! subject, or a needed step-up; 429 for the gate's miss limit; 502 when
//! the upstream's answer about this token cannot be used; 503 when failing
//! closed.
//!
//! Every endpoint here reads the session token from `Authorization:
//! Bearer` first and, only when that header is absent and the deployment
//! delivers sessions in a cookie, from the session cookie (resume also
//! takes it in the body, which wins). Logout in cookie mode clears the
//! session and device cookies as well as revoking the session; a
//! cookie-authenticated logout must come from a configured origin (`403
//! cross_origin` otherwise).
//!
//! The device travels with the token (`presented_device`): a token from
//! the session cookie is checked against the device cookie alone (set at
//! login, sent by the browser on every request, page navigations
//! included); `X-Postern-Device` (or resume's `device`) is then not
//! consulted, so no header can stand in for the cookie. A token from
//! `Authorization: Bearer` (or resume's body) is checked against
//! `X-Postern-Device` (resume's `device`), in every mode.
//!
//! In gate mode (`--upstream-introspection` or `--upstream-auth1`), a bearer
//! token that is not a Postern token is validated through the gate: cached
//! on a hit, one upstream call on a miss, 401 `invalid_token`, 403
//! `insufficient_scope` (the scopes in `X-Postern-Required-Scopes`, and a
//! subject when `X-Postern-Required-Subject: true`, are checked on every
//! request), 502 `upstream_bad_answer`, or 503 `upstream_unavailable` —
//! never 200 when the upstream cannot answer. A 200 carries
//! `X-Postern-Client` when the token names its client, `X-Postern-User`
//! when it names a user (a client-credentials token names none),
//! `X-Postern-Scopes` and, if the upstream has one, `X-Postern-Session`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use postern_client::device::DeviceInput;
use postern_core::device::Fingerprint;
use postern_core::policy::Decision;
use postern_core::token::SessionToken;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::jwt::is_own_jwt;
use super::{blocking, is_postern_token, malformed_token, presented, same_origin, Source};
use crate::client_ip::{client_of, Peer};
use crate::config::SessionMode;
use crate::error::{ApiError, ApiJson, ErrorCode};
use crate::state::AppState;
use postern_tower::{Cached, Requirement};

pub const DEVICE_HEADER: &str = "x-postern-device";
pub const OPERATION_HEADER: &str = "x-postern-operation";
pub const USER_HEADER: &str = "x-postern-user";
pub const SESSION_HEADER: &str = "x-postern-session";
pub const SCOPES_HEADER: &str = "x-postern-scopes";
pub const REQUIRED_SCOPES_HEADER: &str = "x-postern-required-scopes";
pub const REQUIRED_AUDIENCE_HEADER: &str = "x-postern-required-audience";
pub const REQUIRED_SUBJECT_HEADER: &str = "x-postern-required-subject";
pub const CLIENT_HEADER: &str = "x-postern-client";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// The session token; without it, the `Authorization: Bearer` header,
    /// then (cookie mode) the session cookie.
    #[schema(value_type = Option<crate::openapi::SessionToken>)]
    pub token: Option<String>,
    /// The device now presenting the session: an id string or components.
    /// Not consulted when the token comes from the session cookie: the
    /// device cookie is then the device.
    #[schema(value_type = Option<crate::openapi::Device>)]
    pub device: Option<DeviceInput>,
    /// The operation about to be performed (sensitive ones need a step-up).
    pub operation: Option<String>,
    /// A risk score from 0 to 1 computed by the caller, if any.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub risk_score: Option<f32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResumeResponse {
    /// `resumed`, `step_up` or `full_auth_required`.
    pub decision: &'static str,
    /// Why, when the decision is not `resumed`.
    pub reason: Option<&'static str>,
    pub user: String,
    pub session_id: String,
    pub expires_at: String,
}

/// A presented session credential: an opaque Postern token or, in JWT
/// mode, a session JWT (which names its session; see `routes::jwt`).
pub(crate) enum Credential<'a> {
    Opaque(SessionToken),
    Jwt(&'a str),
}

/// Classifies a presented token. In JWT mode anything shaped like a JWT is
/// taken as ours, so an unknown or pruned key answers 401 `invalid_token`.
pub(crate) fn credential<'a>(state: &AppState, text: &'a str) -> Result<Credential<'a>, ApiError> {
    if state.jwt.is_some() && crate::jwt::looks_like_jwt(text) {
        return Ok(Credential::Jwt(text));
    }
    SessionToken::parse(text)
        .map(Credential::Opaque)
        .map_err(|_| malformed_token())
}

/// As [`credential`], for a token that came from `source`: one in the
/// `Authorization` header that is not a Postern token is a 401
/// `invalid_token` (RFC 6750 §3.1); in a body field or a cookie, a 400
/// `malformed_token`.
pub(crate) fn credential_from<'a>(
    state: &AppState,
    text: &'a str,
    source: Source,
) -> Result<Credential<'a>, ApiError> {
    credential(state, text).map_err(|e| match source {
        Source::Header => ApiError::InvalidToken,
        Source::Cookie => e,
    })
}

fn decide(
    state: &AppState,
    credential: &Credential<'_>,
    device: Option<&Fingerprint>,
    operation: Option<&str>,
    risk: Option<f32>,
) -> Result<postern_store::ResumeOutcome, ApiError> {
    if let Some(score) = risk {
        if !(0.0..=1.0).contains(&score) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRiskScore,
                "risk_score must be between 0 and 1",
            ));
        }
    }
    let outcome = match credential {
        Credential::Opaque(token) => {
            state
                .authority
                .resume(token, device, operation, risk, state.clock.now())
        }
        Credential::Jwt(jwt) => super::jwt::resume_jwt(state, jwt, device, operation, risk)?,
    };
    state.metrics.observe_decision(outcome.decision);
    Ok(outcome)
}

/// Resume a session: decide whether this request may proceed on it.
#[utoipa::path(post, path = "/v1/session/resume", request_body = ResumeRequest,
    security((), ("bearer" = [])),
    responses((status = 200, body = ResumeResponse),
        (status = 400, description = "`malformed_token` (the body's `token`, or the cookie, is not a Postern token), `invalid_device`, `invalid_risk_score`, or a body that is not JSON of this schema", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (the bearer header's token, or a JWT that does not verify), or `full_auth_required` with `decision` and `reason`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`step_up_required`, with `decision` and `reason`", body = crate::openapi::ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ResumeRequest>,
) -> Result<ApiJson<ResumeResponse>, ApiError> {
    let body_device = || {
        body.device
            .as_ref()
            .map(DeviceInput::fingerprint)
            .transpose()
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidDevice, e.to_string()))
    };
    // A token in the body, like a bearer header, comes with its device in
    // the body; a session cookie with its device cookie.
    let (token, device) = match body.token.as_deref() {
        Some(text) => (credential(&state, text.trim())?, body_device()?),
        None => {
            let (text, source) = presented(&state, &headers)?;
            let token = credential_from(&state, text, source)?;
            let device = match source {
                Source::Cookie => cookie_device(&state, &headers),
                Source::Header => body_device()?,
            };
            (token, device)
        }
    };
    let outcome = decide(
        &state,
        &token,
        device.as_ref(),
        body.operation.as_deref(),
        body.risk_score,
    )?;
    match (outcome.decision, outcome.session) {
        (Decision::Resumed, Some(session)) => {
            let ctx = session.context();
            Ok(ApiJson(ResumeResponse {
                decision: "resumed",
                reason: None,
                user: ctx.user.to_string(),
                session_id: ctx.session_id.to_text(),
                expires_at: crate::time::rfc3339(ctx.expires_at),
            }))
        }
        (decision, _) => Err(ApiError::Decision(decision)),
    }
}

/// The device a forward-auth request presents, from `X-Postern-Device`.
pub(crate) fn header_device(headers: &HeaderMap) -> Result<Option<Fingerprint>, ApiError> {
    // Parsed once: looking a `&str` name up parses it on every request.
    static DEVICE: HeaderName = HeaderName::from_static(DEVICE_HEADER);
    match headers.get(&DEVICE) {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::bad_request(
                    ErrorCode::InvalidDevice,
                    "X-Postern-Device must be visible ASCII",
                )
            })?;
            Fingerprint::single(text)
                .map(Some)
                .map_err(|e| ApiError::bad_request(ErrorCode::InvalidDevice, e.to_string()))
        }
    }
}

/// The device a request presents, read from the same carrier as its token
/// (`source`): with the session cookie, the device cookie and nothing else
/// (a header cannot replace or override it); with `Authorization: Bearer`,
/// `X-Postern-Device`.
pub(crate) fn presented_device(
    state: &AppState,
    headers: &HeaderMap,
    source: Source,
) -> Result<Option<Fingerprint>, ApiError> {
    match source {
        Source::Cookie => Ok(cookie_device(state, headers)),
        Source::Header => header_device(headers),
    }
}

/// The device in a request's device cookie; absent or malformed, none (the
/// session then answers `device_mismatch` where binding is required).
fn cookie_device(state: &AppState, headers: &HeaderMap) -> Option<Fingerprint> {
    state
        .delivery
        .cookie
        .read_device(headers)
        .and_then(|secret| secret.fingerprint())
}

/// What an authenticated request is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Read,
    /// Changes state: a cookie-authenticated request must then come from
    /// a configured origin.
    Change,
}

/// Checks a request's session (bearer header, then cookie) and the device
/// that travels with it ([`presented_device`]) as `/v1/check` does; used by
/// the user and passkey endpoints too.
pub(crate) fn authenticated(
    state: &AppState,
    headers: &HeaderMap,
    intent: Intent,
) -> Result<std::sync::Arc<postern_store::hot::HotSession>, ApiError> {
    let (text, source) = presented(state, headers)?;
    let token = credential_from(state, text, source)?;
    if source == Source::Cookie && intent == Intent::Change {
        same_origin(state, headers)?;
    }
    let device = presented_device(state, headers, source)?;
    static OPERATION: HeaderName = HeaderName::from_static(OPERATION_HEADER);
    let operation = headers.get(&OPERATION).and_then(|v| v.to_str().ok());
    let outcome = decide(state, &token, device.as_ref(), operation, None)?;
    match (outcome.decision, outcome.session) {
        (Decision::Resumed, Some(session)) => Ok(session),
        (decision, _) => Err(ApiError::Decision(decision)),
    }
}

/// Forward-auth check: is this request authenticated? The token comes
/// from `Authorization: Bearer`, or (cookie mode, without that header) the
/// session cookie. Any method; the body is never read. The device travels
/// with the token: a bearer token is checked against `X-Postern-Device`; a
/// session cookie against the device cookie set beside it at login
/// (`__Host-postern-device` by default), which browsers send by themselves,
/// so a page navigation passes, and without which the session cookie
/// answers 401 `device_mismatch`. Every refusal is a 401 or a 403 (nginx's
/// `auth_request` turns any other status into a 500), except that gate
/// mode may answer 429, 502 or 503 when it cannot ask the upstream.
#[utoipa::path(method(get, head, post, put, delete, patch, options, trace), path = "/v1/check",
    security(("bearer" = [])),
    params(("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "With a bearer token: the device id the session is bound to. Not consulted for a session cookie, which is checked against its device cookie"),
        ("X-Postern-Operation" = Option<String>, Header, description = "The operation about to be performed (sensitive ones need a step-up)"),
        ("X-Postern-Required-Scopes" = Option<String>, Header, description = "Gate mode: scopes the upstream token must have, space-separated"),
        ("X-Postern-Required-Audience" = Option<String>, Header, description = "Gate mode: an audience the upstream token must have"),
        ("X-Postern-Required-Subject" = Option<String>, Header, description = "Gate mode: `true` if the route needs a user, not only a client (any value but `false` counts)")),
    responses((status = 200, description = "Authenticated; identity in X-Postern-User (when the token names a user), X-Postern-Client (gate mode, when it names its client), X-Postern-Scopes (gate mode) and X-Postern-Session. The body is empty (`Content-Length: 0`, no `Content-Type`) unless the request asks for `Accept: application/json`: then it is `application/json`, the schema `CheckResponse`. (OpenAPI cannot tie a response's content to the request's `Accept`, so the document describes the default, bodiless answer.)",
            headers(("x-postern-user" = String, description = "The user (absent for a gate token that names only a client)"),
                ("x-postern-client" = String, description = "Gate mode: the client the token was issued to"),
                ("x-postern-session" = String, description = "The session id"),
                ("x-postern-scopes" = String, description = "Gate mode: the token's scopes"))),
        (status = 401, description = "`missing_token` (`WWW-Authenticate: Bearer`), or the token is refused: `invalid_token` (a bearer token that is not a Postern token), `malformed_token` (a cookie that holds none), `invalid_device`, or `full_auth_required` with `decision` and `reason` (`Bearer error=\"invalid_token\"`)", body = crate::openapi::ErrorBody,
            headers(("www-authenticate" = String, description = "`Bearer`, with `error=\"invalid_token\"` for a refused token"))),
        (status = 403, description = "`step_up_required` (with `decision` and `reason`) or, in gate mode, `insufficient_scope` (a missing scope, audience or subject); `Bearer error=\"insufficient_scope\"`", body = crate::openapi::ErrorBody),
        (status = 429, description = "gate mode: `rate_limited` (too many cache misses from this client)", body = crate::openapi::ErrorBody),
        (status = 502, description = "gate mode: `upstream_bad_answer` (the upstream's answer about this token cannot be used)", body = crate::openapi::ErrorBody),
        (status = 503, description = "gate mode: `upstream_unavailable`: the identity provider cannot answer (never 200 then); or `store_unavailable`", body = crate::openapi::ErrorBody)))]
pub async fn check(
    State(state): State<AppState>,
    peer: Peer,
    request: Request,
) -> Result<Response, ApiError> {
    check_request(&state, request.headers(), peer).await
}

/// The same check under the prefix: Envoy's `ext_authz` appends the
/// original request's path (and keeps its method).
#[utoipa::path(method(get, head, post, put, delete, patch, options, trace), path = "/v1/check/{rest}",
    security(("bearer" = [])),
    params(("rest" = String, Path, description = "Any path: the original request's, appended by the proxy; not interpreted"),
        ("X-Postern-Device" = Option<crate::openapi::DeviceHeader>, Header, description = "As `/v1/check`"),
        ("X-Postern-Operation" = Option<String>, Header, description = "As `/v1/check`"),
        ("X-Postern-Required-Scopes" = Option<String>, Header, description = "As `/v1/check`"),
        ("X-Postern-Required-Audience" = Option<String>, Header, description = "As `/v1/check`"),
        ("X-Postern-Required-Subject" = Option<String>, Header, description = "As `/v1/check`")),
    responses((status = 200, description = "As `/v1/check`: identity headers, no body unless `Accept: application/json` asks for `CheckResponse`"),
        (status = 401, description = "As `/v1/check`", body = crate::openapi::ErrorBody),
        (status = 403, description = "As `/v1/check`", body = crate::openapi::ErrorBody),
        (status = 429, description = "As `/v1/check`", body = crate::openapi::ErrorBody),
        (status = 502, description = "As `/v1/check`", body = crate::openapi::ErrorBody),
        (status = 503, description = "As `/v1/check`", body = crate::openapi::ErrorBody)))]
pub async fn check_under(
    State(state): State<AppState>,
    peer: Peer,
    request: Request,
) -> Result<Response, ApiError> {
    check_request(&state, request.headers(), peer).await
}

/// `/v1/check` on a borrowed request: the router's handler above, and
/// the server's early route for it ([`super::App`]), share it.
pub(crate) async fn check_request(
    state: &AppState,
    headers: &HeaderMap,
    peer: Peer,
) -> Result<Response, ApiError> {
    check_presented(state, headers, peer)
        .await
        .map_err(forward_auth_refusal)
}

/// A forward-auth proxy understands 2xx, 401 and 403 (nginx's
/// `auth_request` turns anything else into a 500): a token or device
/// header that cannot be read, which the JSON APIs answer 400, is a
/// refused credential here, 401 `invalid_token` with the same body.
fn forward_auth_refusal(error: ApiError) -> ApiError {
    match error {
        ApiError::BadRequest { code, message } => ApiError::InvalidCredential { code, message },
        other => other,
    }
}

async fn check_presented(
    state: &AppState,
    headers: &HeaderMap,
    peer: Peer,
) -> Result<Response, ApiError> {
    // Headers borrowed: the `HeaderMap` extractor would clone every header
    // (a 700-byte bearer token among them) on every check.
    if let Some(gate) = &state.gate {
        let (token, _) = presented(state, headers)?;
        if token.is_empty() {
            // `Bearer ` and nothing: no credentials, and nothing to ask about.
            return Err(ApiError::MissingToken);
        }
        if !is_postern_token(token) && !is_own_jwt(state, token) {
            return gate_check(state, gate, token, headers, peer).await;
        }
    }
    let session = authenticated(state, headers, Intent::Read)?;
    let ctx = session.context();
    Ok(super::check_answer::session_answer(
        &ctx.user,
        &ctx.session_id,
        super::check_answer::wants_json(headers),
    ))
}

/// Gate mode: validate an upstream identity provider's token, checking the
/// route's `X-Postern-Required-Scopes` / `X-Postern-Required-Audience` /
/// `X-Postern-Required-Subject` on every request (hit or miss). A `200` is
/// assembled from the identity the gate rendered when it admitted the
/// session (`postern_tower::Rendered`), so a hit copies reference-counted
/// bytes instead of building strings.
async fn gate_check(
    state: &AppState,
    gate: &std::sync::Arc<postern_tower::Gate>,
    token: &str,
    headers: &HeaderMap,
    peer: Peer,
) -> Result<Response, ApiError> {
    // Parsed header names: looking a `&str` name up parses it every time.
    static REQUIRED_SCOPES: HeaderName = HeaderName::from_static(REQUIRED_SCOPES_HEADER);
    static REQUIRED_AUDIENCE: HeaderName = HeaderName::from_static(REQUIRED_AUDIENCE_HEADER);
    static REQUIRED_SUBJECT: HeaderName = HeaderName::from_static(REQUIRED_SUBJECT_HEADER);
    // Every value of a repeated header counts (a proxy that appends its
    // requirement to one the client sent must not have it hidden).
    let mut requirement = Requirement::scopes(
        headers
            .get_all(&REQUIRED_SCOPES)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(str::split_ascii_whitespace),
    );
    if let Some(audience) = headers
        .get(&REQUIRED_AUDIENCE)
        .and_then(|v| v.to_str().ok())
    {
        requirement = requirement.with_audience(audience.trim());
    }
    // Any value but `false` requires a subject: a typo in the proxy's
    // configuration fails closed, never open.
    if headers
        .get_all(&REQUIRED_SUBJECT)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"false"))
    {
        requirement = requirement.with_subject();
    }
    let now = state.clock.now();
    let session = match gate.check_cached(token, &requirement, now) {
        Cached::Hit(answer) => answer?,
        // Boxed, so that the future of every check (most are hits) stays
        // small: the upstream call's state lives only in misses.
        Cached::Miss(miss) => {
            // Worked out only on a miss: hits are never limited.
            let client = client_of(&state.trusted_proxies, headers, peer.ip());
            // A miss calls upstream and may log: in the request's span
            // (`crate::request_id`), made only here, never on a hit.
            let span = crate::request_id::check_span(crate::request_id::sane_id(headers).as_ref());
            let checked = gate.check_miss(miss, || Some(&client), token, &requirement, now);
            Box::pin(tracing::Instrument::instrument(checked, span)).await?
        }
    };
    // An identity that cannot travel in a header was never admitted
    // (`postern_tower::session::Unrenderable`): what is rendered is all there is.
    let rendered = session.rendered();
    // The JSON body only for a caller that asks for it, as for own
    // sessions (`super::check_answer`): a proxy reads the headers alone.
    let json = super::check_answer::wants_json(headers);
    let mut response = Response::new(if json {
        Body::from(rendered.body.clone())
    } else {
        Body::empty()
    });
    // Sized for every header a pass carries, the proxy's `X-Request-Id`
    // included (`super::App`), so that none makes the map grow: the first
    // insert into an empty map allocates it anyway (with room for 6).
    *response.headers_mut() = HeaderMap::with_capacity(8);
    let out = response.headers_mut();
    if json {
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(user) = &rendered.user {
        out.insert(HeaderName::from_static(USER_HEADER), user.clone());
    }
    if let Some(client) = &rendered.client {
        out.insert(HeaderName::from_static(CLIENT_HEADER), client.clone());
    }
    if let Some(scopes) = &rendered.scopes {
        out.insert(HeaderName::from_static(SCOPES_HEADER), scopes.clone());
    }
    if let Some(id) = &rendered.session {
        out.insert(HeaderName::from_static(SESSION_HEADER), id.clone());
    }
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutResponse {
    pub revoked: bool,
    /// The Postern session id (absent for an upstream token in gate mode).
    pub session_id: Option<String>,
}

/// Log out: revoke the session (bearer header, then cookie), durably,
/// everywhere. In cookie mode the answer also clears the session and device
/// cookies, unless the request was refused as cross-origin.
#[utoipa::path(post, path = "/v1/session/logout",
    security(("bearer" = [])),
    responses((status = 200, description = "Revoked; in cookie mode the cookie is cleared", body = LogoutResponse),
        (status = 400, description = "`malformed_token`: the session cookie holds no Postern token (cookie mode)", body = crate::openapi::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, or `full_auth_required` (an unknown session)", body = crate::openapi::ErrorBody),
        (status = 403, description = "`cross_origin`: a cookie-authenticated logout from another origin", body = crate::openapi::ErrorBody),
        (status = 404, description = "JWT mode off and a JWT-shaped token presented", body = crate::openapi::ErrorBody),
        (status = 429, description = "gate mode: `rate_limited` (a logout of a token not cached here counts as a miss)", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`; gate mode: `upstream_unavailable`, `revocation_not_shared` or `revocations_full`", body = crate::openapi::ErrorBody)))]
pub async fn logout(State(state): State<AppState>, peer: Peer, headers: HeaderMap) -> Response {
    let result = revoke_presented(&state, &headers, peer).await;
    let clear =
        state.delivery.mode == SessionMode::Cookie && !matches!(result, Err(ApiError::CrossOrigin));
    let mut response = result.into_response();
    if clear {
        let jar = &state.delivery.cookie;
        for cookie in [jar.clear(), jar.clear_device()].into_iter().flatten() {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

async fn revoke_presented(
    state: &AppState,
    headers: &HeaderMap,
    peer: Peer,
) -> Result<ApiJson<LogoutResponse>, ApiError> {
    let (text, source) = presented(state, headers)?;
    if source == Source::Cookie {
        same_origin(state, headers)?;
    }
    if let Some(gate) = &state.gate {
        if !is_postern_token(text) && !is_own_jwt(state, text) {
            // Refused here at once and purged, then revoked upstream.
            let client = client_of(&state.trusted_proxies, headers, peer.ip());
            gate.logout_from(Some(&client), text, state.clock.now())
                .await?;
            tracing::info!("upstream token revoked by logout");
            return Ok(ApiJson(LogoutResponse {
                revoked: true,
                session_id: None,
            }));
        }
    }
    let unknown = ApiError::Decision(Decision::FullAuth(postern_core::policy::Reason::Unknown));
    let session = match credential_from(state, text, source)? {
        Credential::Opaque(token) => state.authority.authenticate(&token).ok_or(unknown)?,
        Credential::Jwt(jwt) => super::jwt::session_of_jwt(state, jwt)?.ok_or(unknown)?,
    };
    let id = session.context().session_id;
    let worker = state.clone();
    blocking(move || Ok(worker.authority.revoke(&id, worker.clock.now())?)).await?;
    tracing::info!(user = %session.context().user, session = %id.to_text(), "session revoked by logout");
    Ok(ApiJson(LogoutResponse {
        revoked: true,
        session_id: Some(id.to_text()),
    }))
}
