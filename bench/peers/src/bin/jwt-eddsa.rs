//! jsonwebtoken EdDSA (Ed25519): `POST /login?user=ID` answers a token
//! signed with a random key made at start-up; `GET /me` validates the
//! bearer token against the public key and answers its subject. The keys
//! are made as Postern's own JWT mode makes them (`crates/postern-server/src/jwt.rs`):
//! a PKCS#8 private key and the public key's `x` component.

use std::process::ExitCode;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rand::RngCore as _;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match postern_peers::Args::parse("jwt-eddsa") {
        Ok(a) => a,
        Err(e) => {
            eprintln!("jwt-eddsa: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = match signing.to_pkcs8_der() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("jwt-eddsa: cannot encode the key: {e}");
            return ExitCode::FAILURE;
        }
    };
    let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
    let decoding = match DecodingKey::from_ed_components(&x) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("jwt-eddsa: cannot parse the public key: {e}");
            return ExitCode::FAILURE;
        }
    };
    let keys = postern_peers::jwt::Keys::new(
        Algorithm::EdDSA,
        EncodingKey::from_ed_der(der.as_bytes()),
        decoding,
    );
    postern_peers::serve("jwt-eddsa", args.listen, postern_peers::jwt::router(keys)).await
}
