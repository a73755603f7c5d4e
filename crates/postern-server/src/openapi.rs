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
        description = "Authentication session layer: full authentication once, then sub-microsecond resume.\n\n\
Sessions reach clients as the deployment's `--session-mode` says: a bearer token in the login's JSON, bound to the `device` the login names \
(present it as `Authorization: Bearer` with `X-Postern-Device`); a signed JWT; or, in cookie mode, two `HttpOnly`, `Secure`, `SameSite` \
`__Host-` cookies set by the login: the session cookie (`__Host-postern`) and the device cookie (`__Host-postern-device`, a random secret) \
the session is bound to. Browsers send both by themselves, page navigations included; a session cookie without its device cookie is \
401 `device_mismatch`. The device travels with the token: a session cookie is checked against the device cookie only (`X-Postern-Device` \
is not consulted), a bearer token against `X-Postern-Device`. Cookie-authenticated requests that change state must carry one of the \
configured origins in `Origin` (403 `cross_origin`)."
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
