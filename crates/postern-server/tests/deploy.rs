//! The shipped deployment files are valid for the tools that read them.

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd/postern.service");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_systemd_unit_is_sandboxed_and_keeps_the_instance_key_out_of_the_state_directory() {
    let unit = unit_text();
    for directive in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=postern",
        "StateDirectoryMode=0700",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "PrivateDevices=yes",
        "ProtectHome=yes",
        "SystemCallFilter=@system-service",
        "LoadCredential=instance-key:/etc/postern/instance.key",
        "Environment=POSTERN_INSTANCE_KEY_FILE=%d/instance-key",
        "Environment=POSTERN_DATA=/var/lib/postern",
    ] {
        assert!(unit.contains(directive), "missing {directive:?}");
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let found = Command::new("systemd-analyze").arg("--version").output();
    if found.is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing (Debian's systemd package)"
        );
        eprintln!("SKIPPED: systemd-analyze not found");
        return;
    }
    // Verified against this build's binary: `verify` checks that
    // ExecStart's program exists.
    let unit = unit_text().replace("/usr/local/bin/postern", env!("CARGO_BIN_EXE_postern"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postern.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // `verify` also reports some problems as warnings with success.
    assert!(
        !stderr.contains("postern.service:"),
        "warnings about the unit: {stderr}"
    );
}
