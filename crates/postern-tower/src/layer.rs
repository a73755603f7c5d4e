//! The gate as a tower `Layer`, and the extractor handlers use.
//!
//! [`GateLayer`] reads `Authorization: Bearer <token>`, asks the [`Gate`],
//! and either answers the error itself (401 with `WWW-Authenticate`, 403
//! `insufficient_scope`, 502 `upstream_bad_answer`, 503) or calls the inner service with the
//! [`Validated`] session in the request's extensions, where the
//! [`Authenticated`] extractor finds it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use tower::{Layer, Service};

use crate::gate::{Gate, GateError};
use crate::session::{Requirement, Validated};

/// The bearer token of a request, if any.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl IntoResponse for GateError {
    fn into_response(self) -> axum::response::Response {
        let (status, code, challenge) = match &self {
            GateError::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Bearer error=\"invalid_token\"",
            ),
            GateError::Forbidden(_) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "Bearer error=\"insufficient_scope\"",
            ),
            GateError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable", "")
            }
            GateError::BadUpstreamAnswer(_) => (StatusCode::BAD_GATEWAY, "upstream_bad_answer", ""),
            GateError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", ""),
            GateError::NotShared => (StatusCode::SERVICE_UNAVAILABLE, "revocation_not_shared", ""),
            GateError::RevocationsFull => (StatusCode::SERVICE_UNAVAILABLE, "revocations_full", ""),
        };
        let body = serde_json::json!({ "error": code, "message": self.to_string() });
        let mut response = (status, axum::Json(body)).into_response();
        if !challenge.is_empty() {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

fn missing_token() -> axum::response::Response {
    let body = serde_json::json!({ "error": "missing_token", "message": "missing bearer token" });
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// A tower layer that admits only requests whose bearer token the gate accepts.
#[derive(Debug, Clone)]
pub struct GateLayer {
    gate: Arc<Gate>,
    requirement: Arc<Requirement>,
}

impl GateLayer {
    pub fn new(gate: Arc<Gate>) -> Self {
        Self {
            gate,
            requirement: Arc::new(Requirement::none()),
        }
    }

    /// The scopes/audience every request through this layer must have.
    pub fn with_requirement(mut self, requirement: Requirement) -> Self {
        self.requirement = Arc::new(requirement);
        self
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = GateService<S>;
    fn layer(&self, inner: S) -> GateService<S> {
        GateService {
            inner,
            gate: self.gate.clone(),
            requirement: self.requirement.clone(),
        }
    }
}

/// The service [`GateLayer`] wraps around an inner service.
#[derive(Debug, Clone)]
pub struct GateService<S> {
    inner: S,
    gate: Arc<Gate>,
    requirement: Arc<Requirement>,
}

impl<S> Service<Request<Body>> for GateService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let requirement = self.requirement.clone();
        Box::pin(async move {
            let Some(token) = bearer_token(request.headers()).map(str::to_owned) else {
                return Ok(missing_token());
            };
            match gate
                .check(&token, &requirement, postern_cache::unix_now())
                .await
            {
                Ok(session) => {
                    request.extensions_mut().insert(session);
                    inner.call(request).await
                }
                Err(error) => Ok(error.into_response()),
            }
        })
    }
}

/// The validated session of the request (the seed's `req.auth`).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Validated>);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = axum::response::Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Without the layer there is no session: fail closed.
        parts
            .extensions
            .get::<Arc<Validated>>()
            .cloned()
            .map(Authenticated)
            .ok_or_else(missing_token)
    }
}
