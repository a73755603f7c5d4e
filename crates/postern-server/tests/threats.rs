//! THREATS.md maps every mitigation to the test that shows it. This keeps
//! the map honest: each `path::test_name` it cites must name a file that
//! exists and a `fn test_name` in it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

/// The `crates/...rs::name` references in `text`.
fn references(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for piece in text.split('`') {
        let Some((path, name)) = piece.rsplit_once("::") else {
            continue;
        };
        // `module.rs::tests::name` names the test by its last part.
        let path = path.split("::").next().unwrap_or(path);
        if !path.starts_with("crates/") || !path.ends_with(".rs") {
            continue;
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            continue;
        }
        found.push((path.to_string(), name.to_string()));
    }
    found
}

#[test]
fn every_test_threats_md_cites_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let threats = std::fs::read_to_string(root.join("THREATS.md")).unwrap();
    let cited = references(&threats);
    assert!(cited.len() > 40, "THREATS.md cites {} tests", cited.len());
    let mut missing = Vec::new();
    for (path, name) in &cited {
        let source = std::fs::read_to_string(root.join(path)).unwrap_or_default();
        let defined =
            source.contains(&format!("fn {name}(")) || source.contains(&format!("fn {name}<"));
        if !defined {
            missing.push(format!("{path}::{name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "THREATS.md cites tests that do not exist: {missing:#?}"
    );
}

#[test]
fn references_are_read_from_code_spans_only() {
    assert_eq!(
        references(
            "see `crates/a/src/b.rs::c_d` and `crates/a/src/b.rs::tests::e`, not crates/x.rs::y"
        ),
        [
            ("crates/a/src/b.rs".to_string(), "c_d".to_string()),
            ("crates/a/src/b.rs".to_string(), "e".to_string())
        ]
    );
}
