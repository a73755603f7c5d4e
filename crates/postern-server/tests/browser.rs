//! The passkey page in a real browser: headless Chromium with the Chrome
//! DevTools Protocol's virtual WebAuthn authenticator, driven by
//! `e2e/passkey.mjs` (playwright-core), against the real `postern` binary
//! in cookie mode. The script registers a passkey on the served page, logs
//! in with a user name and without one, checks the attributes of the
//! session cookie and of the device cookie it is bound to, calls `GET
//! /v1/check` with them, opens `/v1/check` by plain navigation (a link
//! click, no script header: 200 with the user), replays the session cookie
//! alone in a fresh browser (401 `device_mismatch`, also with a wrong
//! device cookie; 200 with both), logs out (both cookies cleared), and
//! sees a second browser without the passkey refused; signed in, it adds
//! a second passkey from another tab. Half-way the server is restarted
//! on the same port: the session and the passkey must survive it. Finally
//! the stored signature counter must equal the authenticator's.
//!
//! Needs `chromium` (or `CHROMIUM=/path`) and `node`; `npm ci` in `e2e/` is
//! run when `node_modules` is missing. Without them the test fails when
//! `CI` is set and is skipped, saying so, otherwise.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{e2e, free_port, Server};
use postern_core::context::UserId;
use postern_store::embedded::RedbStore;
use postern_store::SessionStore;

#[test]
fn a_browser_registers_a_passkey_logs_in_with_a_cookie_and_survives_a_restart() {
    if !e2e::can_run("the browser test", &e2e::browser_missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // The browser must see `localhost`: an IP address is no WebAuthn rp id.
    let origin = format!("http://localhost:{port}");
    let flags = [
        "--session-mode",
        "cookie",
        "--rp-id",
        "localhost",
        "--origin",
        origin.as_str(),
    ];
    let mut server = Some(Server::start_on(&listen, dir.path(), &flags, &[]));

    let mut script = Command::new("node")
        .arg("passkey.mjs")
        .arg(&origin)
        .arg("--restart")
        .env("CHROMIUM", e2e::chromium())
        .current_dir(e2e::dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node");
    let stdout = script.stdout.take().unwrap();
    let mut stdin = script.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut output = Vec::new();
    loop {
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = script.kill();
                panic!(
                    "the browser script was silent for 120 s:\n{}",
                    output.join("\n")
                );
            }
        };
        println!("{line}");
        if line == "restart" {
            assert!(
                server.take().unwrap().terminate(),
                "server stops on SIGTERM"
            );
            server = Some(Server::start_on(&listen, dir.path(), &flags, &[]));
            writeln!(stdin, "continue").unwrap();
        }
        output.push(line);
    }
    let status = script.wait().unwrap();
    let output = output.join("\n");
    assert!(status.success(), "browser script failed:\n{output}");
    assert!(output.ends_with("passed: 13 steps"), "{output}");
    for step in [
        "ok a plain navigation to /v1/check (link click, address bar) answers 200 with the user",
        "ok the session cookie without its device cookie is refused (401 device_mismatch)",
    ] {
        assert!(output.contains(step), "missing step {step:?}:\n{output}");
    }

    let sign_count: u32 = output
        .lines()
        .find_map(|l| l.strip_prefix("signCount "))
        .expect("the script reports the authenticator's counter")
        .parse()
        .unwrap();
    assert!(server.take().unwrap().terminate());
    let store = RedbStore::open(&dir.path().join("sessions.redb")).unwrap();
    let passkeys = store
        .list_passkeys(&UserId::parse("alice").unwrap())
        .unwrap();
    assert_eq!(passkeys.len(), 2, "alice registered two passkeys");
    let used: Vec<_> = passkeys
        .iter()
        .filter(|p| p.last_used_at.is_some())
        .collect();
    assert_eq!(used.len(), 1, "only the first passkey signed in");
    assert_eq!(
        used[0].counter, sign_count,
        "the stored signature counter follows every login"
    );
    assert!(sign_count >= 3, "three logins counted, got {sign_count}");
}
