//! JWT session delivery: sessions as signed JWTs that other services can
//! verify offline with `/.well-known/jwks.json`.
//!
//! A JWT here is a *view* of a server-side session, never a replacement for
//! it: it names the session (`sid`), and Postern accepts it only while that
//! session is live, so logging out or revoking a key kills the JWT at once
//! on Postern (offline verifiers see it die at `exp`, which is why JWTs are
//! short-lived and refreshed — see `jwt_ttl`).
//!
//! Algorithms ([`JwtAlgorithm`], one per deployment): `EdDSA` (Ed25519, RFC
//! 8037; through `jsonwebtoken`) by default, or `ML-DSA-65` (FIPS 204 as
//! JOSE specifies it in RFC 9964: the empty context string, `AKP` keys with
//! the raw 1,952-byte public key in `pub`) for verifiers that want a
//! post-quantum signature. `jsonwebtoken` has no ML-DSA, so that path is a
//! compact JWS of our own over `postern_core::signing` (libcrux), kept to
//! the same checks.
//!
//! Keys: one key per keyring generation, derived from that generation's
//! secrets ([`KeyGeneration::derive_key`], one label per algorithm). The JWT
//! keys are therefore wrapped, rotated and pruned with the keyring: `postern
//! keys rotate` makes the new generation sign, while JWTs signed by older
//! generations keep verifying — and stay in the JWKS — until the generation
//! is pruned (the overlap window is the longest session lifetime).
//!
//! Verification accepts exactly the configured algorithm and only keys this
//! instance holds, by `kid`; `alg: none`, HMAC-with-the-public-key, the other
//! signature algorithm and `crit` extensions are refused before a signature
//! is looked at.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use postern_core::keyring::{KeyGeneration, Keyring};
use postern_core::signing::{self, SIGNATURE_LEN};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 1;
/// Longest JWT looked at (an ML-DSA-65 JWT is about 4.8 KB).
const MAX_JWT_BYTES: usize = 16 * 1024;
/// RFC 9964: JOSE signs with ML-DSA's empty context string.
const JOSE_CONTEXT: &[u8] = b"";
/// The JOSE `typ` of a Postern session JWT (RFC 8725 §3.11, explicit
/// typing): a JWT of another kind signed by the same key (none exists
/// today, but the keys are derived per generation and may sign more later)
/// cannot pass for a session.
pub const SESSION_JWT_TYPE: &str = "postern-session+jwt";
/// The default `aud` of session JWTs (`[session.jwt] audience`).
pub const DEFAULT_AUDIENCE: &str = "postern";

/// Which algorithm signs session JWTs (`[session.jwt] algorithm`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum JwtAlgorithm {
    /// Ed25519 (RFC 8037): 64-byte signatures, verifiable everywhere.
    #[default]
    #[serde(rename = "EdDSA")]
    #[value(name = "EdDSA")]
    EdDsa,
    /// ML-DSA-65 (FIPS 204, RFC 9964): post-quantum, 3,309-byte signatures.
    #[serde(rename = "ML-DSA-65")]
    #[value(name = "ML-DSA-65")]
    MlDsa65,
}

impl JwtAlgorithm {
    /// The JOSE `alg` value.
    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::EdDsa => "EdDSA",
            JwtAlgorithm::MlDsa65 => "ML-DSA-65",
        }
    }

    fn key_label(self) -> &'static str {
        match self {
            JwtAlgorithm::EdDsa => "jwt/ed25519",
            JwtAlgorithm::MlDsa65 => "jwt/ml-dsa-65",
        }
    }
}

/// Why a JWT was refused, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the JWT is malformed")]
    Malformed,
    #[error("the JWT's algorithm is not the one this server signs with")]
    WrongAlgorithm,
    #[error("the JWT names a signing key this server does not hold")]
    UnknownKey,
    #[error("the JWT's signature does not verify")]
    BadSignature,
    #[error("the JWT has expired")]
    Expired,
    #[error("the JWT is not valid yet or was issued in the future")]
    Premature,
    #[error("the JWT was issued by someone else")]
    WrongIssuer,
    #[error("the JWT is meant for another audience")]
    WrongAudience,
    #[error("the JWT is not a Postern session JWT (typ)")]
    WrongType,
    #[error("could not make the signing key: {0}")]
    Key(String),
}

/// The claims of a Postern session JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub iss: String,
    /// The audience: the services meant to accept this JWT
    /// (`[session.jwt] audience`); checked on the way back in.
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id (the opaque token's selector); the session must be live.
    pub sid: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// base64url SHA-256 of the session's device-binding MAC: lets services
    /// tell sessions bound to different devices apart without learning more.
    pub dbh: String,
}

/// The JOSE header fields Postern reads.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    /// Extensions that must be understood: Postern understands none.
    crit: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct OwnHeader<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// Decodes a compact JWS's header (no verification).
fn header_of(token: &str) -> Result<JoseHeader, JwtError> {
    if token.len() > MAX_JWT_BYTES {
        return Err(JwtError::Malformed);
    }
    let encoded = token.split('.').next().ok_or(JwtError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| JwtError::Malformed)?;
    let header: JoseHeader = serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)?;
    if header.crit.is_some() {
        return Err(JwtError::Malformed);
    }
    Ok(header)
}

enum KeyMaterial {
    Ed25519 {
        encoding: EncodingKey,
        decoding: DecodingKey,
        /// The public key, base64url (the JWK's `x`).
        x: String,
    },
    MlDsa65 {
        /// Boxed: ML-DSA-65 keys are kilobytes (the pair about 6 KB).
        signing: Box<signing::SigningKey>,
        verifying: Box<signing::VerifyingKey>,
        /// The public key, base64url (the JWK's `pub`).
        public: String,
    },
}

struct JwtKey {
    kid: String,
    generation: u32,
    material: KeyMaterial,
}

/// Signs and verifies session JWTs with the keyring's generations.
pub struct JwtKeys {
    issuer: String,
    audience: String,
    algorithm: JwtAlgorithm,
    /// Ordered by generation; the last one signs.
    keys: Vec<JwtKey>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("algorithm", &self.algorithm)
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A kid names the key itself (a truncated hash of the public key), so two
/// clusters with different keyrings never share one.
fn kid_of(public: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..12])
}

fn key_of(generation: &KeyGeneration, algorithm: JwtAlgorithm) -> Result<JwtKey, JwtError> {
    let seed = generation.derive_key(algorithm.key_label());
    let (kid, material) = match algorithm {
        JwtAlgorithm::EdDsa => {
            let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
            let der = signing
                .to_pkcs8_der()
                .map_err(|e| JwtError::Key(e.to_string()))?;
            let public = signing.verifying_key().to_bytes();
            let x = URL_SAFE_NO_PAD.encode(public);
            let decoding =
                DecodingKey::from_ed_components(&x).map_err(|e| JwtError::Key(e.to_string()))?;
            let material = KeyMaterial::Ed25519 {
                encoding: EncodingKey::from_ed_der(der.as_bytes()),
                decoding,
                x,
            };
            (kid_of(&public), material)
        }
        JwtAlgorithm::MlDsa65 => {
            let signing = signing::SigningKey::from_seed(*seed);
            let verifying = signing.verifying_key();
            let public = URL_SAFE_NO_PAD.encode(verifying.as_bytes());
            let kid = kid_of(verifying.as_bytes());
            let material = KeyMaterial::MlDsa65 {
                signing: Box::new(signing),
                verifying: Box::new(verifying),
                public,
            };
            (kid, material)
        }
    };
    Ok(JwtKey {
        kid,
        generation: generation.id(),
        material,
    })
}

impl JwtKeys {
    /// One key per live keyring generation; the current generation signs.
    pub fn from_keyring(
        keyring: &Keyring,
        issuer: &str,
        algorithm: JwtAlgorithm,
    ) -> Result<Self, JwtError> {
        let keys = keyring
            .generations()
            .iter()
            .map(|g| key_of(g, algorithm))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            issuer: issuer.to_string(),
            audience: DEFAULT_AUDIENCE.to_string(),
            algorithm,
            keys,
        })
    }

    /// The `aud` this server puts in its JWTs and requires back.
    pub fn with_audience(mut self, audience: &str) -> Self {
        self.audience = audience.to_string();
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// The kid that signs new JWTs.
    pub fn current_kid(&self) -> Option<&str> {
        self.keys.last().map(|k| k.kid.as_str())
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &SessionClaims) -> Result<String, JwtError> {
        let key = self
            .keys
            .last()
            .ok_or_else(|| JwtError::Key("the keyring is empty".into()))?;
        match &key.material {
            KeyMaterial::Ed25519 { encoding, .. } => {
                let mut header = Header::new(Algorithm::EdDSA);
                header.typ = Some(SESSION_JWT_TYPE.to_string());
                header.kid = Some(key.kid.clone());
                jsonwebtoken::encode(&header, claims, encoding)
                    .map_err(|e| JwtError::Key(e.to_string()))
            }
            KeyMaterial::MlDsa65 { signing, .. } => {
                let header = OwnHeader {
                    alg: JwtAlgorithm::MlDsa65.name(),
                    typ: SESSION_JWT_TYPE,
                    kid: &key.kid,
                };
                let mut token = URL_SAFE_NO_PAD.encode(json_bytes(&header)?);
                token.push('.');
                token.push_str(&URL_SAFE_NO_PAD.encode(json_bytes(claims)?));
                let signature = signing
                    .sign_in_context(token.as_bytes(), JOSE_CONTEXT, &mut OsRng)
                    .map_err(|e| JwtError::Key(e.to_string()))?;
                token.push('.');
                token.push_str(&URL_SAFE_NO_PAD.encode(signature));
                Ok(token)
            }
        }
    }

    /// Verifies type, signature, algorithm, key, issuer, audience and time
    /// (`now_secs`, Unix seconds). Does not look at the session: the caller
    /// must.
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<SessionClaims, JwtError> {
        let header = header_of(token)?;
        if header.alg != self.algorithm.name() {
            return Err(JwtError::WrongAlgorithm);
        }
        // RFC 8725 §3.11: a JWT of another type is refused before its
        // signature is looked at.
        if header.typ.as_deref() != Some(SESSION_JWT_TYPE) {
            return Err(JwtError::WrongType);
        }
        let kid = header.kid.ok_or(JwtError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(JwtError::UnknownKey)?;
        let claims = match &key.material {
            KeyMaterial::Ed25519 { decoding, .. } => self.verify_ed25519(token, decoding)?,
            KeyMaterial::MlDsa65 { verifying, .. } => verify_ml_dsa(token, verifying)?,
        };
        if claims.iss != self.issuer {
            return Err(JwtError::WrongIssuer);
        }
        if claims.aud != self.audience {
            return Err(JwtError::WrongAudience);
        }
        if claims.exp.saturating_add(LEEWAY_SECS) <= now_secs {
            return Err(JwtError::Expired);
        }
        if claims.nbf > now_secs.saturating_add(LEEWAY_SECS)
            || claims.iat > now_secs.saturating_add(LEEWAY_SECS)
        {
            return Err(JwtError::Premature);
        }
        Ok(claims)
    }

    fn verify_ed25519(&self, token: &str, key: &DecodingKey) -> Result<SessionClaims, JwtError> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Issuer, audience and time are checked by the caller, against its
        // clock and its configuration.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<SessionClaims>(token, key, &validation).map_err(|e| match e
                .kind()
            {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => JwtError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => JwtError::WrongAlgorithm,
                _ => JwtError::Malformed,
            })?;
        Ok(data.claims)
    }

    /// Whether `token`'s header names one of these keys (no verification).
    pub fn owns(&self, token: &str) -> bool {
        header_of(token)
            .ok()
            .and_then(|h| h.kid)
            .is_some_and(|kid| self.keys.iter().any(|k| k.kid == kid))
    }

    /// The JWKS document: every key that may still have live JWTs.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .keys
            .iter()
            .rev()
            .map(|k| match &k.material {
                KeyMaterial::Ed25519 { x, .. } => serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": x,
                    "kid": k.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                    "postern_generation": k.generation,
                }),
                KeyMaterial::MlDsa65 { public, .. } => serde_json::json!({
                    "kty": "AKP",
                    "alg": "ML-DSA-65",
                    "pub": public,
                    "kid": k.kid,
                    "use": "sig",
                    "postern_generation": k.generation,
                }),
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn json_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, JwtError> {
    serde_json::to_vec(value).map_err(|e| JwtError::Key(e.to_string()))
}

/// Verifies an ML-DSA-65 compact JWS (RFC 7515 §5.2 with RFC 9964's
/// algorithm) and decodes its claims.
fn verify_ml_dsa(token: &str, key: &signing::VerifyingKey) -> Result<SessionClaims, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let signature: [u8; SIGNATURE_LEN] = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(JwtError::Malformed)?;
    // The signing input is the first two parts exactly as sent.
    let signed = &token[..header.len() + 1 + payload.len()];
    if !key.verify_in_context(signed.as_bytes(), JOSE_CONTEXT, &signature) {
        return Err(JwtError::BadSignature);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)
}

/// Whether a presented credential looks like a JWT rather than an opaque
/// Postern token (three base64url parts; Postern tokens start `pst1.`).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// base64url SHA-256 of a device-binding MAC, for the `dbh` claim.
pub fn device_binding_hash(mac: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_core::SECOND;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn every_jwt_signing_key_zeroizes_on_drop() {
        fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        // Ed25519: the PKCS#8 document `KeyMaterial` keeps, and the dalek
        // key each signature is made with (its `zeroize` feature is on).
        assert_zeroize_on_drop::<EncodingKey>();
        assert_zeroize_on_drop::<ed25519_dalek::SigningKey>();
        // ML-DSA-65: seed and signing key.
        assert_zeroize_on_drop::<signing::SigningKey>();
    }

    fn ring() -> Keyring {
        Keyring::generate(NOW * SECOND, &mut rand::thread_rng())
    }

    fn claims(exp: u64) -> SessionClaims {
        SessionClaims {
            iss: "https://postern.test".into(),
            aud: DEFAULT_AUDIENCE.into(),
            sub: "alice".into(),
            sid: "sid".into(),
            iat: NOW,
            nbf: NOW,
            exp,
            dbh: device_binding_hash(b"mac"),
        }
    }

    #[test]
    fn a_signed_jwt_verifies_and_round_trips_its_claims() {
        let keys =
            JwtKeys::from_keyring(&ring(), "https://postern.test", JwtAlgorithm::EdDsa).unwrap();
        let jwt = keys.sign(&claims(NOW + 60)).unwrap();
        assert!(looks_like_jwt(&jwt));
        assert_eq!(keys.verify(&jwt, NOW + 1).unwrap(), claims(NOW + 60));
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.kid.as_deref(), keys.current_kid());
    }

    #[test]
    fn expired_premature_and_foreign_issuer_jwts_are_refused() {
        let keys =
            JwtKeys::from_keyring(&ring(), "https://postern.test", JwtAlgorithm::EdDsa).unwrap();
        let jwt = keys.sign(&claims(NOW + 60)).unwrap();
        assert_eq!(
            keys.verify(&jwt, NOW + 60 + LEEWAY_SECS),
            Err(JwtError::Expired)
        );
        assert_eq!(keys.verify(&jwt, NOW - 60), Err(JwtError::Premature));
        let other =
            JwtKeys::from_keyring(&ring(), "https://postern.test", JwtAlgorithm::EdDsa).unwrap();
        assert_eq!(other.verify(&jwt, NOW), Err(JwtError::UnknownKey));
        let same_keys_other_issuer = JwtKeys {
            issuer: "https://evil.test".into(),
            audience: DEFAULT_AUDIENCE.into(),
            algorithm: JwtAlgorithm::EdDsa,
            keys: JwtKeys::from_keyring(&ring(), "x", JwtAlgorithm::EdDsa)
                .unwrap()
                .keys,
        };
        let foreign = same_keys_other_issuer
            .sign(&SessionClaims {
                iss: "https://evil.test".into(),
                ..claims(NOW + 60)
            })
            .unwrap();
        let trusting = JwtKeys {
            issuer: "https://postern.test".into(),
            audience: DEFAULT_AUDIENCE.into(),
            algorithm: JwtAlgorithm::EdDsa,
            keys: same_keys_other_issuer.keys,
        };
        assert_eq!(trusting.verify(&foreign, NOW), Err(JwtError::WrongIssuer));
    }

    #[test]
    fn algorithm_confusion_and_tampering_are_refused() {
        let keys =
            JwtKeys::from_keyring(&ring(), "https://postern.test", JwtAlgorithm::EdDsa).unwrap();
        let jwt = keys.sign(&claims(NOW + 60)).unwrap();
        let kid = keys.current_kid().unwrap().to_string();
        let body = jwt.split('.').nth(1).unwrap().to_string();
        let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());

        // alg: none, with and without a signature.
        let none = b64(serde_json::json!({"alg": "none", "kid": kid}));
        assert!(keys.verify(&format!("{none}.{body}."), NOW).is_err());
        // HS256 keyed with the public key (the classic confusion).
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let x = keys.jwks()["keys"][0]["x"].as_str().unwrap().to_string();
        let hs = jsonwebtoken::encode(
            &header,
            &claims(NOW + 60),
            &EncodingKey::from_secret(x.as_bytes()),
        )
        .unwrap();
        assert_eq!(keys.verify(&hs, NOW), Err(JwtError::WrongAlgorithm));
        // A changed payload under the original signature.
        let mut changed = claims(NOW + 60);
        changed.sub = "mallory".into();
        let parts: Vec<&str> = jwt.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&changed).unwrap()),
            parts[2]
        );
        assert_eq!(keys.verify(&forged, NOW), Err(JwtError::BadSignature));
        for junk in ["", "a.b.c", "eyJ.eyJ.", "not a jwt", &"A".repeat(5000)] {
            assert!(keys.verify(junk, NOW).is_err(), "{junk:.20}");
        }
    }

    #[test]
    fn rotation_keeps_old_jwts_valid_until_their_generation_is_pruned() {
        for algorithm in [JwtAlgorithm::EdDsa, JwtAlgorithm::MlDsa65] {
            rotation_overlap(algorithm);
        }
    }

    fn ml_dsa_keys() -> JwtKeys {
        JwtKeys::from_keyring(&ring(), "https://postern.test", JwtAlgorithm::MlDsa65).unwrap()
    }

    #[test]
    fn an_ml_dsa_jwt_verifies_and_its_key_is_published_as_akp() {
        let keys = ml_dsa_keys();
        let jwt = keys.sign(&claims(NOW + 60)).unwrap();
        assert!(looks_like_jwt(&jwt));
        assert!(keys.owns(&jwt));
        assert_eq!(keys.verify(&jwt, NOW + 1).unwrap(), claims(NOW + 60));
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "ML-DSA-65");
        assert_eq!(header["kid"].as_str(), keys.current_kid());
        let signature = URL_SAFE_NO_PAD
            .decode(jwt.rsplit('.').next().unwrap())
            .unwrap();
        assert_eq!(signature.len(), SIGNATURE_LEN);
        let jwk = &keys.jwks()["keys"][0];
        assert_eq!(
            (jwk["kty"].as_str(), jwk["alg"].as_str()),
            (Some("AKP"), Some("ML-DSA-65"))
        );
        let public = URL_SAFE_NO_PAD
            .decode(jwk["pub"].as_str().unwrap())
            .unwrap();
        assert_eq!(public.len(), signing::VERIFICATION_KEY_LEN);
        assert_eq!(keys.verify(&jwt, NOW + 61), Err(JwtError::Expired));
    }

    #[test]
    fn ml_dsa_and_ed25519_jwts_are_not_accepted_for_each_other() {
        let ring = ring();
        let ml =
            JwtKeys::from_keyring(&ring, "https://postern.test", JwtAlgorithm::MlDsa65).unwrap();
        let ed = JwtKeys::from_keyring(&ring, "https://postern.test", JwtAlgorithm::EdDsa).unwrap();
        let by_ml = ml.sign(&claims(NOW + 60)).unwrap();
        let by_ed = ed.sign(&claims(NOW + 60)).unwrap();
        assert_eq!(ed.verify(&by_ml, NOW), Err(JwtError::WrongAlgorithm));
        assert_eq!(ml.verify(&by_ed, NOW), Err(JwtError::WrongAlgorithm));
        // The two algorithms derive different keys from one generation.
        assert_ne!(ml.current_kid(), ed.current_kid());
    }

    #[test]
    fn tampered_and_malformed_ml_dsa_jwts_are_refused() {
        let keys = ml_dsa_keys();
        let jwt = keys.sign(&claims(NOW + 60)).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let mut changed = claims(NOW + 60);
        changed.sub = "mallory".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&changed).unwrap()),
            parts[2]
        );
        assert_eq!(keys.verify(&forged, NOW), Err(JwtError::BadSignature));
        let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature[7] ^= 1;
        let flipped = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode(&signature)
        );
        assert_eq!(keys.verify(&flipped, NOW), Err(JwtError::BadSignature));
        let short = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..100]);
        assert_eq!(keys.verify(&short, NOW), Err(JwtError::Malformed));
        let extra = format!("{jwt}.AAAA");
        assert_eq!(keys.verify(&extra, NOW), Err(JwtError::Malformed));
        let kid = keys.current_kid().unwrap();
        let crit = b64(serde_json::json!({"alg": "ML-DSA-65", "kid": kid, "crit": ["exp"]}));
        let with_crit = format!("{crit}.{}.{}", parts[1], parts[2]);
        assert_eq!(keys.verify(&with_crit, NOW), Err(JwtError::Malformed));
        let none = b64(serde_json::json!({"alg": "none", "kid": kid}));
        assert_eq!(
            keys.verify(&format!("{none}.{}.", parts[1]), NOW),
            Err(JwtError::WrongAlgorithm)
        );
        assert_eq!(
            keys.verify(&"A".repeat(MAX_JWT_BYTES + 1), NOW),
            Err(JwtError::Malformed)
        );
        let other_issuer = JwtKeys {
            issuer: "https://evil.test".into(),
            audience: DEFAULT_AUDIENCE.into(),
            algorithm: JwtAlgorithm::MlDsa65,
            keys: keys.keys,
        };
        assert_eq!(other_issuer.verify(&jwt, NOW), Err(JwtError::WrongIssuer));
    }

    #[test]
    fn a_jwt_for_another_audience_is_refused() {
        let ring = ring();
        let api = JwtKeys::from_keyring(&ring, "https://postern.test", JwtAlgorithm::EdDsa)
            .unwrap()
            .with_audience("https://api.example");
        let jwt = api
            .sign(&SessionClaims {
                aud: "https://api.example".into(),
                ..claims(NOW + 60)
            })
            .unwrap();
        assert_eq!(api.verify(&jwt, NOW).unwrap().aud, "https://api.example");
        let default_audience =
            JwtKeys::from_keyring(&ring, "https://postern.test", JwtAlgorithm::EdDsa).unwrap();
        assert_eq!(
            default_audience.verify(&jwt, NOW),
            Err(JwtError::WrongAudience)
        );
    }

    #[test]
    fn a_jwt_without_the_session_type_is_refused_for_both_algorithms() {
        for algorithm in [JwtAlgorithm::EdDsa, JwtAlgorithm::MlDsa65] {
            let keys = JwtKeys::from_keyring(&ring(), "https://postern.test", algorithm).unwrap();
            let jwt = keys.sign(&claims(NOW + 60)).unwrap();
            let header: serde_json::Value = serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(jwt.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(header["typ"], SESSION_JWT_TYPE);
            // Re-signed with the right key, but typed as a plain JWT (or
            // untyped): refused before the signature matters.
            for typ in [Some("JWT"), Some("at+jwt"), None] {
                let KeyMaterial::Ed25519 { encoding, .. } = &keys.keys[0].material else {
                    // ML-DSA: the header is ours; swap it and keep the
                    // signature, which the type check precedes.
                    let mut h = serde_json::json!({"alg": "ML-DSA-65", "kid": keys.current_kid()});
                    if let Some(t) = typ {
                        h["typ"] = serde_json::json!(t);
                    }
                    let rest: Vec<&str> = jwt.splitn(2, '.').collect();
                    let retyped = format!("{}.{}", URL_SAFE_NO_PAD.encode(h.to_string()), rest[1]);
                    assert_eq!(keys.verify(&retyped, NOW), Err(JwtError::WrongType));
                    continue;
                };
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = keys.current_kid().map(str::to_string);
                header.typ = typ.map(str::to_string);
                let retyped = jsonwebtoken::encode(&header, &claims(NOW + 60), encoding).unwrap();
                assert_eq!(keys.verify(&retyped, NOW), Err(JwtError::WrongType));
            }
        }
    }

    fn rotation_overlap(algorithm: JwtAlgorithm) {
        let mut ring = ring();
        let before = JwtKeys::from_keyring(&ring, "iss", algorithm).unwrap();
        let old = before
            .sign(&SessionClaims {
                iss: "iss".into(),
                ..claims(NOW + 60)
            })
            .unwrap();
        ring.rotate((NOW + 1) * SECOND, &mut rand::thread_rng())
            .unwrap();
        let after = JwtKeys::from_keyring(&ring, "iss", algorithm).unwrap();
        assert_ne!(before.current_kid(), after.current_kid());
        assert!(after.verify(&old, NOW + 2).is_ok());
        let jwks = after.jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(
            kids,
            [after.current_kid().unwrap(), before.current_kid().unwrap()]
        );
        ring.prune((NOW + 10_000) * SECOND, 60 * SECOND);
        let pruned = JwtKeys::from_keyring(&ring, "iss", algorithm).unwrap();
        assert_eq!(pruned.verify(&old, NOW + 2), Err(JwtError::UnknownKey));
    }
}
