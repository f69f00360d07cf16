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

/// A 400 from pingora's own parser, which answers some malformed heads (userinfo in `Host`, a
/// request line that is not UTF-8, a `Host` disagreeing with an absolute-form target) before
/// tokengate's hooks run: an empty body.
fn assert_pingora_400(resp: &Response) {
    assert_eq!(resp.status, 400, "{:?} {}", resp.headers, resp.text());
    assert!(
        resp.body.is_empty(),
        "expected pingora's empty 400, got {}",
        resp.text()
    );
}

/// A 400 from tokengate: JSON `invalid_request` naming `description`, no challenge (it is not
/// about the credential).
fn assert_gateway_400(resp: &Response, description: &str) {
    assert_rejection(resp, 400, Some("invalid_request"), None);
    assert_eq!(
        resp.json()["error_description"],
        description,
        "{}",
        resp.text()
    );
    assert!(
        resp.header("www-authenticate").is_none(),
        "a 400 about the request carries no challenge: {:?}",
        resp.headers
    );
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
        "/admin%3Bx",
        "/admin%3bx",
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

/// `GET <raw> HTTP/1.1` with the path bytes exactly as given, with a bearer token if given.
fn raw_get(raw: &[u8], token: Option<&str>) -> Vec<u8> {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(raw);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\n");
    if let Some(t) = token {
        req.extend_from_slice(format!("Authorization: Bearer {t}\r\n").as_bytes());
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    req
}

/// Bytes that pingora's parser passes on (valid UTF-8) are refused by the path rules, with
/// tokengate's JSON 400; a request line that is not UTF-8 never gets that far: pingora answers
/// its own empty 400.
#[test]
fn raw_non_ascii_and_control_bytes_in_the_path_are_400_and_never_forwarded() {
    let env = env();
    for (raw, by_gateway) in [
        (&b"/admin\xc3\xa9"[..], true),
        (b"/admin\x01", true),
        (b"/admin\x7f", true),
        (b"/\xc0\xaeadmin", false),
        (b"/\xffadmin", false),
    ] {
        eprintln!("case: {:?}", String::from_utf8_lossy(raw));
        let resp = env.send(&raw_get(raw, None));
        if by_gateway {
            assert_gateway_400(&resp, "forbidden character in path");
        } else {
            assert_pingora_400(&resp);
        }
    }
    assert_eq!(
        env.echo.count(),
        0,
        "a refused path reached the upstream: {:?}",
        env.echo.requests()
    );
}

/// A raw NUL anywhere in the path (`/admin\0` could be `/admin` to a C string) is refused by
/// the path rules with 400 `invalid_request`, with or without a valid token, and never forwarded.
#[test]
fn raw_nul_in_the_path_is_400_invalid_request_and_never_forwarded() {
    let env = env();
    let token = env.token(json!({}));
    for raw in [
        &b"/admin\x00"[..],
        b"/adm\x00in",
        b"/\x00admin",
        b"/admin\x00.json",
        b"/public\x00/../admin",
        b"/public/x\x00",
    ] {
        for tok in [None, Some(token.as_str())] {
            eprintln!(
                "case: {:?} (token: {})",
                String::from_utf8_lossy(raw),
                tok.is_some()
            );
            let resp = env.send(&raw_get(raw, tok));
            assert_gateway_400(&resp, "forbidden character in path");
            if let Some(t) = tok {
                assert_token_not_leaked(&resp, t);
            }
        }
    }
    assert_eq!(
        env.echo.count(),
        0,
        "a path with NUL reached the upstream: {:?}",
        env.echo.requests()
    );
}

/// Paths that are *not* `/admin` for the upstream either: relayed by the public route, and the
/// upstream receives exactly what was matched. `/ADMIN` is a different path (paths are case
/// sensitive, RFC 3986 §6.2.2.1), so the public route serving it is correct; an upstream that
/// folds case would need its own `/ADMIN` rule. Escapes are decoded once: `%2500` is the three
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
}

/// `/admin.` is another path than `/admin`: RFC 3986 removes only `.` and `..` segments, and a
/// trailing dot is part of the segment. So the public route decides it, and the upstream receives
/// exactly `/admin.`, never a trimmed `/admin` (an upstream that trims, as IIS does, needs its own
/// rule for the dotted spelling; see the README's path rules).
#[test]
fn a_segment_with_a_trailing_dot_is_forwarded_verbatim_never_trimmed() {
    let env = env();
    for (target, forwarded) in [
        ("/admin.", "/admin."),
        ("/admin./users", "/admin./users"),
        ("/admin.?q=1", "/admin.?q=1"),
        ("/admin%2E", "/admin."),
        ("/x/../admin.", "/admin."),
    ] {
        assert_public_verbatim(&env, target, forwarded);
    }
    assert!(
        env.echo
            .requests()
            .iter()
            .all(|r| !is_admin_path(&r.target)),
        "{:?}",
        env.echo.requests()
    );
}

/// An HTTP/1.1 request without `Host` is refused with 400 before routing (RFC 9112 §3.2; pingora
/// would let it through). HTTP/1.0 may omit it: then there is no host to match, a host-bound
/// route never matches (404), a route without `host` does, and the upstream receives no `Host`.
#[test]
fn a_request_without_host_is_400_on_http_1_1_and_matches_only_hostless_routes_on_1_0() {
    let hosted = Env::start("", HOSTED);
    let open = env();
    let raw = b"GET /hosted/x HTTP/1.1\r\nConnection: close\r\n\r\n";
    for env in [&hosted, &open] {
        let resp = env.send(raw);
        env.assert_rejected(&resp, 400, Some("invalid_request"), None);
        assert!(
            resp.text().contains("Host header is required"),
            "{}",
            resp.text()
        );
    }

    let raw = b"GET /hosted/x HTTP/1.0\r\nConnection: close\r\n\r\n";
    let resp = hosted.send(raw);
    hosted.assert_rejected(&resp, 404, Some("not_found"), None);
    let resp = open.send(raw);
    let rec = open.assert_allowed(&resp);
    assert_eq!(rec.target, "/hosted/x");
    assert!(rec.header("host").is_none(), "{:?}", rec.headers);
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
    // An authority with userinfo or a non-numeric port is not a host to route on; pingora
    // refuses these before tokengate sees them.
    for target in [
        "http://evil@localhost/admin",
        "http://localhost@evil.test/admin",
        "http://localhost:abc/admin",
    ] {
        eprintln!("case: {target}");
        let before = env.echo.count();
        let resp = get(&env, target, Some(&token), &[("Host", "localhost")]);
        assert_pingora_400(&resp);
        assert_eq!(env.echo.count(), before, "{target} was forwarded");
    }
    // Absolute form of a path with an encoded separator is refused like the origin form.
    let resp = get(
        &env,
        "http://localhost/%2fadmin",
        None,
        &[("Host", "localhost")],
    );
    assert_gateway_400(&resp, "encoded '/' or '\\' in path");
    assert_eq!(env.echo.count(), 4, "{:?}", env.echo.requests());
}

/// `*` is not a path: the path rules refuse it (400 `invalid_request`, as the status table says)
/// before any route is looked up, so it is never a 404 and never forwarded, whatever the method.
#[test]
fn asterisk_form_options_is_400_invalid_request_and_never_forwarded() {
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
        assert_gateway_400(&resp, "request path must start with '/'");
        assert_token_not_leaked(&resp, &token);
    }
    assert_eq!(env.echo.count(), 0, "{:?}", env.echo.requests());
}

/// A target in neither origin nor absolute form (`admin/secret`, `mailto:x`): pingora anchors it
/// to `/`, so without a check of its own the gateway would route and forward `GET /`.
#[test]
fn a_target_that_is_not_a_path_or_url_is_400_and_never_forwarded() {
    let env = env();
    let token = env.token(json!({}));
    for target in ["admin/secret", "public", "mailto:x", "urn:x:y"] {
        let raw = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\n\r\n"
        );
        eprintln!("case: {target}");
        let resp = env.send(raw.as_bytes());
        assert_gateway_400(&resp, "request target must be a path or an absolute URL");
        assert_token_not_leaked(&resp, &token);
    }
    assert_eq!(env.echo.count(), 0, "{:?}", env.echo.requests());
}

/// pingora answers `CONNECT` itself with an empty 405, before tokengate's hooks run: no tunnel is
/// opened and nothing is forwarded, with or without a token.
#[test]
fn connect_is_405_and_never_forwarded_or_tunnelled() {
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
        assert_eq!(resp.status, 405, "{:?} {}", resp.headers, resp.text());
        assert!(resp.body.is_empty(), "{}", resp.text());
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
/// a different host from it). pingora itself refuses userinfo; tokengate refuses the rest.
#[test]
fn malformed_host_headers_are_400_not_routed() {
    let env = Env::start("", HOSTED);
    let resp = env.request("GET", "/hosted/x", &[("Host", "evil@api.test")]);
    assert_pingora_400(&resp);
    for host in [
        "api.test/x",
        "api.test, evil.test",
        "api.test:8080:1",
        "api.test:abc",
        "api.test:80abc",
        "api.test:-1",
        "api.test:+80",
        "api.test:99999",
        "api.test..",
        "",
        "[zz]",
        "[::1",
        "[::1]x",
        "[::1].",
        "api.test]",
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
    ] {
        eprintln!("case: Host: {host:?}");
        let resp = env.request("GET", "/hosted/x", &[("Host", host)]);
        assert_gateway_400(&resp, "Host header is malformed");
    }
    assert_eq!(
        env.echo.count(),
        0,
        "a malformed Host was forwarded: {:?}",
        env.echo.requests()
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

/// The upstream sees the host that was routed on, in its one canonical spelling, whatever
/// spelling the client used; a `Host` already canonical is passed on as it came.
#[test]
fn the_upstream_gets_the_host_in_the_spelling_that_was_routed_on() {
    let env = Env::start("", HOSTED);
    for (sent, forwarded) in [
        ("api.test", "api.test"),
        ("API.Test", "api.test"),
        ("api.test.", "api.test"),
        ("api.test:8080", "api.test:8080"),
        ("API.TEST.:08080", "api.test:8080"),
        ("api.test:", "api.test"),
    ] {
        eprintln!("case: Host: {sent}");
        let resp = env.request("GET", "/hosted/x", &[("Host", sent)]);
        let rec = env.assert_allowed(&resp);
        assert_eq!(rec.header_all("host"), [forwarded], "{:?}", rec.headers);
    }
}

/// RFC 9112 §3.2.2: the authority of an absolute-form target is the host. pingora refuses a
/// `Host` header that disagrees with it (an empty 400), so the request is never routed on the
/// `Host` header instead; when they agree, the upstream sees the host that was routed on.
#[test]
fn absolute_form_with_a_conflicting_host_is_400() {
    let env = Env::start("", HOSTED);
    let resp = env.request("GET", "http://api.test/hosted/x", &[("Host", "api.test")]);
    let rec = env.assert_allowed(&resp);
    assert_eq!(rec.target, "/hosted/x");
    assert_eq!(rec.header_all("host"), ["api.test"], "{:?}", rec.headers);

    for (target, host) in [
        ("http://api.test/hosted/x", "other.test"),
        ("http://other.test/hosted/x", "api.test"),
    ] {
        eprintln!("case: {target} with Host: {host}");
        let resp = env.request("GET", target, &[("Host", host)]);
        assert_pingora_400(&resp);
    }
    assert_eq!(
        env.echo.count(),
        1,
        "a conflicting Host was forwarded: {:?}",
        env.echo.requests()
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
        assert_pingora_400(&resp);
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
        let rec = env.assert_allowed(&resp);
        assert_eq!(env.echo.count(), before + 1);
        assert_eq!(rec.target, "/public");
        assert!(
            rec.header(name).is_none(),
            "{name} reached the upstream of the public route: {:?}",
            rec.headers
        );
    }
}
