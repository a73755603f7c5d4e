//! Operations endpoints: health, readiness, metrics, the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use postern_core::context::UserId;

use super::blocking;
use crate::error::{ApiError, ApiJson};
use crate::metrics::GateReading;
use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "ok", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers a read and, in turbo mode, the mint
/// batcher's worker is running.
#[utoipa::path(get, path = "/readyz",
    responses((status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 503, description = "`store_unavailable`, or `unavailable` (the mint batcher is down)", body = crate::openapi::ErrorBody),
        (status = 500, description = "`internal`: a bug; nothing was changed that a retry would not redo", body = crate::openapi::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    if state
        .mint_batcher
        .as_ref()
        .is_some_and(|batcher| !batcher.is_running())
    {
        return Err(ApiError::Unavailable("the mint batcher"));
    }
    let store = state.store.clone();
    blocking(move || {
        // Any valid id works: the read exercises the store, the answer is ignored.
        let probe = UserId::parse("readiness-probe").map_err(|_| ApiError::Internal("probe id"))?;
        store.get_user(&probe)?;
        Ok("ready")
    })
    .await
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state
        .metrics
        .refresh_active_sessions(std::time::Instant::now(), || {
            state.authority.hot().count_active(state.clock.now())
        });
    let prepared = state.biometric.as_ref().map_or(0, |b| b.prepared.len());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(
            prepared,
            state.gate.as_ref().map(|g| {
                let now = state.clock.now();
                GateReading {
                    cache: g.stats(),
                    revocation_lag: g.revocation_lag(now),
                    revocations: crate::metrics::RevocationReading::of(
                        g,
                        state.revocation_feed.as_deref(),
                    ),
                    breaker: crate::metrics::BreakerReading::of(g.breaker_state(), now),
                }
            }),
        ),
    )
}

/// This server's OpenAPI 3.1 document (its audiences, session mode and
/// stages: see [`crate::openapi::document_for`]).
pub async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    ApiJson(crate::openapi::document_for(&state))
}

pub async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, ApiError::NotFound)
}
