//! Route matching: file order, default deny, host, methods, prefix segments, exact paths, path
//! normalisation (what is matched and what is forwarded), and unsafe paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

/// `/api` (prefix) and `/exact` (exact path), both without authentication.
const ROUTES: &str = r#"
[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
auth = "none"

[[route]]
name = "exact"
path = "/exact"
upstream = "echo"
auth = "none"
"#;

fn env() -> Env {
    Env::start("", ROUTES)
}

/// A second echo upstream named `b`, with `routes` appended.
fn env_with_b(routes: &str) -> (Env, Echo) {
    let b = Echo::start();
    let extra = format!("{}\n{routes}", upstream_toml("b", &[b.addr()], ""));
    (Env::start("", &extra), b)
}

#[test]
fn first_matching_route_wins_in_file_order() {
    // `reads` is first and matches GET under /api; `admin` is longer but later, so it only gets
    // what `reads` does not match (non-GET).
    let (env, b) = env_with_b(
        r#"
[[route]]
name = "reads"
path_prefix = "/api"
methods = ["GET"]
upstream = "echo"
auth = "none"

[[route]]
name = "admin"
path_prefix = "/api/admin"
upstream = "b"
auth = "none"
"#,
    );
    let resp = env.request("GET", "/api/admin/users", &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(env.echo.count(), 1, "GET must go to the first route");
    assert_eq!(b.count(), 0);

    let resp = env.request("POST", "/api/admin/users", &[("Content-Length", "0")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(b.count(), 1, "POST must fall through to the second route");
    assert_eq!(env.echo.count(), 1);
    assert_eq!(b.last().target, "/api/admin/users");
}

#[test]
fn request_matching_no_route_is_404_and_never_forwarded() {
    let env = env();
    for target in ["/", "/nothing", "/ap", "/apix", "/exactly", "/API"] {
        eprintln!("case: {target}");
        let resp = env.get(target, None);
        env.assert_rejected(&resp, 404, Some("not_found"), None);
    }
}

#[test]
fn host_match_is_case_insensitive_and_ignores_port() {
    let (env, b) = env_with_b(
        r#"
[[route]]
name = "example"
host = "api.example.com"
path_prefix = "/hosted"
upstream = "b"
auth = "none"
"#,
    );
    for host in [
        "api.example.com",
        "API.Example.COM",
        "api.example.com:8443",
        "Api.Example.Com:80",
    ] {
        eprintln!("case: Host: {host}");
        let before = b.count();
        let resp = env.request("GET", "/hosted/x", &[("Host", host)]);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(b.count(), before + 1);
    }
    for host in [
        "other.example.com",
        "api.example.com.evil.test",
        "evilapi.example.com",
        "127.0.0.1",
    ] {
        eprintln!("case: Host: {host}");
        let resp = env.request("GET", "/hosted/x", &[("Host", host)]);
        assert_rejection(&resp, 404, Some("not_found"), None);
    }
    assert_eq!(b.count(), 4);
    assert_eq!(env.echo.count(), 0);
}

#[test]
fn method_not_listed_does_not_match() {
    let env = Env::start(
        "",
        r#"
[[route]]
name = "submit"
path = "/submit"
methods = ["POST"]
upstream = "echo"
auth = "none"
"#,
    );
    for method in ["GET", "DELETE", "PUT"] {
        eprintln!("case: {method}");
        let resp = env.request(method, "/submit", &[("Content-Length", "0")]);
        env.assert_rejected(&resp, 404, Some("not_found"), None);
    }
    let resp = env.request("POST", "/submit", &[("Content-Length", "0")]);
    let rec = env.assert_allowed(&resp);
    assert_eq!(rec.method, "POST");
}

#[test]
fn path_prefix_matches_whole_segments_only() {
    let env = env();
    for target in ["/api", "/api/", "/api/x", "/api/x/y"] {
        eprintln!("case: {target}");
        let rec = env.expect_allowed(target, None);
        assert_eq!(rec.target, target);
    }
    for target in ["/apix", "/api-v2", "/ap"] {
        eprintln!("case: {target}");
        env.expect_rejected(target, None, 404, Some("not_found"));
    }
}

#[test]
fn exact_path_matches_only_that_path() {
    let env = env();
    let rec = env.expect_allowed("/exact", None);
    assert_eq!(rec.target, "/exact");
    let rec = env.expect_allowed("/exact?x=1", None);
    assert_eq!(rec.target, "/exact?x=1");
    // `/exact/` is deliberately left unasserted: the contract does not say whether a trailing
    // slash matches an exact path (the gateway treats it as the same path).
    for target in ["/exact/x", "/exactly", "/exac", "/exact/x/"] {
        eprintln!("case: {target}");
        env.expect_rejected(target, None, 404, Some("not_found"));
    }
}

#[test]
fn normalised_path_is_matched_and_forwarded() {
    let env = env();
    for (sent, forwarded) in [
        ("/api/%41bc", "/api/Abc"),
        ("/api/a/./b/../c", "/api/a/c"),
        ("/api//x///y", "/api/x/y"),
        ("/%61pi/x", "/api/x"),
        ("/other/../api/x", "/api/x"),
        ("//api/x", "/api/x"),
        ("/exact/../api/z", "/api/z"),
        ("/ex%61ct", "/exact"),
    ] {
        eprintln!("case: {sent} -> {forwarded}");
        let rec = env.expect_allowed(sent, None);
        assert_eq!(rec.target, forwarded, "forwarded target for {sent}");
    }
}

#[test]
fn query_string_is_preserved() {
    let env = env();
    for (sent, forwarded) in [
        ("/api/x?a=1&b=%2F&c", "/api/x?a=1&b=%2F&c"),
        ("/api/./x?q=%41", "/api/x?q=%41"),
        ("/api?redirect=/../etc", "/api?redirect=/../etc"),
    ] {
        eprintln!("case: {sent}");
        let rec = env.expect_allowed(sent, None);
        assert_eq!(rec.target, forwarded);
    }
}

fn assert_all_bad_requests(targets: &[&str]) {
    let env = env();
    for target in targets {
        eprintln!("case: {target}");
        let resp = env.get(target, None);
        env.assert_rejected(&resp, 400, Some("invalid_request"), None);
    }
}

#[test]
fn encoded_slash_in_path_is_400() {
    assert_all_bad_requests(&["/api/a%2Fb", "/api/a%2fb", "/api%2Fx", "/api/%2F"]);
}

#[test]
fn encoded_backslash_in_path_is_400() {
    assert_all_bad_requests(&["/api/a%5Cb", "/api/a%5cb", "/api/%5C..%5C"]);
}

#[test]
fn raw_backslash_in_path_is_400() {
    assert_all_bad_requests(&["/api/a\\b", "/api\\..\\x"]);
}

#[test]
fn encoded_nul_in_path_is_400() {
    assert_all_bad_requests(&["/api/a%00b", "/api/%00", "/exact%00"]);
}

#[test]
fn dot_dot_above_root_is_400() {
    assert_all_bad_requests(&[
        "/..",
        "/../api/x",
        "/api/../../x",
        "/api/../..",
        "/%2e%2e/api/x",
        "/api/%2E%2E/%2E%2E/x",
    ]);
}

#[test]
fn semicolon_in_path_is_400() {
    assert_all_bad_requests(&["/api/x;jsessionid=1", "/api;/x", "/exact;"]);
}
