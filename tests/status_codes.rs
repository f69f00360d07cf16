//! Every row of the gateway's status table, on real sockets: status, challenge header, JSON error
//! body, no token in the response, and (for every rejection) nothing forwarded upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;

const ROUTES: &str = r#"
[[route]]
name = "open"
path_prefix = "/open"
upstream = "echo"
auth = "none"

[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
auth = "jwt"
scopes_all = ["read:data"]

[[route]]
name = "transfers"
path_prefix = "/transfers"
upstream = "echo"
auth = "jwt"
scopes_all = ["transfer:write", "transfer:read"]

[[route]]
name = "partners"
path_prefix = "/partners"
upstream = "echo"
auth = "jwt"
clients = ["client-1"]

[[route]]
name = "tenants"
path_prefix = "/tenants"
upstream = "echo"
auth = "jwt"
claims = { "tenant" = "acme" }

[[route]]
name = "fresh"
path_prefix = "/fresh"
upstream = "echo"
auth = "jwt"
max_token_lifetime = "10m"
max_token_age = "5m"
"#;

fn env() -> Env {
    Env::start("", ROUTES)
}

fn api_token(env: &Env, overrides: Value) -> String {
    env.token(merge(json!({"scope": "read:data"}), overrides))
}

#[test]
fn allowed_request_is_relayed_with_200() {
    let env = env();
    let token = api_token(&env, json!({}));
    let resp = env.get("/api/items?x=1", Some(&token));
    let rec = env.assert_allowed(&resp);
    assert_eq!(rec.target, "/api/items?x=1");
    assert_eq!(resp.json()["path"], "/api/items?x=1");
}

#[test]
fn unmatched_path_is_404_not_found_and_never_forwarded() {
    let env = env();
    let token = api_token(&env, json!({}));
    for target in ["/", "/nothing-here", "/apix", "/open-sesame"] {
        eprintln!("case: {target}");
        let resp = env.get(target, Some(&token));
        env.assert_rejected(&resp, 404, Some("not_found"), Some(&token));
    }
}

#[test]
fn unsafe_paths_are_400_invalid_request_and_never_forwarded() {
    let env = env();
    let token = api_token(&env, json!({}));
    for target in [
        "/api/a%2Fb",
        "/api/a%2fb",
        "/api/a%5Cb",
        "/api/a%5cb",
        "/api/a%00b",
        "/api/a\\b",
        "/../api/x",
        "/api/../../x",
        "/api/x;jsessionid=1",
        "/open/a%2Fb",
    ] {
        eprintln!("case: {target}");
        let resp = env.get(target, Some(&token));
        env.assert_rejected(&resp, 400, Some("invalid_request"), Some(&token));
    }
}

#[test]
fn missing_authorization_is_401_with_bare_bearer_challenge() {
    let env = env();
    let resp = env.get("/api/items", None);
    env.assert_rejected(&resp, 401, None, None);
    let c = challenge(&resp);
    assert!(c.trim_start().starts_with("Bearer"), "challenge: {c}");
    assert!(c.contains("realm=\"tokengate\""), "challenge: {c}");
    assert!(
        !c.contains("error="),
        "a missing token must not carry an error attribute: {c}"
    );
}

/// Asserts the 400 `invalid_request` shape for a malformed `Authorization` header.
fn assert_malformed(env: &Env, resp: &Response, secret: &str) {
    env.assert_rejected(resp, 400, Some("invalid_request"), Some(secret));
    assert_challenge_error(resp, "invalid_request");
}

#[test]
fn basic_authorization_is_400_invalid_request() {
    let env = env();
    let creds = "dXNlcjpwYXNzd29yZC1zZWNyZXQ=";
    let resp = env.request(
        "GET",
        "/api/items",
        &[("Authorization", &format!("Basic {creds}"))],
    );
    assert_malformed(&env, &resp, creds);
}

#[test]
fn bearer_without_token_is_400_invalid_request() {
    let env = env();
    for value in ["Bearer", "Bearer ", "Bearer    "] {
        eprintln!("case: {value:?}");
        let resp = env.request("GET", "/api/items", &[("Authorization", value)]);
        assert_malformed(&env, &resp, "");
    }
}

#[test]
fn two_authorization_headers_are_400_invalid_request() {
    let env = env();
    let token = api_token(&env, json!({}));
    let auth = format!("Bearer {token}");
    let resp = env.request(
        "GET",
        "/api/items",
        &[("Authorization", &auth), ("Authorization", &auth)],
    );
    assert_malformed(&env, &resp, &token);
}

#[test]
fn token_over_16_kib_is_400_invalid_request() {
    let env = env();
    // Correctly signed and otherwise valid: only its size is wrong.
    let token = api_token(&env, json!({"pad": "x".repeat(17 * 1024)}));
    assert!(token.len() > 16 * 1024);
    let resp = env.get("/api/items", Some(&token));
    assert_malformed(&env, &resp, &token);
}

#[test]
fn bad_signature_is_401_invalid_token() {
    let env = env();
    let token = tamper_signature(&api_token(&env, json!({})));
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn expired_token_is_401_invalid_token() {
    let env = env();
    let t = now();
    let token = api_token(&env, json!({"iat": t - 400, "exp": t - 120}));
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn future_nbf_is_401_invalid_token() {
    let env = env();
    let token = api_token(&env, json!({"nbf": now() + 120}));
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn future_iat_is_401_invalid_token() {
    let env = env();
    let t = now();
    let token = api_token(&env, json!({"iat": t + 120, "exp": t + 600}));
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn wrong_issuer_is_401_invalid_token() {
    let env = env();
    let token = api_token(&env, json!({"iss": "https://evil.test/"}));
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn wrong_audience_is_401_invalid_token() {
    let env = env();
    let token = api_token(&env, json!({"aud": "https://other-api.test"}));
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn unknown_kid_is_401_invalid_token() {
    let env = env();
    let token = env.key.sign(
        json!({"kid": "no-such-kid"}),
        claims(json!({"scope": "read:data"})),
    );
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn algorithm_outside_allow_list_is_401_invalid_token() {
    let env = env();
    // Same key material and kid, but RS384, which the issuer does not allow.
    let rs384 = env.key.with_alg(jsonwebtoken::Algorithm::RS384);
    let token = rs384.sign(
        json!({"kid": env.key.kid}),
        claims(json!({"scope": "read:data"})),
    );
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn alg_none_is_401_invalid_token() {
    let env = env();
    let header = json!({"alg": "none", "typ": "JWT", "kid": env.key.kid});
    let token = raw_token(&header, &claims(json!({"scope": "read:data"})), b"");
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn hs256_is_401_invalid_token() {
    let env = env();
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": env.key.kid});
    let secret = env.key.rsa_public_pem();
    let token = hmac_token(
        secret.as_bytes(),
        &header,
        &claims(json!({"scope": "read:data"})),
    );
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn wrong_typ_is_401_invalid_token() {
    let env = Env::start("require_typ = \"at+jwt\"", ROUTES);
    let token = env
        .key
        .sign(json!({"typ": "JWT"}), claims(json!({"scope": "read:data"})));
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn unknown_crit_header_is_401_invalid_token() {
    let env = env();
    let token = env.key.sign(
        json!({"crit": ["x-unknown-ext"], "x-unknown-ext": true}),
        claims(json!({"scope": "read:data"})),
    );
    let resp = env.get("/api/items", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn token_lifetime_over_limit_is_401_invalid_token() {
    let env = env();
    let t = now();
    // 1 hour lifetime against a 10 minute limit; recently issued so the age rule passes.
    let token = env.token(json!({"iat": t - 10, "exp": t - 10 + 3600}));
    let resp = env.get("/fresh/x", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn token_age_over_limit_is_401_invalid_token() {
    let env = env();
    let t = now();
    // Issued 8 minutes ago against a 5 minute age limit; lifetime 10 minutes is within limit.
    let token = env.token(json!({"iat": t - 480, "exp": t - 480 + 600}));
    let resp = env.get("/fresh/x", Some(&token));
    assert_invalid_token(&env, &resp, &token);
}

#[test]
fn missing_scope_is_403_insufficient_scope_naming_required_scopes() {
    let env = env();
    let token = env.token(json!({"scope": "openid profile"}));
    env.expect_insufficient_scope("/api/items", &token, "read:data");

    let token = env.token(json!({"scope": "transfer:read"}));
    env.expect_insufficient_scope("/transfers/1", &token, "transfer:write transfer:read");
    assert_eq!(env.echo.count(), 0);
}

#[test]
fn client_not_allowed_is_403() {
    let env = env();
    let token = env.token(json!({"azp": "client-2"}));
    let resp = env.get("/partners/x", Some(&token));
    env.assert_rejected(&resp, 403, None, Some(&token));
}

#[test]
fn required_claim_mismatch_is_403() {
    let env = env();
    let token = env.token(json!({"tenant": "globex"}));
    let resp = env.get("/tenants/x", Some(&token));
    env.assert_rejected(&resp, 403, None, Some(&token));
}

#[test]
fn issuer_without_keys_is_503_with_retry_after() {
    let env = Env::start_with_mode(Mode::Status(500), "", ROUTES);
    let token = api_token(&env, json!({}));
    let resp = env.get("/api/items", Some(&token));
    env.assert_rejected(&resp, 503, None, Some(&token));
    assert_retry_after(&resp);
}

#[test]
fn refused_upstream_connection_is_502() {
    let closed = reserve_addr();
    let extra = format!(
        "{}\n{ROUTES}\n[[route]]\nname = \"dead\"\npath_prefix = \"/dead\"\nupstream = \"dead\"\nauth = \"none\"\n",
        upstream_toml("dead", &[closed], "connect_timeout = \"1s\"")
    );
    let env = Env::start("", &extra);
    let resp = env.get("/dead/x", None);
    assert_rejection(&resp, 502, None, None);
}

#[test]
fn upstream_read_timeout_is_504() {
    let slow = Echo::start_with_delay(Duration::from_secs(5));
    let extra = format!(
        "{}\n{ROUTES}\n[[route]]\nname = \"slow\"\npath_prefix = \"/slow\"\nupstream = \"slow\"\nauth = \"none\"\n",
        upstream_toml("slow", &[slow.addr()], "read_timeout = \"1s\"")
    );
    let env = Env::start("", &extra);
    let resp = env.get("/slow/x", None);
    assert_rejection(&resp, 504, None, None);
    assert!(slow.count() >= 1, "the slow upstream was never asked");
}
