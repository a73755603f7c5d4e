//! Third-party programs the end-to-end tests drive (Chromium, node and the
//! npm packages of `e2e/`, nginx, caddy): where they are, and whether a
//! test can run. A missing one fails the test when `CI` is set (CI must
//! run every test) and skips it otherwise, printing a "SKIPPED" line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository's `e2e/` folder (node scripts and their packages).
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e")
}

/// Debian's Chromium, or `CHROMIUM`.
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Whether `program arg` runs and succeeds (`nginx -v`, `node --version`).
pub fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether node runs and `e2e/node_modules/<package>` is there, running
/// `npm ci` in `e2e/` once if it is not; what is missing otherwise.
pub fn node_missing(package: &str) -> Vec<String> {
    if !runs("node", "--version") {
        return vec!["node".to_string()];
    }
    if dir().join("node_modules").join(package).exists() {
        return Vec::new();
    }
    let installed = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir())
        .status()
        .is_ok_and(|s| s.success());
    if installed && dir().join("node_modules").join(package).exists() {
        Vec::new()
    } else {
        vec![format!("e2e/node_modules/{package} (npm ci failed)")]
    }
}

/// Chromium, node and playwright-core: what the browser tests lack.
pub fn browser_missing() -> Vec<String> {
    let mut missing = Vec::new();
    if !chromium().exists() {
        missing.push(format!("chromium ({})", chromium().display()));
    }
    missing.extend(node_missing("playwright-core"));
    missing
}

/// Whether `test` can run with nothing `missing`; when something is,
/// panics under CI and otherwise prints why the test is skipped.
pub fn can_run(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(", ");
    if std::env::var_os("CI").is_some_and(|v| v != "false" && v != "0") {
        panic!("{test} cannot run under CI: missing {missing}");
    }
    eprintln!(
        "SKIPPED {test}: missing {missing} (apt-get install them, npm ci in e2e/; .ci/run does)"
    );
    false
}
