//! The verified-token cache: a hit skips only the parse and the signature. Time rules, route
//! policy, the issuer binding and key revocation still apply to every request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;

fn route(name: &str, prefix: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"echo\"\n{extra}\n"
    )
}

fn cache_entries(gw: &Gateway) -> f64 {
    metric_samples(&gw.metrics(), "tokengate_token_cache_entries")
        .first()
        .map_or(0.0, |s| s.value)
}

/// A gateway with one route on `keys`, refreshing them every second.
fn refreshing_gateway(keys: &KeyServer, echo: &Echo) -> Gateway {
    Gateway::start(format!(
        "{}\n{}\n{}",
        issuer_toml(
            "main",
            ISS,
            &keys.url(),
            &["RS256"],
            "jwks_refresh = \"1s\"\njwks_min_ttl = \"1s\""
        ),
        upstream_toml("echo", &[echo.addr()], ""),
        route("api", "/api", "")
    ))
}

#[test]
fn cached_token_is_revoked_the_moment_its_kid_leaves_the_set() {
    let a = FixtureKey::load("rsa_a.pem", jsonwebtoken::Algorithm::RS256).with_kid("a");
    let b = FixtureKey::load("rsa_b.pem", jsonwebtoken::Algorithm::RS256).with_kid("b");
    let keys = KeyServer::start(&[&a, &b]);
    let echo = Echo::start();
    let gw = refreshing_gateway(&keys, &echo);
    let token_a = a.sign(Value::Null, claims(json!({})));
    let token_b = b.sign(Value::Null, claims(json!({})));
    for _ in 0..3 {
        assert_eq!(
            get_with_token(gw.proxy_addr(), "/api", &token_a).status,
            200
        );
    }
    wait_cached(&gw);
    keys.set_keys(&[&b]);
    let served = echo.count();
    wait_refused(&gw, &token_a, "a token verified by a removed key");
    // Once refused, never accepted again, and the refused requests never reached the upstream.
    let after = echo.count();
    for _ in 0..3 {
        assert_eq!(
            get_with_token(gw.proxy_addr(), "/api", &token_a).status,
            401
        );
    }
    assert_eq!(echo.count(), after);
    assert!(after >= served);
    assert_eq!(
        get_with_token(gw.proxy_addr(), "/api", &token_b).status,
        200
    );
}

#[test]
fn cached_token_is_revoked_when_its_key_is_republished_under_another_kid() {
    // The same RSA material, now published as kid "a2" only: tokens naming kid "a" no longer
    // verify, so the cached result for one must not stand either.
    let a = FixtureKey::load("rsa_a.pem", jsonwebtoken::Algorithm::RS256).with_kid("a");
    let a2 = FixtureKey::load("rsa_a.pem", jsonwebtoken::Algorithm::RS256).with_kid("a2");
    let keys = KeyServer::start(&[&a]);
    let echo = Echo::start();
    let gw = refreshing_gateway(&keys, &echo);
    let token_a = a.sign(Value::Null, claims(json!({})));
    assert_eq!(
        get_with_token(gw.proxy_addr(), "/api", &token_a).status,
        200
    );
    wait_cached(&gw);
    keys.set_keys(&[&a2]);
    wait_refused(&gw, &token_a, "a cached token whose kid left the set");
    let token_a2 = a2.sign(Value::Null, claims(json!({})));
    assert_eq!(
        get_with_token(gw.proxy_addr(), "/api", &token_a2).status,
        200
    );
}

/// Until the gateway holds at least one cached token (at most 5 s).
fn wait_cached(gw: &Gateway) {
    assert!(
        wait_until(Duration::from_secs(5), || cache_entries(gw) >= 1.0),
        "token never cached"
    );
}

/// Until `token` is refused with 401 on `/api` (at most 10 s, the key set refreshing each second).
fn wait_refused(gw: &Gateway, token: &str, what: &str) {
    assert!(
        wait_until(Duration::from_secs(10), || get_with_token(
            gw.proxy_addr(),
            "/api",
            token
        )
        .status
            == 401),
        "{what} kept being accepted from the cache"
    );
}

fn get_with_token(addr: std::net::SocketAddr, target: &str, token: &str) -> Response {
    support::client::get_with_token(addr, target, token)
}

#[test]
fn cached_token_still_expires() {
    let env = Env::start("leeway = 0", &route("api", "/api", ""));
    let token = env.token(json!({"exp": now() + 2}));
    env.expect_allowed("/api", Some(&token));
    env.expect_allowed("/api", Some(&token));
    assert!(
        wait_until(Duration::from_secs(6), || env
            .get("/api", Some(&token))
            .status
            == 401),
        "an expired token was served from the cache"
    );
    let resp = env.expect_invalid_token("/api", &token);
    assert!(resp.text().contains("expired"), "{}", resp.text());
}

#[test]
fn cached_token_is_still_subject_to_each_routes_policy() {
    let env = Env::start(
        "",
        &(route("read", "/read", "scopes_all = [\"read\"]")
            + &route("write", "/write", "scopes_all = [\"write\"]")),
    );
    let token = env.token(json!({"scope": "read"}));
    env.expect_allowed("/read", Some(&token));
    env.expect_allowed("/read", Some(&token));
    env.expect_insufficient_scope("/write", &token, "write");
}

#[test]
fn cached_token_is_bound_to_the_issuer_that_verified_it() {
    let key = FixtureKey::rsa_a();
    let keys = KeyServer::start(&[&key]);
    let echo = Echo::start();
    let gw = Gateway::start(format!(
        "{}\n{}\n{}\n{}\n{}",
        issuer_toml("one", ISS, &keys.url(), &["RS256"], ""),
        issuer_toml("two", "https://other.test/", &keys.url(), &["RS256"], ""),
        upstream_toml("echo", &[echo.addr()], ""),
        route("one", "/one", "issuers = [\"one\"]"),
        route("two", "/two", "issuers = [\"two\"]")
    ));
    let token = key.sign(Value::Null, claims(json!({})));
    assert_eq!(get_with_token(gw.proxy_addr(), "/one", &token).status, 200);
    assert_eq!(get_with_token(gw.proxy_addr(), "/one", &token).status, 200);
    let before = echo.count();
    let resp = get_with_token(gw.proxy_addr(), "/two", &token);
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_challenge_error(&resp, "invalid_token");
    assert_eq!(echo.count(), before);
}

#[test]
fn cache_can_be_disabled() {
    let key = FixtureKey::rsa_a();
    let keys = KeyServer::start(&[&key]);
    let echo = Echo::start();
    let gw = Gateway::builder(format!(
        "{}\n{}\n{}",
        issuer_toml("main", ISS, &keys.url(), &["RS256"], ""),
        upstream_toml("echo", &[echo.addr()], ""),
        route("api", "/api", "")
    ))
    .server_extra("token_cache_capacity = 0")
    .start();
    let token = key.sign(Value::Null, claims(json!({})));
    for _ in 0..3 {
        assert_eq!(get_with_token(gw.proxy_addr(), "/api", &token).status, 200);
    }
    assert_eq!(cache_entries(&gw), 0.0);
}
