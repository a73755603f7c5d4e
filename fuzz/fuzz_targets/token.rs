//! The opaque bearer token and the session id (`postern_core::token`):
//! parsing never panics, and what parses is canonical (prints back as the
//! same text), so one session has exactly one token string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_core::token::{SessionId, SessionToken, TOKEN_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match SessionToken::parse(text) {
        Ok(token) => {
            assert_eq!(text.len(), TOKEN_LEN);
            assert_eq!(token.expose(), text);
            let id = token.id();
            assert_eq!(SessionId::parse(&id.to_text()), Ok(id));
            assert_eq!(
                SessionToken::parse(&token.expose()).map(|t| t.verifier_hash().as_bytes().to_vec()),
                Ok(token.verifier_hash().as_bytes().to_vec())
            );
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    if let Ok(id) = SessionId::parse(text) {
        assert_eq!(id.to_text(), text);
    }
});
