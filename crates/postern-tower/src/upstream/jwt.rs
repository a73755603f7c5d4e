//! Reading (never trusting) a JWT's header and claims.
//!
//! The gate does not verify JWT signatures — the upstream does. It only
//! peeks at `kid` (so entries can be purged when the upstream rotates that
//! key) and `exp` (so an entry never outlives the token, whatever the
//! upstream said). Reading these unverified is safe because both can only
//! make the cache *stricter*: a forged `exp` can shorten an entry's life,
//! never extend it past the upstream's answer, and `kid` only groups entries
//! for purging.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

#[derive(Deserialize)]
struct Header {
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<u64>,
}

/// `(kid, exp in seconds)` of a JWT-shaped token; `None` for other tokens.
/// Attacker-controlled input: bounded and panic-free.
pub fn peek_jwt(token: &str) -> Option<(Option<String>, Option<u64>)> {
    if token.len() > 16 * 1024 {
        return None;
    }
    let mut parts = token.split('.');
    let (header, claims, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
    Some((header.kid.filter(|k| k.len() <= 256), claims.exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn kid_and_exp_are_read_from_jwts_only() {
        assert_eq!(
            peek_jwt(&jwt(r#"{"alg":"EdDSA","kid":"k1"}"#, r#"{"exp":99}"#)),
            Some((Some("k1".into()), Some(99)))
        );
        assert_eq!(
            peek_jwt(&jwt(r#"{"alg":"HS256"}"#, r#"{}"#)),
            Some((None, None))
        );
        assert_eq!(peek_jwt("opaque-token"), None);
        assert_eq!(peek_jwt("a.b.c.d"), None);
        assert_eq!(peek_jwt("!!.??.x"), None);
    }
}
