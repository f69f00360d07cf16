//! Signature algorithms: each supported algorithm accepted when allowed, and the classic JWT
//! attacks (alg confusion, `none`, HMAC with a public key, foreign keys and key-location headers,
//! unknown `crit`) rejected; plus the `require_typ` rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use support::keys::alg_name;
use support::*;

const API_ROUTE: &str = r#"
[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
auth = "jwt"
"#;

/// A gateway whose only issuer allows exactly `alg` and whose JWKS holds only `key`; a token
/// signed by `key` must be relayed with its Authorization header intact.
fn assert_accepted_when_allowed(file: &str, alg: Algorithm) {
    let key = FixtureKey::load(file, alg);
    let keys = KeyServer::start(&[&key]);
    let echo = Echo::start();
    let name = alg_name(alg);
    let gw = Gateway::start(format!(
        "{}\n{}\n{API_ROUTE}",
        issuer_toml("main", ISS, &keys.url(), &[&name], ""),
        upstream_toml("echo", &[echo.addr()], "")
    ));
    let token = key.sign(Value::Null, claims(json!({})));
    let resp = client::get_with_token(gw.proxy_addr(), "/api/x", &token);
    assert_eq!(
        resp.status,
        200,
        "{name} token rejected: {:?} {}",
        resp.headers,
        resp.text()
    );
    assert_eq!(echo.count(), 1);
    assert_eq!(
        echo.last().header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
}

#[test]
fn rs256_is_accepted_when_allowed() {
    assert_accepted_when_allowed("rsa_a.pem", Algorithm::RS256);
}

#[test]
fn rs384_is_accepted_when_allowed() {
    assert_accepted_when_allowed("rsa_a.pem", Algorithm::RS384);
}

#[test]
fn rs512_is_accepted_when_allowed() {
    assert_accepted_when_allowed("rsa_a.pem", Algorithm::RS512);
}

#[test]
fn ps256_is_accepted_when_allowed() {
    assert_accepted_when_allowed("rsa_a.pem", Algorithm::PS256);
}

#[test]
fn ps384_is_accepted_when_allowed() {
    assert_accepted_when_allowed("rsa_a.pem", Algorithm::PS384);
}

#[test]
fn ps512_is_accepted_when_allowed() {
    assert_accepted_when_allowed("rsa_a.pem", Algorithm::PS512);
}

#[test]
fn es256_is_accepted_when_allowed() {
    assert_accepted_when_allowed("ec256.pem", Algorithm::ES256);
}

#[test]
fn es384_is_accepted_when_allowed() {
    assert_accepted_when_allowed("ec384.pem", Algorithm::ES384);
}

#[test]
fn eddsa_is_accepted_when_allowed() {
    assert_accepted_when_allowed("ed25519.pem", Algorithm::EdDSA);
}

/// The default environment: issuer `main` allows RS256 only; JWKS holds `rsa_a` (RS256).
fn env() -> Env {
    Env::start("", API_ROUTE)
}

#[test]
fn valid_rs256_token_is_the_control_case() {
    let env = env();
    let token = env.token(json!({}));
    env.expect_allowed("/api/x", Some(&token));
}

#[test]
fn algorithm_not_in_allow_list_is_rejected() {
    // The JWKS also publishes rsa_a as a PS256 key, but the issuer only allows RS256.
    let rs256 = FixtureKey::rsa_a();
    let ps256 = rs256.with_alg(Algorithm::PS256);
    let keys = KeyServer::start(&[&rs256, &ps256]);
    let echo = Echo::start();
    let gw = Gateway::start(format!(
        "{}\n{}\n{API_ROUTE}",
        issuer_toml("main", ISS, &keys.url(), &["RS256"], ""),
        upstream_toml("echo", &[echo.addr()], "")
    ));
    let proxy = gw.proxy_addr();

    let with_own_kid = ps256.sign(Value::Null, claims(json!({})));
    let with_rs256_kid = ps256.sign(json!({"kid": rs256.kid}), claims(json!({})));
    let rs512 = rs256
        .with_alg(Algorithm::RS512)
        .sign(json!({"kid": rs256.kid}), claims(json!({})));
    for (label, token) in [
        ("PS256 with the PS256 kid", with_own_kid),
        ("PS256 with the RS256 kid", with_rs256_kid),
        ("RS512 with the RS256 kid", rs512),
    ] {
        eprintln!("case: {label}");
        let resp = client::get_with_token(proxy, "/api/x", &token);
        assert_rejection(&resp, 401, Some("invalid_token"), Some(&token));
        assert_challenge_error(&resp, "invalid_token");
    }
    assert_eq!(echo.count(), 0);

    let control = rs256.sign(Value::Null, claims(json!({})));
    assert_eq!(
        client::get_with_token(proxy, "/api/x", &control).status,
        200
    );
}

#[test]
fn alg_none_is_rejected_with_and_without_signature() {
    let env = env();
    let payload = claims(json!({}));
    let mut tokens = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": env.key.kid});
        let unsigned = raw_token(&header, &payload, b"");
        // `h.p` without the trailing dot.
        tokens.push(unsigned.trim_end_matches('.').to_string());
        tokens.push(unsigned);
        // Header says none, but a real RS256 signature over the same bytes is attached.
        tokens.push(env.key.sign(json!({"alg": alg}), payload.clone()));
        // Header without kid.
        tokens.push(raw_token(&json!({"alg": alg}), &payload, b""));
    }
    for token in &tokens {
        eprintln!("case: {token}");
        env.expect_invalid_token("/api/x", token);
    }
}

#[test]
fn hs256_keyed_with_the_rsa_public_key_is_rejected() {
    let env = env();
    let payload = claims(json!({}));
    let jwk = env.key.jwk();
    let n = jwk["n"].as_str().unwrap().to_string();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI PEM", env.key.rsa_public_pem().into_bytes()),
        (
            "SPKI PEM without trailing newline",
            env.key.rsa_public_pem().trim_end().as_bytes().to_vec(),
        ),
        ("PKCS#1 PEM", env.key.rsa_public_pkcs1_pem().into_bytes()),
        ("SPKI DER", env.key.rsa_public_spki_der()),
        ("PKCS#1 DER", env.key.rsa_public_pkcs1_der()),
        ("JWK JSON", jwk.to_string().into_bytes()),
        ("JWK n", n.into_bytes()),
    ];
    for (label, secret) in secrets {
        for alg in ["HS256", "HS384", "HS512"] {
            eprintln!("case: {alg} keyed with {label}");
            let header = json!({"alg": alg, "typ": "JWT", "kid": env.key.kid});
            let token = hmac_token(&secret, &header, &payload);
            env.expect_invalid_token("/api/x", &token);
        }
    }
}

#[test]
fn token_signed_by_another_key_with_a_known_kid_is_rejected() {
    let env = env();
    let attacker = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    let token = attacker.sign(json!({"kid": env.key.kid}), claims(json!({})));
    env.expect_invalid_token("/api/x", &token);
}

#[test]
fn embedded_jwk_header_is_ignored() {
    let env = env();
    let attacker = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    for kid in [attacker.kid.clone(), env.key.kid.clone()] {
        eprintln!("case: kid {kid}");
        let token = attacker.sign(
            json!({"kid": kid, "jwk": attacker.jwk()}),
            claims(json!({})),
        );
        env.expect_invalid_token("/api/x", &token);
    }
    // Without any kid, only the embedded key could verify it.
    let token = attacker.sign(
        json!({"kid": null, "jwk": attacker.jwk()}),
        claims(json!({})),
    );
    env.expect_invalid_token("/api/x", &token);
}

#[test]
fn jku_header_is_ignored_and_never_fetched() {
    let env = env();
    let attacker = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    let attacker_keys = KeyServer::start(&[&attacker]);
    for kid in [attacker.kid.clone(), env.key.kid.clone()] {
        eprintln!("case: kid {kid}");
        let token = attacker.sign(
            json!({"kid": kid, "jku": attacker_keys.url()}),
            claims(json!({})),
        );
        env.expect_invalid_token("/api/x", &token);
    }
    assert_eq!(
        attacker_keys.fetch_count(),
        0,
        "the gateway fetched keys from a URL named in a token header"
    );
}

#[test]
fn x5u_header_is_ignored_and_never_fetched() {
    let env = env();
    let attacker = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    let attacker_keys = KeyServer::start(&[&attacker]);
    let token = attacker.sign(
        json!({"kid": attacker.kid, "x5u": attacker_keys.url()}),
        claims(json!({})),
    );
    env.expect_invalid_token("/api/x", &token);
    assert_eq!(attacker_keys.fetch_count(), 0);
}

#[test]
fn x5c_header_is_ignored() {
    let env = env();
    let attacker = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    // Not a real certificate, but the attacker's public key in DER: a verifier that trusted x5c
    // and was lax about parsing would use it.
    let der = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        attacker.rsa_public_spki_der(),
    );
    for kid in [Value::Null, json!(attacker.kid), json!(env.key.kid)] {
        eprintln!("case: kid {kid}");
        let token = attacker.sign(json!({"kid": kid, "x5c": [der]}), claims(json!({})));
        env.expect_invalid_token("/api/x", &token);
    }
}

#[test]
fn unknown_crit_header_is_rejected() {
    let env = env();
    for header in [
        json!({"crit": ["x-unknown-ext"], "x-unknown-ext": true}),
        json!({"crit": ["x-unknown-ext"]}),
        json!({"crit": ["b64"], "b64": false}),
    ] {
        eprintln!("case: {header}");
        let token = env.key.sign(header, claims(json!({})));
        env.expect_invalid_token("/api/x", &token);
    }
}

#[test]
fn required_typ_at_jwt_is_accepted() {
    let env = Env::start("require_typ = \"at+jwt\"", API_ROUTE);
    for typ in ["at+jwt", "application/at+jwt"] {
        eprintln!("case: typ {typ}");
        let token = env.key.sign(json!({"typ": typ}), claims(json!({})));
        env.expect_allowed("/api/x", Some(&token));
    }
}

#[test]
fn required_typ_rejects_jwt_and_absent_typ() {
    let env = Env::start("require_typ = \"at+jwt\"", API_ROUTE);
    for typ in [
        json!("JWT"),
        Value::Null,
        json!("jwt"),
        json!("at+jwt+evil"),
    ] {
        eprintln!("case: typ {typ}");
        let token = env.key.sign(json!({"typ": typ}), claims(json!({})));
        env.expect_invalid_token("/api/x", &token);
    }
}
