//! The jsonwebtoken peers: the same router with HS256 (`jwt-hs256`) and
//! EdDSA over Ed25519 (`jwt-eddsa`) keys.
//!
//! Per request, `GET /me` takes the bearer token and has
//! `jsonwebtoken::decode` check it as a resource server would: the
//! signature with the algorithm pinned (a token naming another algorithm is
//! refused), `exp` against the clock, and `iss` and `aud` against the
//! expected values, with `exp`, `iss`, `aud` and `sub` required. The keys are
//! parsed once at start-up, as an application would hold them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{bearer, refuse, valid_user_id};

const ISSUER: &str = "https://peers.postern.invalid";
const AUDIENCE: &str = "postern-bench";
/// Longer than a whole bench run, so no token expires under wrk.
const LIFETIME_SECS: u64 = 3600;

/// One algorithm's keys and the validation every request runs.
pub struct Keys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Keys {
    pub fn new(algorithm: Algorithm, encoding: EncodingKey, decoding: DecodingKey) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self {
            algorithm,
            encoding,
            decoding,
            validation,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// `POST /login?user=ID` answers a signed token for `ID`; `GET /me` answers
/// 200 with the token's subject, 401 for a missing or refused token.
pub fn router(keys: Keys) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .with_state(Arc::new(keys))
}

#[derive(Debug, Deserialize)]
struct Login {
    user: String,
}

async fn login(State(keys): State<Arc<Keys>>, Query(login): Query<Login>) -> Response {
    if !valid_user_id(&login.user) {
        return refuse(StatusCode::BAD_REQUEST, "bad user id");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = Claims {
        sub: login.user,
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        iat: now,
        exp: now + LIFETIME_SECS,
    };
    match jsonwebtoken::encode(&Header::new(keys.algorithm), &claims, &keys.encoding) {
        Ok(token) => (StatusCode::OK, token).into_response(),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot sign"),
    }
}

// The request by value: its headers are read in place (the `HeaderMap`
// extractor would clone them).
async fn me(State(keys): State<Arc<Keys>>, request: Request) -> Response {
    let Some(token) = bearer(request.headers()) else {
        return refuse(StatusCode::UNAUTHORIZED, "no bearer token");
    };
    match jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.validation) {
        Ok(data) => (StatusCode::OK, data.claims.sub).into_response(),
        Err(_) => refuse(StatusCode::UNAUTHORIZED, "invalid token"),
    }
}
