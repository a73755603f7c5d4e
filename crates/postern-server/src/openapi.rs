//! The OpenAPI document, generated from the handlers' annotations.
//!
//! The document is a contract the server keeps exactly (`.ci/run` runs
//! schemathesis with every check against it; `docs/openapi.md`): a request
//! the schema accepts is never refused as malformed (400), and every status
//! an operation can answer is listed. So the constraints the server's
//! parsers enforce are stated here, once, as reusable schemas (user ids,
//! session ids, tokens, base64url fields, device fingerprints, WebAuthn
//! credentials), and the tests below check each pattern against the
//! parser it describes. Statuses every operation shares because of how
//! the server works rather than what the handler does (408 for a request
//! cut at `request_timeout`; 400, 413 and 415 for a JSON body that is not
//! JSON, too large or not labelled JSON; 400 for a path or query that
//! does not decode) are added by `Mechanics`.
//!
//! Some constraints depend on the deployment: the audiences identity
//! proofs may name, whether the biometric stage is on (else its fields are
//! refused) and the session mode (JWT-shaped tokens, the session cookie as
//! a second security scheme). The server
//! serves [`document_for`] its own state; [`document`] is the generic one.

use serde::Serialize;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::config::SessionMode;
use crate::routes::{auth, biometric, enroll, identity, jwt, ops, passkeys, session, users};
use crate::state::AppState;

/// Regular expressions of the values the server parses, as the schema
/// states them (ECMA-262 syntax that Python's and Rust's engines read
/// alike: no look-around, no Unicode classes).
pub mod pattern {
    /// `postern_core::context::UserId`: 1 to 64 of `A-Z a-z 0-9 . _ @ -`.
    pub const USER_ID: &str = "^[A-Za-z0-9._@-]{1,64}$";
    /// 16 bytes in unpadded base64url (session, challenge and ceremony
    /// ids): 22 characters, the last carrying 2 bits and 4 zero bits.
    pub const ID16: &str = "^[A-Za-z0-9_-]{21}[AQgw]$";
    /// 32 bytes in unpadded base64url: 43 characters, the last with 2
    /// zero bits.
    pub const KEY32: &str = "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$";
    /// Any bytes in canonical unpadded base64url (no padding, unused
    /// trailing bits zero, as the server's decoder requires).
    pub const BASE64URL: &str =
        "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$";
    /// An opaque Postern session token (`postern_core::token`).
    pub const TOKEN: &str = r"^pst1\.[A-Za-z0-9_-]{64}$";
    /// A Postern token or, in JWT mode, anything shaped like a JWT (which
    /// is then verified: a bad one is a 401, not a 400).
    pub const TOKEN_OR_JWT: &str = r"^(?:pst1\.[A-Za-z0-9_-]{64}|eyJ[^.]*\.[^.]*\.[^.]*)$";
    /// `X-Postern-Device`: visible ASCII (tabs inside), 1 to 512 bytes.
    pub const DEVICE_HEADER: &str = r"^[!-~](?:[\t -~]{0,510}[!-~])?$";
    /// A device id string in a body: printable ASCII with at least one
    /// non-space character (the server trims spaces around it).
    pub const DEVICE_ID: &str = "^[ -~]*[!-~][ -~]*$";
    /// A fingerprint component name: visible ASCII without upper-case
    /// letters (names are compared without regard to ASCII case, so two
    /// that differ only in case would collide).
    pub const COMPONENT_NAME: &str = r"^[!-@\[-~]{1,512}$";
    /// A fingerprint component value: printable ASCII.
    pub const COMPONENT_VALUE: &str = "^[ -~]{0,512}$";
}

/// The security scheme of a session presented as `Authorization: Bearer`.
pub const BEARER: &str = "bearer";
/// The security scheme of the session cookie (cookie mode only).
pub const COOKIE: &str = "cookie";

/// Longest `X-Postern-Device` value and fingerprint component, in bytes
/// (`postern_core::device::MAX_COMPONENT_LEN`).
const COMPONENT_LEN: usize = postern_core::device::MAX_COMPONENT_LEN;

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `full_auth_required`: every code the
    /// server can send, and no other (`crate::error_code`).
    pub error: crate::error_code::ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// On resume/check refusals: `step_up` or `full_auth_required`.
    pub decision: Option<String>,
    /// On resume/check refusals: why (`expired`, `device_mismatch`, ...).
    pub reason: Option<String>,
}

fn string(pattern: &str, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
}

/// Declares a string schema type (a component named after it).
macro_rules! string_schema {
    ($(#[$doc:meta])* $name:ident => $body:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let object: ObjectBuilder = $body;
                RefOr::T(Schema::Object(object.build()))
            }
        }
        impl ToSchema for $name {}
    };
}

string_schema!(
    /// A user id.
    UserId => string(pattern::USER_ID, "A user id: 1 to 64 of A-Z a-z 0-9 . _ @ -")
        .min_length(Some(1))
        .max_length(Some(postern_core::context::MAX_USER_LEN))
);
string_schema!(
    /// A session id (the public half of a token).
    SessionId => string(pattern::ID16, "A session id: 16 bytes, unpadded base64url")
);
string_schema!(
    /// A challenge or ceremony id.
    OpaqueId => string(pattern::ID16, "A challenge or ceremony id as the server issued it: 16 bytes, unpadded base64url")
);
string_schema!(
    /// A Ristretto255 public key.
    IdentityPublicKey => string(
        pattern::KEY32,
        "A Ristretto255 public key: its 32-byte canonical encoding, unpadded base64url. \
         Bytes that do not encode a point are refused (400 invalid_identity_key).",
    )
    .format(Some(SchemaFormat::Custom("ristretto255".into())))
    .examples(IDENTITY_KEY_EXAMPLES)
);

/// Two Ristretto255 public keys (random points), as the document's
/// examples: generators that take examples (schemathesis' coverage phase)
/// then send keys the server accepts.
pub const IDENTITY_KEY_EXAMPLES: [&str; 2] = [
    "FnVh4jcGihks8AR7Nq1iO-moSSv3zzOc14jW-1OEKBg",
    "iLlzq3oxS2M-XZK70_DnZT3Lpcf0zlj2ikgcK7Qaz0M",
];
string_schema!(
    /// Bytes in unpadded base64url.
    Base64Url => string(pattern::BASE64URL, "Bytes, canonical unpadded base64url")
);
string_schema!(
    /// A BFV ciphertext (biometric template or probe).
    BiometricCiphertext => string(
        pattern::BASE64URL,
        "A BFV ciphertext under the key holder's public key (GET /v1/biometric/public-key), \
         unpadded base64url. Only where the biometric stage is on.",
    )
    .format(Some(SchemaFormat::Custom("bfv-ciphertext".into())))
);
string_schema!(
    /// A passkey's credential id.
    CredentialId => string(pattern::BASE64URL, "A passkey credential id: 1 to 1023 bytes, unpadded base64url")
        .min_length(Some(2))
        .max_length(Some(postern_store::passkey::MAX_CREDENTIAL_ID_LEN.div_ceil(3) * 4))
);
string_schema!(
    /// A session token as a body carries it.
    SessionToken => string(pattern::TOKEN, "A Postern session token (in JWT mode, or a session JWT)")
);
string_schema!(
    /// The `X-Postern-Device` header.
    DeviceHeader => string(pattern::DEVICE_HEADER, "The device id the session is bound to: visible ASCII, at most 512 bytes")
        .max_length(Some(COMPONENT_LEN))
);
string_schema!(
    /// An audience an identity proof is bound to.
    Audience => ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("The origin an identity proof was made for: one of the server's audiences (the document a server serves lists them)"))
);

/// A device fingerprint in a body: one id string, or named components.
pub struct Device;
impl PartialSchema for Device {
    fn schema() -> RefOr<Schema> {
        let id = string(pattern::DEVICE_ID, "One device id string")
            .min_length(Some(1))
            .max_length(Some(COMPONENT_LEN));
        let value = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern::COMPONENT_VALUE))
            .max_length(Some(COMPONENT_LEN));
        let components = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Named components (at most 32); names are compared without regard to case, send them in lower case",
            ))
            .min_properties(Some(1))
            .max_properties(Some(postern_core::device::MAX_COMPONENTS))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(pattern::COMPONENT_NAME)),
            ))
            .additional_properties(Some(value));
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(id)
                .item(components)
                .description(Some(
                    "The device a session is bound to: an id string or an object of named components",
                ))
                .build(),
        ))
    }
}
impl ToSchema for Device {}

fn base64url(description: &str) -> ObjectBuilder {
    string(pattern::BASE64URL, description)
}

fn closed(object: ObjectBuilder) -> ObjectBuilder {
    object.additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

/// The browser's `PublicKeyCredential` from `navigator.credentials.create()`.
pub struct RegistrationCredential;
impl PartialSchema for RegistrationCredential {
    fn schema() -> RefOr<Schema> {
        let transports = ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String))
            .build();
        let response = closed(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("attestationObject", base64url("CBOR attestation object"))
                .required("attestationObject")
                .property("clientDataJSON", base64url("Client data JSON"))
                .required("clientDataJSON")
                .property(
                    "transports",
                    OneOfBuilder::new()
                        .item(transports)
                        .item(ObjectBuilder::new().schema_type(Type::Null)),
                ),
        );
        RefOr::T(Schema::Object(credential(
            "From `navigator.credentials.create()`, binary fields unpadded base64url",
            response,
        )))
    }
}
impl ToSchema for RegistrationCredential {}

/// The browser's `PublicKeyCredential` from `navigator.credentials.get()`.
pub struct AssertionCredential;
impl PartialSchema for AssertionCredential {
    fn schema() -> RefOr<Schema> {
        let response = closed(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("authenticatorData", base64url("Authenticator data"))
                .required("authenticatorData")
                .property("clientDataJSON", base64url("Client data JSON"))
                .required("clientDataJSON")
                .property("signature", base64url("The assertion signature"))
                .required("signature")
                .property(
                    "userHandle",
                    OneOfBuilder::new()
                        .item(base64url("The user handle"))
                        .item(ObjectBuilder::new().schema_type(Type::Null)),
                )
                .required("userHandle"),
        );
        RefOr::T(Schema::Object(credential(
            "From `navigator.credentials.get()`, binary fields unpadded base64url",
            response,
        )))
    }
}
impl ToSchema for AssertionCredential {}

/// The fields both WebAuthn credentials share, around `response`.
fn credential(description: &str, response: ObjectBuilder) -> Object {
    closed(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(description))
            .property("id", ObjectBuilder::new().schema_type(Type::String))
            .required("id")
            .property("rawId", base64url("The credential id"))
            .required("rawId")
            .property("type", ObjectBuilder::new().schema_type(Type::String))
            .required("type")
            .property("response", response)
            .required("response"),
    )
    .build()
}

/// `PUT /v1/users/{user}/identity`: the new key alone (the biometric
/// template is kept; sending one is refused).
#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct IdentityReplaceRequest {
    #[schema(value_type = IdentityPublicKey)]
    pub identity_public_key: String,
}

/// The body of `/v1/check`'s 200 when the request asks for it with
/// `Accept: application/json` (without it, a 200 has no body).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct CheckResponse {
    /// The user (Postern sessions) or the upstream's subject (gate mode;
    /// `null` for a token issued to a client alone).
    pub user: Option<String>,
    /// Gate mode: the client the upstream token was issued to.
    pub client: Option<String>,
    /// Gate mode: the upstream token's scopes.
    pub scopes: Option<Vec<String>>,
    /// The session id (Postern sessions; gate mode when the upstream names one).
    pub session_id: Option<String>,
}

/// The sign-in page (`routes::page`).
#[utoipa::path(get, path = "/login", tag = "page",
    responses((status = 200, description = "The sign-in page", content_type = "text/html", body = String)))]
#[allow(dead_code)]
fn login_page() {}

/// The sign-in page's script.
#[utoipa::path(get, path = "/login.js", tag = "page",
    responses((status = 200, description = "Script", content_type = "text/javascript", body = String)))]
#[allow(dead_code)]
fn login_script() {}

/// The sign-in page's style sheet.
#[utoipa::path(get, path = "/login.css", tag = "page",
    responses((status = 200, description = "Style sheet", content_type = "text/css", body = String)))]
#[allow(dead_code)]
fn login_style() {}

/// Redirects to the sign-in page.
#[utoipa::path(get, path = "/", tag = "page",
    responses((status = 303, description = "To /login", headers(("location" = String, description = "/login")))))]
#[allow(dead_code)]
fn root_page() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1 document of this server", content_type = "application/json", body = Object)))]
#[allow(dead_code)]
fn openapi_document() {}

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
        openapi_document,
        root_page,
        login_page,
        login_script,
        login_style,
    ),
    components(schemas(
        ErrorBody, crate::error_code::ErrorCode, UserId, SessionId, OpaqueId, IdentityPublicKey, Base64Url, BiometricCiphertext,
        CredentialId, SessionToken, DeviceHeader, Audience, Device,
        RegistrationCredential, AssertionCredential, IdentityReplaceRequest, CheckResponse,
    )),
    modifiers(&Mechanics)
)]
struct ApiDoc;

/// The statuses every operation can answer by how the server works (see
/// the module docs), added to each operation that can meet them.
struct Mechanics;

impl Modify for Mechanics {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("pst1 (an opaque Postern token: `pst1.` and 64 base64url characters); in JWT mode a session JWT; in gate mode, on /v1/check and logout, the identity provider's token")
            .description(Some("A session. Whatever is wrong with a token sent this way (malformed, unknown, expired, revoked) is a 401 `invalid_token` or `full_auth_required`; a session bound to a device also needs `X-Postern-Device`."))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(bearer));
        for item in openapi.paths.paths.values_mut() {
            distinct_operation_ids(item);
            for operation in operations(item) {
                for param in operation.parameters.iter_mut().flatten() {
                    not_null(param);
                }
                let params = operation.parameters.as_deref().unwrap_or_default();
                let decoded = params.iter().any(|p| {
                    matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query)
                        || p.name.eq_ignore_ascii_case("x-postern-device")
                });
                let json = operation.request_body.is_some();
                let mut add = |status: &str, code: &str, why: &str| {
                    if !operation.responses.responses.contains_key(status) {
                        operation.responses.responses.insert(
                            status.to_string(),
                            error_response(&format!("`{code}`: {why}")),
                        );
                    }
                };
                if json {
                    add(
                        "400",
                        "invalid_json / invalid_request",
                        "the body is not JSON of this schema, or a field is malformed",
                    );
                    add(
                        "413",
                        "payload_too_large",
                        "the body is larger than the limit",
                    );
                    add(
                        "415",
                        "unsupported_media_type",
                        "the body is not labelled `Content-Type: application/json`",
                    );
                }
                if decoded {
                    add(
                        "400",
                        "invalid_*",
                        "a path, query or header parameter is malformed",
                    );
                }
                add(
                    "408",
                    "request_timeout",
                    "the request was not finished within the server's request_timeout",
                );
            }
        }
    }
}

/// One handler that serves several methods of a path (`/v1/check`: a
/// proxy calls it with the original request's method) gives each the same
/// operation id, which OpenAPI requires to be unique: the `GET` keeps it,
/// every other method gets its name appended (`check_post`).
fn distinct_operation_ids(item: &mut utoipa::openapi::PathItem) {
    let methods = [
        (item.put.as_mut(), "put"),
        (item.post.as_mut(), "post"),
        (item.delete.as_mut(), "delete"),
        (item.options.as_mut(), "options"),
        (item.head.as_mut(), "head"),
        (item.patch.as_mut(), "patch"),
        (item.trace.as_mut(), "trace"),
    ];
    let get_id = item.get.as_ref().and_then(|op| op.operation_id.clone());
    let Some(get_id) = get_id else {
        return;
    };
    for (operation, method) in methods {
        if let Some(operation) = operation {
            if operation.operation_id.as_deref() == Some(get_id.as_str()) {
                operation.operation_id = Some(format!("{get_id}_{method}"));
            }
        }
    }
}

/// A parameter is present or absent, never `null` (`Option<T>` in an
/// annotation only makes it optional): without this a client generated
/// from the document would send the text `null`.
fn not_null(param: &mut Parameter) {
    let Some(RefOr::T(schema)) = param.schema.as_mut() else {
        return;
    };
    match schema {
        Schema::OneOf(one_of) => {
            one_of
                .items
                .retain(|item| !matches!(item, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null)));
            if one_of.items.len() == 1 {
                param.schema = one_of.items.pop();
            }
        }
        Schema::Object(object) => {
            if let SchemaType::Array(types) = &mut object.schema_type {
                types.retain(|t| *t != Type::Null);
                if let [only] = types.as_slice() {
                    object.schema_type = SchemaType::Type(only.clone());
                }
            }
        }
        _ => {}
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build(),
    )
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The generic document: every mode's fields and tokens.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document for the server `state` describes: its audiences, its
/// session mode's tokens and cookie, the biometric fields and routes only
/// when that stage is on, the JWT routes only in JWT mode.
pub fn document_for(state: &AppState) -> utoipa::openapi::OpenApi {
    let mut doc = document();
    let jwt = state.delivery.mode == SessionMode::Jwt;
    // What this deployment has turned off answers 404 everywhere: left out.
    let paths = &mut doc.paths.paths;
    if !jwt {
        paths.remove("/v1/session/refresh");
        paths.remove("/.well-known/jwks.json");
    }
    if state.biometric.is_none() {
        paths.remove("/v1/biometric/public-key");
    }
    if let Some(components) = doc.components.as_mut() {
        let schemas = &mut components.schemas;
        if !state.audiences.is_empty() {
            schemas.insert(
                "Audience".into(),
                RefOr::T(Schema::Object(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some("The origin an identity proof was made for: one of this server's audiences"))
                        .enum_values(Some(state.audiences.iter().cloned()))
                        .build(),
                )),
            );
        }
        if jwt {
            schemas.insert("SessionToken".into(), SessionTokenOrJwt::schema());
        }
        if state.biometric.is_none() {
            for (name, field) in [
                ("EnrollRequest", "biometric_template"),
                ("FullAuthRequest", "biometric_probe"),
                ("LoginFinishRequest", "biometric_probe"),
            ] {
                if let Some(RefOr::T(Schema::Object(object))) = schemas.get_mut(name) {
                    object.properties.remove(field);
                    object.required.retain(|r| r != field);
                }
            }
        }
    }
    if state.delivery.mode == SessionMode::Cookie {
        let name = state.delivery.cookie.name();
        if let Some(components) = doc.components.as_mut() {
            components.add_security_scheme(
                COOKIE,
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    name,
                    "The session cookie (cookie mode), read when there is no Authorization header; a cookie that holds no Postern token is a 400 `malformed_token`",
                ))),
            );
        }
        for item in doc.paths.paths.values_mut() {
            for operation in operations(item) {
                if let Some(security) = operation.security.as_mut() {
                    if security
                        .iter()
                        .any(|r| *r != SecurityRequirement::default())
                    {
                        security.push(SecurityRequirement::new(COOKIE, Vec::<String>::new()));
                    }
                }
            }
        }
    }
    doc
}

string_schema!(
    /// [`SessionToken`] in JWT mode.
    SessionTokenOrJwt => string(pattern::TOKEN_OR_JWT, "A Postern session token or a session JWT")
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use rand::{Rng, SeedableRng};
    use regex::Regex;

    fn matches(pattern: &str) -> impl Fn(&str) -> bool {
        let regex = Regex::new(pattern).unwrap();
        move |text| regex.is_match(text)
    }

    /// Strings near and far from `valid`: the valid ones, each with a
    /// character changed, added or dropped, and random strings over an
    /// alphabet of every kind of character the patterns tell apart.
    fn candidates(valid: &[String], seed: u64) -> Vec<String> {
        const ALPHABET: &[char] = &[
            'A', 'Q', 'g', 'w', 'B', 'z', '0', '9', '-', '_', '.', '@', '=', '+', '/', ' ', '\t',
            '!', '~', 'é', '\u{85}', '\u{feff}', 'p', 's', 't', '1',
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out: Vec<String> = valid.to_vec();
        for v in valid {
            let chars: Vec<char> = v.chars().collect();
            for _ in 0..40 {
                let mut c = chars.clone();
                let at = rng.gen_range(0..=c.len());
                let pick = ALPHABET[rng.gen_range(0..ALPHABET.len())];
                match rng.gen_range(0..3) {
                    0 if at < c.len() => c[at] = pick,
                    1 => c.insert(at, pick),
                    _ if at < c.len() => drop(c.remove(at)),
                    _ => c.push(pick),
                }
                out.push(c.into_iter().collect());
            }
        }
        for _ in 0..2000 {
            let len = rng.gen_range(0..70);
            out.push(
                (0..len)
                    .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
                    .collect(),
            );
        }
        out
    }

    fn agree(pattern: &str, parser: impl Fn(&str) -> bool, valid: &[String], seed: u64) {
        let schema = matches(pattern);
        let mut accepted = 0;
        for text in candidates(valid, seed) {
            assert_eq!(
                schema(&text),
                parser(&text),
                "pattern {pattern} and the server disagree on {text:?}"
            );
            accepted += usize::from(schema(&text));
        }
        assert!(
            accepted >= valid.len(),
            "{pattern}: too few valid candidates"
        );
    }

    fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.gen()).collect()
    }

    fn encodings(lens: &[usize]) -> Vec<String> {
        lens.iter()
            .enumerate()
            .map(|(i, len)| URL_SAFE_NO_PAD.encode(random_bytes(*len, i as u64)))
            .collect()
    }

    #[test]
    fn user_id_pattern_is_the_parser() {
        let valid: Vec<String> = [
            "alice",
            "a",
            "bob.smith@example.com",
            "A_b-9",
            &"x".repeat(64),
        ]
        .map(String::from)
        .to_vec();
        agree(
            pattern::USER_ID,
            |t| postern_core::context::UserId::parse(t).is_ok(),
            &valid,
            1,
        );
        assert!(!matches(pattern::USER_ID)(&"x".repeat(65)));
    }

    #[test]
    fn base64url_patterns_are_the_decoder() {
        let decodes = |len: Option<usize>| {
            move |t: &str| {
                URL_SAFE_NO_PAD
                    .decode(t)
                    .is_ok_and(|b| len.is_none_or(|len| b.len() == len))
            }
        };
        agree(
            pattern::ID16,
            decodes(Some(16)),
            &encodings(&[16, 16, 16]),
            2,
        );
        agree(
            pattern::KEY32,
            decodes(Some(32)),
            &encodings(&[32, 32, 32]),
            3,
        );
        agree(
            pattern::BASE64URL,
            decodes(None),
            &encodings(&[0, 1, 2, 3, 4, 5, 16, 64]),
            4,
        );
        // The session id's own parser agrees too.
        agree(
            pattern::ID16,
            |t| postern_core::token::SessionId::parse(t).is_ok(),
            &encodings(&[16, 16]),
            5,
        );
    }

    #[test]
    fn token_pattern_is_the_token_parser() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let valid: Vec<String> = (0..3)
            .map(|_| postern_core::token::SessionToken::generate(&mut rng).expose())
            .collect();
        agree(
            pattern::TOKEN,
            |t| postern_core::token::SessionToken::parse(t).is_ok(),
            &valid,
            7,
        );
    }

    #[test]
    fn device_patterns_are_the_fingerprint_rules() {
        // A header value as hyper hands it over: no spaces or tabs around.
        let header = |t: &str| {
            let ok_bytes = t.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
            ok_bytes && !t.starts_with([' ', '\t']) && !t.ends_with([' ', '\t']) && {
                postern_core::device::Fingerprint::single(t).is_ok()
            }
        };
        let valid: Vec<String> = ["laptop-1", "a", "x y\tz", &"d".repeat(COMPONENT_LEN)]
            .map(String::from)
            .to_vec();
        agree(pattern::DEVICE_HEADER, header, &valid, 8);
        // The body's id string: printable ASCII is all the schema allows;
        // within it, it accepts what the server accepts.
        let id = |t: &str| {
            t.bytes().all(|b| (b' '..=b'~').contains(&b))
                && t.len() <= COMPONENT_LEN
                && postern_core::device::Fingerprint::single(t).is_ok()
        };
        let schema = matches(pattern::DEVICE_ID);
        for text in candidates(&valid, 9) {
            let in_schema = schema(&text) && text.chars().count() <= COMPONENT_LEN;
            assert_eq!(in_schema, id(&text), "{text:?}");
        }
    }

    #[test]
    fn identity_key_examples_and_schemathesis_hook_keys_are_points() {
        let hooks = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../conformance/hooks.py"
        ))
        .unwrap();
        let key = Regex::new(r#""([A-Za-z0-9_-]{43})""#).unwrap();
        let mut keys: Vec<String> = key
            .captures_iter(&hooks)
            .map(|c| c[1].to_string())
            .collect();
        assert!(keys.len() >= 16, "hooks.py lists {} keys", keys.len());
        keys.extend(IDENTITY_KEY_EXAMPLES.map(String::from));
        for text in keys {
            assert!(matches(pattern::KEY32)(&text));
            let bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
            postern_core::identity::IdentityPublicKey::from_bytes(&bytes)
                .unwrap_or_else(|_| panic!("{text} is not a Ristretto255 point"));
        }
    }

    #[test]
    fn every_route_is_documented_and_every_documented_path_is_routed() {
        let doc = document();
        let paths: std::collections::BTreeSet<&str> =
            doc.paths.paths.keys().map(String::as_str).collect();
        let routes: std::collections::BTreeSet<&str> =
            crate::routes::ROUTES.iter().copied().collect();
        assert_eq!(paths, routes);
    }

    /// Every status `ApiError` maps to, by the operations that can meet it.
    #[test]
    fn every_operation_lists_the_statuses_its_mechanics_produce() {
        let doc = document();
        let json = serde_json::to_value(&doc).unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let label = format!("{method} {path}");
                let has = |status: &str| op["responses"][status].is_object();
                assert!(
                    ids.insert(op["operationId"].as_str().unwrap().to_string()),
                    "{label}: operationId twice"
                );
                assert!(has("408"), "{label}: no 408");
                if op["requestBody"].is_object() {
                    for status in ["400", "413", "415"] {
                        assert!(has(status), "{label}: a JSON body but no {status}");
                    }
                    assert_eq!(op["requestBody"]["required"], true, "{label}");
                }
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                if params
                    .iter()
                    .any(|p| p["in"] == "path" || p["in"] == "query")
                {
                    assert!(has("400"), "{label}: parameters but no 400");
                }
                for p in &params {
                    assert!(
                        !p["name"]
                            .as_str()
                            .unwrap()
                            .eq_ignore_ascii_case("authorization"),
                        "{label}: Authorization is the security scheme's, not a parameter"
                    );
                    assert!(
                        !p["schema"].to_string().contains("\"null\""),
                        "{label}: {} may be null",
                        p["name"]
                    );
                }
                let secured = op["security"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| r.get(BEARER).is_some()));
                if secured {
                    assert!(has("401"), "{label}: a session but no 401");
                }
                if path.starts_with("/v1/") {
                    for (status, response) in op["responses"].as_object().unwrap() {
                        if status.starts_with('4') || status.starts_with('5') {
                            assert_eq!(
                                response["content"]["application/json"]["schema"]["$ref"],
                                "#/components/schemas/ErrorBody",
                                "{label} {status}"
                            );
                        }
                    }
                }
            }
        }
        // Each status an error can have is documented somewhere.
        let documented: std::collections::BTreeSet<String> = json["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .flat_map(|op| op["responses"].as_object().unwrap().keys().cloned())
            .collect();
        for status in [
            "400", "401", "403", "404", "408", "409", "413", "415", "429", "500", "503",
        ] {
            assert!(documented.contains(status), "no operation lists {status}");
        }
    }

    #[test]
    fn request_schemas_refuse_unknown_fields() {
        let json = serde_json::to_value(document()).unwrap();
        let schemas = &json["components"]["schemas"];
        for name in [
            "ChallengeRequest",
            "FullAuthRequest",
            "EnrollRequest",
            "IdentityReplaceRequest",
            "RegisterStartRequest",
            "RegisterFinishRequest",
            "LoginStartRequest",
            "LoginFinishRequest",
            "ResumeRequest",
            "RegistrationCredential",
            "AssertionCredential",
        ] {
            assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
        }
    }
}
