//! Session JWTs signed with EdDSA (Ed25519 through jsonwebtoken):
//! `JwtKeys::verify`, `owns` and the gate's `peek_jwt` on arbitrary text;
//! claims from the input signed, verified back, and refused once changed.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use postern_server::jwt::{JwtAlgorithm, JwtKeys};

fuzz_target!(|data: &[u8]| {
    static KEYS: OnceLock<JwtKeys> = OnceLock::new();
    let keys = KEYS.get_or_init(|| postern_fuzz::jwt::keys(JwtAlgorithm::EdDsa));
    postern_fuzz::jwt::run(keys, data);
});
