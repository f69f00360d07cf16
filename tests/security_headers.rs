//! Security class: identity and forwarding header spoofing.
//!
//! The upstream trusts identity headers because only the gateway can set them. So on every route
//! (JWT routes that forward claims, JWT routes that forward nothing, and `auth = "none"` routes)
//! every client-sent header that starts with the identity prefix, or that any route's
//! `forward_claims` sets, must be gone before the gateway sets its own, whatever its case and
//! however many copies there are. The prefix is configurable. The client address the upstream
//! sees comes from the socket, never from the client's own forwarding headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::*;

const ROUTES: &str = r#"
[[route]]
name = "id"
path_prefix = "/id"
upstream = "echo"
auth = "jwt"
forward_claims = { "x-auth-sub" = "sub", "x-auth-client" = "azp" }

[[route]]
name = "user"
path_prefix = "/user"
upstream = "echo"
auth = "jwt"
forward_claims = { "x-user" = "sub" }

[[route]]
name = "plain"
path_prefix = "/plain"
upstream = "echo"
auth = "jwt"

[[route]]
name = "open"
path_prefix = "/open"
upstream = "echo"
auth = "none"
"#;

fn env() -> Env {
    Env::start("", ROUTES)
}

/// Client-sent identity headers: `x-auth-sub` in four spellings (three copies of one name plus
/// case variants), other names under the prefix, and `x-user` (set by route `user`'s
/// `forward_claims`, outside the prefix) three times. Every spoofed value contains `evil`.
const SPOOFED: &[(&str, &str)] = &[
    ("X-Auth-Sub", "evil-1"),
    ("x-auth-SUB", "evil-2"),
    ("X-AUTH-SUB", "evil-3"),
    ("x-auth-sub", "evil-4"),
    ("X-Auth-Client", "evil-client"),
    ("x-auth-anything", "evil-anything"),
    ("X-Auth-Roles", "evil-admin"),
    ("X-Auth-", "evil-bare-prefix"),
    ("X-User", "evil-user-1"),
    ("x-user", "evil-user-2"),
    ("X-USER", "evil-user-3"),
    ("X-Innocent", "keep-me"),
];

/// A request with `Authorization: Bearer <token>` (if given) plus `extra`.
fn send(env: &Env, path: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    headers.extend_from_slice(extra);
    env.request("GET", path, &headers)
}

/// The request must be relayed (200 from the echo, one new upstream request) and no spoofed value
/// may have reached the upstream, under any header name.
fn relayed_without_spoofed_values(env: &Env, resp: &Response, before: usize) -> Recorded {
    let rec = env.assert_allowed(resp);
    assert_eq!(env.echo.count(), before + 1, "exactly one upstream request");
    for (name, value) in &rec.headers {
        assert!(
            !value.contains("evil"),
            "spoofed header reached the upstream: {name}: {value}; all: {:?}",
            rec.headers
        );
    }
    assert_eq!(
        rec.header_all("x-innocent"),
        ["keep-me"],
        "{:?}",
        rec.headers
    );
    rec
}

#[test]
fn spoofed_identity_headers_are_replaced_by_verified_claims_on_a_forwarding_route() {
    let env = env();
    let token = env.token(json!({"sub": "alice", "azp": "cli-1"}));
    let before = env.echo.count();
    let resp = send(&env, "/id/x", Some(&token), SPOOFED);
    let rec = relayed_without_spoofed_values(&env, &resp, before);
    assert_eq!(rec.header_all("x-auth-sub"), ["alice"], "{:?}", rec.headers);
    assert_eq!(
        rec.header_all("x-auth-client"),
        ["cli-1"],
        "{:?}",
        rec.headers
    );
    for name in ["x-auth-anything", "x-auth-roles", "x-auth-", "x-user"] {
        assert!(rec.header(name).is_none(), "{name}: {:?}", rec.headers);
    }
}

#[test]
fn spoofed_forward_claims_header_outside_the_prefix_is_replaced_on_its_route() {
    let env = env();
    let token = env.token(json!({"sub": "bob"}));
    let before = env.echo.count();
    let resp = send(&env, "/user/x", Some(&token), SPOOFED);
    let rec = relayed_without_spoofed_values(&env, &resp, before);
    assert_eq!(rec.header_all("x-user"), ["bob"], "{:?}", rec.headers);
    assert!(rec.header("x-auth-sub").is_none(), "{:?}", rec.headers);
}

#[test]
fn spoofed_identity_headers_are_removed_on_a_jwt_route_that_forwards_nothing() {
    let env = env();
    let token = env.token(json!({"sub": "carol", "azp": "cli-2"}));
    // Rejected first: spoofed headers never make an unauthenticated request acceptable.
    let resp = send(&env, "/plain/x", None, SPOOFED);
    env.assert_rejected(&resp, 401, Some("unauthorized"), None);
    assert!(challenge(&resp).starts_with("Bearer"));

    let before = env.echo.count();
    let resp = send(&env, "/plain/x", Some(&token), SPOOFED);
    let rec = relayed_without_spoofed_values(&env, &resp, before);
    for name in ["x-auth-sub", "x-auth-client", "x-auth-anything", "x-user"] {
        assert!(rec.header(name).is_none(), "{name}: {:?}", rec.headers);
    }
}

#[test]
fn spoofed_identity_headers_are_removed_on_auth_none_routes_with_or_without_a_token() {
    let env = env();
    let token = env.token(json!({"sub": "dave"}));
    for tok in [None, Some(token.as_str())] {
        let before = env.echo.count();
        let resp = send(&env, "/open/x", tok, SPOOFED);
        let rec = relayed_without_spoofed_values(&env, &resp, before);
        for name in ["x-auth-sub", "x-auth-client", "x-auth-anything", "x-user"] {
            assert!(rec.header(name).is_none(), "{name}: {:?}", rec.headers);
        }
    }
}

#[test]
fn spoofed_headers_on_a_rejected_request_are_never_forwarded() {
    let env = env();
    let expired = env.token(json!({"exp": now() - 3600, "iat": now() - 7200}));
    let resp = send(&env, "/id/x", Some(&expired), SPOOFED);
    env.assert_rejected(&resp, 401, Some("invalid_token"), Some(&expired));
    assert_challenge_error(&resp, "invalid_token");
    assert!(
        !resp.mentions("evil"),
        "spoofed values echoed back: {resp:?}"
    );
}

/// The `[server] identity_header_prefix` setting replaces `x-auth-`: headers under the new prefix
/// are stripped everywhere; route-forwarded names are stripped whatever the prefix.
#[test]
fn configured_identity_prefix_strips_its_headers_on_every_route() {
    let key = FixtureKey::rsa_a();
    let keys = KeyServer::start(&[&key]);
    let echo = Echo::start();
    let body = format!(
        "{}\n{}\n{}",
        issuer_toml("main", ISS, &keys.url(), &["RS256"], ""),
        upstream_toml("echo", &[echo.addr()], ""),
        r#"
[[route]]
name = "id"
path_prefix = "/id"
upstream = "echo"
forward_claims = { "x-id-sub" = "sub", "x-principal" = "sub" }

[[route]]
name = "open"
path_prefix = "/open"
upstream = "echo"
auth = "none"
"#
    );
    let gw = Gateway::builder(body)
        .server_extra("identity_header_prefix = \"X-Id-\"")
        .start();
    let token = key.sign(serde_json::Value::Null, claims(json!({"sub": "erin"})));
    let auth = format!("Bearer {token}");
    let spoofed: &[(&str, &str)] = &[
        ("X-Id-Sub", "evil-1"),
        ("x-id-sub", "evil-2"),
        ("X-ID-SUB", "evil-3"),
        ("x-id-role", "evil-role"),
        ("X-Principal", "evil-principal"),
        ("x-principal", "evil-principal-2"),
        ("X-Auth-Sub", "not-reserved-here"),
    ];
    for (path, with_token) in [("/id/x", true), ("/open/x", false), ("/open/y", true)] {
        eprintln!("case: {path} (token: {with_token})");
        let mut headers: Vec<(&str, &str)> = spoofed.to_vec();
        if with_token {
            headers.push(("Authorization", &auth));
        }
        let before = echo.count();
        let resp = client::request(gw.proxy_addr(), "GET", path, &headers);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(echo.count(), before + 1);
        let rec = echo.last();
        for (name, value) in &rec.headers {
            assert!(
                !value.contains("evil"),
                "{path}: {name}: {value} reached the upstream; {:?}",
                rec.headers
            );
        }
        if path == "/id/x" {
            assert_eq!(rec.header_all("x-id-sub"), ["erin"], "{:?}", rec.headers);
            assert_eq!(rec.header_all("x-principal"), ["erin"], "{:?}", rec.headers);
        } else {
            assert!(rec.header("x-id-sub").is_none(), "{:?}", rec.headers);
            assert!(rec.header("x-principal").is_none(), "{:?}", rec.headers);
        }
        // `x-auth-` is an ordinary header once the prefix is changed.
        assert_eq!(
            rec.header_all("x-auth-sub"),
            ["not-reserved-here"],
            "{:?}",
            rec.headers
        );
    }
}

/// `identity_header_prefix = ""` turns off prefix stripping, but headers some route forwards are
/// still stripped on every route.
#[test]
fn empty_identity_prefix_still_strips_forward_claims_headers() {
    let key = FixtureKey::rsa_a();
    let keys = KeyServer::start(&[&key]);
    let echo = Echo::start();
    let body = format!(
        "{}\n{}\n{}",
        issuer_toml("main", ISS, &keys.url(), &["RS256"], ""),
        upstream_toml("echo", &[echo.addr()], ""),
        r#"
[[route]]
name = "id"
path_prefix = "/id"
upstream = "echo"
forward_claims = { "x-auth-sub" = "sub" }

[[route]]
name = "open"
path_prefix = "/open"
upstream = "echo"
auth = "none"
"#
    );
    let gw = Gateway::builder(body)
        .server_extra("identity_header_prefix = \"\"")
        .start();
    let resp = client::request(
        gw.proxy_addr(),
        "GET",
        "/open/x",
        &[
            ("X-Auth-Sub", "evil-1"),
            ("x-auth-sub", "evil-2"),
            ("X-Auth-Role", "plain-header"),
        ],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let rec = echo.last();
    assert!(rec.header("x-auth-sub").is_none(), "{:?}", rec.headers);
    assert_eq!(
        rec.header_all("x-auth-role"),
        ["plain-header"],
        "{:?}",
        rec.headers
    );
}

#[test]
fn client_x_forwarded_for_is_replaced_by_the_peer_address() {
    let env = env();
    let token = env.token(json!({}));
    let spoofed: &[(&str, &str)] = &[
        ("X-Forwarded-For", "1.2.3.4"),
        ("x-forwarded-for", "5.6.7.8, 9.9.9.9"),
        ("X-FORWARDED-FOR", "10.0.0.1"),
        ("X-Forwarded-Proto", "https"),
        ("x-forwarded-proto", "wss"),
    ];
    for (path, tok) in [
        ("/id/x", Some(token.as_str())),
        ("/plain/x", Some(token.as_str())),
        ("/open/x", None),
    ] {
        eprintln!("case: {path}");
        let before = env.echo.count();
        let resp = send(&env, path, tok, spoofed);
        let rec = env.assert_allowed(&resp);
        assert_eq!(env.echo.count(), before + 1);
        assert_eq!(
            rec.header_all("x-forwarded-for"),
            ["127.0.0.1"],
            "{path}: the client's X-Forwarded-For must be replaced, not extended: {:?}",
            rec.headers
        );
        assert_eq!(rec.header_all("x-forwarded-proto"), ["http"], "{path}");
    }
}

/// A client listing identity or forwarding headers in `Connection` (hop-by-hop nomination) must
/// not make the upstream lose the headers the gateway sets: the nominated copies are the client's
/// own, and removing them happens before the gateway sets its values (or the request is refused).
#[test]
fn connection_nominations_cannot_remove_gateway_set_headers() {
    let env = env();
    let token = env.token(json!({"sub": "frank"}));
    for nominated in [
        "close, x-auth-sub",
        "close, X-Auth-Sub, x-auth-client",
        "close, x-forwarded-for",
        "close, X-Forwarded-Proto",
    ] {
        eprintln!("case: Connection: {nominated}");
        let before = env.echo.count();
        let resp = send(
            &env,
            "/id/x",
            Some(&token),
            &[("Connection", nominated), ("X-Auth-Sub", "evil")],
        );
        if resp.status == 400 {
            assert_eq!(env.echo.count(), before, "a refused request was forwarded");
            continue;
        }
        let rec = relayed_without_spoofed_values_loose(&env, &resp, before);
        assert_eq!(rec.header_all("x-auth-sub"), ["frank"], "{:?}", rec.headers);
        assert_eq!(
            rec.header_all("x-forwarded-for"),
            ["127.0.0.1"],
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
}

/// Like [`relayed_without_spoofed_values`] without the `X-Innocent` check.
fn relayed_without_spoofed_values_loose(env: &Env, resp: &Response, before: usize) -> Recorded {
    let rec = env.assert_allowed(resp);
    assert_eq!(env.echo.count(), before + 1, "exactly one upstream request");
    for (name, value) in &rec.headers {
        assert!(
            !value.contains("evil"),
            "{name}: {value}; {:?}",
            rec.headers
        );
    }
    rec
}

/// CGI-style upstreams (PHP `$_SERVER`, WSGI `environ`, Rack `env`, Go `net/http/cgi`) map both
/// `X-Auth-Sub` and `X_Auth_Sub` to `HTTP_X_AUTH_SUB`. An underscore spelling of an identity
/// header must therefore be treated as that identity header: stripped (or the request refused),
/// never forwarded, on every route.
#[test]
fn underscore_spellings_of_identity_headers_never_reach_the_upstream() {
    let env = env();
    let token = env.token(json!({"sub": "grace"}));
    let spoofed: &[(&str, &str)] = &[
        ("X_Auth_Sub", "evil-1"),
        ("x_auth_sub", "evil-2"),
        ("X-Auth_Sub", "evil-3"),
        ("x_auth_anything", "evil-4"),
        ("X_User", "evil-5"),
    ];
    for (path, tok) in [
        ("/id/x", Some(token.as_str())),
        ("/plain/x", Some(token.as_str())),
        ("/open/x", None),
    ] {
        eprintln!("case: {path}");
        let before = env.echo.count();
        let resp = send(&env, path, tok, spoofed);
        if resp.status == 400 {
            assert_rejection(&resp, 400, None, tok);
            assert_eq!(env.echo.count(), before, "a refused request was forwarded");
            continue;
        }
        let rec = relayed_without_spoofed_values_loose(&env, &resp, before);
        if path == "/id/x" {
            assert_eq!(rec.header_all("x-auth-sub"), ["grace"], "{:?}", rec.headers);
        }
    }
}

/// Every spelling of `x-user` a client can send, in several cases and copies. CGI-style
/// upstreams read all of them as `HTTP_X_USER`.
const USER_SPELLINGS: &[(&str, &str)] = &[
    ("x-user", "evil-1"),
    ("X-User", "evil-2"),
    ("X-USER", "evil-3"),
    ("x_user", "evil-4"),
    ("X_User", "evil-5"),
    ("X_USER", "evil-6"),
    ("x-User", "evil-7"),
    ("x_user", "evil-8"),
    ("x-user", "evil-9"),
    ("X-Innocent", "keep-me"),
];

/// A gateway whose only `forward_claims` entry sets `header` from `sub`, next to an
/// `auth = "none"` route: that one spelling is all the gateway is told to strip, so any other
/// spelling of it that it fails to fold would reach the upstream.
fn env_forwarding(header: &str) -> Env {
    Env::start(
        "",
        &format!(
            r#"
[[route]]
name = "fwd"
path_prefix = "/fwd"
upstream = "echo"
forward_claims = {{ "{header}" = "sub" }}

[[route]]
name = "open"
path_prefix = "/open"
upstream = "echo"
auth = "none"
"#
        ),
    )
}

/// Every header of `rec` that a CGI-style upstream reads as `X-User`.
fn user_headers(rec: &Recorded) -> Vec<(String, String)> {
    rec.headers
        .iter()
        .filter(|(n, _)| n.replace('_', "-") == "x-user")
        .cloned()
        .collect()
}

/// Whether the route's `forward_claims` names `x_user` or `x-user`, a client copy of the header
/// in any spelling is gone: the upstream sees only the gateway's value under the configured name
/// when the claim is present, and no `x-user` of any spelling when it is absent or on a route
/// that forwards nothing.
#[test]
fn every_spelling_of_a_forwarded_header_is_stripped_whichever_spelling_the_route_uses() {
    for configured in ["x_user", "x-user"] {
        let env = env_forwarding(configured);
        let with_sub = env.token(json!({"sub": "bob"}));
        let without_sub = env.token(json!({"sub": null}));
        for (path, token, want) in [
            ("/fwd/x", Some(with_sub.as_str()), Some("bob")),
            ("/fwd/x", Some(without_sub.as_str()), None),
            ("/open/x", None, None),
            ("/open/x", Some(with_sub.as_str()), None),
        ] {
            eprintln!(
                "case: forward_claims {configured:?}, {path}, token: {}, want {want:?}",
                token.is_some()
            );
            let before = env.echo.count();
            let resp = send(&env, path, token, USER_SPELLINGS);
            let rec = relayed_without_spoofed_values(&env, &resp, before);
            let expected: Vec<(String, String)> = want
                .map(|v| (configured.to_string(), v.to_string()))
                .into_iter()
                .collect();
            assert_eq!(user_headers(&rec), expected, "all: {:?}", rec.headers);
        }
    }
}

/// The client address the upstream sees must come from the socket. `Forwarded` (RFC 7239) and
/// `X-Real-IP` carry the same information as `X-Forwarded-For`, so a client-sent copy must not
/// reach the upstream (removed, or replaced by the gateway's own value).
#[test]
fn client_forwarded_and_x_real_ip_never_reach_the_upstream() {
    let env = env();
    let token = env.token(json!({}));
    for (path, tok) in [("/id/x", Some(token.as_str())), ("/open/x", None)] {
        for (name, value) in [
            ("Forwarded", "for=1.2.3.4;proto=https;host=api.test"),
            ("forwarded", "for=\"[2001:db8::1]\""),
            ("X-Real-IP", "1.2.3.4"),
        ] {
            eprintln!("case: {path} {name}: {value}");
            let before = env.echo.count();
            let resp = send(&env, path, tok, &[(name, value)]);
            let rec = env.assert_allowed(&resp);
            assert_eq!(env.echo.count(), before + 1);
            for (n, v) in &rec.headers {
                assert!(
                    !(v.contains("1.2.3.4") || v.contains("2001:db8")),
                    "{path}: client-supplied address reached the upstream in {n}: {v}"
                );
            }
        }
    }
}

/// Every other header a framework takes as the request's scheme, client address or path, as
/// Rack, Django, IIS, Envoy and CDN front ends spell them: none may reach the upstream from the
/// client, on any route, in any case.
#[test]
fn scheme_client_and_path_override_headers_never_reach_the_upstream() {
    let env = env();
    let token = env.token(json!({}));
    let overrides = [
        ("X-Forwarded-Ssl", "on"),
        ("x-forwarded-scheme", "https"),
        ("Front-End-Https", "on"),
        ("X-Url-Scheme", "https"),
        ("Client-IP", "9.9.9.9"),
        ("True-Client-IP", "9.9.9.9"),
        ("X-CLIENT-IP", "9.9.9.9"),
        ("X-Original-URI", "/admin"),
        ("X-Forwarded-Uri", "/admin"),
        ("X-Envoy-Original-Path", "/admin"),
        ("X_Forwarded_Ssl", "on"),
    ];
    for (path, tok) in [("/id/x", Some(token.as_str())), ("/open/x", None)] {
        let before = env.echo.count();
        let resp = send(&env, path, tok, &overrides);
        let rec = env.assert_allowed(&resp);
        assert_eq!(env.echo.count(), before + 1);
        for (name, _) in overrides {
            let folded = name.replace('_', "-");
            assert!(
                rec.header(name).is_none() && rec.header(&folded).is_none(),
                "{path}: {name} reached the upstream: {:?}",
                rec.headers
            );
        }
    }
}

/// `X-Forwarded-Host` is a gateway-owned name (a `forward_claims` entry may not set it), and it
/// is never used for routing; a client-sent copy reaching the upstream would let the client choose
/// the host the upstream builds absolute URLs (redirects, reset links) from.
#[test]
fn client_x_forwarded_host_never_reaches_the_upstream() {
    let env = env();
    let token = env.token(json!({}));
    for (path, tok) in [("/id/x", Some(token.as_str())), ("/open/x", None)] {
        eprintln!("case: {path}");
        let before = env.echo.count();
        let resp = send(&env, path, tok, &[("X-Forwarded-Host", "evil.example")]);
        let rec = relayed_without_spoofed_values_loose(&env, &resp, before);
        assert!(
            rec.header_all("x-forwarded-host")
                .iter()
                .all(|v| !v.contains("evil.example")),
            "{path}: client X-Forwarded-Host reached the upstream: {:?}",
            rec.headers
        );
    }
}
