//! Passkey ceremonies and session delivery over real HTTP, against the
//! real binary, with a software authenticator standing in for the browser
//! (the browser itself is `browser.rs`): bearer and cookie modes, cookie
//! attributes, the device cookie a cookie session is bound to,
//! bearer-before-cookie, logout, several origins, single-use and expiring
//! ceremonies, malformed and forged responses, restart.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::soft_passkey::SoftPasskey;
use common::{device, enroll_and_login, error_of, http, Server};
use serde_json::{json, Value};

/// The server's default passkey origin and rp id.
const ORIGIN: &str = "http://localhost:8080";
const COOKIE: &str = "__Host-postern";
/// The device cookie beside it, which cookie sessions are bound to.
const DEVICE_COOKIE: &str = "__Host-postern-device";
/// The one body of every failed login.
const FAILED: &str = r#"{"error":"authentication_failed","message":"authentication failed"}"#;

fn authenticator() -> SoftPasskey {
    SoftPasskey::new(ORIGIN, "localhost")
}

async fn post(server: &Server, path: &str, body: Value) -> reqwest::Response {
    http()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Starts a registration for `user`, optionally with a session token.
async fn register_start(server: &Server, user: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = http()
        .post(server.url("/v1/passkeys/register/start"))
        .json(&json!({ "user": user }));
    if let Some(token) = token {
        request = request
            .bearer_auth(token)
            .header("X-Postern-Device", "laptop");
    }
    request.send().await.unwrap()
}

/// A whole registration of `passkey` for a user who has no credential yet.
async fn register(server: &Server, passkey: &mut SoftPasskey, user: &str) -> Value {
    register_with(server, passkey, user, None).await
}

/// Registers `passkey` for `user`, with a session of the account if given;
/// returns the registration's answer.
async fn register_with(
    server: &Server,
    passkey: &mut SoftPasskey,
    user: &str,
    token: Option<&str>,
) -> Value {
    let start: Value = register_start(server, user, token)
        .await
        .json()
        .await
        .unwrap();
    let credential = passkey.register(&start["options"]);
    let done = post(
        server,
        "/v1/passkeys/register/finish",
        json!({ "ceremony_id": start["ceremony_id"], "credential": credential }),
    )
    .await;
    assert_eq!(done.status(), 201);
    done.json().await.unwrap()
}

/// Registers a new authenticator on `user`'s existing account, authorised
/// by a session of that account; returns it and its credential id.
async fn add_passkey(server: &Server, user: &str, token: &str) -> (SoftPasskey, String) {
    let mut passkey = authenticator();
    let done = register_with(server, &mut passkey, user, Some(token)).await;
    (passkey, done["credential_id"].as_str().unwrap().to_string())
}

/// A whole login that must succeed; returns the session token.
async fn login_token(server: &Server, passkey: &mut SoftPasskey, user: &str) -> String {
    let answer: Value = login(server, passkey, Some(user))
        .await
        .json()
        .await
        .unwrap();
    answer["token"].as_str().unwrap().to_string()
}

async fn login_start(server: &Server, user: Option<&str>) -> Value {
    let body = user.map_or(json!({}), |u| json!({ "user": u }));
    let start = post(server, "/v1/passkeys/login/start", body).await;
    assert_eq!(start.status(), 200);
    start.json().await.unwrap()
}

async fn login_finish(server: &Server, start: &Value, credential: Value) -> reqwest::Response {
    post(
        server,
        "/v1/passkeys/login/finish",
        json!({ "ceremony_id": start["ceremony_id"], "credential": credential, "device": "laptop" }),
    )
    .await
}

/// A whole login; returns the response.
async fn login(
    server: &Server,
    passkey: &mut SoftPasskey,
    user: Option<&str>,
) -> reqwest::Response {
    let start = login_start(server, user).await;
    let credential = passkey.assert(&start["options"]);
    login_finish(server, &start, credential).await
}

/// Every `Set-Cookie` of a response, in order.
fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The value `set_cookie` sets for the cookie called `name`.
fn value_of(set_cookie: &str, name: &str) -> String {
    set_cookie
        .strip_prefix(&format!("{name}="))
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_string()
}

/// The two cookies a cookie-mode login sets: the session token and the
/// device secret the session is bound to.
#[derive(Debug, Clone)]
struct Jar {
    session: String,
    device: String,
}

impl Jar {
    /// The cookies of a login response, which sets exactly these two.
    fn of(response: &reqwest::Response) -> Jar {
        let set = set_cookies(response);
        assert_eq!(set.len(), 2, "{set:?}");
        Jar {
            session: value_of(&set[0], COOKIE),
            device: value_of(&set[1], DEVICE_COOKIE),
        }
    }

    /// A `Cookie` header with both, among another site cookie.
    fn both(&self) -> String {
        format!(
            "theme=dark; {COOKIE}={}; {DEVICE_COOKIE}={}",
            self.session, self.device
        )
    }

    /// A `Cookie` header with the session cookie alone.
    fn session_only(&self) -> String {
        format!("{COOKIE}={}", self.session)
    }
}

/// `GET /v1/check` with an optional bearer token (and `X-Postern-Device:
/// laptop`) and an optional `Cookie` header.
async fn check(server: &Server, bearer: Option<&str>, cookie: Option<&str>) -> reqwest::Response {
    let mut request = http()
        .get(server.url("/v1/check"))
        .header("X-Postern-Device", "laptop");
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    request.send().await.unwrap()
}

/// The error and reason of a refusal.
async fn refusal(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
        body["reason"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn in_bearer_mode_a_passkey_login_answers_with_the_token_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut passkey = authenticator();
    let registered = register(&server, &mut passkey, "alice").await;
    assert_eq!(registered["user"], "alice");
    assert_eq!(registered["backup_eligible"], false);

    let response = login(&server, &mut passkey, Some("alice")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers().get("set-cookie").is_none());
    let body: Value = response.json().await.unwrap();
    let stages: Vec<&str> = body["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["passkey", "attestation", "persist"]);
    let token = body["token"].as_str().unwrap();
    let ok = check(&server, Some(token), None).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-postern-user"], "alice");
    let r = server
        .client()
        .resume(token, Some(&device("laptop")), None)
        .await
        .unwrap();
    assert_eq!(r.decision, "resumed");
    // Bearer mode never reads a cookie.
    let cookie_only = check(&server, None, Some(&format!("{COOKIE}={token}"))).await;
    assert_eq!(error_of(cookie_only).await, (401, "missing_token".into()));
}

#[tokio::test]
async fn in_cookie_mode_login_sets_the_host_cookies_and_the_json_has_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--session-mode", "cookie"]);
    let mut passkey = authenticator();
    register(&server, &mut passkey, "alice").await;
    let response = login(&server, &mut passkey, Some("alice")).await;
    assert_eq!(response.status(), 200);
    let jar = Jar::of(&response);
    assert!(jar.session.starts_with("pst1."), "{jar:?}");
    assert_eq!(
        set_cookies(&response),
        [
            format!(
                "{COOKIE}={}; Path=/; Max-Age=28800; HttpOnly; Secure; SameSite=Lax",
                jar.session
            ),
            format!(
                "{DEVICE_COOKIE}={}; Path=/; Max-Age=28800; HttpOnly; Secure; SameSite=Lax",
                jar.device
            )
        ]
    );
    // The device secret: 256 random bits, base64url, fresh at each login.
    assert_eq!(base64_decode(&jar.device).len(), 32);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("token").is_none(), "{body}");
    assert!(!body.to_string().contains(&jar.session[5..]));
    assert!(!body.to_string().contains(&jar.device));
    assert_eq!(body["user"], "alice");
    let again = Jar::of(&login(&server, &mut passkey, Some("alice")).await);
    assert_ne!(again.device, jar.device);

    let ok = check(&server, None, Some(&jar.both())).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-postern-user"], "alice");
    let resumed: Value = http()
        .post(server.url("/v1/session/resume"))
        .header("Cookie", jar.both())
        .json(&json!({ "device": "laptop" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["decision"], "resumed");
}

#[tokio::test]
async fn a_session_cookie_resumes_only_with_its_device_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--session-mode", "cookie"]);
    let mut passkey = authenticator();
    register(&server, &mut passkey, "alice").await;
    let jar = Jar::of(&login(&server, &mut passkey, Some("alice")).await);
    let mismatch = (
        401,
        "full_auth_required".to_string(),
        "device_mismatch".to_string(),
    );

    // Both cookies, as a browser sends them on any request: 200.
    let ok = check(&server, None, Some(&jar.both())).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-postern-user"], "alice");

    // The session cookie stolen alone does not resume.
    let alone = check(&server, None, Some(&jar.session_only())).await;
    assert_eq!(refusal(alone).await, mismatch);
    // Nor with another device cookie: a well-formed stranger's secret, the
    // secret of another session, or something that is no secret.
    let other = Jar::of(&login(&server, &mut passkey, Some("alice")).await);
    let stranger = base64_encode(&[7u8; 32]);
    for wrong in [stranger.as_str(), other.device.as_str(), "laptop", ""] {
        let cookie = format!("{}; {DEVICE_COOKIE}={wrong}", jar.session_only());
        let refused = check(&server, None, Some(&cookie)).await;
        assert_eq!(refusal(refused).await, mismatch, "device cookie {wrong:?}");
    }
    // A header cannot stand in for the device cookie, not even one naming
    // the right secret: with the session cookie only the cookie counts.
    let header = http()
        .get(server.url("/v1/check"))
        .header("Cookie", jar.session_only())
        .header("X-Postern-Device", &jar.device)
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(header).await, mismatch);
    // Nor override it: a wrong header beside both cookies changes nothing.
    let beside = http()
        .get(server.url("/v1/check"))
        .header("Cookie", jar.both())
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(beside.status(), 200);
    // Resume follows the same rule: a device in the body is not consulted.
    for (cookie, body, expected) in [
        (
            jar.session_only(),
            json!({ "device": &jar.device }),
            "full_auth_required",
        ),
        (jar.both(), json!({ "device": "laptop" }), "resumed"),
    ] {
        let answer: Value = http()
            .post(server.url("/v1/session/resume"))
            .header("Cookie", cookie)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let decision = answer["decision"].as_str().or(answer["error"].as_str());
        assert_eq!(decision, Some(expected), "{answer}");
    }
    // Adding a passkey with the session cookie alone is refused too.
    let add = http()
        .post(server.url("/v1/passkeys/register/start"))
        .header("Cookie", jar.session_only())
        .header("Origin", ORIGIN)
        .json(&json!({ "user": "alice" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(add).await, mismatch);

    // An API client holding both values may send them as a bearer token
    // and X-Postern-Device: the device cookie's secret is the device id.
    let api = http()
        .get(server.url("/v1/check"))
        .bearer_auth(&jar.session)
        .header("X-Postern-Device", &jar.device)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    let api_without = check(&server, Some(&jar.session), None).await;
    assert_eq!(refusal(api_without).await, mismatch);
}

#[tokio::test]
async fn cookie_name_same_site_and_lifetime_follow_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        "[session]\nttl = \"2h\"\nresume_window = \"1h\"\n[session.cookie]\nhttp_only = true\nmax_age = \"30m\"\n",
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--session-mode",
            "cookie",
            "--cookie-name",
            "__Secure-sid",
            "--cookie-same-site",
            "strict",
        ],
    );
    let mut passkey = authenticator();
    register(&server, &mut passkey, "alice").await;
    let response = login(&server, &mut passkey, Some("alice")).await;
    let cookies = set_cookies(&response);
    let token = value_of(&cookies[0], "__Secure-sid");
    let device = value_of(&cookies[1], "__Secure-sid-device");
    assert_eq!(
        cookies,
        [
            format!(
                "__Secure-sid={token}; Path=/; Max-Age=1800; HttpOnly; Secure; SameSite=Strict"
            ),
            format!("__Secure-sid-device={device}; Path=/; Max-Age=1800; HttpOnly; Secure; SameSite=Strict")
        ],
        "the device cookie is named after the session cookie and shares its attributes"
    );
    let ok = check(
        &server,
        None,
        Some(&format!(
            "__Secure-sid={token}; __Secure-sid-device={device}"
        )),
    )
    .await;
    assert_eq!(ok.status(), 200);

    // A __Host- cookie with a Domain is refused at start, with a reason.
    std::fs::write(
        &config,
        "[session]\nmode = \"cookie\"\n[session.cookie]\ndomain = \"example.com\"\n",
    )
    .unwrap();
    let out = common::postern()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("__Host- cookie"), "{stderr}");
}

#[tokio::test]
async fn the_bearer_header_wins_over_the_cookie_and_never_falls_through() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--session-mode", "cookie"]);
    let mut alice = authenticator();
    let mut bob = authenticator();
    register(&server, &mut alice, "alice").await;
    register(&server, &mut bob, "bob").await;
    let alice_jar = Jar::of(&login(&server, &mut alice, Some("alice")).await);
    let alice = alice_jar.both();
    let bob = Jar::of(&login(&server, &mut bob, Some("bob")).await);

    // Bob's token as a bearer, with its device in the header, beside
    // Alice's cookies: the bearer and its header decide.
    let both = http()
        .get(server.url("/v1/check"))
        .bearer_auth(&bob.session)
        .header("X-Postern-Device", &bob.device)
        .header("Cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 200);
    assert_eq!(both.headers()["x-postern-user"], "bob");
    // The bearer's device comes from the header, never from the cookies.
    let cookies_device = check(&server, Some(&alice_jar.session), Some(&alice)).await;
    assert_eq!(
        refusal(cookies_device).await,
        (401, "full_auth_required".into(), "device_mismatch".into())
    );

    let garbage = check(&server, Some("garbage"), Some(&alice)).await;
    assert_eq!(error_of(garbage).await, (401, "invalid_token".into()));
    let stranger = postern_core::token::SessionToken::generate(&mut rand::thread_rng()).expose();
    let unknown = check(&server, Some(&stranger), Some(&alice)).await;
    assert_eq!(error_of(unknown).await, (401, "full_auth_required".into()));
    let cookie_only = check(&server, None, Some(&alice)).await;
    assert_eq!(cookie_only.headers()["x-postern-user"], "alice");
}

#[tokio::test]
async fn logout_by_cookie_revokes_the_session_and_clears_the_cookie_for_its_own_origin_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--session-mode", "cookie"]);
    let mut passkey = authenticator();
    register(&server, &mut passkey, "alice").await;
    let jar = Jar::of(&login(&server, &mut passkey, Some("alice")).await);
    let cookies = jar.both();
    let logout = |origin: Option<&'static str>| {
        let mut request = http()
            .post(server.url("/v1/session/logout"))
            .header("Cookie", &cookies);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send()
    };

    for origin in [None, Some("http://evil.example")] {
        let refused = logout(origin).await.unwrap();
        assert!(refused.headers().get("set-cookie").is_none());
        assert_eq!(error_of(refused).await, (403, "cross_origin".into()));
    }
    assert_eq!(check(&server, None, Some(&cookies)).await.status(), 200);

    let out = logout(Some(ORIGIN)).await.unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(
        set_cookies(&out),
        [
            format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"),
            format!("{DEVICE_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax")
        ],
        "logout clears both cookies"
    );
    let body: Value = out.json().await.unwrap();
    assert_eq!(body["revoked"], true);
    let after: Value = check(&server, None, Some(&cookies))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (after["error"].as_str(), after["reason"].as_str()),
        (Some("full_auth_required"), Some("revoked"))
    );

    // A cookie that is no session is cleared too.
    let garbage = http()
        .post(server.url("/v1/session/logout"))
        .header("Cookie", format!("{COOKIE}=garbage"))
        .header("Origin", ORIGIN)
        .send()
        .await
        .unwrap();
    let cleared = set_cookies(&garbage);
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert!(
        cleared.iter().all(|c| c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    assert_eq!(error_of(garbage).await, (400, "malformed_token".into()));
}

#[tokio::test]
async fn every_configured_origin_may_use_passkeys_cookies_and_proofs_and_no_other() {
    // A web app and its admin console on two origins of one rp id.
    const ADMIN: &str = "http://localhost:9090";
    const THIRD: &str = "http://localhost:7070";
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--session-mode",
            "cookie",
            "--origin",
            ORIGIN,
            "--origin",
            ADMIN,
        ],
    );

    // A passkey registered from the admin console signs in there and on
    // the app's origin.
    let mut passkey = SoftPasskey::new(ADMIN, "localhost");
    register(&server, &mut passkey, "alice").await;
    let from_admin = login(&server, &mut passkey, Some("alice")).await;
    assert_eq!(from_admin.status(), 200);
    let admin = Jar::of(&from_admin);
    passkey.origin = ORIGIN.into();
    let app = Jar::of(&login(&server, &mut passkey, Some("alice")).await);

    // A third origin, even on the same host: no ceremony from it passes.
    passkey.origin = THIRD.into();
    let start = login_start(&server, Some("alice")).await;
    let third = passkey.assert(&start["options"]);
    let refused = login_finish(&server, &start, third).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.text().await.unwrap(), FAILED);
    let start: Value = register_start(&server, "mallory", None)
        .await
        .json()
        .await
        .unwrap();
    let mut elsewhere = SoftPasskey::new(THIRD, "localhost");
    let r = post(
        &server,
        "/v1/passkeys/register/finish",
        json!({ "ceremony_id": start["ceremony_id"], "credential": elsewhere.register(&start["options"]) }),
    )
    .await;
    assert_eq!(error_of(r).await, (401, "passkey_rejected".into()));

    // A cookie-authenticated change must come from one of the two.
    let logout = |jar: &Jar, origin: &str| {
        http()
            .post(server.url("/v1/session/logout"))
            .header("Cookie", jar.both())
            .header("Origin", origin)
            .send()
    };
    for origin in [THIRD, "http://localhost", "https://localhost:9090"] {
        let r = logout(&admin, origin).await.unwrap();
        assert_eq!(error_of(r).await, (403, "cross_origin".into()), "{origin}");
    }
    assert_eq!(logout(&admin, ADMIN).await.unwrap().status(), 200);
    assert_eq!(logout(&app, ORIGIN).await.unwrap().status(), 200);

    // Identity proofs may be made for either origin by default, not a third.
    let client = server.client();
    let identity = postern_client::identity_file::IdentityFile::generate("bob").unwrap();
    client.enroll(&identity).await.unwrap();
    for (audience, status) in [(ADMIN, 200), (ORIGIN, 200), (THIRD, 400)] {
        let challenge = client.challenge("bob").await.unwrap();
        let proof = postern_client::http::prove(&identity, &challenge, &device("laptop"), audience)
            .unwrap();
        let r = post(
            &server,
            "/v1/auth/full",
            json!({ "user": "bob", "challenge_id": challenge.challenge_id, "device": "laptop",
                "identity_proof": proof, "audience": audience }),
        )
        .await;
        assert_eq!(r.status(), status, "proof for {audience}");
    }
}

#[tokio::test]
async fn ceremonies_are_single_use_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--ceremony-ttl", "300ms"]);
    let mut passkey = authenticator();

    let start: Value = register_start(&server, "alice", None)
        .await
        .json()
        .await
        .unwrap();
    let credential = passkey.register(&start["options"]);
    let body = json!({ "ceremony_id": start["ceremony_id"], "credential": credential });
    assert_eq!(
        post(&server, "/v1/passkeys/register/finish", body.clone())
            .await
            .status(),
        201
    );
    let replay = post(&server, "/v1/passkeys/register/finish", body).await;
    assert_eq!(error_of(replay).await, (401, "ceremony_invalid".into()));

    let start = login_start(&server, Some("alice")).await;
    let credential = passkey.assert(&start["options"]);
    let first = login_finish(&server, &start, credential.clone()).await;
    assert_eq!(first.status(), 200);
    let token = first.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let replay = login_finish(&server, &start, credential).await;
    assert_eq!(error_of(replay).await, (401, "ceremony_invalid".into()));

    let late = login_start(&server, Some("alice")).await;
    let credential = passkey.assert(&late["options"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = login_finish(&server, &late, credential.clone()).await;
    assert_eq!(error_of(expired).await, (401, "ceremony_expired".into()));
    let gone = login_finish(&server, &late, credential).await;
    assert_eq!(error_of(gone).await, (401, "ceremony_invalid".into()));

    let late = register_start(&server, "bob", None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let credential = authenticator().register(&late["options"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = post(
        &server,
        "/v1/passkeys/register/finish",
        json!({ "ceremony_id": late["ceremony_id"], "credential": credential }),
    )
    .await;
    assert_eq!(error_of(expired).await, (401, "ceremony_expired".into()));

    // One session came out of all that.
    let list: Value = http()
        .get(server.url("/v1/users/alice/sessions"))
        .bearer_auth(&token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn malformed_forged_and_foreign_responses_are_refused_and_mint_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut passkey = authenticator();
    register(&server, &mut passkey, "alice").await;
    let finish = "/v1/passkeys/login/finish";

    let r = http()
        .post(server.url(finish))
        .header("content-type", "application/json")
        .body("{\"ceremony_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (400, "invalid_json".into()));
    let start = login_start(&server, Some("alice")).await;
    let good = passkey.assert(&start["options"]);
    let r = post(
        &server,
        finish,
        json!({ "ceremony_id": start["ceremony_id"], "device": "laptop" }),
    )
    .await;
    assert_eq!(error_of(r).await, (400, "invalid_request".into()));
    let mut bad_base64 = good.clone();
    bad_base64["response"]["signature"] = json!("!!not base64!!");
    let r = login_finish(&server, &start, bad_base64).await;
    assert_eq!(error_of(r).await, (400, "invalid_request".into()));
    let r = post(
        &server,
        finish,
        json!({ "ceremony_id": "!!", "credential": good, "device": "laptop" }),
    )
    .await;
    assert_eq!(error_of(r).await, (400, "invalid_ceremony_id".into()));
    let r = post(&server, finish, json!({ "ceremony_id": start["ceremony_id"], "credential": good, "device": "laptop", "admin": true })).await;
    assert_eq!(error_of(r).await, (400, "invalid_request".into()));
    // None of the malformed bodies reached the ceremony: it still finishes.
    assert_eq!(login_finish(&server, &start, good).await.status(), 200);

    // Every refusal is the same bytes; the metrics say why.
    let refused = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(body, FAILED);
        (status, "authentication_failed".to_string())
    };

    // A forged signature.
    let start = login_start(&server, Some("alice")).await;
    let mut forged = passkey.assert(&start["options"]);
    let mut signature = base64_decode(forged["response"]["signature"].as_str().unwrap());
    let last = signature.len() - 1;
    signature[last] ^= 1;
    forged["response"]["signature"] = json!(base64_encode(&signature));
    assert_eq!(
        refused(login_finish(&server, &start, forged).await).await,
        (401, "authentication_failed".into())
    );

    // Another origin (a phishing page relaying the ceremony).
    let start = login_start(&server, Some("alice")).await;
    passkey.origin = "http://localhost.evil.example".into();
    let phished = passkey.assert(&start["options"]);
    passkey.origin = ORIGIN.into();
    assert_eq!(
        refused(login_finish(&server, &start, phished).await).await,
        (401, "authentication_failed".into())
    );
    let start: Value = register_start(&server, "mallory", None)
        .await
        .json()
        .await
        .unwrap();
    let mut phisher = SoftPasskey::new("https://evil.example", "localhost");
    let r = post(
        &server,
        "/v1/passkeys/register/finish",
        json!({ "ceremony_id": start["ceremony_id"], "credential": phisher.register(&start["options"]) }),
    )
    .await;
    assert_eq!(error_of(r).await, (401, "passkey_rejected".into()));

    // A cloned authenticator: its signature counter went backwards.
    // The stored counter is 2 (registration 1, the good login 2).
    let start = login_start(&server, Some("alice")).await;
    passkey.counter = 1;
    let cloned = passkey.assert(&start["options"]);
    assert_eq!(
        refused(login_finish(&server, &start, cloned).await).await,
        (401, "authentication_failed".into())
    );

    // Someone else's passkey, and a passkey nobody registered.
    let mut bob = authenticator();
    register(&server, &mut bob, "bob").await;
    let start = login_start(&server, Some("alice")).await;
    let foreign = bob.assert(&start["options"]);
    assert_eq!(
        refused(login_finish(&server, &start, foreign).await).await,
        (401, "authentication_failed".into())
    );
    let start = login_start(&server, None).await;
    let unknown = authenticator().assert(&start["options"]);
    assert_eq!(
        refused(login_finish(&server, &start, unknown).await).await,
        (401, "authentication_failed".into())
    );

    // Only the one good login minted a session.
    let metrics = server.metrics().await;
    assert!(metrics.contains("postern_active_sessions 1"), "{metrics}");
    assert!(
        metrics.contains(
            "postern_auth_stage_duration_seconds_count{stage=\"passkey\",outcome=\"rejected\"} 5"
        ),
        "{metrics}"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_usernameless_login_finds_the_user_by_credential_and_checks_the_user_handle() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut passkey = authenticator();
    register(&server, &mut passkey, "alice").await;

    let start = login_start(&server, None).await;
    assert_eq!(start["options"]["publicKey"]["allowCredentials"], json!([]));
    assert!(start["options"].get("mediation").is_none());
    let credential = passkey.assert(&start["options"]);
    let response = login_finish(&server, &start, credential).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["user"], "alice");

    let start = login_start(&server, None).await;
    let real_handle = std::mem::replace(&mut passkey.user_handle, vec![9; 16]);
    let lying = passkey.assert(&start["options"]);
    passkey.user_handle = real_handle;
    assert_eq!(login_finish(&server, &start, lying).await.status(), 401);

    // A user without passkeys gets a ceremony that no other user's
    // credential can finish.
    let start = login_start(&server, Some("nobody")).await;
    assert_eq!(start["options"]["publicKey"]["allowCredentials"], json!([]));
    let credential = passkey.assert(&start["options"]);
    assert_eq!(
        login_finish(&server, &start, credential).await.status(),
        401
    );
}

#[tokio::test]
async fn adding_a_passkey_to_an_existing_account_needs_a_session_of_that_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut first = authenticator();
    register(&server, &mut first, "alice").await;
    let alice: Value = login(&server, &mut first, Some("alice"))
        .await
        .json()
        .await
        .unwrap();
    let alice_token = alice["token"].as_str().unwrap();
    let (_, bob) = enroll_and_login(&server.client(), "bob", "laptop").await;

    let anonymous = register_start(&server, "alice", None).await;
    assert_eq!(error_of(anonymous).await, (401, "missing_token".into()));
    let foreign = register_start(&server, "alice", Some(&bob.token)).await;
    assert_eq!(error_of(foreign).await, (403, "forbidden".into()));
    // An identity-enrolled user is an existing account too.
    let anonymous = register_start(&server, "bob", None).await;
    assert_eq!(error_of(anonymous).await, (401, "missing_token".into()));

    let own = register_start(&server, "alice", Some(alice_token)).await;
    assert_eq!(own.status(), 200);
    let start: Value = own.json().await.unwrap();
    let excluded = start["options"]["publicKey"]["excludeCredentials"]
        .as_array()
        .unwrap();
    assert_eq!(excluded.len(), 1, "the existing passkey is excluded");
    let mut second = authenticator();
    let credential = second.register(&start["options"]);
    let done = post(
        &server,
        "/v1/passkeys/register/finish",
        json!({ "ceremony_id": start["ceremony_id"], "credential": credential }),
    )
    .await;
    assert_eq!(done.status(), 201);
    assert_eq!(
        login(&server, &mut second, Some("alice")).await.status(),
        200
    );
    assert_eq!(
        login(&server, &mut first, Some("alice")).await.status(),
        200
    );

    // Nor can anyone enroll an identity key for a passkey account.
    let takeover = postern_client::identity_file::IdentityFile::generate("alice").unwrap();
    let err = server.client().enroll(&takeover).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some("already_enrolled"))
    );

    // The same credential cannot be registered twice.
    let start: Value = register_start(&server, "carol", None)
        .await
        .json()
        .await
        .unwrap();
    let mut copy = authenticator();
    copy.credential_id = second.credential_id.clone();
    let again = post(
        &server,
        "/v1/passkeys/register/finish",
        json!({ "ceremony_id": start["ceremony_id"], "credential": copy.register(&start["options"]) }),
    )
    .await;
    assert_eq!(error_of(again).await, (409, "already_registered".into()));
}

#[tokio::test]
async fn passkeys_and_their_counters_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut passkey = authenticator();
    register(&server, &mut passkey, "alice").await;
    assert_eq!(
        login(&server, &mut passkey, Some("alice")).await.status(),
        200
    );
    assert_eq!(
        login(&server, &mut passkey, Some("alice")).await.status(),
        200
    );
    server.kill();

    let server = Server::start(dir.path(), &[]);
    // The stored counter (3) survived: an assertion at 3 is a clone.
    let start = login_start(&server, Some("alice")).await;
    passkey.counter = 2;
    let stale = passkey.assert(&start["options"]);
    assert_eq!(login_finish(&server, &start, stale).await.status(), 401);
    assert_eq!(
        login(&server, &mut passkey, Some("alice")).await.status(),
        200
    );
    assert_eq!(login(&server, &mut passkey, None).await.status(), 200);
}

#[tokio::test]
async fn a_passkey_login_can_require_the_biometric_stage_too() {
    use postern_client::biometric::{BiometricClient, TestPerson};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--stages",
            "identity,biometric",
            "--passkey-stages",
            "passkey,biometric",
        ],
    );
    let client = server.client();
    let bio = BiometricClient::new(&client.biometric_public_key().await.unwrap()).unwrap();
    let dana = TestPerson::new(42);
    // Enroll identity + template, log in with both, then add a passkey.
    let identity = postern_client::identity_file::IdentityFile::generate("dana").unwrap();
    let template = bio.template(&dana.embedding()).unwrap();
    client
        .enroll_with_template(&identity, Some(&template))
        .await
        .unwrap();
    let probe = bio.probe(&dana.capture(0.2, 1)).unwrap();
    let session = client
        .login_with_probe(&identity, &device("laptop"), Some(&probe))
        .await
        .unwrap();
    let start: Value = register_start(&server, "dana", Some(&session.token))
        .await
        .json()
        .await
        .unwrap();
    let mut passkey = authenticator();
    let credential = passkey.register(&start["options"]);
    let done = post(
        &server,
        "/v1/passkeys/register/finish",
        json!({ "ceremony_id": start["ceremony_id"], "credential": credential }),
    )
    .await;
    assert_eq!(done.status(), 201);

    // The passkey alone is no longer enough; the metrics say which stage
    // refused, the answer does not.
    let without = login(&server, &mut passkey, Some("dana")).await;
    assert_eq!(without.status(), 401);
    assert_eq!(without.text().await.unwrap(), FAILED);
    let missing = server
        .metric(
            "postern_auth_stage_duration_seconds_count{stage=\"biometric\",outcome=\"missing\"}",
        )
        .await;
    assert_eq!(missing, 1.0);

    // With a probe of the same person, the login passes both stages.
    let start = login_start(&server, Some("dana")).await;
    let credential = passkey.assert(&start["options"]);
    let probe = bio.probe(&dana.capture(0.2, 2)).unwrap();
    let with = post(
        &server,
        "/v1/passkeys/login/finish",
        json!({
            "ceremony_id": start["ceremony_id"], "credential": credential, "device": "laptop",
            "biometric_probe": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &probe),
        }),
    )
    .await;
    assert_eq!(with.status(), 200);
    let body: Value = with.json().await.unwrap();
    let stages: Vec<&str> = body["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["passkey", "biometric", "attestation", "persist"]);
}

#[tokio::test]
async fn a_cloned_authenticator_racing_the_real_one_gets_at_most_one_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut passkey = authenticator();
    register(&server, &mut passkey, "alice").await;
    for _ in 0..5 {
        // Two ceremonies answered with the same counter, as a clone of the
        // authenticator would, finished at the same time: both verify
        // against the same stored counter, only one may record its use.
        let (first, second) = tokio::join!(
            login_start(&server, Some("alice")),
            login_start(&server, Some("alice"))
        );
        let counter = passkey.counter;
        let real = passkey.assert(&first["options"]);
        passkey.counter = counter;
        let clone = passkey.assert(&second["options"]);
        let (a, b) = tokio::join!(
            login_finish(&server, &first, real),
            login_finish(&server, &second, clone)
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 401]);
    }
    assert_eq!(
        login(&server, &mut passkey, Some("alice")).await.status(),
        200
    );
}

/// Revoking the key every credential descends from would freeze the
/// account: refused unless asked for (`freeze=true`). A frozen account's
/// key and the passkeys it added are dead, also after a restart.
#[tokio::test]
async fn revoking_the_key_everything_descends_from_takes_freeze_and_freezes_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (identity, by_identity) = enroll_and_login(&client, "bob", "laptop").await;
    let (mut passkey, passkey_id) = add_passkey(&server, "bob", &by_identity.token).await;
    let by_passkey = login_token(&server, &mut passkey, "bob").await;

    let revoke = |query: &'static str| {
        let url = server.url(&format!("/v1/users/bob/identity{query}"));
        let token = by_identity.token.clone();
        async move {
            http()
                .delete(url)
                .bearer_auth(token)
                .header("X-Postern-Device", "laptop")
                .send()
                .await
                .unwrap()
        }
    };
    // The passkey was added with the key: revoking the key would suspend
    // it and leave bob no way in.
    let refused = revoke("").await;
    assert_eq!(error_of(refused).await, (409, "last_credential".into()));
    assert_eq!(check(&server, Some(&by_passkey), None).await.status(), 200);

    let first = revoke("?freeze=true").await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["revoked_sessions"], 2, "the key's and the passkey's");
    assert_eq!(first["passkeys_registered_with_it"], json!([passkey_id]));
    assert_eq!(first["suspended_passkeys"], json!([passkey_id]));
    // No session is left to call it again with.
    let again = revoke("?freeze=true").await;
    assert_eq!(error_of(again).await, (401, "full_auth_required".into()));
    server.kill();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();

    for token in [&by_identity.token, &by_passkey] {
        assert_eq!(check(&server, Some(token), None).await.status(), 401);
    }
    assert!(client.login(&identity, &device("laptop")).await.is_err());
    let suspended = login(&server, &mut passkey, Some("bob")).await;
    assert_eq!(
        error_of(suspended).await,
        (401, "authentication_failed".into())
    );
    // Frozen: the enroll route cannot replace the key, nor can a session.
    let new = postern_client::identity_file::IdentityFile::generate("bob").unwrap();
    assert!(client.enroll(&new).await.is_err());
    let err = client
        .replace_identity(&new, &by_passkey, "laptop")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
}

/// A passkey login that also needs the identity proof makes a session the
/// identity key took part in, whichever stage runs first: revoking the key
/// revokes it. (With `identity,passkey` the passkey stage used to stamp the
/// session with the passkey's credential, and the sweep missed it.)
#[tokio::test]
async fn revoking_the_identity_key_revokes_passkey_sessions_it_took_part_in() {
    for order in ["identity,passkey", "passkey,identity"] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), &["--passkey-stages", order]);
        let client = server.client();
        let (identity, by_identity) = enroll_and_login(&client, "carol", "laptop").await;
        let (mut passkey, _) = add_passkey(&server, "carol", &by_identity.token).await;

        // Passkey and identity proof, both bound to the ceremony's challenge.
        let start = login_start(&server, Some("carol")).await;
        let credential = passkey.assert(&start["options"]);
        let challenge = postern_client::http::ChallengeResponse {
            challenge_id: String::new(),
            challenge: start["options"]["publicKey"]["challenge"]
                .as_str()
                .unwrap()
                .to_string(),
            expires_at: String::new(),
        };
        let audience = server.client().audience().to_string();
        let proof =
            postern_client::http::prove(&identity, &challenge, &device("laptop"), &audience)
                .unwrap();
        let login = post(
            &server,
            "/v1/passkeys/login/finish",
            json!({
                "ceremony_id": start["ceremony_id"], "credential": credential,
                "device": "laptop", "identity_proof": proof, "audience": audience,
            }),
        )
        .await;
        assert_eq!(login.status(), 200, "{order}");
        let both: Value = login.json().await.unwrap();
        let both = both["token"].as_str().unwrap().to_string();
        assert_eq!(check(&server, Some(&both), None).await.status(), 200);

        let revoked = http()
            .delete(server.url("/v1/users/carol/identity?freeze=true"))
            .bearer_auth(&by_identity.token)
            .header("X-Postern-Device", "laptop")
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200, "{order}");
        let revoked: Value = revoked.json().await.unwrap();
        assert_eq!(revoked["revoked_sessions"], 2, "{order}");
        assert_eq!(
            check(&server, Some(&both), None).await.status(),
            401,
            "{order}: the session the revoked key took part in is refused"
        );
    }
}

/// A registration started with a session whose key is revoked before the
/// ceremony finishes stores nothing: the revocation wins the race.
#[tokio::test]
async fn a_registration_authorised_by_a_key_revoked_meanwhile_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (_, by_identity) = enroll_and_login(&client, "dave", "laptop").await;
    let start: Value = register_start(&server, "dave", Some(&by_identity.token))
        .await
        .json()
        .await
        .unwrap();
    let mut passkey = authenticator();
    let credential = passkey.register(&start["options"]);
    let revoked = http()
        .delete(server.url("/v1/users/dave/identity?freeze=true"))
        .bearer_auth(&by_identity.token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let done = post(
        &server,
        "/v1/passkeys/register/finish",
        json!({ "ceremony_id": start["ceremony_id"], "credential": credential }),
    )
    .await;
    assert_eq!(error_of(done).await, (401, "full_auth_required".into()));
    assert_eq!(
        login(&server, &mut passkey, Some("dave")).await.status(),
        401
    );
}

/// Removing a passkey takes a recent session of its owner, revokes the
/// sessions it authenticated, and never removes the account's last way in.
#[tokio::test]
async fn a_passkey_is_removed_with_its_sessions_but_never_the_last_way_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (_, by_identity) = enroll_and_login(&client, "frank", "laptop").await;
    let (mut passkey, id) = add_passkey(&server, "frank", &by_identity.token).await;
    let by_passkey = login_token(&server, &mut passkey, "frank").await;
    let remove = |token: String, user: &'static str, id: String| {
        let url = server.url(&format!("/v1/users/{user}/passkeys/{id}"));
        async move {
            http()
                .delete(url)
                .bearer_auth(token)
                .header("X-Postern-Device", "laptop")
                .send()
                .await
                .unwrap()
        }
    };

    // Another user's session, and a malformed id, change nothing.
    let (_, mallory) = enroll_and_login(&client, "mallory", "laptop").await;
    let refused = remove(mallory.token.clone(), "frank", id.clone()).await;
    assert_eq!(error_of(refused).await, (403, "forbidden".into()));
    let malformed = remove(by_identity.token.clone(), "frank", "!!".into()).await;
    assert_eq!(
        error_of(malformed).await,
        (400, "invalid_credential_id".into())
    );
    assert_eq!(check(&server, Some(&by_passkey), None).await.status(), 200);

    let removed = client
        .remove_passkey("frank", &id, &by_identity.token, "laptop")
        .await
        .unwrap();
    assert_eq!(
        (removed.credential_id.as_str(), removed.revoked_sessions),
        (id.as_str(), 1)
    );
    assert_eq!(check(&server, Some(&by_passkey), None).await.status(), 401);
    assert_eq!(
        login(&server, &mut passkey, Some("frank")).await.status(),
        401
    );
    let again = remove(by_identity.token.clone(), "frank", id).await;
    assert_eq!(error_of(again).await, (404, "not_found".into()));

    // A passkey-only account keeps its only passkey.
    let mut only = authenticator();
    let only_id = register(&server, &mut only, "grace").await["credential_id"]
        .as_str()
        .unwrap()
        .to_string();
    let grace = login_token(&server, &mut only, "grace").await;
    let last = remove(grace.clone(), "grace", only_id).await;
    assert_eq!(error_of(last).await, (409, "last_credential".into()));
    assert_eq!(check(&server, Some(&grace), None).await.status(), 200);
}

/// `DELETE` with a session, as the account-changing routes take it.
async fn delete_with(server: &Server, path: &str, token: &str) -> reqwest::Response {
    http()
        .delete(server.url(path))
        .bearer_auth(token)
        .header("X-Postern-Device", "laptop")
        .send()
        .await
        .unwrap()
}

/// The standing of each of `user`'s passkeys, by credential id.
async fn standings(
    server: &Server,
    user: &str,
    token: &str,
) -> std::collections::BTreeMap<String, String> {
    server
        .client()
        .list_passkeys(user, token, "laptop")
        .await
        .unwrap()
        .passkeys
        .into_iter()
        .map(|p| (p.credential_id, p.standing))
        .collect()
}

/// A stolen session (token and device string) that has aged past
/// `reauth_max_age` can neither add a passkey nor revoke the identity key;
/// a fresh login of the owner can.
#[tokio::test]
async fn a_stolen_session_older_than_reauth_max_age_cannot_add_a_passkey() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--reauth-max-age", "1s"]);
    let client = server.client();
    let (identity, stolen) = enroll_and_login(&client, "alice", "laptop").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Still a live session: it resumes.
    assert_eq!(
        check(&server, Some(&stolen.token), None).await.status(),
        200
    );

    let refused = register_start(&server, "alice", Some(&stolen.token)).await;
    assert_eq!(error_of(refused).await, (403, "reauth_required".into()));
    let refused = delete_with(
        &server,
        "/v1/users/alice/identity?freeze=true",
        &stolen.token,
    )
    .await;
    assert_eq!(error_of(refused).await, (403, "reauth_required".into()));
    assert!(client.login(&identity, &device("laptop")).await.is_ok());

    let fresh = client.login(&identity, &device("laptop")).await.unwrap();
    let (mut passkey, _) = add_passkey(&server, "alice", &fresh.token).await;
    assert_eq!(
        login(&server, &mut passkey, Some("alice")).await.status(),
        200
    );
}

/// The whole story. A thief with the owner's stolen identity key logs in,
/// adds a passkey, and with it a second one. The owner replaces the key:
/// every passkey that descends from the old key is suspended and its
/// sessions revoked, the thief's included; the owner logs in with the new
/// key, confirms their own passkey, removes the thief's, and is never
/// without a way in.
#[tokio::test]
async fn replacing_a_stolen_key_locks_out_the_passkeys_the_thief_added_and_not_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (key, owner) = enroll_and_login(&client, "alice", "laptop").await;
    let (mut owners, owners_id) = add_passkey(&server, "alice", &owner.token).await;

    // The thief holds a copy of the key file.
    let thief = client.login(&key, &device("laptop")).await.unwrap();
    let (mut thiefs, thiefs_id) = add_passkey(&server, "alice", &thief.token).await;
    let by_thiefs = login_token(&server, &mut thiefs, "alice").await;
    let (mut second, second_id) = add_passkey(&server, "alice", &by_thiefs).await;
    let by_second = login_token(&server, &mut second, "alice").await;
    assert_eq!(check(&server, Some(&by_second), None).await.status(), 200);
    let all_active = standings(&server, "alice", &owner.token).await;
    assert!(all_active.values().all(|s| s == "active"), "{all_active:?}");

    // The owner replaces the key from a fresh login with it.
    let fresh = client.login(&key, &device("laptop")).await.unwrap();
    let new_key = postern_client::identity_file::IdentityFile::generate("alice").unwrap();
    let replaced = client
        .replace_identity(&new_key, &fresh.token, "laptop")
        .await
        .unwrap();
    let mut expected = vec![owners_id.clone(), thiefs_id.clone(), second_id.clone()];
    expected.sort();
    let mut suspended = replaced.suspended_passkeys.clone();
    suspended.sort();
    assert_eq!(suspended, expected);
    // The key's three sessions (owner, thief, fresh) and the two sessions
    // of the thief's passkeys.
    assert_eq!(replaced.revoked_sessions, 5);

    // The thief is out: sessions, passkeys and the old key.
    for token in [&thief.token, &by_thiefs, &by_second] {
        assert_eq!(check(&server, Some(token), None).await.status(), 401);
    }
    // A suspended passkey gets the bytes a forged assertion gets.
    for passkey in [&mut thiefs, &mut second] {
        for user in [Some("alice"), None] {
            let refused = login(&server, passkey, user).await;
            assert_eq!(refused.status(), 401);
            assert_eq!(refused.text().await.unwrap(), FAILED);
        }
    }
    assert!(client.login(&key, &device("laptop")).await.is_err());

    // The owner is in with the new key and confirms their own passkey.
    let owner = client.login(&new_key, &device("laptop")).await.unwrap();
    let listed = standings(&server, "alice", &owner.token).await;
    assert!(listed.values().all(|s| s == "suspended"), "{listed:?}");
    let confirmed = client
        .confirm_passkey("alice", &owners_id, &owner.token, "laptop")
        .await
        .unwrap();
    assert_eq!(confirmed.reactivated, vec![owners_id.clone()]);
    assert_eq!(
        confirmed.registered_by, replaced.credential_id,
        "the new key vouches for it now"
    );
    let again = client
        .confirm_passkey("alice", &owners_id, &owner.token, "laptop")
        .await
        .unwrap_err();
    assert_eq!(
        (again.status(), again.code()),
        (Some(409), Some("not_suspended"))
    );
    assert_eq!(
        login(&server, &mut owners, Some("alice")).await.status(),
        200
    );
    let refused = login(&server, &mut thiefs, Some("alice")).await;
    assert_eq!(
        error_of(refused).await,
        (401, "authentication_failed".into())
    );

    // Removing the thief's first passkey leaves its child suspended.
    let removed = client
        .remove_passkey("alice", &thiefs_id, &owner.token, "laptop")
        .await
        .unwrap();
    assert_eq!(removed.suspended_passkeys, vec![second_id.clone()]);
    let listed = standings(&server, "alice", &owner.token).await;
    assert_eq!(listed.get(&owners_id).map(String::as_str), Some("active"));
    assert_eq!(
        listed.get(&second_id).map(String::as_str),
        Some("suspended")
    );
    assert_eq!(listed.len(), 2);

    // Never locked out: revoking the new key would suspend the owner's
    // passkey (it now descends from that key) and leave no way in.
    let refused = delete_with(&server, "/v1/users/alice/identity", &owner.token).await;
    assert_eq!(error_of(refused).await, (409, "last_credential".into()));
    assert!(client.login(&new_key, &device("laptop")).await.is_ok());
}

/// On a passkey-only account, a thief with a fresh stolen session adds a
/// passkey and chains another from it. The owner removes the thief's
/// first passkey: the chained one is suspended with it, and cannot be
/// confirmed by a thief who has nothing current left. The owner's own
/// passkey cannot be removed while it is the only one in good standing.
#[tokio::test]
async fn removing_a_passkey_suspends_what_it_added_and_keeps_the_owner_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let mut owners = authenticator();
    let owners_id = register(&server, &mut owners, "alice").await["credential_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stolen = login_token(&server, &mut owners, "alice").await;
    let (mut thiefs, thiefs_id) = add_passkey(&server, "alice", &stolen).await;
    let by_thiefs = login_token(&server, &mut thiefs, "alice").await;
    let (mut chained, chained_id) = add_passkey(&server, "alice", &by_thiefs).await;
    let by_chained = login_token(&server, &mut chained, "alice").await;

    let owner = login_token(&server, &mut owners, "alice").await;
    let removed = client
        .remove_passkey("alice", &thiefs_id, &owner, "laptop")
        .await
        .unwrap();
    assert_eq!(removed.revoked_sessions, 2, "the thief's two sessions");
    assert_eq!(removed.suspended_passkeys, vec![chained_id.clone()]);
    for token in [&by_thiefs, &by_chained] {
        assert_eq!(check(&server, Some(token), None).await.status(), 401);
    }
    let refused = login(&server, &mut chained, Some("alice")).await;
    assert_eq!(
        error_of(refused).await,
        (401, "authentication_failed".into())
    );
    let err = client
        .confirm_passkey("alice", &chained_id, &by_chained, "laptop")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));

    // The owner's passkey is the only one in good standing: kept.
    let last = delete_with(
        &server,
        &format!("/v1/users/alice/passkeys/{owners_id}"),
        &owner,
    )
    .await;
    assert_eq!(error_of(last).await, (409, "last_credential".into()));
    assert_eq!(check(&server, Some(&owner), None).await.status(), 200);
    // The owner may remove the suspended one.
    let gone = client
        .remove_passkey("alice", &chained_id, &owner, "laptop")
        .await
        .unwrap();
    assert!(gone.suspended_passkeys.is_empty());
}

/// A passkey suspended by a key rotation stays suspended across a restart
/// (the standing is derived from the stored records), and confirming it
/// from the new key restores it for good.
#[tokio::test]
async fn a_suspended_passkey_is_restored_by_confirmation_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let (key, owner) = enroll_and_login(&client, "carol", "laptop").await;
    let (mut passkey, id) = add_passkey(&server, "carol", &owner.token).await;
    let new_key = postern_client::identity_file::IdentityFile::generate("carol").unwrap();
    client
        .replace_identity(&new_key, &owner.token, "laptop")
        .await
        .unwrap();
    drop(key);
    server.kill();

    // Still suspended after a restart: the standing is derived from the
    // stored records, not held in memory.
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let refused = login(&server, &mut passkey, Some("carol")).await;
    assert_eq!(
        error_of(refused).await,
        (401, "authentication_failed".into())
    );
    let owner = client.login(&new_key, &device("laptop")).await.unwrap();
    client
        .confirm_passkey("carol", &id, &owner.token, "laptop")
        .await
        .unwrap();
    server.kill();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(
        login(&server, &mut passkey, Some("carol")).await.status(),
        200
    );
}

/// Starting a registration for an unused name writes nothing durable: the
/// name stays unclaimed and gets no user handle until a registration
/// finishes. Of two registrations racing for one new name, the first to
/// finish wins and the other gets a 409.
#[tokio::test]
async fn starting_a_registration_writes_nothing_and_of_two_racing_finishes_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for i in 0..10 {
        let started = register_start(&server, &format!("nobody-{i}"), None).await;
        assert_eq!(started.status(), 200);
    }
    let first: Value = register_start(&server, "zoe", None)
        .await
        .json()
        .await
        .unwrap();
    let second: Value = register_start(&server, "zoe", None)
        .await
        .json()
        .await
        .unwrap();
    let (mut one, mut two) = (authenticator(), authenticator());
    let finish = |start: &Value, credential: Value| {
        post(
            &server,
            "/v1/passkeys/register/finish",
            json!({ "ceremony_id": start["ceremony_id"], "credential": credential }),
        )
    };
    let won = finish(&first, one.register(&first["options"])).await;
    assert_eq!(won.status(), 201);
    let lost = finish(&second, two.register(&second["options"])).await;
    assert_eq!(error_of(lost).await, (409, "already_enrolled".into()));
    assert_eq!(login(&server, &mut one, Some("zoe")).await.status(), 200);
    assert_eq!(login(&server, &mut two, None).await.status(), 401);
    server.kill();

    let store =
        postern_store::embedded::RedbStore::open(&dir.path().join("sessions.redb")).unwrap();
    use postern_store::SessionStore as _;
    for i in 0..10 {
        let user = postern_core::context::UserId::parse(&format!("nobody-{i}")).unwrap();
        assert_eq!(store.passkey_user_handle(&user).unwrap(), None);
        assert!(store.list_passkeys(&user).unwrap().is_empty());
        assert!(store.get_user(&user).unwrap().is_none());
    }
    let zoe = postern_core::context::UserId::parse("zoe").unwrap();
    let passkeys = store.list_passkeys(&zoe).unwrap();
    assert_eq!(passkeys.len(), 1);
    assert_eq!(
        store.passkey_user_handle(&zoe).unwrap(),
        Some(passkeys[0].user_handle)
    );
}

/// A POST from the client at `from` (as `X-Forwarded-For` names it).
async fn post_from(server: &Server, path: &str, body: Value, from: &str) -> reqwest::Response {
    http()
        .post(server.url(path))
        .header("X-Forwarded-For", from)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A `429 rate_limited` with a `Retry-After` within the entry lifetime.
async fn limited(response: reqwest::Response, longest: u64) {
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=longest).contains(&retry_after), "{retry_after}");
    assert_eq!(error_of(response).await, (429, "rate_limited".into()));
}

/// One client, or a flood aimed at one user, fills only its own share of
/// challenges and ceremonies: the flood gets `429` with `Retry-After`, and
/// everyone else still gets theirs and logs in.
#[tokio::test]
async fn a_flood_from_one_client_or_at_one_user_leaves_everyone_else_a_challenge_and_a_ceremony() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--max-challenges-per-client",
            "3",
            "--max-challenges-per-user",
            "2",
            "--max-ceremonies-per-client",
            "3",
            "--max-ceremonies-per-user",
            "2",
            // The test tells clients apart by X-Forwarded-For, as a proxy
            // on this host would.
            "--trusted-proxies",
            "127.0.0.1/32",
        ],
    );
    let client = server.client();
    let (carol, _) = enroll_and_login(&client, "carol", "laptop").await;
    let mut passkey = authenticator();
    register(&server, &mut passkey, "dave").await;
    let challenge = "/v1/auth/challenge";
    // Challenges live 120 s by default, ceremonies 300 s.
    for i in 0..3 {
        let ok = post_from(
            &server,
            challenge,
            json!({ "user": format!("u{i}") }),
            "203.0.113.9",
        )
        .await;
        assert_eq!(ok.status(), 200);
    }
    limited(
        post_from(&server, challenge, json!({ "user": "u9" }), "203.0.113.9").await,
        120,
    )
    .await;
    for from in ["198.51.100.1", "198.51.100.2"] {
        let ok = post_from(&server, challenge, json!({ "user": "alice" }), from).await;
        assert_eq!(ok.status(), 200);
    }
    limited(
        post_from(
            &server,
            challenge,
            json!({ "user": "alice" }),
            "198.51.100.3",
        )
        .await,
        120,
    )
    .await;
    // Everyone else: another user from another client, and a real login.
    let ok = post_from(&server, challenge, json!({ "user": "bob" }), "192.0.2.1").await;
    assert_eq!(ok.status(), 200);
    assert!(client.login(&carol, &device("laptop")).await.is_ok());

    let login_start_path = "/v1/passkeys/login/start";
    for _ in 0..3 {
        let ok = post_from(&server, login_start_path, json!({}), "203.0.113.9").await;
        assert_eq!(ok.status(), 200);
    }
    limited(
        post_from(&server, login_start_path, json!({}), "203.0.113.9").await,
        300,
    )
    .await;
    for from in ["198.51.100.1", "198.51.100.2"] {
        let ok = post_from(&server, login_start_path, json!({ "user": "dave" }), from).await;
        assert_eq!(ok.status(), 200);
    }
    limited(
        post_from(
            &server,
            login_start_path,
            json!({ "user": "dave" }),
            "198.51.100.3",
        )
        .await,
        300,
    )
    .await;
    let register_path = "/v1/passkeys/register/start";
    for from in ["198.51.100.1", "198.51.100.2"] {
        let ok = post_from(&server, register_path, json!({ "user": "erin" }), from).await;
        assert_eq!(ok.status(), 200);
    }
    limited(
        post_from(
            &server,
            register_path,
            json!({ "user": "erin" }),
            "198.51.100.4",
        )
        .await,
        300,
    )
    .await;
    // Others still get ceremonies and log in.
    let ok = post_from(
        &server,
        login_start_path,
        json!({ "user": "frank" }),
        "192.0.2.1",
    )
    .await;
    assert_eq!(ok.status(), 200);
    let mut other = authenticator();
    register(&server, &mut other, "gina").await;
    assert_eq!(login(&server, &mut other, Some("gina")).await.status(), 200);
}
