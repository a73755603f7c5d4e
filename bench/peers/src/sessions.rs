//! The tower-sessions peers: the same router over the memory store
//! (`sessions-memory`) and the Redis store (`sessions-redis`).
//!
//! Configured as tower-sessions' own README and the Redis store's example
//! configure it: a cookie session (`Secure`, `HttpOnly`, `SameSite=Strict`
//! are the defaults), an inactivity expiry, and the default
//! `always_save(false)`, so a request that only reads its session loads the
//! record from the store and writes nothing back. Per request, the layer
//! parses the cookie header, decodes the session id and, on the first
//! `Session::get`, loads the record from the store (a mutex-guarded map
//! lookup and clone for the memory store; a `GET` and a MessagePack decode
//! for Redis); the handler then reads the user id from it.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};

use crate::{refuse, valid_user_id};

/// The session key the login stores the user id under.
const USER_KEY: &str = "user_id";

/// How long a session lives without a request that saves it.
const INACTIVITY: time::Duration = time::Duration::minutes(30);

/// `POST /login?user=ID` starts a session for `ID` and sets its cookie;
/// `GET /me` answers 200 with the session's user id, 401 without a session.
pub fn router<S: SessionStore + Clone>(store: S) -> Router {
    let layer = SessionManagerLayer::new(store).with_expiry(Expiry::OnInactivity(INACTIVITY));
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .layer(layer)
}

#[derive(Debug, Deserialize)]
struct Login {
    user: String,
}

async fn login(session: Session, Query(login): Query<Login>) -> Response {
    if !valid_user_id(&login.user) {
        return refuse(StatusCode::BAD_REQUEST, "bad user id");
    }
    // A new id at login, so an id planted before it (session fixation)
    // never carries the signed-in user.
    if session.cycle_id().await.is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "session store unavailable");
    }
    match session.insert(USER_KEY, &login.user).await {
        Ok(()) => (StatusCode::OK, login.user).into_response(),
        Err(_) => refuse(StatusCode::SERVICE_UNAVAILABLE, "session store unavailable"),
    }
}

async fn me(session: Session) -> Response {
    match session.get::<String>(USER_KEY).await {
        Ok(Some(user)) => (StatusCode::OK, user).into_response(),
        Ok(None) => refuse(StatusCode::UNAUTHORIZED, "no session"),
        Err(_) => refuse(StatusCode::SERVICE_UNAVAILABLE, "session store unavailable"),
    }
}
