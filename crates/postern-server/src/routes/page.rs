//! The sign-in page: `GET /login` (and `GET /` redirecting to it).
//!
//! A small page, embedded in the binary, that registers a passkey and
//! signs in with it through the browser's own `navigator.credentials`
//! API, then calls `GET /v1/check` with the session. It is the reference
//! client for the passkey endpoints and what the browser test drives.
//! Scripts and styles are separate files so the Content-Security-Policy
//! can forbid inline code.

use axum::http::header;
use axum::response::{IntoResponse, Redirect};

const PAGE: &str = include_str!("../page/login.html");
const SCRIPT: &str = include_str!("../page/login.js");
const STYLE: &str = include_str!("../page/login.css");

/// The page loads only its own script and style and talks only to this
/// server; nothing may frame it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub async fn root() -> Redirect {
    Redirect::to("/login")
}

pub async fn login() -> impl IntoResponse {
    asset("text/html; charset=utf-8", PAGE)
}

pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}
