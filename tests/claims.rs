//! Claim validation and route policy: `aud`, `iss`, the time claims and leeway, scopes, clients,
//! required claims, and the lifetime / age rules.
//!
//! Time boundaries are designed to survive a clock tick between minting and checking: with
//! leeway 0, "just expired" is `now - 2` and "still valid" is `now + 5`; lifetime is tested with
//! `iat`/`exp` chosen freely since it does not depend on the clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::*;

const ROUTES: &str = r#"
[[route]]
name = "plain"
path_prefix = "/plain"
upstream = "echo"
auth = "jwt"

[[route]]
name = "read"
path_prefix = "/read"
upstream = "echo"
auth = "jwt"
scopes_all = ["read:data"]

[[route]]
name = "both"
path_prefix = "/both"
upstream = "echo"
auth = "jwt"
scopes_all = ["a:x", "b:y"]

[[route]]
name = "any"
path_prefix = "/any"
upstream = "echo"
auth = "jwt"
scopes_any = ["x:one", "x:two"]

[[route]]
name = "clients"
path_prefix = "/clients"
upstream = "echo"
auth = "jwt"
clients = ["client-1"]

[[route]]
name = "claims"
path_prefix = "/claims"
upstream = "echo"
auth = "jwt"
claims = { "tenant" = "acme", "realm_access.roles" = "admin" }

[[route]]
name = "lifetime"
path_prefix = "/lifetime"
upstream = "echo"
auth = "jwt"
max_token_lifetime = "10m"

[[route]]
name = "age"
path_prefix = "/age"
upstream = "echo"
auth = "jwt"
max_token_age = "5m"
"#;

/// Issuer `main` with leeway 0.
fn strict() -> Env {
    Env::start("leeway = 0", ROUTES)
}

/// Issuer `main` with leeway 30 s.
fn lenient() -> Env {
    Env::start("leeway = \"30s\"", ROUTES)
}

#[test]
fn aud_as_string_matching_is_accepted() {
    let env = strict();
    let token = env.token(json!({"aud": AUD}));
    env.expect_allowed("/plain", Some(&token));
}

#[test]
fn aud_as_array_containing_the_audience_is_accepted() {
    let env = strict();
    let token = env.token(json!({"aud": ["https://other.test", AUD]}));
    env.expect_allowed("/plain", Some(&token));
}

#[test]
fn aud_mismatch_is_401_as_string_array_or_missing() {
    let env = strict();
    for aud in [
        json!("https://other.test"),
        json!("https://api.test/"),
        json!(["https://other.test", "https://another.test"]),
        json!([]),
        Value::Null,
    ] {
        eprintln!("case: aud {aud}");
        let token = env.token(json!({"aud": aud}));
        env.expect_invalid_token("/plain", &token);
    }
}

#[test]
fn iss_must_match_exactly() {
    let env = strict();
    for iss in [
        json!("https://issuer.test"),
        json!("https://issuer.test//"),
        json!("https://ISSUER.test/"),
        json!("http://issuer.test/"),
        json!(["https://issuer.test/"]),
        Value::Null,
    ] {
        eprintln!("case: iss {iss}");
        let token = env.token(json!({"iss": iss}));
        env.expect_invalid_token("/plain", &token);
    }
    let token = env.token(json!({"iss": ISS}));
    env.expect_allowed("/plain", Some(&token));
}

#[test]
fn missing_exp_is_401() {
    let env = strict();
    let token = env.token(json!({"exp": null}));
    env.expect_invalid_token("/plain", &token);
}

#[test]
fn exp_as_string_is_401() {
    let env = strict();
    let token = env.token(json!({"exp": (now() + 300).to_string()}));
    env.expect_invalid_token("/plain", &token);
}

#[test]
fn nbf_as_string_is_401() {
    let env = strict();
    let token = env.token(json!({"nbf": (now() - 10).to_string()}));
    env.expect_invalid_token("/plain", &token);
}

#[test]
fn exp_boundary_without_leeway() {
    let env = strict();
    let t = now();
    let expired = env.token(json!({"iat": t - 100, "exp": t - 2}));
    env.expect_invalid_token("/plain", &expired);
    let valid = env.token(json!({"iat": t - 100, "exp": t + 5}));
    env.expect_allowed("/plain", Some(&valid));
}

#[test]
fn exp_within_leeway_is_accepted_and_beyond_is_401() {
    let env = lenient();
    let t = now();
    let beyond = env.token(json!({"iat": t - 100, "exp": t - 40}));
    env.expect_invalid_token("/plain", &beyond);
    let within = env.token(json!({"iat": t - 100, "exp": t - 10}));
    env.expect_allowed("/plain", Some(&within));
}

#[test]
fn nbf_boundary_without_leeway() {
    let env = strict();
    let t = now();
    let future = env.token(json!({"nbf": t + 5}));
    env.expect_invalid_token("/plain", &future);
    let current = env.token(json!({"nbf": t}));
    env.expect_allowed("/plain", Some(&current));
}

#[test]
fn nbf_within_leeway_is_accepted_and_beyond_is_401() {
    let env = lenient();
    let t = now();
    let beyond = env.token(json!({"nbf": t + 40}));
    env.expect_invalid_token("/plain", &beyond);
    let within = env.token(json!({"nbf": t + 10}));
    env.expect_allowed("/plain", Some(&within));
}

#[test]
fn iat_boundary_without_leeway() {
    let env = strict();
    let t = now();
    let future = env.token(json!({"iat": t + 5}));
    env.expect_invalid_token("/plain", &future);
    let current = env.token(json!({"iat": t}));
    env.expect_allowed("/plain", Some(&current));
}

#[test]
fn iat_within_leeway_is_accepted_and_beyond_is_401() {
    let env = lenient();
    let t = now();
    let beyond = env.token(json!({"iat": t + 40}));
    env.expect_invalid_token("/plain", &beyond);
    let within = env.token(json!({"iat": t + 10}));
    env.expect_allowed("/plain", Some(&within));
}

#[test]
fn scopes_are_read_from_scope_scp_and_permissions_as_string_or_array() {
    let env = strict();
    for scopes in [
        json!({"scope": "openid read:data"}),
        json!({"scope": ["openid", "read:data"]}),
        json!({"scp": "read:data profile"}),
        json!({"scp": ["read:data"]}),
        json!({"permissions": ["read:data"]}),
        json!({"permissions": "read:data"}),
    ] {
        eprintln!("case: {scopes}");
        let token = env.token(scopes);
        env.expect_allowed("/read/x", Some(&token));
    }
}

#[test]
fn scope_matching_is_exact() {
    let env = strict();
    for scope in [
        json!("read:dat"),
        json!("read:data2"),
        json!("READ:DATA"),
        json!("read:data:all"),
        json!("xread:data"),
        json!("read:dat a"),
        json!(["read:dat", "a"]),
        json!(["read:data openid"]),
        json!(""),
    ] {
        eprintln!("case: scope {scope}");
        let token = env.token(json!({"scope": scope}));
        env.expect_insufficient_scope("/read/x", &token, "read:data");
    }
    let token = env.token(json!({"scope": null}));
    env.expect_insufficient_scope("/read/x", &token, "read:data");
}

#[test]
fn scopes_all_requires_every_listed_scope() {
    let env = strict();
    for scope in ["a:x", "b:y", "a:x b:z"] {
        eprintln!("case: scope {scope}");
        let token = env.token(json!({"scope": scope}));
        env.expect_insufficient_scope("/both", &token, "a:x b:y");
    }
    let token = env.token(json!({"scope": "b:y openid a:x"}));
    env.expect_allowed("/both", Some(&token));
}

#[test]
fn scopes_any_accepts_any_one_listed_scope() {
    let env = strict();
    for scope in ["x:three", "x:on", "x:one:more", "X:ONE"] {
        eprintln!("case: scope {scope}");
        let token = env.token(json!({"scope": scope}));
        env.expect_rejected("/any", Some(&token), 403, Some("insufficient_scope"));
    }
    for scope in ["x:one", "x:two", "openid x:two"] {
        eprintln!("case: scope {scope}");
        let token = env.token(json!({"scope": scope}));
        env.expect_allowed("/any", Some(&token));
    }
}

#[test]
fn client_is_taken_from_azp() {
    let env = strict();
    let token = env.token(json!({"azp": "client-2"}));
    env.expect_rejected("/clients", Some(&token), 403, None);
    let token = env.token(json!({"azp": "client-1"}));
    env.expect_allowed("/clients", Some(&token));
}

#[test]
fn client_falls_back_to_client_id_then_cid() {
    let env = strict();
    let token = env.token(json!({"client_id": "client-2"}));
    env.expect_rejected("/clients", Some(&token), 403, None);
    let token = env.token(json!({}));
    env.expect_rejected("/clients", Some(&token), 403, None);
    let token = env.token(json!({"client_id": "client-1"}));
    env.expect_allowed("/clients", Some(&token));
    let token = env.token(json!({"cid": "client-1"}));
    env.expect_allowed("/clients", Some(&token));
}

#[test]
fn azp_takes_precedence_over_client_id() {
    let env = strict();
    let token = env.token(json!({"azp": "client-2", "client_id": "client-1"}));
    env.expect_rejected("/clients", Some(&token), 403, None);
    let token = env.token(json!({"azp": "client-1", "client_id": "client-2"}));
    env.expect_allowed("/clients", Some(&token));
}

#[test]
fn required_claims_match_values_arrays_and_dotted_paths() {
    let env = strict();
    for ok in [
        json!({"tenant": "acme", "realm_access": {"roles": ["user", "admin"]}}),
        json!({"tenant": "acme", "realm_access": {"roles": "admin"}}),
        json!({"tenant": ["globex", "acme"], "realm_access": {"roles": ["admin"]}}),
    ] {
        eprintln!("case (allowed): {ok}");
        let token = env.token(ok);
        env.expect_allowed("/claims", Some(&token));
    }
    for denied in [
        json!({"tenant": "acme", "realm_access": {"roles": ["user"]}}),
        json!({"tenant": "globex", "realm_access": {"roles": ["admin"]}}),
        json!({"tenant": "ACME", "realm_access": {"roles": ["admin"]}}),
        json!({"realm_access": {"roles": ["admin"]}}),
        json!({"tenant": "acme"}),
        json!({"tenant": "acme", "realm_access": {"groups": ["admin"]}}),
        json!({"tenant": "acme", "realm_access": ["admin"]}),
        json!({"tenant": "acme", "realm_access": {"roles": ["administrator"]}}),
    ] {
        eprintln!("case (denied): {denied}");
        let token = env.token(denied);
        env.expect_rejected("/claims", Some(&token), 403, None);
    }
}

#[test]
fn lifetime_at_the_limit_is_accepted_and_one_second_over_is_401() {
    let env = strict();
    let iat = now() - 100;
    let over = env.token(json!({"iat": iat, "exp": iat + 601}));
    env.expect_invalid_token("/lifetime", &over);
    let at_limit = env.token(json!({"iat": iat, "exp": iat + 600}));
    env.expect_allowed("/lifetime", Some(&at_limit));
}

#[test]
fn age_within_the_limit_is_accepted_and_beyond_is_401() {
    let env = strict();
    let t = now();
    let old = env.token(json!({"iat": t - 310, "exp": t + 200}));
    env.expect_invalid_token("/age", &old);
    let fresh = env.token(json!({"iat": t - 290, "exp": t + 200}));
    env.expect_allowed("/age", Some(&fresh));
}

#[test]
fn missing_iat_with_a_lifetime_rule_is_401() {
    let env = strict();
    let token = env.token(json!({"iat": null}));
    env.expect_invalid_token("/lifetime", &token);
}

#[test]
fn missing_iat_with_an_age_rule_is_401() {
    let env = strict();
    let token = env.token(json!({"iat": null}));
    env.expect_invalid_token("/age", &token);
}
