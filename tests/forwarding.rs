//! What reaches the upstream: identity headers from verified claims (and never from the client),
//! X-Forwarded-*, the Authorization header, load balancing across targets, and the 502/504
//! answers when the upstream fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;

const ROUTES: &str = r#"
[[route]]
name = "identity"
path_prefix = "/id"
upstream = "echo"
auth = "jwt"
forward_claims = { "x-auth-sub" = "sub", "x-auth-client" = "azp" }

[[route]]
name = "tenant"
path_prefix = "/tenant"
upstream = "echo"
auth = "jwt"
forward_claims = { "x-tenant" = "tenant" }

[[route]]
name = "stripped"
path_prefix = "/stripped"
upstream = "echo"
auth = "jwt"
strip_authorization = true

[[route]]
name = "open"
path_prefix = "/open"
upstream = "echo"
auth = "none"
"#;

fn env() -> Env {
    Env::start("", ROUTES)
}

/// [`ROUTES`] plus a route `/NAME` to its own upstream NAME on `targets`: `route_lines` are added
/// to the route (its `auth` included), `upstream_lines` to the upstream.
fn env_with_upstream(
    name: &str,
    targets: &[std::net::SocketAddr],
    upstream_lines: &str,
    route_lines: &str,
) -> Env {
    let extra = format!(
        "{}\n{ROUTES}\n[[route]]\nname = \"{name}\"\npath_prefix = \"/{name}\"\nupstream = \"{name}\"\n{route_lines}\n",
        upstream_toml(name, targets, upstream_lines)
    );
    Env::start("", &extra)
}

/// Client-supplied copies of identity headers, in mixed case and duplicated, plus one innocent
/// header that must survive.
const SPOOFED: &[(&str, &str)] = &[
    ("X-Auth-Sub", "evil-sub"),
    ("x-auth-sub", "evil-sub-2"),
    ("X-AUTH-CLIENT", "evil-client"),
    ("X-Auth-Role", "admin"),
    ("x-auth-anything", "1"),
    ("X-Tenant", "evil-tenant"),
    ("x-tenant", "evil-tenant-2"),
    ("X-Custom", "keep-me"),
];

fn with_auth<'a>(auth: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![("Authorization", auth)];
    headers.extend_from_slice(extra);
    headers
}

#[test]
fn forward_claims_headers_reach_the_upstream() {
    let env = env();
    let token = env.token(json!({"sub": "user-42", "azp": "client-7", "tenant": "acme"}));
    let rec = env.expect_allowed("/id/x", Some(&token));
    assert_eq!(rec.header_all("x-auth-sub"), ["user-42"]);
    assert_eq!(rec.header_all("x-auth-client"), ["client-7"]);

    let rec = env.expect_allowed("/tenant/x", Some(&token));
    assert_eq!(rec.header_all("x-tenant"), ["acme"]);
    assert!(
        rec.header("x-auth-sub").is_none(),
        "route does not forward sub"
    );
}

#[test]
fn spoofed_identity_headers_are_replaced_on_jwt_routes() {
    let env = env();
    // No azp: x-auth-client must then be absent, not the spoofed value.
    let token = env.token(json!({"sub": "user-42"}));
    let auth = format!("Bearer {token}");
    let resp = env.request("GET", "/id/x", &with_auth(&auth, SPOOFED));
    let rec = env.assert_allowed(&resp);
    assert_eq!(
        rec.header_all("x-auth-sub"),
        ["user-42"],
        "{:?}",
        rec.headers
    );
    assert!(rec.header("x-auth-client").is_none(), "{:?}", rec.headers);
    assert!(rec.header("x-auth-role").is_none(), "{:?}", rec.headers);
    assert!(rec.header("x-auth-anything").is_none(), "{:?}", rec.headers);
    // x-tenant is only forwarded by another route, but is an identity header everywhere.
    assert!(rec.header("x-tenant").is_none(), "{:?}", rec.headers);
    assert_eq!(rec.header_all("x-custom"), ["keep-me"]);
}

#[test]
fn spoofed_identity_headers_are_replaced_on_a_route_forwarding_them() {
    let env = env();
    let token = env.token(json!({"sub": "user-42", "tenant": "acme"}));
    let auth = format!("Bearer {token}");
    let resp = env.request("GET", "/tenant/x", &with_auth(&auth, SPOOFED));
    let rec = env.assert_allowed(&resp);
    assert_eq!(rec.header_all("x-tenant"), ["acme"], "{:?}", rec.headers);
    for name in [
        "x-auth-sub",
        "x-auth-client",
        "x-auth-role",
        "x-auth-anything",
    ] {
        assert!(rec.header(name).is_none(), "{name}: {:?}", rec.headers);
    }
}

#[test]
fn spoofed_identity_headers_are_removed_on_auth_none_routes() {
    let env = env();
    let resp = env.request("GET", "/open/x", SPOOFED);
    let rec = env.assert_allowed(&resp);
    for name in [
        "x-auth-sub",
        "x-auth-client",
        "x-auth-role",
        "x-auth-anything",
        "x-tenant",
    ] {
        assert!(rec.header(name).is_none(), "{name}: {:?}", rec.headers);
    }
    assert_eq!(rec.header_all("x-custom"), ["keep-me"]);
}

#[test]
fn x_forwarded_for_and_proto_are_set() {
    let env = env();
    let rec = env.expect_allowed("/open/x", None);
    let xff: Vec<String> = rec
        .header_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .collect();
    assert_eq!(
        xff.last().map(String::as_str),
        Some("127.0.0.1"),
        "{:?}",
        rec.headers
    );
    assert_eq!(
        rec.header_all("x-forwarded-proto"),
        ["http"],
        "{:?}",
        rec.headers
    );
}

#[test]
fn client_supplied_x_forwarded_headers_do_not_override_the_gateway() {
    let env = env();
    let resp = env.request(
        "GET",
        "/open/x",
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
        ],
    );
    let rec = env.assert_allowed(&resp);
    let xff: Vec<String> = rec
        .header_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .collect();
    assert_eq!(
        xff.last().map(String::as_str),
        Some("127.0.0.1"),
        "the client address must be the last hop: {:?}",
        rec.headers
    );
    assert_eq!(
        rec.header_all("x-forwarded-proto"),
        ["http"],
        "{:?}",
        rec.headers
    );
}

#[test]
fn authorization_is_forwarded_by_default() {
    let env = env();
    let token = env.token(json!({}));
    let rec = env.expect_allowed("/id/x", Some(&token));
    assert_eq!(
        rec.header_all("authorization"),
        [format!("Bearer {token}").as_str()]
    );
}

#[test]
fn strip_authorization_removes_it() {
    let env = env();
    let token = env.token(json!({}));
    let rec = env.expect_allowed("/stripped/x", Some(&token));
    assert!(
        rec.header("authorization").is_none(),
        "Authorization was forwarded: {:?}",
        rec.headers
    );
}

#[test]
fn requests_are_spread_across_all_targets() {
    let a = Echo::start();
    let b = Echo::start();
    let extra = format!(
        "{}\n[[route]]\nname = \"pair\"\npath_prefix = \"/pair\"\nupstream = \"pair\"\nauth = \"none\"\n",
        upstream_toml("pair", &[a.addr(), b.addr()], "")
    );
    let env = Env::start("", &extra);
    for i in 0..20 {
        let resp = env.get(&format!("/pair/{i}"), None);
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    assert_eq!(a.count() + b.count(), 20);
    assert!(
        a.count() > 0 && b.count() > 0,
        "both targets must receive requests: a={}, b={}",
        a.count(),
        b.count()
    );
}

#[test]
fn closed_upstream_port_is_502() {
    let closed = reserve_addr();
    let env = env_with_upstream(
        "dead",
        &[closed],
        "connect_timeout = \"1s\"",
        "auth = \"jwt\"",
    );
    let token = env.token(json!({}));
    let resp = env.get("/dead/x", Some(&token));
    assert_rejection(&resp, 502, None, Some(&token));
}

#[test]
fn an_upstream_failure_is_logged_without_the_query() {
    // pingora logs each failed upstream request; the query may hold a token.
    let closed = reserve_addr();
    let env = env_with_upstream(
        "dead-open",
        &[closed],
        "connect_timeout = \"1s\"",
        "auth = \"none\"",
    );
    let resp = env.get("/dead-open/x?access_token=SECRET-IN-QUERY", None);
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert!(
        wait_until(Duration::from_secs(5), || env
            .gw
            .stderr()
            .contains("/dead-open/x")),
        "pingora did not log the failure: {}",
        env.gw.stderr()
    );
    assert!(
        !env.gw.stderr().contains("SECRET-IN-QUERY"),
        "the query reached the log: {}",
        env.gw.stderr()
    );
}

#[test]
fn slow_upstream_beyond_read_timeout_is_504() {
    let slow = Echo::start_with_delay(Duration::from_secs(5));
    let env = env_with_upstream(
        "slow",
        &[slow.addr()],
        "read_timeout = \"1s\"",
        "auth = \"jwt\"",
    );
    let token = env.token(json!({}));
    let resp = env.get("/slow/x", Some(&token));
    assert_rejection(&resp, 504, None, Some(&token));
    assert!(slow.count() >= 1, "the slow upstream was never asked");
}

/// An upstream that answers the first request on each connection and, on the next one, reads it
/// and closes without answering: what pingora sees when a kept-alive upstream connection dies
/// under it, which it retries on a new connection. Records every request head it read.
struct DropsReused {
    addr: std::net::SocketAddr,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl DropsReused {
    fn start() -> Self {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(16) {
                let Ok(mut stream) = stream else { return };
                let log = log.clone();
                std::thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    for n in 0..2 {
                        let Some(head) = read_head(&mut stream) else {
                            return;
                        };
                        log.lock().unwrap().push(head);
                        if n == 1 {
                            return; // dropped unanswered: the connection closes
                        }
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(ok).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        DropsReused { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// One request head (no body: the test sends GETs), or `None` when the peer closes first.
fn read_head(stream: &mut std::net::TcpStream) -> Option<String> {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

#[test]
fn a_retried_request_keeps_its_identity_headers() {
    let up = DropsReused::start();
    let env = env_with_upstream(
        "flaky",
        &[up.addr],
        "",
        "auth = \"jwt\"\nforward_claims = { \"x-auth-sub\" = \"sub\" }",
    );
    let token = env.token(json!({"sub": "user-42"}));
    // The second request goes out on the pooled connection, which the upstream drops: pingora
    // retries it on a new connection.
    for n in 0..2 {
        let resp = env.request(
            "GET",
            "/flaky/x",
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("X-Auth-Sub", "evil"),
            ],
        );
        assert_eq!(resp.status, 200, "request {n}: {}", resp.text());
    }
    let heads = up.heads();
    assert_eq!(heads.len(), 3, "first, dropped, retried: {heads:#?}");
    for head in &heads {
        let subs: Vec<&str> = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-auth-sub"))
            .map(|(_, v)| v.trim())
            .collect();
        assert_eq!(
            subs,
            ["user-42"],
            "every attempt carries the identity: {head}"
        );
    }
}
