//! `deploy/grafana/postern.json` charts only what Postern exports: every
//! metric its PromQL queries, with every label value it matches exactly,
//! is in `/metrics` of a real server in gate mode after some traffic (own
//! sessions and upstream tokens, hits and misses).

// Helpers outside #[test] fns unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{check_bearer, device, enroll_and_login, http, Idp, Server};
use serde_json::Value;

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/postern.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every PromQL text in the dashboard: panel targets' `expr`, and
/// template variables' `query` / `definition`.
fn queries(value: &Value, key: Option<&str>, out: &mut Vec<String>) {
    match value {
        Value::String(text) if matches!(key, Some("expr" | "definition")) => out.push(text.clone()),
        Value::String(text) if key == Some("query") && text.contains('(') => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|v| queries(v, key, out)),
        Value::Object(fields) => fields
            .iter()
            .for_each(|(k, v)| queries(v, Some(k.as_str()), out)),
        _ => {}
    }
}

/// A series selector in a query: the metric name and its exact label
/// matchers (`label="value"`; regex matchers are left out).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Selector {
    metric: String,
    exact: Vec<(String, String)>,
}

fn selectors(query: &str) -> Vec<Selector> {
    let mut found = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("postern_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let metric = tail[..end].to_owned();
        let mut exact = Vec::new();
        if let Some(body) = tail[end..].strip_prefix('{') {
            let body = &body[..body.find('}').unwrap()];
            for matcher in body.split(',') {
                if let Some((label, value)) = matcher.split_once("=\"") {
                    if !label.ends_with(['=', '!', '~']) {
                        exact.push((
                            label.trim().to_owned(),
                            value.trim_end_matches('"').to_owned(),
                        ));
                    }
                }
            }
        }
        found.push(Selector { metric, exact });
        rest = &tail[end..];
    }
    found
}

/// Whether the exposition has a sample of `selector`.
fn exported(metrics: &str, selector: &Selector) -> bool {
    metrics.lines().any(|line| {
        let Some(after) = line.strip_prefix(selector.metric.as_str()) else {
            return false;
        };
        (after.starts_with('{') || after.starts_with(' '))
            && selector
                .exact
                .iter()
                .all(|(label, value)| after.contains(&format!("{label}=\"{value}\"")))
    })
}

#[test]
fn the_dashboard_queries_the_panels_the_issue_asks_for() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "postern");
    let mut all = Vec::new();
    queries(&dashboard, None, &mut all);
    let metrics: BTreeSet<String> = all
        .iter()
        .flat_map(|q| selectors(q))
        .map(|s| s.metric)
        .collect();
    for needed in [
        "postern_resume_decisions_total",
        "postern_http_request_duration_seconds_bucket",
        "postern_gate_cache_hits_total",
        "postern_gate_cache_misses_total",
        "postern_gate_upstream_duration_seconds_bucket",
        "postern_gate_breaker_state",
        "postern_gate_oldest_unapplied_revocation_seconds",
    ] {
        assert!(metrics.contains(needed), "no panel queries {needed}");
    }
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate panel id"
        );
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
            assert!(!panel["targets"].as_array().unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported_by_a_gate_after_traffic() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let flags = idp.introspection_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(dir.path(), &flags);

    // Postern's own sessions: a full authentication, a resume, a check.
    let client = server.client();
    let (_, login) = enroll_and_login(&client, "alice", "laptop").await;
    let resumed = client
        .resume(&login.token, Some(&device("laptop")), None)
        .await
        .unwrap();
    assert_eq!(resumed.decision, "resumed");
    let r = http()
        .get(server.url("/v1/check"))
        .bearer_auth(&login.token)
        .header("x-postern-device", "laptop")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Upstream tokens: a miss, then a hit.
    let token = idp.mint("bob", "read", 600).await;
    for _ in 0..2 {
        assert_eq!(check_bearer(&server, &token, None).await.status(), 200);
    }

    let metrics = server.metrics().await;
    let mut all = Vec::new();
    queries(&dashboard(), None, &mut all);
    let wanted: BTreeSet<Selector> = all.iter().flat_map(|q| selectors(q)).collect();
    assert!(wanted.len() >= 10, "{wanted:?}");
    let missing: Vec<&Selector> = wanted.iter().filter(|s| !exported(&metrics, s)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries series /metrics does not have: {missing:#?}\n{metrics}"
    );
}

#[test]
fn selectors_are_read_with_their_exact_matchers_only() {
    assert_eq!(
        selectors(
            "sum(rate(postern_a_total{endpoint=\"/v1/check\", instance=~\"$instance\"}[5m])) / postern_b"
        ),
        [
            Selector {
                metric: "postern_a_total".into(),
                exact: vec![("endpoint".into(), "/v1/check".into())],
            },
            Selector {
                metric: "postern_b".into(),
                exact: vec![],
            },
        ]
    );
    let metrics = "postern_a_total{endpoint=\"/v1/check\",method=\"GET\"} 1\npostern_b 0\n";
    assert!(selectors("postern_a_total{endpoint=\"/v1/check\"}")
        .iter()
        .all(|s| exported(metrics, s)));
    assert!(!exported(
        metrics,
        &selectors("postern_a_total{endpoint=\"/v1/resume\"}")[0]
    ));
    assert!(
        !exported(metrics, &selectors("postern_a")[0]),
        "a prefix is not a metric"
    );
}
