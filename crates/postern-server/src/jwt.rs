//! JWT session delivery: sessions as signed JWTs that other services can
//! verify offline with `/.well-known/jwks.json`.
//!
//! A JWT here is a *view* of a server-side session, never a replacement for
//! it: it names the session (`sid`), and Postern accepts it only while that
//! session is live, so logging out or revoking a key kills the JWT at once
//! on Postern (offline verifiers see it die at `exp`, which is why JWTs are
//! short-lived and refreshed — see `jwt_ttl`).
//!
//! Keys: one Ed25519 key per keyring generation, derived from that
//! generation's secrets ([`KeyGeneration::derive_key`]). The JWT keys are
//! therefore wrapped, rotated and pruned with the keyring: `postern keys
//! rotate` makes the new generation sign, while JWTs signed by older
//! generations keep verifying — and stay in the JWKS — until the generation
//! is pruned (the overlap window is the longest session lifetime).
//!
//! Verification accepts exactly one algorithm (`EdDSA`) and only keys this
//! instance holds, by `kid`; `alg: none`, HMAC-with-the-public-key and any
//! other algorithm confusion is refused before a signature is looked at.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use postern_core::keyring::{KeyGeneration, Keyring};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const KEY_LABEL: &str = "jwt/ed25519";
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 1;

/// Why a JWT was refused, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the JWT is malformed")]
    Malformed,
    #[error("the JWT's algorithm is not EdDSA")]
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
    #[error("could not make the signing key: {0}")]
    Key(String),
}

/// The claims of a Postern session JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub iss: String,
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

struct JwtKey {
    kid: String,
    generation: u32,
    encoding: EncodingKey,
    decoding: DecodingKey,
    x: String,
}

/// Signs and verifies session JWTs with the keyring's generations.
pub struct JwtKeys {
    issuer: String,
    /// Ordered by generation; the last one signs.
    keys: Vec<JwtKey>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn key_of(generation: &KeyGeneration) -> Result<JwtKey, JwtError> {
    let seed = generation.derive_key(KEY_LABEL);
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = signing
        .to_pkcs8_der()
        .map_err(|e| JwtError::Key(e.to_string()))?;
    let public = signing.verifying_key().to_bytes();
    let x = URL_SAFE_NO_PAD.encode(public);
    let decoding = DecodingKey::from_ed_components(&x).map_err(|e| JwtError::Key(e.to_string()))?;
    // The kid names the key itself (a truncated hash of the public key), so
    // two clusters with different keyrings never share a kid.
    let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..12]);
    Ok(JwtKey {
        kid,
        generation: generation.id(),
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
        decoding,
        x,
    })
}

impl JwtKeys {
    /// One key per live keyring generation; the current generation signs.
    pub fn from_keyring(keyring: &Keyring, issuer: &str) -> Result<Self, JwtError> {
        let keys = keyring
            .generations()
            .iter()
            .map(key_of)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            issuer: issuer.to_string(),
            keys,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
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
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| JwtError::Key(e.to_string()))
    }

    /// Verifies signature, algorithm, key, issuer and time (`now_secs`, Unix
    /// seconds). Does not look at the session: the caller must.
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<SessionClaims, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(JwtError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(JwtError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(JwtError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Time is checked below against the caller's clock, not the library's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[&self.issuer]);
        let data = jsonwebtoken::decode::<SessionClaims>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => JwtError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => JwtError::WrongAlgorithm,
                _ => JwtError::Malformed,
            })?;
        let claims = data.claims;
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

    /// Whether `token`'s header names one of these keys (no verification).
    pub fn owns(&self, token: &str) -> bool {
        jsonwebtoken::decode_header(token)
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
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": k.x,
                    "kid": k.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                    "postern_generation": k.generation,
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
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

    fn ring() -> Keyring {
        Keyring::generate(NOW * SECOND, &mut rand::thread_rng())
    }

    fn claims(exp: u64) -> SessionClaims {
        SessionClaims {
            iss: "https://postern.test".into(),
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
        let keys = JwtKeys::from_keyring(&ring(), "https://postern.test").unwrap();
        let jwt = keys.sign(&claims(NOW + 60)).unwrap();
        assert!(looks_like_jwt(&jwt));
        assert_eq!(keys.verify(&jwt, NOW + 1).unwrap(), claims(NOW + 60));
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.kid.as_deref(), keys.current_kid());
    }

    #[test]
    fn expired_premature_and_foreign_issuer_jwts_are_refused() {
        let keys = JwtKeys::from_keyring(&ring(), "https://postern.test").unwrap();
        let jwt = keys.sign(&claims(NOW + 60)).unwrap();
        assert_eq!(
            keys.verify(&jwt, NOW + 60 + LEEWAY_SECS),
            Err(JwtError::Expired)
        );
        assert_eq!(keys.verify(&jwt, NOW - 60), Err(JwtError::Premature));
        let other = JwtKeys::from_keyring(&ring(), "https://postern.test").unwrap();
        assert_eq!(other.verify(&jwt, NOW), Err(JwtError::UnknownKey));
        let same_keys_other_issuer = JwtKeys {
            issuer: "https://evil.test".into(),
            keys: JwtKeys::from_keyring(&ring(), "x").unwrap().keys,
        };
        let foreign = same_keys_other_issuer
            .sign(&SessionClaims {
                iss: "https://evil.test".into(),
                ..claims(NOW + 60)
            })
            .unwrap();
        let trusting = JwtKeys {
            issuer: "https://postern.test".into(),
            keys: same_keys_other_issuer.keys,
        };
        assert_eq!(trusting.verify(&foreign, NOW), Err(JwtError::WrongIssuer));
    }

    #[test]
    fn algorithm_confusion_and_tampering_are_refused() {
        let keys = JwtKeys::from_keyring(&ring(), "https://postern.test").unwrap();
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
        let x = keys.keys[0].x.clone();
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
        let mut ring = ring();
        let before = JwtKeys::from_keyring(&ring, "iss").unwrap();
        let old = before
            .sign(&SessionClaims {
                iss: "iss".into(),
                ..claims(NOW + 60)
            })
            .unwrap();
        ring.rotate((NOW + 1) * SECOND, &mut rand::thread_rng())
            .unwrap();
        let after = JwtKeys::from_keyring(&ring, "iss").unwrap();
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
        let pruned = JwtKeys::from_keyring(&ring, "iss").unwrap();
        assert_eq!(pruned.verify(&old, NOW + 2), Err(JwtError::UnknownKey));
    }
}
