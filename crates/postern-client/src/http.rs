//! A typed client for Postern's v1 HTTP API.
//!
//! Every call returns either the decoded success body or a
//! [`ClientError::Api`] carrying the HTTP status and the server's
//! `{ "error", "message" }` body, so scripts and tests can assert on the
//! documented error codes. Decisions that are not errors in the protocol
//! sense (`step_up`, `full_auth_required` on resume) come back as a
//! [`ResumeResponse`] whatever the status.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use postern_core::context::UserId;
use postern_core::identity::Statement;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::device::DeviceInput;
use crate::identity_file::{IdentityFile, IdentityFileError};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server URL `{0}`")]
    BadUrl(String),
    #[error("could not reach the server")]
    Transport(#[from] reqwest::Error),
    #[error("server answered {status}: {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        body: Value,
    },
    #[error("server sent a response this client does not understand")]
    BadResponse(#[source] serde_json::Error),
    #[error("server sent a response this client does not understand: {0}")]
    Protocol(String),
    #[error("invalid device fingerprint")]
    Device(#[from] postern_core::device::FingerprintError),
    #[error(transparent)]
    Identity(IdentityFileError),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("the CA file {0}")]
    Ca(&'static str),
}

impl ClientError {
    /// The API error code (`"full_auth_required"`, ...), if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub user: String,
    pub credential_id: String,
    pub enrolled_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityReplacedResponse {
    pub user: String,
    pub credential_id: String,
    pub enrolled_at: String,
    pub replaced_credential_id: String,
    pub sweep_complete: bool,
    pub revoked_sessions: usize,
    pub forgotten_proofs: usize,
    /// The user's passkeys now suspended (added with the replaced key,
    /// transitively): confirm yours with a session of the new key.
    #[serde(default)]
    pub suspended_passkeys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyRemovedResponse {
    pub credential_id: String,
    pub revoked_sessions: usize,
    /// The user's passkeys now suspended.
    #[serde(default)]
    pub suspended_passkeys: Vec<String>,
}

/// One passkey as `GET /v1/users/{user}/passkeys` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyInfo {
    pub credential_id: String,
    pub created_at: String,
    #[serde(default)]
    pub last_used_at: Option<String>,
    /// The credential that authorised (or last confirmed) it; `None` if it
    /// founded the account.
    #[serde(default)]
    pub registered_by: Option<String>,
    /// `active` or `suspended`.
    pub standing: String,
    pub session_credential: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyList {
    pub user: String,
    pub passkeys: Vec<PasskeyInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyConfirmedResponse {
    pub credential_id: String,
    pub registered_by: String,
    /// Passkeys active again: the confirmed one and those it authorised.
    pub reactivated: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    pub challenge_id: String,
    pub challenge: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub stage: String,
    pub outcome: String,
    pub micros: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    pub session_id: String,
    pub user: String,
    pub expires_at: String,
    pub resume_until: String,
    pub stages: Vec<StageReport>,
    /// The session's biometric batch slot (turbo mode).
    #[serde(default)]
    pub batch_slot: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeResponse {
    pub decision: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    /// The HTTP status the server answered with.
    #[serde(skip)]
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutResponse {
    pub revoked: bool,
    #[serde(default)]
    pub session_id: Option<String>,
}

/// A client bound to one Postern server.
#[derive(Debug, Clone)]
pub struct PosternClient {
    http: reqwest::Client,
    base: String,
    /// The server's origin as this client reaches it: what identity proofs
    /// are bound to, so that a look-alike server cannot relay them.
    audience: String,
}

impl PosternClient {
    /// A client of the server at `base` (`http://` or `https://`); an
    /// `https://` server is checked against Mozilla's roots (compiled in)
    /// and the system's.
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let base = Self::check_base(base)?;
        let audience = Self::audience_of(&base)?;
        let http = Self::builder().build().map_err(ClientError::Transport)?;
        Ok(Self {
            http,
            base,
            audience,
        })
    }

    /// The origin identity proofs made through this client are bound to,
    /// e.g. `https://auth.example.com` (see [`prove`]).
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The origin of `base`: what identity proofs made through a client
    /// for `base` are bound to.
    fn audience_of(base: &str) -> Result<String, ClientError> {
        Ok(reqwest::Url::parse(base)
            .map_err(|_| ClientError::BadUrl(base.to_string()))?
            .origin()
            .ascii_serialization())
    }

    /// As [`PosternClient::new`], also trusting the certificates of the PEM
    /// file contents `ca_pem` (a private CA) for an `https://` server.
    pub fn with_ca(base: &str, ca_pem: &[u8]) -> Result<Self, ClientError> {
        let base = Self::check_base(base)?;
        let certificates = reqwest::Certificate::from_pem_bundle(ca_pem)
            .map_err(|_| ClientError::Ca("is not valid PEM"))?;
        if certificates.is_empty() {
            return Err(ClientError::Ca(
                "holds no certificate (expected -----BEGIN CERTIFICATE-----)",
            ));
        }
        let http = certificates
            .into_iter()
            .fold(Self::builder(), |b, c| b.add_root_certificate(c))
            .build()
            .map_err(|_| ClientError::Ca("holds a certificate that cannot anchor trust"))?;
        let audience = Self::audience_of(&base)?;
        Ok(Self {
            http,
            base,
            audience,
        })
    }

    fn check_base(base: &str) -> Result<String, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        if base.starts_with("http://") || base.starts_with("https://") {
            Ok(base)
        } else {
            Err(ClientError::BadUrl(base))
        }
    }

    fn builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(30))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(ClientError::BadResponse);
        }
        Err(api_error(status, &bytes))
    }

    /// Enrolls the identity's public key for its user.
    pub async fn enroll(&self, identity: &IdentityFile) -> Result<EnrollResponse, ClientError> {
        self.enroll_with_template(identity, None).await
    }

    /// Enrolls the identity key and, optionally, an encrypted biometric
    /// template (see [`crate::biometric::BiometricClient::template`]).
    pub async fn enroll_with_template(
        &self,
        identity: &IdentityFile,
        template: Option<&[u8]>,
    ) -> Result<EnrollResponse, ClientError> {
        let mut body = json!({ "identity_public_key": URL_SAFE_NO_PAD.encode(identity.public_key().as_bytes()) });
        if let Some(template) = template {
            body["biometric_template"] = json!(URL_SAFE_NO_PAD.encode(template));
        }
        self.send(
            self.http
                .post(self.url(&format!("/v1/users/{}/enroll", identity.user)))
                .json(&body),
        )
        .await
    }

    pub async fn challenge(&self, user: &str) -> Result<ChallengeResponse, ClientError> {
        self.send(
            self.http
                .post(self.url("/v1/auth/challenge"))
                .json(&json!({ "user": user })),
        )
        .await
    }

    /// Full authentication: fetch a challenge, prove the identity bound to
    /// it and to the device, and exchange the proof for a session.
    pub async fn login(
        &self,
        identity: &IdentityFile,
        device: &DeviceInput,
    ) -> Result<LoginResponse, ClientError> {
        self.login_with_probe(identity, device, None).await
    }

    /// [`PosternClient::login`] with an encrypted biometric probe (see
    /// [`crate::biometric::BiometricClient::probe`]).
    pub async fn login_with_probe(
        &self,
        identity: &IdentityFile,
        device: &DeviceInput,
        probe: Option<&[u8]>,
    ) -> Result<LoginResponse, ClientError> {
        let challenge = self.challenge(identity.user.as_str()).await?;
        let proof = prove(identity, &challenge, device, &self.audience)?;
        let mut body = json!({ "user": identity.user.as_str(), "challenge_id": challenge.challenge_id, "device": device, "identity_proof": proof, "audience": self.audience });
        if let Some(probe) = probe {
            body["biometric_probe"] = json!(URL_SAFE_NO_PAD.encode(probe));
        }
        self.send(self.http.post(self.url("/v1/auth/full")).json(&body))
            .await
    }

    /// The biometric key holder's public key bundle, which clients encrypt
    /// templates and probes under (`GET /v1/biometric/public-key`).
    pub async fn biometric_public_key(&self) -> Result<Vec<u8>, ClientError> {
        let body: serde_json::Value = self
            .send(self.http.get(self.url("/v1/biometric/public-key")))
            .await?;
        body["public_key"]
            .as_str()
            .and_then(|text| URL_SAFE_NO_PAD.decode(text).ok())
            .ok_or_else(|| ClientError::Protocol("public_key is not base64url".into()))
    }

    /// The second half of [`PosternClient::login`], for callers that build
    /// their own proof (tests of replay and tampering use it).
    pub async fn full(
        &self,
        user: &str,
        challenge_id: &str,
        device: &DeviceInput,
        proof: &str,
    ) -> Result<LoginResponse, ClientError> {
        let body = json!({ "user": user, "challenge_id": challenge_id, "device": device, "identity_proof": proof, "audience": self.audience });
        self.send(self.http.post(self.url("/v1/auth/full")).json(&body))
            .await
    }

    /// Asks whether the session may continue. Decisions other than
    /// `resumed` are returned as values, not errors.
    pub async fn resume(
        &self,
        token: &str,
        device: Option<&DeviceInput>,
        operation: Option<&str>,
    ) -> Result<ResumeResponse, ClientError> {
        let mut body = json!({ "token": token });
        if let Some(device) = device {
            body["device"] = serde_json::to_value(device).map_err(ClientError::BadResponse)?;
        }
        if let Some(op) = operation {
            body["operation"] = json!(op);
        }
        let response = self
            .http
            .post(self.url("/v1/session/resume"))
            .json(&body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        match serde_json::from_slice::<ResumeResponse>(&bytes) {
            Ok(mut decoded) if matches!(status, 200 | 401 | 403) => {
                decoded.status = status;
                Ok(decoded)
            }
            _ => Err(api_error(status, &bytes)),
        }
    }

    /// Replaces the user's enrolled identity key (revoked or live) with
    /// `identity`'s. `token` must be a session of that user, bound to
    /// `device_id`, from a recent full authentication; every session of
    /// the replaced key, possibly this one, is revoked.
    pub async fn replace_identity(
        &self,
        identity: &IdentityFile,
        token: &str,
        device_id: &str,
    ) -> Result<IdentityReplacedResponse, ClientError> {
        let body = json!({ "identity_public_key": URL_SAFE_NO_PAD.encode(identity.public_key().as_bytes()) });
        self.send(
            self.http
                .put(self.url(&format!("/v1/users/{}/identity", identity.user)))
                .bearer_auth(token)
                .header("X-Postern-Device", device_id)
                .json(&body),
        )
        .await
    }

    /// Removes one of `user`'s passkeys (`credential_id` base64url, as
    /// registration answered it) with a recent session of that user.
    pub async fn remove_passkey(
        &self,
        user: &str,
        credential_id: &str,
        token: &str,
        device_id: &str,
    ) -> Result<PasskeyRemovedResponse, ClientError> {
        let (user, credential_id) = passkey_path(user, credential_id)?;
        self.send(
            self.http
                .delete(self.url(&format!("/v1/users/{user}/passkeys/{credential_id}")))
                .bearer_auth(token)
                .header("X-Postern-Device", device_id),
        )
        .await
    }

    /// Lists `user`'s passkeys with their standing, with a session of
    /// that user.
    pub async fn list_passkeys(
        &self,
        user: &str,
        token: &str,
        device_id: &str,
    ) -> Result<PasskeyList, ClientError> {
        let user = UserId::parse(user).map_err(|e| ClientError::Input(e.to_string()))?;
        self.send(
            self.http
                .get(self.url(&format!("/v1/users/{user}/passkeys")))
                .bearer_auth(token)
                .header("X-Postern-Device", device_id),
        )
        .await
    }

    /// Confirms one of `user`'s suspended passkeys with a recent session
    /// of another current credential of that user.
    pub async fn confirm_passkey(
        &self,
        user: &str,
        credential_id: &str,
        token: &str,
        device_id: &str,
    ) -> Result<PasskeyConfirmedResponse, ClientError> {
        let (user, credential_id) = passkey_path(user, credential_id)?;
        self.send(
            self.http
                .post(self.url(&format!(
                    "/v1/users/{user}/passkeys/{credential_id}/confirm"
                )))
                .bearer_auth(token)
                .header("X-Postern-Device", device_id),
        )
        .await
    }

    pub async fn logout(&self, token: &str) -> Result<LogoutResponse, ClientError> {
        self.send(
            self.http
                .post(self.url("/v1/session/logout"))
                .bearer_auth(token),
        )
        .await
    }
}

/// A user id and a base64url credential id, checked before they go into a
/// URL path.
fn passkey_path<'a>(user: &str, credential_id: &'a str) -> Result<(UserId, &'a str), ClientError> {
    let user = UserId::parse(user).map_err(|e| ClientError::Input(e.to_string()))?;
    if credential_id.is_empty()
        || !credential_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ClientError::Input(
            "the credential id is not base64url".into(),
        ));
    }
    Ok((user, credential_id))
}

/// Computes the identity proof for a challenge, as base64url, bound to
/// `audience`: the server's origin as the caller reached it
/// ([`PosternClient::audience`]).
pub fn prove(
    identity: &IdentityFile,
    challenge: &ChallengeResponse,
    device: &DeviceInput,
    audience: &str,
) -> Result<String, ClientError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(&challenge.challenge)
        .map_err(|_| bad_field("challenge"))?;
    let challenge_bytes: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| bad_field("challenge"))?;
    let device_hash = device.fingerprint()?.hash();
    let statement = Statement {
        challenge: &challenge_bytes,
        audience,
        user: identity.user.as_str(),
        device_hash: &device_hash,
    };
    Ok(URL_SAFE_NO_PAD.encode(identity.secret.prove(&statement, &mut rand::rngs::OsRng)))
}

fn bad_field(field: &str) -> ClientError {
    ClientError::Api {
        status: 0,
        code: "bad_response".into(),
        message: format!("server sent an invalid `{field}`"),
        body: Value::Null,
    }
}

fn api_error(status: u16, bytes: &[u8]) -> ClientError {
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    ClientError::Api {
        status,
        code: field("error"),
        message: field("message"),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_that_is_not_pem_holds_no_certificate_or_no_anchor_is_refused() {
        let refusal = |pem: &[u8]| match PosternClient::with_ca("https://127.0.0.1:1", pem) {
            Err(ClientError::Ca(m)) => m,
            other => panic!("expected a CA refusal, got {:?}", other.map(|_| ())),
        };
        assert_eq!(
            refusal(b"nothing here"),
            "holds no certificate (expected -----BEGIN CERTIFICATE-----)"
        );
        assert_eq!(
            refusal(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
            "is not valid PEM"
        );
        assert_eq!(
            refusal(b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n"),
            "holds a certificate that cannot anchor trust"
        );
        assert!(matches!(
            PosternClient::with_ca("ftp://x", b""),
            Err(ClientError::BadUrl(_))
        ));
    }
}
