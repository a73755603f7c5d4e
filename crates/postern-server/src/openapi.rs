//! The OpenAPI document, generated from the handlers' annotations.

use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::routes::{auth, biometric, enroll, identity, jwt, ops, passkeys, session, users};

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `full_auth_required`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    /// On resume/check refusals: `step_up` or `full_auth_required`.
    pub decision: Option<String>,
    /// On resume/check refusals: why (`expired`, `device_mismatch`, ...).
    pub reason: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Postern",
        description = "Authentication session layer: full authentication once, then sub-microsecond resume."
    ),
    paths(
        enroll::enroll,
        auth::challenge,
        auth::full,
        passkeys::register_start,
        passkeys::register_finish,
        passkeys::login_start,
        passkeys::login_finish,
        session::resume,
        session::check,
        session::check_under,
        session::logout,
        users::list,
        users::revoke_one,
        users::revoke_all,
        identity::revoke_identity,
        identity::replace_identity,
        passkeys::list,
        passkeys::remove,
        passkeys::confirm,
        jwt::refresh,
        jwt::jwks,
        biometric::public_key,
        ops::healthz,
        ops::readyz,
        ops::metrics,
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
