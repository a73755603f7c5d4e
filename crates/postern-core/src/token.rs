//! Opaque session tokens: a selector/verifier split.
//!
//! A token is `pst1.` followed by the unpadded base64url encoding of a
//! 16-byte *selector* and a 32-byte *verifier* (256 bits of secret). Stores
//! index sessions by the selector and keep only `SHA-256(verifier)`, so a copy
//! of a store, a log line or a metric never holds a usable token, and a resume
//! hashes 32 bytes instead of the whole token. The verifier hash is compared in
//! constant time ([`VerifierHash::matches`]).
//!
//! Why the selector is not secret: it only names a row. Knowing it without
//! the verifier gives nothing, and callers must make a lookup miss cost the
//! same as a wrong verifier (see [`VerifierHash::dummy`]) so that presenting a
//! token never reveals whether its selector exists.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

const PREFIX: &str = "pst1.";
const SELECTOR_LEN: usize = 16;
const VERIFIER_LEN: usize = 32;
/// Length of a well-formed token string.
pub const TOKEN_LEN: usize = PREFIX.len() + 64;

/// Why a presented token string could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token does not start with `pst1.`")]
    BadPrefix,
    #[error("token has the wrong length")]
    BadLength,
    #[error("token is not valid base64url")]
    BadEncoding,
}

/// The public half of a token: names the session. Not a secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; SELECTOR_LEN]);

impl SessionId {
    pub const LEN: usize = SELECTOR_LEN;

    pub fn from_bytes(bytes: [u8; SELECTOR_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; SELECTOR_LEN] {
        &self.0
    }

    /// The length of the display form ([`SessionId::to_text`]).
    pub const TEXT_LEN: usize = SELECTOR_LEN.div_ceil(3) * 4 - (3 - SELECTOR_LEN % 3) % 3;

    /// The display form used in APIs and logs (base64url of the selector).
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The display form as bytes on the stack, for a hot path that copies
    /// it into a buffer of its own (`/v1/check`'s answer) without
    /// allocating a `String` first.
    pub fn text_bytes(&self) -> [u8; Self::TEXT_LEN] {
        let mut out = [0u8; Self::TEXT_LEN];
        // TEXT_LEN is exactly the encoded length of SELECTOR_LEN bytes, so
        // this cannot come up short (`text_bytes_are_the_display_form`).
        let _ = URL_SAFE_NO_PAD.encode_slice(self.0, &mut out);
        out
    }

    /// Parses the display form produced by [`SessionId::to_text`].
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        if text.len() != 22 {
            return Err(TokenError::BadLength);
        }
        let mut out = [0u8; SELECTOR_LEN];
        let n = URL_SAFE_NO_PAD
            .decode_slice(text, &mut out)
            .map_err(|_| TokenError::BadEncoding)?;
        if n != SELECTOR_LEN {
            return Err(TokenError::BadLength);
        }
        Ok(Self(out))
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId({})", self.to_text())
    }
}

/// `SHA-256(verifier)`: what stores keep instead of the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifierHash([u8; 32]);

impl VerifierHash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison: the time taken does not depend on how many
    /// leading bytes agree.
    pub fn matches(&self, other: &VerifierHash) -> bool {
        crate::ct::eq32(&self.0, &other.0)
    }

    /// A hash no verifier maps to in practice, compared against on a lookup
    /// miss so that a miss does the same work as a wrong verifier.
    pub fn dummy() -> Self {
        Self([0u8; 32])
    }
}

impl std::fmt::Debug for VerifierHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifierHash(..)")
    }
}

/// A bearer token. Secret: its `Debug` is redacted and it is zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionToken {
    selector: [u8; SELECTOR_LEN],
    verifier: [u8; VERIFIER_LEN],
}

impl SessionToken {
    /// Draws a fresh token: 128 bits of selector, 256 bits of verifier.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut selector = [0u8; SELECTOR_LEN];
        let mut verifier = [0u8; VERIFIER_LEN];
        rng.fill_bytes(&mut selector);
        rng.fill_bytes(&mut verifier);
        Self { selector, verifier }
    }

    /// Parses a presented token. Input is attacker-controlled: never panics,
    /// and the error says only which syntactic rule failed.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let body = text.strip_prefix(PREFIX).ok_or(TokenError::BadPrefix)?;
        if body.len() != 64 {
            return Err(TokenError::BadLength);
        }
        let mut raw = [0u8; SELECTOR_LEN + VERIFIER_LEN];
        let n = URL_SAFE_NO_PAD
            .decode_slice(body, &mut raw)
            .map_err(|_| TokenError::BadEncoding)?;
        if n != raw.len() {
            raw.zeroize();
            return Err(TokenError::BadLength);
        }
        let mut token = Self {
            selector: [0; SELECTOR_LEN],
            verifier: [0; VERIFIER_LEN],
        };
        token.selector.copy_from_slice(&raw[..SELECTOR_LEN]);
        token.verifier.copy_from_slice(&raw[SELECTOR_LEN..]);
        raw.zeroize();
        Ok(token)
    }

    pub fn id(&self) -> SessionId {
        SessionId(self.selector)
    }

    pub fn verifier_hash(&self) -> VerifierHash {
        VerifierHash(Sha256::digest(self.verifier).into())
    }

    /// The string handed to the client. Callers must not log it.
    pub fn expose(&self) -> String {
        let mut raw = [0u8; SELECTOR_LEN + VERIFIER_LEN];
        raw[..SELECTOR_LEN].copy_from_slice(&self.selector);
        raw[SELECTOR_LEN..].copy_from_slice(&self.verifier);
        let out = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
        raw.zeroize();
        out
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionToken({:?}, verifier: ..)", self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn text_bytes_are_the_display_form(bytes in any::<[u8; SELECTOR_LEN]>()) {
            let id = SessionId::from_bytes(bytes);
            let text = id.to_text();
            prop_assert_eq!(&id.text_bytes()[..], text.as_bytes());
            prop_assert_eq!(SessionId::parse(&text).unwrap(), id);
        }
    }

    #[test]
    fn a_token_round_trips_through_its_text_form() {
        let token = SessionToken::generate(&mut rand::thread_rng());
        let text = token.expose();
        assert_eq!(text.len(), TOKEN_LEN);
        let back = SessionToken::parse(&text).unwrap();
        assert_eq!(back.id(), token.id());
        assert!(back.verifier_hash().matches(&token.verifier_hash()));
    }

    #[test]
    fn debug_output_never_contains_the_token() {
        let token = SessionToken::generate(&mut rand::thread_rng());
        let text = token.expose();
        let debug = format!("{token:?}");
        assert!(!debug.contains(&text[5..]));
        assert!(!debug.contains(&text[27..]));
    }

    #[test]
    fn malformed_tokens_get_the_precise_error() {
        assert_eq!(SessionToken::parse("").unwrap_err(), TokenError::BadPrefix);
        assert_eq!(
            SessionToken::parse("Bearer x").unwrap_err(),
            TokenError::BadPrefix
        );
        assert_eq!(
            SessionToken::parse("pst1.abc").unwrap_err(),
            TokenError::BadLength
        );
        let bad = format!("pst1.{}", "*".repeat(64));
        assert_eq!(
            SessionToken::parse(&bad).unwrap_err(),
            TokenError::BadEncoding
        );
    }

    #[test]
    fn a_wrong_verifier_does_not_match() {
        let a = SessionToken::generate(&mut rand::thread_rng());
        let b = SessionToken::generate(&mut rand::thread_rng());
        assert!(!a.verifier_hash().matches(&b.verifier_hash()));
        assert!(!a.verifier_hash().matches(&VerifierHash::dummy()));
    }

    #[test]
    fn session_ids_round_trip_through_text() {
        let token = SessionToken::generate(&mut rand::thread_rng());
        assert_eq!(SessionId::parse(&token.id().to_text()).unwrap(), token.id());
        assert_eq!(
            SessionId::parse("short").unwrap_err(),
            TokenError::BadLength
        );
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,200}") {
            let _ = SessionToken::parse(&s);
            let _ = SessionId::parse(&s);
        }
    }
}
