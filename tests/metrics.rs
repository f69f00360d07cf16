//! `/metrics`: per-route decision counters with reasons, key-set gauges and build info, and no
//! tokens or request paths in the exposition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;

const ROUTES: &str = r#"
[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
auth = "jwt"
"#;

const REQUESTS: &str = "tokengate_requests_total";

/// Whether `text` has a `tokengate_requests_total` sample with all `labels` and value >= `min`.
fn has_sample(text: &str, labels: &[(&str, &str)], min: f64) -> bool {
    metric_samples(text, REQUESTS).iter().any(|s| {
        s.value >= min
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// Polls `/metrics` until it has the sample (metrics may be recorded just after the response is
/// sent); returns the last exposition text.
fn wait_for_sample(gw: &Gateway, labels: &[(&str, &str)], min: f64) -> String {
    let mut text = String::new();
    let found = wait_until(Duration::from_secs(5), || {
        text = gw.metrics();
        has_sample(&text, labels, min)
    });
    assert!(
        found,
        "no {REQUESTS} sample with {labels:?} >= {min} in:\n{text}"
    );
    text
}

#[test]
fn requests_are_counted_per_route_decision_and_reason() {
    let env = Env::start("", ROUTES);
    let token = env.token(json!({}));
    let allowed = env.get("/api/secret-segment-7f3a?q=hidden-query-9b1c", Some(&token));
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    let denied = env.get("/api/other-secret-2d9e", None);
    assert_eq!(denied.status, 401, "{}", denied.text());

    wait_for_sample(
        &env.gw,
        &[("route", "api"), ("decision", "allow"), ("reason", "ok")],
        1.0,
    );
    let text = wait_for_sample(
        &env.gw,
        &[
            ("route", "api"),
            ("decision", "deny"),
            ("reason", "missing_token"),
        ],
        1.0,
    );
    let samples = metric_samples(&text, REQUESTS);
    let value = |decision: &str| {
        samples
            .iter()
            .filter(|s| {
                s.labels.get("route").map(String::as_str) == Some("api")
                    && s.labels.get("decision").map(String::as_str) == Some(decision)
            })
            .map(|s| s.value)
            .sum::<f64>()
    };
    assert_eq!(value("allow"), 1.0, "{text}");
    assert_eq!(value("deny"), 1.0, "{text}");
    assert!(
        text.contains(&format!("# TYPE {REQUESTS} counter")),
        "not Prometheus text with a counter type line:\n{text}"
    );

    for secret in [
        token.as_str(),
        token.rsplit('.').next().unwrap(),
        "secret-segment-7f3a",
        "hidden-query-9b1c",
        "other-secret-2d9e",
    ] {
        assert!(!text.contains(secret), "metrics leak {secret:?}:\n{text}");
    }
}

#[test]
fn unmatched_requests_are_counted_under_the_dash_route() {
    let env = Env::start("", ROUTES);
    let resp = env.get("/nowhere-8c2e", None);
    assert_eq!(resp.status, 404);
    let text = wait_for_sample(&env.gw, &[("route", "-"), ("decision", "deny")], 1.0);
    assert!(
        !text.contains("nowhere-8c2e"),
        "metrics leak the path:\n{text}"
    );
}

#[test]
fn rejected_tokens_are_counted_without_leaking_them() {
    let env = Env::start("", ROUTES);
    let token = tamper_signature(&env.token(json!({"sub": "metrics-subject-5a1f"})));
    let resp = env.get("/api/x", Some(&token));
    assert_eq!(resp.status, 401);
    let text = wait_for_sample(&env.gw, &[("route", "api"), ("decision", "deny")], 1.0);
    for secret in [
        token.as_str(),
        token.rsplit('.').next().unwrap(),
        token.split('.').nth(1).unwrap(),
        "metrics-subject-5a1f",
    ] {
        assert!(!text.contains(secret), "metrics leak {secret:?}:\n{text}");
    }
}

#[test]
fn jwks_keys_gauge_reports_keys_per_issuer() {
    let env = Env::start("", ROUTES);
    let text = env.gw.metrics();
    let samples = metric_samples(&text, "tokengate_jwks_keys");
    let main = samples
        .iter()
        .find(|s| s.labels.get("issuer").map(String::as_str) == Some("main"))
        .unwrap_or_else(|| panic!("no tokengate_jwks_keys{{issuer=\"main\"}} in:\n{text}"));
    assert_eq!(main.value, 1.0, "{text}");
}

#[test]
fn build_info_is_exported() {
    let env = Env::start("", ROUTES);
    let text = env.gw.metrics();
    assert!(
        !metric_samples(&text, "tokengate_build_info").is_empty(),
        "no tokengate_build_info in:\n{text}"
    );
}
