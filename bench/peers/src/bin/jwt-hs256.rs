//! jsonwebtoken HS256: `POST /login?user=ID` answers a token signed with a
//! random 256-bit key made at start-up; `GET /me` validates the bearer token
//! and answers its subject.

use std::process::ExitCode;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rand::RngCore as _;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match postern_peers::Args::parse("jwt-hs256") {
        Ok(a) => a,
        Err(e) => {
            eprintln!("jwt-hs256: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let keys = postern_peers::jwt::Keys::new(
        Algorithm::HS256,
        EncodingKey::from_secret(&secret),
        DecodingKey::from_secret(&secret),
    );
    postern_peers::serve("jwt-hs256", args.listen, postern_peers::jwt::router(keys)).await
}
