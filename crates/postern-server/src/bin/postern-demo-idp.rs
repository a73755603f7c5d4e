//! `postern-demo-idp`: a small reference identity provider, for demos,
//! tests and benchmarks of Postern's gate mode. Never for production.
//!
//! It mints JWT-shaped bearer tokens (~700 bytes, unsigned filler signature)
//! and answers for them over the two upstream protocols Postern speaks:
//!
//! - RFC 7662 introspection at `POST /oauth/introspect` (HTTP Basic client
//!   authentication) and RFC 7009 revocation at `POST /oauth/revoke`;
//! - the "Auth1" session API: `POST /api/auth/session` and
//!   `POST /api/auth/logout` with `Authorization: Bearer`.
//!
//! Admin: `POST /admin/tokens {"sub","scope"?,"aud"?,"expires_in"?,"kid"?}`
//! mints a token; `GET /.well-known/jwks.json` publishes the current key ids
//! and `POST /admin/jwks {"kids": [...]}` rotates them; `GET /stats` counts calls per endpoint. `--latency 20ms`
//! makes every validation wait, like the database behind a real IdP.
//! `--stateless` accepts revocations and logouts but revokes nothing, like
//! an IdP whose tokens are self-contained JWTs valid until they expire.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use clap::Parser;
use parking_lot::Mutex;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    name = "postern-demo-idp",
    about = "A reference IdP (RFC 7662/7009 and Auth1) for Postern demos, tests and benchmarks."
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long, default_value = "demo")]
    client_id: String,
    #[arg(long, default_value = "demo-secret")]
    client_secret: String,
    /// Delay added to every validation, e.g. 20ms.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    latency: Duration,
    /// Accept revocations and logouts without revoking anything (like an
    /// IdP issuing self-contained JWTs).
    #[arg(long)]
    stateless: bool,
}

struct TokenInfo {
    sub: String,
    scope: String,
    aud: Vec<String>,
    exp: u64,
    sid: String,
    revoked: bool,
}

#[derive(Default)]
struct Counters {
    introspect: AtomicU64,
    revoke: AtomicU64,
    session: AtomicU64,
    logout: AtomicU64,
    minted: AtomicU64,
}

struct Idp {
    args: Args,
    // The key ids the JWKS currently publishes.
    kids: Mutex<Vec<String>>,
    // Held for single map operations only.
    tokens: Mutex<HashMap<String, TokenInfo>>,
    counters: Counters,
}

type Shared = Arc<Idp>;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Deserialize)]
struct MintRequest {
    sub: String,
    scope: Option<String>,
    aud: Option<Vec<String>>,
    expires_in: Option<u64>,
    kid: Option<String>,
}

async fn mint(State(idp): State<Shared>, Json(req): Json<MintRequest>) -> Response {
    let exp = now_secs() + req.expires_in.unwrap_or(900);
    let kid = req.kid.unwrap_or_else(|| "demo-key-1".into());
    let sid = random_b64(12);
    let scope = req.scope.unwrap_or_default();
    let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid });
    // Filler claims bring the token to the ~700 bytes of a typical IdP JWT.
    let claims = json!({ "iss": "https://idp.demo", "sub": req.sub, "exp": exp, "iat": now_secs(), "sid": sid,
        "scope": scope, "jti": random_b64(16), "ctx": random_b64(180) });
    let token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        random_b64(64)
    );
    idp.tokens.lock().insert(
        token.clone(),
        TokenInfo {
            sub: req.sub,
            scope,
            aud: req.aud.unwrap_or_default(),
            exp,
            sid,
            revoked: false,
        },
    );
    idp.counters.minted.fetch_add(1, Ordering::Relaxed);
    Json(json!({ "token": token, "exp": exp })).into_response()
}

fn client_ok(idp: &Idp, headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", idp.args.client_id, idp.args.client_secret))
    );
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(str::to_string)
}

#[derive(Deserialize)]
struct TokenForm {
    token: String,
}

async fn introspect(
    State(idp): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    idp.counters.introspect.fetch_add(1, Ordering::Relaxed);
    if !client_ok(&idp, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    tokio::time::sleep(idp.args.latency).await;
    let tokens = idp.tokens.lock();
    match tokens.get(&form.token) {
        Some(t) if !t.revoked && t.exp > now_secs() => Json(json!({
            "active": true, "sub": t.sub, "scope": t.scope, "aud": t.aud, "exp": t.exp, "sid": t.sid,
            "client_id": idp.args.client_id, "token_type": "Bearer"
        }))
        .into_response(),
        _ => Json(json!({ "active": false })).into_response(),
    }
}

async fn revoke(
    State(idp): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    idp.counters.revoke.fetch_add(1, Ordering::Relaxed);
    if !client_ok(&idp, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    if let Some(t) = idp.tokens.lock().get_mut(&form.token) {
        t.revoked = !idp.args.stateless;
    }
    StatusCode::OK.into_response()
}

async fn session(State(idp): State<Shared>, headers: HeaderMap) -> Response {
    idp.counters.session.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(idp.args.latency).await;
    let Some(token) = bearer(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let tokens = idp.tokens.lock();
    match tokens.get(&token) {
        Some(t) if !t.revoked && t.exp > now_secs() => Json(json!({
            "user": { "id": t.sub }, "session": { "id": t.sid }, "expires_in": t.exp - now_secs(),
            "scopes": t.scope.split_ascii_whitespace().collect::<Vec<_>>(), "audience": t.aud
        }))
        .into_response(),
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn logout(State(idp): State<Shared>, headers: HeaderMap) -> Response {
    idp.counters.logout.fetch_add(1, Ordering::Relaxed);
    if let Some(token) = bearer(&headers) {
        if let Some(t) = idp.tokens.lock().get_mut(&token) {
            t.revoked = !idp.args.stateless;
        }
    }
    StatusCode::OK.into_response()
}

async fn stats(State(idp): State<Shared>) -> Response {
    let c = &idp.counters;
    Json(json!({
        "introspect": c.introspect.load(Ordering::Relaxed), "revoke": c.revoke.load(Ordering::Relaxed),
        "session": c.session.load(Ordering::Relaxed), "logout": c.logout.load(Ordering::Relaxed),
        "minted": c.minted.load(Ordering::Relaxed),
    }))
    .into_response()
}

/// Publishes one Ed25519 JWK (all-zero `x`: the demo never signs) per current key id.
async fn jwks(State(idp): State<Shared>) -> Response {
    let keys: Vec<_> = idp
        .kids
        .lock()
        .iter()
        .map(|kid| json!({ "kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": kid, "x": URL_SAFE_NO_PAD.encode([0u8; 32]) }))
        .collect();
    Json(json!({ "keys": keys })).into_response()
}

#[derive(Deserialize)]
struct SetJwks {
    kids: Vec<String>,
}

/// Rotates the published key ids (tokens already minted stay valid here).
async fn set_jwks(State(idp): State<Shared>, Json(req): Json<SetJwks>) -> Response {
    *idp.kids.lock() = req.kids;
    StatusCode::OK.into_response()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let listen = args.listen;
    let idp: Shared = Arc::new(Idp {
        args,
        kids: Mutex::new(vec!["demo-key-1".into()]),
        tokens: Mutex::new(HashMap::new()),
        counters: Counters::default(),
    });
    let app = Router::new()
        .route("/admin/tokens", post(mint))
        .route("/oauth/introspect", post(introspect))
        .route("/oauth/revoke", post(revoke))
        .route("/api/auth/session", post(session))
        .route("/api/auth/logout", post(logout))
        .route("/stats", get(stats))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/admin/jwks", post(set_jwks))
        .with_state(idp);
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("postern-demo-idp: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("postern-demo-idp listening on http://{addr}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    match axum::serve(listener, app)
        .with_graceful_shutdown(postern_server::server::shutdown_signal())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postern-demo-idp: {e}");
            ExitCode::FAILURE
        }
    }
}
