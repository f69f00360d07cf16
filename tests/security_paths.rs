//! Security class: path confusion and host confusion.
//!
//! A protected `jwt` route on `/admin` comes first and a public `auth = "none"` catch-all on `/`
//! after it. Every spelling of a request target must end in exactly one of three outcomes: routed
//! to `/admin` (401 without a token, 200 with one, and the upstream receives the normalised
//! `/admin...` path), refused with 400, or relayed by the public route with a path the upstream
//! reads as something other than `/admin` (and that path is exactly the one that was matched).
//! Never 200 through the public route for a path the upstream would read as `/admin`.
//!
//! Host rules: a `host = "api.test"` route matches regardless of case, port and a trailing dot,
//! the authority of an absolute-form target wins over `Host`, and `X-Forwarded-Host` (or any other
//! forwarding header) is never used for routing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;

/// `/admin` (JWT) first, then a public catch-all. Both go to the one echo upstream; which route
/// decided shows in the status without a token and in the access log.
const ROUTES: &str = r#"
[[route]]
name = "admin"
path_prefix = "/admin"
upstream = "echo"
auth = "jwt"

[[route]]
name = "public"
path_prefix = "/"
upstream = "echo"
auth = "none"
"#;

fn env() -> Env {
    Env::start("", ROUTES)
}

/// Whether the `/admin` prefix rule matches a normalised path.
fn is_admin_path(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    path == "/admin" || path.starts_with("/admin/")
}

/// Every access-log entry the gateway wrote so far (JSON lines with target `access`).
fn access_entries(gw: &Gateway) -> Vec<Value> {
    gw.stderr()
        .lines()
        .filter(|l| l.contains("\"target\":\"access\""))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits (bounded) for the first access-log entry after the first `skip` entries whose status is
/// `status`, and returns it. Entries are written after the response is sent, so an index taken
/// right after a response may not count that response's entry yet; matching on the status avoids
/// that race for requests sent one after another.
fn access_entry(gw: &Gateway, skip: usize, status: u16) -> Value {
    let find = || {
        access_entries(gw)
            .into_iter()
            .skip(skip)
            .find(|e| e["status"] == status)
    };
    assert!(
        wait_until(Duration::from_secs(5), || find().is_some()),
        "no access-log entry with status {status} after entry #{skip} within 5 s"
    );
    find().expect("entry seen above")
}

/// GET `target` (sent verbatim), with a bearer token if given, and extra headers.
fn get(env: &Env, target: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    headers.extend_from_slice(extra);
    env.request("GET", target, &headers)
}

/// `target` must be decided by the admin route: 401 with the bare challenge and nothing
/// forwarded without a token; with a valid token 200, exactly one upstream request for
/// `normalised`, and the access log naming route `admin` and that path.
fn assert_routed_to_admin(env: &Env, token: &str, target: &str, normalised: &str) {
    eprintln!("case: {target:?} -> admin {normalised:?}");
    let before = env.echo.count();
    let mark = access_entries(&env.gw).len();
    let resp = get(env, target, None, &[]);
    assert_rejection(&resp, 401, Some("unauthorized"), None);
    let c = challenge(&resp);
    assert!(
        c.starts_with("Bearer") && !c.contains("error="),
        "a missing token gets the bare challenge, got {c:?} for {target:?}"
    );
    assert_eq!(
        env.echo.count(),
        before,
        "{target:?} reached the upstream without a token"
    );
    let entry = access_entry(&env.gw, mark, 401);
    assert_eq!(entry["route"], "admin", "{target:?}: {entry}");

    let resp = get(env, target, Some(token), &[]);
    let rec = env.assert_allowed(&resp);
    assert_eq!(
        env.echo.count(),
        before + 1,
        "{target:?}: one upstream request"
    );
    assert_eq!(rec.target, normalised, "{target:?}: forwarded target");
    let entry = access_entry(&env.gw, mark, 200);
    assert_eq!(entry["route"], "admin", "{target:?}: {entry}");
    // The access log records the path without the query (which may carry secrets).
    let path_only = normalised.split('?').next().unwrap_or(normalised);
    assert_eq!(entry["path"], path_only, "{target:?}: {entry}");
}

/// A 400 either from tokengate (JSON `invalid_request`) or from pingora's own parser (which
/// answers some malformed request lines before tokengate sees them, with an empty body).
fn assert_400(resp: &Response) {
    assert_eq!(resp.status, 400, "{:?} {}", resp.headers, resp.text());
    if !resp.body.is_empty() {
        assert_rejection(resp, 400, Some("invalid_request"), None);
    }
}

/// `target` must be refused with 400 `invalid_request` (no challenge: it is not about the
/// credential), with and without a valid token, and never forwarded.
fn assert_refused(env: &Env, token: &str, target: &str) {
    for tok in [None, Some(token)] {
        eprintln!("case: {target:?} (token: {}) -> 400", tok.is_some());
        let before = env.echo.count();
        let resp = get(env, target, tok, &[]);
        assert_rejection(&resp, 400, Some("invalid_request"), tok);
        assert!(
            resp.header("www-authenticate").is_none(),
            "{target:?}: a path error carries no challenge: {:?}",
            resp.headers
        );
        assert_eq!(env.echo.count(), before, "{target:?} reached the upstream");
    }
}

/// `target` must be relayed by the public route without a token, and the upstream must receive
/// exactly `forwarded`: a normal-form path (normalising it again changes nothing) that the admin
/// rule does not match. The access log must name route `public` and that same path.
fn assert_public_verbatim(env: &Env, target: &str, forwarded: &str) {
    eprintln!("case: {target:?} -> public {forwarded:?}");
    let (mark, before) = (access_entries(&env.gw).len(), env.echo.count());
    let resp = get(env, target, None, &[]);
    check_public(env, target, forwarded, &resp, mark, before);
}

/// Like [`assert_public_verbatim`], but refusing the target with 400 is equally safe (an escape
/// some upstreams decode, such as `%3B`, may be refused instead of kept encoded).
fn assert_public_verbatim_or_refused(env: &Env, target: &str, forwarded: &str) {
    eprintln!("case: {target:?} -> public {forwarded:?} or 400");
    let (mark, before) = (access_entries(&env.gw).len(), env.echo.count());
    let resp = get(env, target, None, &[]);
    if resp.status == 400 {
        assert_400(&resp);
        assert_eq!(
            env.echo.count(),
            before,
            "{target:?}: refused but forwarded"
        );
        return;
    }
    check_public(env, target, forwarded, &resp, mark, before);
}

fn check_public(
    env: &Env,
    target: &str,
    forwarded: &str,
    resp: &Response,
    mark: usize,
    before: usize,
) {
    assert!(
        !is_admin_path(forwarded),
        "test table error: {forwarded} is an admin path"
    );
    let rec = env.assert_allowed(resp);
    assert_eq!(env.echo.count(), before + 1);
    assert_eq!(
        rec.target, forwarded,
        "{target:?}: the upstream must receive the path that was matched"
    );
    let path_only = forwarded.split('?').next().unwrap_or(forwarded);
    assert_eq!(
        tokengate::path::normalise(path_only).as_deref(),
        Ok(path_only),
        "{target:?}: the forwarded path must be in normal form"
    );
    let entry = access_entry(&env.gw, mark, 200);
    assert_eq!(entry["route"], "public", "{target:?}: {entry}");
    assert_eq!(entry["path"], path_only, "{target:?}: {entry}");
}

#[test]
fn encoded_and_dot_segment_spellings_of_admin_are_decided_by_the_admin_route() {
    let env = env();
    let token = env.token(json!({}));
    for (target, normalised) in [
        ("/%61dmin", "/admin"),
        ("/ad%6Din", "/admin"),
        ("/%61%64%6d%69%6e", "/admin"),
        ("/public/../admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E%2E/admin", "/admin"),
        ("/public/.%2e/admin", "/admin"),
        ("/public/x/../../admin", "/admin"),
        ("/./admin", "/admin"),
        ("/%2e/admin", "/admin"),
        ("//admin", "/admin"),
        ("///admin//users", "/admin/users"),
        ("/admin/", "/admin/"),
        ("/admin/.", "/admin/"),
        ("/admin/x/..", "/admin/"),
        ("/admin/./users/", "/admin/users/"),
        ("/admin?next=/../public", "/admin?next=/../public"),
        ("/public/../admin?q=%2e%2e", "/admin?q=%2e%2e"),
    ] {
        assert_routed_to_admin(&env, &token, target, normalised);
    }
}

#[test]
fn unsafe_spellings_of_admin_are_400_and_never_forwarded() {
    let env = env();
    let token = env.token(json!({}));
    for target in [
        "/admin;x",
        "/admin;jsessionid=1",
        "/public;/../admin",
        "/%2fadmin",
        "/%2Fadmin",
        "/public%2f..%2fadmin",
        "/%5cadmin",
        "/%5Cadmin",
        "/public%5c..%5cadmin",
        "/\\admin",
        "/public\\..\\admin",
        "/admin%00",
        "/admin%00.json",
        "/admin%0a",
        "/admin%7f",
        "/public/%c0%ae%c0%ae/admin",
        "/%c0%afadmin",
        "/%e0%80%aeadmin",
        "/..",
        "/../admin",
        "/%2e%2e/admin",
        "/public/../../admin",
        "/admin%",
        "/admin%2",
        "/admin%zz",
        "/admin%%32%65",
        "*",
    ] {
        assert_refused(&env, &token, target);
    }
}

#[test]
fn raw_non_ascii_and_control_bytes_in_the_path_are_400_and_never_forwarded() {
    let env = env();
    for raw in [
        &b"/admin\xc3\xa9"[..],
        b"/\xc0\xaeadmin",
        b"/admin\x01",
        b"/admin\x7f",
        b"/\xffadmin",
    ] {
        eprintln!("case: {:?}", String::from_utf8_lossy(raw));
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(raw);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let resp = env.send(&req);
        assert_400(&resp);
    }
    assert_eq!(
        env.echo.count(),
        0,
        "a refused path reached the upstream: {:?}",
        env.echo.requests()
    );
}

/// Paths that are *not* `/admin` for the upstream either: relayed by the public route, and the
/// upstream receives exactly what was matched. `/ADMIN` is a different path (paths are case
/// sensitive, RFC 3986 §6.2.2.1), so the public route serving it is correct; an upstream that
/// folds case would need its own `/ADMIN` rule. `%3B` stays encoded, so it is a literal `;` in a
/// segment, not a path-parameter separator. Escapes are decoded once: `%2500` is the three
/// characters `%00`, and `%252e%252e` is not a dot segment.
#[test]
fn spellings_the_upstream_reads_as_another_path_reach_the_public_route_verbatim() {
    let env = env();
    for (target, forwarded) in [
        ("/ADMIN", "/ADMIN"),
        ("/Admin/users", "/Admin/users"),
        ("/%41dmin", "/Admin"),
        ("/admin%2500", "/admin%2500"),
        ("/%252e%252e/admin", "/%252e%252e/admin"),
        ("/public/%252e%252e/admin", "/public/%252e%252e/admin"),
        ("/admin..", "/admin.."),
        ("/admin%2e", "/admin."),
        ("/admin%20", "/admin%20"),
        ("/adminx", "/adminx"),
        ("/admin/..", "/"),
        ("/admin/%2e%2e", "/"),
        ("/public/admin", "/public/admin"),
        ("/x?/admin", "/x?/admin"),
    ] {
        assert_public_verbatim(&env, target, forwarded);
    }
    // `%3B` is `;` to an upstream that decodes before splitting path parameters: kept encoded (so
    // the upstream sees exactly what was matched) or refused like a raw `;`, never decoded.
    for (target, forwarded) in [("/admin%3Bx", "/admin%3Bx"), ("/admin%3bx", "/admin%3Bx")] {
        assert_public_verbatim_or_refused(&env, target, forwarded);
    }
}

#[test]
fn absolute_form_target_is_routed_on_its_path_and_forwarded_with_its_authority() {
    let env = env();
    let token = env.token(json!({}));
    for target in [
        "http://localhost/admin",
        "http://localhost/public/../admin",
        "http://localhost//admin",
        "http://localhost/%61dmin",
    ] {
        eprintln!("case: {target}");
        let before = env.echo.count();
        let resp = get(&env, target, None, &[("Host", "localhost")]);
        assert_rejection(&resp, 401, Some("unauthorized"), None);
        assert!(resp.header("www-authenticate").is_some());
        assert_eq!(
            env.echo.count(),
            before,
            "{target} forwarded without a token"
        );

        let resp = get(&env, target, Some(&token), &[("Host", "localhost")]);
        let rec = env.assert_allowed(&resp);
        assert_eq!(rec.target, "/admin", "{target}");
        assert_eq!(rec.header_all("host"), ["localhost"], "{target}");
    }
    // An authority with userinfo or a non-numeric port is not a host to route on.
    for target in [
        "http://evil@localhost/admin",
        "http://localhost@evil.test/admin",
        "http://localhost:abc/admin",
    ] {
        eprintln!("case: {target}");
        let before = env.echo.count();
        let resp = get(&env, target, Some(&token), &[("Host", "localhost")]);
        assert_400(&resp);
        assert_eq!(env.echo.count(), before, "{target} was forwarded");
    }
    // Absolute form of a path with an encoded separator is refused like the origin form.
    let resp = get(
        &env,
        "http://localhost/%2fadmin",
        None,
        &[("Host", "localhost")],
    );
    assert_rejection(&resp, 400, Some("invalid_request"), None);
    assert_eq!(env.echo.count(), 4, "{:?}", env.echo.requests());
}

#[test]
fn asterisk_form_options_is_400_and_never_forwarded() {
    let env = env();
    let token = env.token(json!({}));
    for raw in [
        "OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_string(),
        format!(
            "OPTIONS * HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\n\r\n"
        ),
        "GET * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_string(),
    ] {
        eprintln!("case: {raw:?}");
        let resp = env.send(raw.as_bytes());
        assert!(
            resp.status == 400 || resp.status == 404,
            "asterisk form must be 400 or 404, got {} {}",
            resp.status,
            resp.text()
        );
        assert_rejection(&resp, resp.status, None, Some(&token));
    }
    assert_eq!(env.echo.count(), 0, "{:?}", env.echo.requests());
}

/// pingora answers `CONNECT` itself (405, before tokengate's hooks run); what matters is that no
/// tunnel is opened and nothing is forwarded, with or without a token.
#[test]
fn connect_is_refused_and_never_forwarded_or_tunnelled() {
    let env = env();
    let token = env.token(json!({}));
    for raw in [
        "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n".to_string(),
        format!(
            "CONNECT {} HTTP/1.1\r\nHost: {}\r\n\r\n",
            env.echo.addr(),
            env.echo.addr()
        ),
        format!(
            "CONNECT {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n\
             GET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n",
            env.echo.addr(),
            env.echo.addr()
        ),
    ] {
        eprintln!("case: {raw:?}");
        let resp = env.send(raw.as_bytes());
        assert!(
            resp.status == 400 || resp.status == 405,
            "CONNECT must be refused with 400 or 405, got {} {:?} {}",
            resp.status,
            resp.headers,
            resp.text()
        );
        assert_token_not_leaked(&resp, &token);
    }
    assert_eq!(
        env.echo.count(),
        0,
        "CONNECT reached the upstream: {:?}",
        env.echo.requests()
    );
}

/// A host-bound route and nothing else: what does not match it is 404.
const HOSTED: &str = r#"
[[route]]
name = "hosted"
host = "api.test"
path_prefix = "/hosted"
upstream = "echo"
auth = "none"
"#;

#[test]
fn host_rule_ignores_case_port_and_one_trailing_dot() {
    let env = Env::start("", HOSTED);
    for host in [
        "api.test",
        "API.TEST",
        "Api.Test",
        "api.test.",
        "API.TEST.",
        "api.test:8080",
        "api.test.:8080",
        "API.TEST:443",
    ] {
        eprintln!("case: Host: {host}");
        let before = env.echo.count();
        let resp = env.request("GET", "/hosted/x", &[("Host", host)]);
        let rec = env.assert_allowed(&resp);
        assert_eq!(env.echo.count(), before + 1);
        assert_eq!(rec.target, "/hosted/x");
    }
}

#[test]
fn lookalike_hosts_do_not_match_the_host_rule() {
    let env = Env::start("", HOSTED);
    for host in [
        "api.test.evil",
        "evil.api.test",
        "xapi.test",
        "api.tes",
        "api-test",
        "api.test.evil:80",
        "127.0.0.1",
    ] {
        eprintln!("case: Host: {host}");
        let resp = env.request("GET", "/hosted/x", &[("Host", host)]);
        env.assert_rejected(&resp, 404, Some("not_found"), None);
    }
}

/// RFC 9112 §3.2: a Host with an invalid field value must be answered with 400. `Host = uri-host
/// [ ":" port ]` with `port = *DIGIT`, and a host name has no empty labels, so none of these may
/// be routed to the `api.test` route (the upstream would receive the malformed value and may read
/// a different host from it).
#[test]
fn malformed_host_headers_are_refused_not_routed() {
    let env = Env::start("", HOSTED);
    let mut routed = Vec::new();
    for host in [
        "evil@api.test",
        "api.test/x",
        "api.test, evil.test",
        "api.test:8080:1",
        "api.test:abc",
        "api.test:80abc",
        "api.test:-1",
        "api.test:+80",
        "api.test:99999",
        "api.test..",
    ] {
        eprintln!("case: Host: {host}");
        let before = env.echo.count();
        let resp = env.request("GET", "/hosted/x", &[("Host", host)]);
        if resp.status == 400 || resp.status == 404 {
            if !resp.body.is_empty() {
                assert_rejection(&resp, resp.status, None, None);
            }
            assert_eq!(
                env.echo.count(),
                before,
                "Host {host:?}: refused but forwarded"
            );
        } else {
            routed.push(format!("{host:?} -> {} {}", resp.status, resp.text()));
        }
    }
    assert!(
        routed.is_empty(),
        "malformed Host values were routed instead of refused with 400:\n{}",
        routed.join("\n")
    );
}

#[test]
fn forwarding_headers_are_never_used_for_routing() {
    let env = Env::start("", HOSTED);
    for (name, value) in [
        ("X-Forwarded-Host", "api.test"),
        ("x-forwarded-host", "API.TEST"),
        ("Forwarded", "host=api.test"),
        ("X-Host", "api.test"),
        ("X-Original-Host", "api.test"),
    ] {
        eprintln!("case: Host: other.test + {name}: {value}");
        let resp = env.request("GET", "/hosted/x", &[("Host", "other.test"), (name, value)]);
        env.assert_rejected(&resp, 404, Some("not_found"), None);
    }
    // And the other way round: the right Host is enough, whatever X-Forwarded-Host says.
    let resp = env.request(
        "GET",
        "/hosted/x",
        &[("Host", "api.test"), ("X-Forwarded-Host", "other.test")],
    );
    env.assert_allowed(&resp);
}

/// RFC 9112 §3.2.2: the authority of an absolute-form target is the host. pingora refuses a
/// `Host` header that disagrees with it (400); either way the request must never be routed on the
/// `Host` header instead, and what the upstream sees is the host that was routed on.
#[test]
fn absolute_form_with_a_conflicting_host_is_refused_or_routed_on_the_authority() {
    let env = Env::start("", HOSTED);
    let resp = env.request("GET", "http://api.test/hosted/x", &[("Host", "api.test")]);
    let rec = env.assert_allowed(&resp);
    assert_eq!(rec.target, "/hosted/x");
    assert_eq!(rec.header_all("host"), ["api.test"], "{:?}", rec.headers);

    let before = env.echo.count();
    let resp = env.request("GET", "http://api.test/hosted/x", &[("Host", "other.test")]);
    match resp.status {
        400 => assert_eq!(env.echo.count(), before, "a refused request was forwarded"),
        200 => {
            let rec = env.echo.last();
            assert_eq!(rec.header_all("host"), ["api.test"], "{:?}", rec.headers);
        }
        other => panic!("expected 400 or 200 routed on the authority, got {other}"),
    }

    let before = env.echo.count();
    let resp = env.request("GET", "http://other.test/hosted/x", &[("Host", "api.test")]);
    assert!(
        resp.status == 400 || resp.status == 404,
        "routed on Host instead of the authority: {} {}",
        resp.status,
        resp.text()
    );
    assert_eq!(
        env.echo.count(),
        before,
        "routed on Host instead of the authority"
    );
}

#[test]
fn two_host_headers_are_400_and_never_forwarded() {
    let env = Env::start("", HOSTED);
    for hosts in [
        ["api.test", "api.test"],
        ["api.test", "other.test"],
        ["other.test", "api.test"],
    ] {
        eprintln!("case: {hosts:?}");
        let raw = format!(
            "GET /hosted/x HTTP/1.1\r\nHost: {}\r\nHost: {}\r\nConnection: close\r\n\r\n",
            hosts[0], hosts[1]
        );
        let resp = env.send(raw.as_bytes());
        assert_eq!(resp.status, 400, "{hosts:?}: {}", resp.text());
    }
    assert_eq!(env.echo.count(), 0, "{:?}", env.echo.requests());
}

/// Headers some upstream frameworks (IIS URL Rewrite, Symfony and Zend behind IIS) take as the
/// real request path. If the client could send them through, `GET /public` with
/// `X-Original-URL: /admin` would be decided by the public route and served as `/admin`: the
/// route that decided would not be the route for the path the upstream acts on.
#[test]
fn path_override_headers_never_reach_the_upstream() {
    let env = env();
    for (name, value) in [
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("x-original-url", "/admin/users?x=1"),
    ] {
        eprintln!("case: GET /public with {name}: {value}");
        let before = env.echo.count();
        let resp = env.request("GET", "/public", &[(name, value)]);
        match resp.status {
            400 => {
                assert_400(&resp);
                assert_eq!(env.echo.count(), before, "a refused request was forwarded");
            }
            _ => {
                let rec = env.assert_allowed(&resp);
                assert_eq!(rec.target, "/public");
                assert!(
                    rec.header(name).is_none(),
                    "{name} reached the upstream of the public route: {:?}",
                    rec.headers
                );
            }
        }
    }
}
