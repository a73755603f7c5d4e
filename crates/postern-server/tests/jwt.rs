//! JWT mode against the real binary over real HTTP: the JWKS verifies the
//! session JWT offline; the JWT is accepted by check, resume and refresh
//! only while its session lives; forged, algorithm-confused, expired and
//! foreign JWTs are refused; a key rotation keeps old JWTs valid while new
//! ones are signed by the new key.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{device, enroll_and_login, http, postern, Server};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

async fn check(server: &Server, token: &str) -> (u16, Value, Option<String>) {
    let response = http()
        .get(server.url("/v1/check"))
        .bearer_auth(token)
        .header("X-Postern-Device", "laptop")
        // The identity as JSON too (a pass has no body otherwise).
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let user = response
        .headers()
        .get("x-postern-user")
        .map(|v| v.to_str().unwrap().to_string());
    (status, response.json().await.unwrap(), user)
}

async fn refresh(server: &Server, token: &str) -> reqwest::Response {
    http()
        .post(server.url("/v1/session/refresh"))
        .bearer_auth(token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap()
}

async fn jwks(server: &Server) -> Value {
    let response = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Verifies `token` the way any other service would: from the JWKS alone.
fn verify_offline(token: &str, jwks: &Value) -> Value {
    let kid = kid_of(token);
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the JWT's kid is published");
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    let decoding = DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["postern"]);
    // An offline verifier checks the audience and the explicit type too.
    validation.set_audience(&["postern"]);
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("postern-session+jwt"));
    jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .unwrap()
        .claims
}

#[tokio::test]
async fn a_session_jwt_verifies_offline_and_lives_exactly_as_long_as_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--session-mode", "jwt"]);
    let client = server.client();
    let (_, login) = enroll_and_login(&client, "alice", "laptop").await;
    let token = login.token.clone();
    assert!(token.starts_with("eyJ"), "a JWT in JWT mode");

    let claims = verify_offline(&token, &jwks(&server).await);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["sid"], login.session_id.as_str());
    assert!(claims["dbh"].as_str().is_some_and(|d| d.len() == 43));
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 15 * 60, "the default JWT lifetime");

    let (status, body, user) = check(&server, &token).await;
    assert_eq!((status, user.as_deref()), (200, Some("alice")), "{body}");
    let resumed = client
        .resume(&token, Some(&device("laptop")), None)
        .await
        .unwrap();
    assert_eq!(resumed.decision, "resumed");
    let elsewhere = client
        .resume(&token, Some(&device("phone")), None)
        .await
        .unwrap();
    assert_eq!(elsewhere.reason.as_deref(), Some("device_mismatch"));

    // Refresh: a new JWT for the same session, later expiry.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refreshed = refresh(&server, &token).await;
    assert_eq!(refreshed.status(), 200);
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    let refreshed: Value = refreshed.json().await.unwrap();
    let fresh = refreshed["token"].as_str().unwrap().to_string();
    let fresh_claims = verify_offline(&fresh, &jwks(&server).await);
    assert_eq!(fresh_claims["sid"], claims["sid"]);
    assert!(fresh_claims["exp"].as_u64() > claims["exp"].as_u64());

    // Logout with the JWT revokes the session: both JWTs die at once here,
    // although their signatures and `exp` are still fine.
    let out = http()
        .post(server.url("/v1/session/logout"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    for jwt in [&token, &fresh] {
        let (status, body, _) = check(&server, jwt).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("full_auth_required"))
        );
        let r = client
            .resume(jwt, Some(&device("laptop")), None)
            .await
            .unwrap();
        assert_eq!(r.reason.as_deref(), Some("revoked"));
    }
    let refused = refresh(&server, &token).await;
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn forged_confused_expired_and_foreign_jwts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--session-mode", "jwt", "--jwt-ttl", "1s"]);
    let (_, login) = enroll_and_login(&server.client(), "bob", "laptop").await;
    let token = login.token;
    let keys = jwks(&server).await;
    let claims = verify_offline(&token, &keys);
    let kid = kid_of(&token);
    let x = keys["keys"][0]["x"].as_str().unwrap().to_string();

    let mut forged = Vec::new();
    // HS256 keyed with the public key: the classic algorithm confusion.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.clone());
    forged.push(
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(x.as_bytes())).unwrap(),
    );
    forged.push(
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(&x).unwrap()),
        )
        .unwrap(),
    );
    // alg: none.
    let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    forged.push(format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": kid})),
        b64(claims.clone())
    ));
    // Another user's name under the original signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut mallory = claims.clone();
    mallory["sub"] = json!("mallory");
    forged.push(format!("{}.{}.{}", parts[0], b64(mallory), parts[2]));
    // A JWT from another Postern (another keyring), for a real session there.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Server::start(other_dir.path(), &["--session-mode", "jwt"]);
    let (_, foreign) = enroll_and_login(&other.client(), "bob", "laptop").await;
    forged.push(foreign.token);
    for jwt in &forged {
        let (status, body, user) = check(&server, jwt).await;
        assert_eq!((status, user), (401, None), "{jwt}: {body}");
    }
    let (status, _, _) = check(&server, &token).await;
    assert_eq!(status, 200, "the genuine JWT still passes");

    // Expired (1 s lifetime, 1 s leeway): refused, and refresh too.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let (status, body, _) = check(&server, &token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
    assert_eq!(refresh(&server, &token).await.status(), 401);
}

#[tokio::test]
async fn after_a_key_rotation_old_jwts_keep_verifying_and_new_ones_use_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--session-mode", "jwt"]);
    let (identity, before) = enroll_and_login(&server.client(), "carol", "laptop").await;
    let old_kid = kid_of(&before.token);
    assert!(server.terminate());

    let rotated = postern()
        .args(["keys", "rotate", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(rotated.status.success());

    let server = Server::start(dir.path(), &["--session-mode", "jwt"]);
    let keys = jwks(&server).await;
    let kids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "current and previous keys are published");
    assert_eq!(kids[1], old_kid);
    let (status, _, _) = check(&server, &before.token).await;
    assert_eq!(status, 200, "a JWT signed before the rotation still passes");
    verify_offline(&before.token, &keys);

    let after = server
        .client()
        .login(&identity, &device("laptop"))
        .await
        .unwrap();
    assert_eq!(kid_of(&after.token), kids[0]);
    assert_ne!(kids[0], old_kid);
    verify_offline(&after.token, &keys);

    // Outside JWT mode there is no JWKS and no refresh.
    drop(server);
    let plain = Server::start(dir.path(), &[]);
    for (method, path) in [
        ("GET", "/.well-known/jwks.json"),
        ("POST", "/v1/session/refresh"),
    ] {
        let r = http()
            .request(method.parse().unwrap(), plain.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

/// Verifies an ML-DSA-65 JWT from the JWKS alone, with RustCrypto's
/// `ml-dsa` (not the libcrux implementation that signed it), as RFC 9964
/// specifies: the empty context string over `header.payload`.
fn verify_ml_dsa_offline(token: &str, jwks: &Value) -> Value {
    use ml_dsa::{EncodedSignature, EncodedVerifyingKey, MlDsa65, Signature, VerifyingKey};
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ML-DSA-65");
    assert_eq!(header["typ"], "postern-session+jwt");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the JWT's kid is published");
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str()),
        (Some("AKP"), Some("ML-DSA-65"))
    );
    let public = URL_SAFE_NO_PAD
        .decode(key["pub"].as_str().unwrap())
        .unwrap();
    let public = EncodedVerifyingKey::<MlDsa65>::try_from(public.as_slice()).unwrap();
    let verifying = VerifyingKey::<MlDsa65>::decode(&public);
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let signature = EncodedSignature::<MlDsa65>::try_from(signature.as_slice()).unwrap();
    let signature = Signature::<MlDsa65>::decode(&signature).unwrap();
    let signed = format!("{}.{}", parts[0], parts[1]);
    assert!(verifying.verify_with_context(signed.as_bytes(), b"", &signature));
    let mut tampered = signed.clone().into_bytes();
    tampered[signed.len() - 1] ^= 1;
    assert!(!verifying.verify_with_context(&tampered, b"", &signature));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn ml_dsa_65_jwts_verify_offline_with_another_implementation_and_die_with_their_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--session-mode",
            "jwt",
            "--jwt-alg",
            "ML-DSA-65",
            "--jwt-audience",
            "https://api.example",
        ],
    );
    let client = server.client();
    let (_, login) = enroll_and_login(&client, "alice", "laptop").await;
    let token = login.token.clone();
    let claims = verify_ml_dsa_offline(&token, &jwks(&server).await);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "https://api.example");
    assert_eq!(claims["sid"], login.session_id.as_str());

    let (status, body, user) = check(&server, &token).await;
    assert_eq!((status, user.as_deref()), (200, Some("alice")), "{body}");
    let refreshed: Value = refresh(&server, &token).await.json().await.unwrap();
    let fresh = refreshed["token"].as_str().unwrap().to_string();
    verify_ml_dsa_offline(&fresh, &jwks(&server).await);

    // An Ed25519 JWT from an EdDSA server is refused here (one algorithm
    // per deployment), whatever its kid.
    let other_dir = tempfile::tempdir().unwrap();
    let ed_server = Server::start(other_dir.path(), &["--session-mode", "jwt"]);
    let (_, ed_login) = enroll_and_login(&ed_server.client(), "alice", "laptop").await;
    assert_eq!(check(&server, &ed_login.token).await.0, 401);

    let out = http()
        .post(server.url("/v1/session/logout"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    for jwt in [&token, &fresh] {
        assert_eq!(check(&server, jwt).await.0, 401);
    }
}
