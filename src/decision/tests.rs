//! Unit tests for `decision`: a compiled config and `http` request heads in, permit or rejection
//! out, at an injected time.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::metrics::Metrics;
use crate::path::PathError;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::path::Path;

const RSA_A: &[u8] = include_bytes!("../../tests/fixtures/rsa_a.pem");
const NOW: i64 = 1_700_000_000;
const ISS: &str = "https://issuer.example/";

/// A compiled runtime, with the temporary directory holding its JWKS kept alive.
struct Fixture {
    rt: Runtime,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let key = EncodingKey::from_rsa_pem(RSA_A).unwrap();
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap()).unwrap();
    jwk["kid"] = json!("a");
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({ "keys": [jwk] }).to_string()).unwrap();
    let toml = format!(
        r#"
[server]
max_token_bytes = 1024

[[issuer]]
name = "idp"
issuer = "{ISS}"
audiences = ["api"]
jwks_file = "{jwks}"
algorithms = ["RS256"]

[[upstream]]
name = "u"
targets = ["127.0.0.1:1"]

[[route]]
name = "public"
path = "/public"
upstream = "u"
auth = "none"

[[route]]
name = "hosted"
host = "API.example.com"
path_prefix = "/x"
upstream = "u"

[[route]]
name = "api"
path_prefix = "/a"
upstream = "u"
forward_claims = {{ "x-auth-sub" = "sub", "x-auth-roles" = "roles", "x-auth-level" = "level", "x-auth-flag" = "flag", "x-auth-note" = "note", "x-auth-missing" = "missing", "x-auth-org" = "org.name", "x-auth-null" = "nothing", "x-auth-mixed" = "mixed", "x-auth-accent" = "accent" }}

[[route]]
name = "scoped"
path_prefix = "/s"
methods = ["GET"]
upstream = "u"
scopes_all = ["admin"]
"#,
        jwks = jwks.display().to_string().replace('\\', "\\\\"),
    );
    let rt = crate::config::load_str(&toml, "test.toml", Path::new("."), &Metrics::new().unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    Fixture { rt, _dir: dir }
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": "api",
        "sub": "alice",
        "exp": NOW + 600,
        "iat": NOW - 10,
        "scope": "read",
        "roles": ["r1", "r2"],
        "level": 3,
        "flag": true,
        "note": "line1\nline2",
        "org": {"name": "acme"},
        "nothing": null,
        "mixed": [1, "b", true],
        "accent": "café",
    })
}

fn mint_kid(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(RSA_A).unwrap()).unwrap()
}

fn mint(claims: &Value) -> String {
    mint_kid(claims, "a")
}

/// A request; without a `Host` header it is HTTP/1.0, the only version that may omit it.
fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut b = http::Request::builder().method(method).uri(uri);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.version(http::Version::HTTP_10);
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn decide_get(f: &Fixture, uri: &str, headers: &[(&str, &str)]) -> Decision {
    decide(&f.rt, &request("GET", uri, headers), NOW)
}

fn route_name(d: &Decision) -> Option<&str> {
    d.route.as_ref().map(|r| r.name.as_str())
}

fn rejection(d: &Decision) -> &Rejection {
    match &d.outcome {
        Ok(p) => panic!("permitted: {p:?}"),
        Err(r) => r,
    }
}

fn permit(d: &Decision) -> &Permit {
    match &d.outcome {
        Ok(p) => p,
        Err(r) => panic!("rejected: {r:?}"),
    }
}

/// The identity headers an upstream request for a permitted decision gets.
fn forwarded(d: &Decision) -> IdentityHeaders {
    permit(d).identity_headers(d.route.as_ref().expect("a permit has a route"))
}

#[test]
fn unmatched_request_is_no_route_without_a_route() {
    let f = fixture();
    for uri in ["/", "/other", "/ap", "/publicx", "/x/1"] {
        let d = decide_get(&f, uri, &[]);
        assert_eq!(rejection(&d), &Rejection::NoRoute, "{uri}");
        assert!(d.route.is_none(), "{uri}");
        assert!(d.key_miss.is_none());
    }
}

#[test]
fn unsafe_path_is_bad_path_before_routing() {
    let f = fixture();
    let cases = [
        ("/a/%2fx", PathError::EncodedSeparator),
        ("/a/..%2f..", PathError::EncodedSeparator),
        ("/..", PathError::AboveRoot),
        ("/a/../..", PathError::AboveRoot),
        ("/a;x", PathError::ForbiddenByte),
        ("/a/%00", PathError::ForbiddenByte),
        ("/a/%C0%AE", PathError::InvalidUtf8),
    ];
    for (uri, want) in cases {
        let d = decide_get(&f, uri, &[]);
        assert_eq!(rejection(&d), &Rejection::BadPath(want), "{uri}");
        assert!(d.route.is_none());
    }
}

#[test]
fn two_host_headers_are_a_bad_target() {
    let f = fixture();
    let d = decide_get(
        &f,
        "/x/1",
        &[("host", "api.example.com"), ("host", "api.example.com")],
    );
    assert_eq!(
        rejection(&d),
        &Rejection::BadTarget("more than one Host header")
    );
    assert!(d.route.is_none());
}

#[test]
fn http_1_1_without_host_is_a_bad_target_and_http_1_0_is_routed() {
    let f = fixture();
    let mut req = request("GET", "/x/1", &[]);
    req.version = http::Version::HTTP_11;
    let d = decide(&f.rt, &req, NOW);
    assert_eq!(
        rejection(&d),
        &Rejection::BadTarget("Host header is required")
    );
    assert!(d.route.is_none());
    // An absolute-form target carries the host itself.
    let mut req = request("GET", "http://api.example.com/x/1", &[]);
    req.version = http::Version::HTTP_11;
    assert!(!matches!(
        decide(&f.rt, &req, NOW).outcome,
        Err(Rejection::BadTarget(_))
    ));
    // HTTP/1.0 predates Host: no host, so only routes without a host rule can match.
    let d = decide(&f.rt, &request("GET", "/x/1", &[]), NOW);
    assert!(!matches!(d.outcome, Err(Rejection::BadTarget(_))));
}

#[test]
fn malformed_or_non_ascii_host_is_a_bad_target() {
    let f = fixture();
    let d = decide_get(&f, "/x/1", &[("host", "a b")]);
    assert!(matches!(rejection(&d), Rejection::BadTarget(_)));
    let mut req = request("GET", "/x/1", &[]);
    req.headers.insert(
        HOST,
        HeaderValue::from_bytes(b"api.example.com\xff").unwrap(),
    );
    let d = decide(&f.rt, &req, NOW);
    assert_eq!(
        rejection(&d),
        &Rejection::BadTarget("Host header is not ASCII")
    );
}

/// Host values are split and checked by hand (no authority parser): an IPv6 literal must parse
/// as one, a port must be digits forming a u16, and nothing may follow either.
#[test]
fn host_values_split_into_a_checked_host_and_port() {
    let ok = [
        ("[::1]", ("[::1]", None)),
        ("[::1]:8080", ("[::1]", Some(8080))),
        ("[2001:DB8::A]:", ("[2001:db8::a]", None)),
        ("[::ffff:127.0.0.1]", ("[::ffff:127.0.0.1]", None)),
        ("127.0.0.1:65535", ("127.0.0.1", Some(65535))),
        ("Api.Example.Com.:443", ("api.example.com", Some(443))),
        ("h_1-a", ("h_1-a", None)),
        ("10.0.0.1:80", ("10.0.0.1", Some(80))),
        ("api.v1", ("api.v1", None)),
        ("1a.example", ("1a.example", None)),
        ("0xfeed.example", ("0xfeed.example", None)),
    ];
    for (text, (host, port)) in ok {
        let got = split_authority(text);
        assert_eq!(got, Ok((Cow::Borrowed(host), port)), "{text:?}");
    }
    let bad = [
        "",
        ":80",
        "[::1",
        "[::1]x",
        "[::1]:x",
        "[zz]",
        "[]",
        "[v1.fe]",
        "[fe80::1%25eth0]",
        "[::1].",
        "::1",
        "a:1:2",
        "a:65536",
        "user@a",
        "user:pw@a",
        "a..b",
        ".",
        "a b",
        "a:-1",
        // A host ending in a number is IPv4, and only its dotted-quad spelling is accepted: the
        // others read as 127.0.0.1 (or as some other address) to `inet_aton`.
        "127.1",
        "0x7f.0.0.1",
        "2130706433",
        "127.0.0.01",
        "1.2.3.4.5",
        "256.0.0.1",
        "a.1",
        "a.0x",
        "a.0x1f",
        "0X7F000001:80",
    ];
    for text in bad {
        assert_eq!(
            split_authority(text),
            Err(Rejection::BadTarget("Host header is malformed")),
            "{text:?}"
        );
    }
    // The canonical spelling is borrowed from the request; only a rewrite allocates.
    assert!(matches!(
        normalise_host("api.example.com"),
        Ok(Cow::Borrowed(_))
    ));
    assert!(matches!(
        normalise_host("API.example.com"),
        Ok(Cow::Owned(_))
    ));
}

#[test]
fn only_origin_and_absolute_form_targets_name_a_resource() {
    for ok in [
        &b"/"[..],
        b"/a?b",
        b"*",
        b"http://h/x",
        b"HTTPS://h",
        b"http://h",
    ] {
        assert_eq!(target_form(ok), Ok(()), "{:?}", String::from_utf8_lossy(ok));
    }
    for bad in [
        &b"admin/secret"[..],
        b"mailto:x",
        b"",
        b"h:80",
        b"ftp://h/x",
        b"http:/x",
    ] {
        assert_eq!(
            target_form(bad),
            Err(Rejection::BadTarget(
                "request target must be a path or an absolute URL"
            )),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn connect_is_a_bad_target() {
    let f = fixture();
    let d = decide(&f.rt, &request("CONNECT", "api.example.com:443", &[]), NOW);
    assert!(matches!(rejection(&d), Rejection::BadTarget(_)));
    assert!(d.route.is_none());
}

#[test]
fn host_route_matches_host_header_case_port_and_trailing_dot_insensitively() {
    let f = fixture();
    let token = mint(&claims());
    let auth = bearer(&token);
    for host in [
        "api.example.com",
        "API.Example.COM:8443",
        "api.example.com.",
        "api.example.com:80",
    ] {
        let d = decide_get(&f, "/x/1", &[("host", host), ("authorization", &auth)]);
        assert_eq!(route_name(&d), Some("hosted"), "{host}");
        assert!(d.outcome.is_ok(), "{host}: {:?}", d.outcome);
    }
    for host in [
        "other.example.com",
        "api.example.com.evil",
        "xapi.example.com",
    ] {
        let d = decide_get(&f, "/x/1", &[("host", host), ("authorization", &auth)]);
        assert_eq!(rejection(&d), &Rejection::NoRoute, "{host}");
    }
}

/// The upstream gets the host that was matched, spelled canonically; a client that already sent
/// that spelling is left alone (no rewrite), and any other spelling is rewritten, port included.
#[test]
fn host_is_rewritten_only_when_the_sent_spelling_is_not_canonical() {
    let f = fixture();
    let auth = bearer(&mint(&claims()));
    let cases = [
        ("api.example.com", None),
        ("api.example.com:8443", None),
        ("api.example.com:0", None),
        ("API.example.com", Some("api.example.com")),
        ("api.example.com.", Some("api.example.com")),
        ("api.example.com.:8443", Some("api.example.com:8443")),
        ("api.example.com:08443", Some("api.example.com:8443")),
        ("api.example.com:", Some("api.example.com")),
        ("API.EXAMPLE.COM:80", Some("api.example.com:80")),
    ];
    for (sent, want) in cases {
        let d = decide_get(&f, "/x/1", &[("host", sent), ("authorization", &auth)]);
        assert_eq!(permit(&d).host.as_deref(), want, "Host: {sent}");
    }
    // Absolute form: the target's authority is the host, and the Host header is set to it.
    let d = decide_get(
        &f,
        "http://api.example.com:8443/x/1",
        &[("host", "api.example.com"), ("authorization", &auth)],
    );
    assert_eq!(permit(&d).host.as_deref(), Some("api.example.com:8443"));
    let d = decide_get(
        &f,
        "http://api.example.com/x/1",
        &[("host", "api.example.com"), ("authorization", &auth)],
    );
    assert_eq!(permit(&d).host, None);
}

#[test]
fn absolute_form_target_authority_overrides_the_host_header() {
    let f = fixture();
    let auth = bearer(&mint(&claims()));
    let d = decide_get(
        &f,
        "http://API.example.com./x/1?q=2",
        &[("host", "other.example.com"), ("authorization", &auth)],
    );
    assert_eq!(route_name(&d), Some("hosted"));
    assert_eq!(permit(&d).path_and_query, "/x/1?q=2");
    let d = decide_get(
        &f,
        "http://other.example.com/x/1",
        &[("host", "api.example.com"), ("authorization", &auth)],
    );
    assert_eq!(rejection(&d), &Rejection::NoRoute);
}

#[test]
fn missing_token_is_rejected_on_a_jwt_route() {
    let f = fixture();
    let d = decide_get(&f, "/a/x", &[]);
    assert_eq!(rejection(&d), &Rejection::MissingToken);
    assert_eq!(route_name(&d), Some("api"));
}

#[test]
fn malformed_authorization_is_rejected() {
    let f = fixture();
    let token = mint(&claims());
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("authorization", "Basic dXNlcjpwYXNz".into())],
        vec![("authorization", "Bearer".into())],
        vec![("authorization", "Bearer a b".into())],
        vec![
            ("authorization", bearer(&token)),
            ("authorization", bearer(&token)),
        ],
    ];
    for headers in cases {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let d = decide_get(&f, "/a/x", &hs);
        assert!(
            matches!(rejection(&d), Rejection::BadAuthorization(_)),
            "{headers:?}"
        );
        assert_eq!(route_name(&d), Some("api"));
    }
}

#[test]
fn syntax_is_checked_on_every_token_the_cache_has_not_seen() {
    // A cache hit skips the b64token scan; whatever is not that exact cached token must still
    // get it, however close to a cached one it is.
    let f = fixture();
    assert!(
        f.rt.tokens.key_of(b"x").is_some(),
        "the fixture caches tokens"
    );
    let token = mint(&claims());
    let ok = decide_get(&f, "/a/x", &[("authorization", &bearer(&token))]);
    assert!(ok.outcome.is_ok(), "{:?}", ok.outcome);
    for altered in [
        format!("{token}\""),
        format!("{token}%"),
        format!("{}*{}", &token[..10], &token[11..]),
        format!("{token}=a"),
    ] {
        let d = decide_get(&f, "/a/x", &[("authorization", &bearer(&altered))]);
        assert_eq!(
            rejection(&d),
            &Rejection::BadAuthorization("bearer token has characters outside b64token"),
            "{altered:?}"
        );
    }
    let again = decide_get(&f, "/a/x", &[("authorization", &bearer(&token))]);
    assert!(again.outcome.is_ok(), "{:?}", again.outcome);
}

#[test]
fn token_over_the_size_limit_is_rejected_before_parsing() {
    let f = fixture();
    assert_eq!(f.rt.settings.max_token_bytes, 1024);
    let d = decide_get(&f, "/a/x", &[("authorization", &bearer(&"a".repeat(1025)))]);
    assert_eq!(rejection(&d), &Rejection::TokenTooLarge);
    let mut big = claims();
    big["pad"] = json!("p".repeat(1024));
    let d = decide_get(&f, "/a/x", &[("authorization", &bearer(&mint(&big)))]);
    assert_eq!(rejection(&d), &Rejection::TokenTooLarge);
}

#[test]
fn allowed_request_is_permitted_with_the_normalised_path_and_query() {
    let f = fixture();
    let auth = bearer(&mint(&claims()));
    let cases = [
        ("/a/./b/../c%41?q=1", "/a/cA?q=1"),
        ("/a", "/a"),
        ("//a//x/", "/a/x/"),
        ("/a/x?q=%2F..&r", "/a/x?q=%2F..&r"),
        ("/public/../a/x", "/a/x"),
        ("/%61/x", "/a/x"),
        ("/a/%7e%7E", "/a/~~"),
        ("/a/%c3%a9", "/a/%C3%A9"),
    ];
    for (uri, want) in cases {
        let d = decide_get(&f, uri, &[("authorization", &auth)]);
        assert_eq!(route_name(&d), Some("api"), "{uri}");
        assert_eq!(permit(&d).path_and_query, want, "{uri}");
    }
}

#[test]
fn route_is_chosen_on_the_normalised_path() {
    let f = fixture();
    // `/public/../s/x` must not be treated as public: it is `/s/x`, which needs a scope.
    let d = decide_get(&f, "/public/../s/x", &[]);
    assert_eq!(route_name(&d), Some("scoped"));
    assert_eq!(rejection(&d), &Rejection::MissingToken);
    let d = decide_get(&f, "/%70ublic", &[]);
    assert_eq!(route_name(&d), Some("public"));
}

#[test]
fn forward_claims_become_identity_headers() {
    let f = fixture();
    let auth = bearer(&mint(&claims()));
    let d = decide_get(&f, "/a/x", &[("authorization", &auth)]);
    let p = permit(&d);
    let mut got: Vec<(String, String)> = forwarded(&d)
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.as_bytes().to_vec()).unwrap(),
            )
        })
        .collect();
    got.sort();
    // Non-ASCII UTF-8 is a legal (obs-text) header value, so it is passed on as its bytes.
    let want: Vec<(String, String)> = [
        ("x-auth-accent", "café"),
        ("x-auth-flag", "true"),
        ("x-auth-level", "3"),
        ("x-auth-mixed", "1,b,true"),
        ("x-auth-org", "acme"),
        ("x-auth-roles", "r1,r2"),
        ("x-auth-sub", "alice"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(got, want);
    let v = p.verified.as_ref().unwrap();
    assert_eq!(v.claims["sub"], "alice");
    assert!(d.key_miss.is_none());
}

#[test]
fn claim_with_a_line_break_is_never_forwarded() {
    let f = fixture();
    for note in ["a\r\nx-auth-admin: true", "a\nb", "a\rb", "a\0b"] {
        let mut c = claims();
        c["sub"] = json!(note);
        let d = decide_get(&f, "/a/x", &[("authorization", &bearer(&mint(&c)))]);
        let headers = forwarded(&d);
        assert!(headers.iter().all(|(k, _)| k != "x-auth-sub"), "{note:?}");
        assert!(headers.iter().all(|(k, _)| k != "x-auth-admin"));
    }
}

#[test]
fn claim_the_upstream_would_read_differently_is_never_forwarded() {
    let f = fixture();
    let cases = [
        ("roles", json!(["eng,admin"])),
        ("roles", json!(["eng", "a,b"])),
        ("sub", json!(" admin")),
        ("sub", json!("admin\t")),
        ("roles", json!(["eng", " admin"])),
    ];
    for (claim, value) in cases {
        let mut c = claims();
        c[claim] = value.clone();
        let d = decide_get(&f, "/a/x", &[("authorization", &bearer(&mint(&c)))]);
        let header = format!("x-auth-{claim}");
        assert!(
            forwarded(&d).iter().all(|(k, _)| *k != header.as_str()),
            "{claim} = {value} was forwarded"
        );
    }
    // Inner spaces are the value's own; they survive.
    let mut c = claims();
    c["sub"] = json!("Ada Lovelace");
    let d = decide_get(&f, "/a/x", &[("authorization", &bearer(&mint(&c)))]);
    assert!(forwarded(&d)
        .iter()
        .any(|(k, v)| k == "x-auth-sub" && v == "Ada Lovelace"));
}

#[test]
fn auth_none_route_is_permitted_without_reading_a_token() {
    let f = fixture();
    for headers in [
        vec![],
        vec![("authorization", "Basic garbage")],
        vec![("authorization", "Bearer x.y.z")],
    ] {
        let d = decide_get(&f, "/public", &headers);
        assert_eq!(route_name(&d), Some("public"));
        let p = permit(&d);
        assert!(forwarded(&d).is_empty());
        assert!(p.verified.is_none());
        assert_eq!(p.path_and_query, "/public");
    }
    let d = decide_get(&f, "/public/", &[]);
    assert_eq!(permit(&d).path_and_query, "/public/");
}

#[test]
fn verification_and_policy_rejections_keep_the_route() {
    let f = fixture();
    let mut expired = claims();
    expired["exp"] = json!(NOW - 60);
    let d = decide_get(&f, "/a/x", &[("authorization", &bearer(&mint(&expired)))]);
    assert_eq!(rejection(&d), &Rejection::Expired);
    assert_eq!(route_name(&d), Some("api"));
    let d = decide_get(&f, "/s/x", &[("authorization", &bearer(&mint(&claims())))]);
    assert!(matches!(rejection(&d), Rejection::InsufficientScope(_)));
    assert_eq!(route_name(&d), Some("scoped"));
    let mut admin = claims();
    admin["scope"] = json!("admin");
    let d = decide_get(&f, "/s/x", &[("authorization", &bearer(&mint(&admin)))]);
    assert!(d.outcome.is_ok());
    // The scoped route takes only GET.
    let d = decide(
        &f.rt,
        &request("POST", "/s/x", &[("authorization", &bearer(&mint(&admin)))]),
        NOW,
    );
    assert_eq!(rejection(&d), &Rejection::NoRoute);
}

#[test]
fn decision_is_taken_at_the_injected_time() {
    let f = fixture();
    let auth = bearer(&mint(&claims()));
    let req = request("GET", "/a/x", &[("authorization", &auth)]);
    assert!(decide(&f.rt, &req, NOW + 600 + 29).outcome.is_ok());
    assert_eq!(
        decide(&f.rt, &req, NOW + 600 + 30).outcome.unwrap_err(),
        Rejection::Expired
    );
}

#[test]
fn unknown_kid_reports_a_key_miss_for_its_issuer() {
    let f = fixture();
    let d = decide_get(
        &f,
        "/a/x",
        &[("authorization", &bearer(&mint_kid(&claims(), "rotated")))],
    );
    assert_eq!(rejection(&d), &Rejection::UnknownKey);
    let (issuer, kid) = d.key_miss.as_ref().unwrap();
    assert_eq!((issuer.name.as_str(), kid.as_str()), ("idp", "rotated"));
}

#[test]
fn other_rejections_report_no_key_miss() {
    let f = fixture();
    let mut forged = mint(&claims());
    forged.truncate(forged.len() - 8);
    let d = decide_get(&f, "/a/x", &[("authorization", &bearer(&forged))]);
    assert!(d.outcome.is_err());
    assert!(d.key_miss.is_none());
}
