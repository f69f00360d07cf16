//! Security class: forged, malformed and hostile bearer tokens.
//!
//! Every token here is refused with 401 `error="invalid_token"` (challenge and JSON body) and
//! never reaches the upstream, unless the README's table says otherwise (a value that is not a
//! `b64token` is 400 `invalid_request`). Wherever the attack is in the *encoding* (alg spelling,
//! base64 form, JSON shape, duplicate members, NumericDates), the token carries a real RS256
//! signature by the issuer's key over exactly the bytes sent, so the rule under test is the only
//! reason it can fail. After the attacks a valid token still gets 200.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use support::keys::{b64url, fixture_path};
use support::*;

const API_ROUTE: &str = r#"
[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
auth = "jwt"
"#;

const KID: &str = "rsa_a-RS256";

fn env() -> Env {
    Env::start("", API_ROUTE)
}

/// The issuer's signing key (the one the JWKS publishes as `rsa_a-RS256`).
fn issuer_key() -> EncodingKey {
    let pem = std::fs::read(fixture_path("rsa_a.pem")).expect("read rsa_a.pem");
    EncodingKey::from_rsa_pem(&pem).expect("rsa_a.pem")
}

/// `h.p.<RS256 signature by the issuer over "h.p">`, with `h` and `p` used verbatim.
fn sign_b64(h: &str, p: &str) -> String {
    let message = format!("{h}.{p}");
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &issuer_key(), Algorithm::RS256)
        .expect("sign");
    format!("{message}.{sig}")
}

/// Signs JSON *text* (not a value), so duplicates, odd number forms and non-objects survive.
fn sign_text(header: &str, payload: &str) -> String {
    sign_b64(&b64url(header.as_bytes()), &b64url(payload.as_bytes()))
}

/// The standard header as JSON text.
fn header_text() -> String {
    format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{KID}"}}"#)
}

/// The standard claims as `(name, raw JSON value)` members, in order.
fn std_members() -> Vec<(String, String)> {
    let t = now();
    vec![
        ("iss".into(), format!("{ISS:?}")),
        ("aud".into(), format!("{AUD:?}")),
        ("sub".into(), "\"user-1\"".into()),
        ("iat".into(), t.to_string()),
        ("exp".into(), (t + 300).to_string()),
    ]
}

/// A JSON object as text from raw members (names are written between quotes as given, so they
/// may hold JSON escapes); repeats are kept as written.
fn object(members: &[(String, String)]) -> String {
    let parts: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// The standard claims with `name` set to the raw JSON `value` (replacing it if present).
fn payload_with(name: &str, value: &str) -> String {
    let mut members = std_members();
    match members.iter_mut().find(|(k, _)| k == name) {
        Some(m) => m.1 = value.to_string(),
        None => members.push((name.to_string(), value.to_string())),
    }
    object(&members)
}

/// Every token must be 401 `invalid_token` with the challenge, JSON body, no leak, nothing
/// forwarded.
fn expect_all_invalid(env: &Env, cases: &[(String, String)]) {
    for (label, token) in cases {
        eprintln!("case: {label}");
        env.expect_invalid_token("/api/x", token);
    }
}

/// A valid token is still accepted: nothing above poisoned a cache or the key set.
fn expect_control_accepted(env: &Env) {
    let token = env.token(json!({}));
    env.expect_allowed("/api/x", Some(&token));
}

#[test]
fn control_token_signed_by_hand_is_accepted() {
    // Proves the hand-signing helpers produce tokens the gateway accepts, so every rejection
    // below is caused by the one thing each case changes.
    let env = env();
    let token = sign_text(&header_text(), &object(&std_members()));
    env.expect_allowed("/api/x", Some(&token));
}

#[test]
fn alg_none_and_malformed_alg_values_are_invalid_token() {
    let env = env();
    let payload = object(&std_members());
    let mut cases = Vec::new();
    for alg in ["none", "None", "NONE"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{KID}"}}"#);
        let signed = sign_text(&header, &payload);
        let (unsigned, _) = signed.rsplit_once('.').unwrap();
        cases.push((format!("alg {alg}, no signature"), format!("{unsigned}.")));
        cases.push((format!("alg {alg}, no third part"), unsigned.to_string()));
        cases.push((format!("alg {alg}, real RS256 signature"), signed.clone()));
        let no_kid = sign_text(&format!(r#"{{"alg":"{alg}"}}"#), &payload);
        let (no_kid_unsigned, _) = no_kid.rsplit_once('.').unwrap();
        cases.push((
            format!("alg {alg}, no kid, unsigned"),
            format!("{no_kid_unsigned}."),
        ));
    }
    // Not `none`, but not the allowed RS256 either: each carries a real RS256 signature.
    for alg in [
        r#""rs256""#,
        r#""RS256 ""#,
        r#"" RS256""#,
        r#""RS256\u0000""#,
        r#""""#,
        "null",
        "256",
        r#"["RS256"]"#,
        r#"{"name":"RS256"}"#,
    ] {
        let header = format!(r#"{{"alg":{alg},"typ":"JWT","kid":"{KID}"}}"#);
        cases.push((format!("alg {alg}"), sign_text(&header, &payload)));
    }
    cases.push((
        "no alg at all".into(),
        sign_text(&format!(r#"{{"typ":"JWT","kid":"{KID}"}}"#), &payload),
    ));
    expect_all_invalid(&env, &cases);
    expect_control_accepted(&env);
}

#[test]
fn hmac_keyed_with_the_issuers_public_key_material_is_invalid_token() {
    let env = env();
    let payload = claims(json!({"scope": "admin"}));
    let jwk = env.key.jwk();
    let jwks_text = jwks(&[&env.key]).to_string();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI PEM", env.key.rsa_public_pem().into_bytes()),
        ("PKCS#1 PEM", env.key.rsa_public_pkcs1_pem().into_bytes()),
        ("JWK JSON", jwk.to_string().into_bytes()),
        ("pretty JWK JSON", serde_json::to_vec_pretty(&jwk).unwrap()),
        ("served JWKS document", jwks_text.into_bytes()),
    ];
    let mut cases = Vec::new();
    for (label, secret) in &secrets {
        for kid in [json!(KID), Value::Null] {
            let mut header = json!({"alg": "HS256", "typ": "JWT"});
            if !kid.is_null() {
                header["kid"] = kid.clone();
            }
            cases.push((
                format!("HS256 keyed with the {label}, kid {kid}"),
                hmac_token(secret, &header, &payload),
            ));
        }
    }
    expect_all_invalid(&env, &cases);
    expect_control_accepted(&env);
}

#[test]
fn token_signed_by_a_key_the_issuer_does_not_publish_is_invalid_token() {
    let env = env();
    let attacker = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    let ec = FixtureKey::load("ec256.pem", Algorithm::ES256);
    let payload = claims(json!({}));
    let cases = vec![
        (
            "rsa_b under the issuer's kid".to_string(),
            attacker.sign(json!({"kid": KID}), payload.clone()),
        ),
        (
            "rsa_b without a kid".to_string(),
            attacker.sign(json!({"kid": null}), payload.clone()),
        ),
        (
            "rsa_b under its own kid".to_string(),
            attacker.sign(Value::Null, payload.clone()),
        ),
        (
            "ES256 under the issuer's RSA kid".to_string(),
            ec.sign(json!({"kid": KID}), payload.clone()),
        ),
    ];
    expect_all_invalid(&env, &cases);
    expect_control_accepted(&env);
}

#[test]
fn hostile_kid_values_are_invalid_token_and_cost_at_most_one_key_refetch() {
    let mut env = env();
    let fetches_before = env.keys.fetch_count();
    let payload = claims(json!({}));
    let long = "k".repeat(10_000);
    let kids: Vec<(&str, Value)> = vec![
        ("path traversal", json!("../../etc/passwd")),
        ("embedded quote", json!("quoted\"kid")),
        ("10,000 characters", json!(long)),
        ("number", json!(1)),
        ("array holding the real kid", json!([KID])),
        ("object holding the real kid", json!({"kid": KID})),
        ("null", Value::Null),
        ("boolean", json!(true)),
        ("empty", json!("")),
        ("real kid plus NUL", json!(format!("{KID}\u{0}"))),
        ("real kid plus space", json!(format!("{KID} "))),
        ("real kid in upper case", json!(KID.to_uppercase())),
        ("CRLF injection", json!(format!("{KID}\r\nX-Injected: 1"))),
        ("SQL", json!("' OR '1'='1")),
        ("URL", json!("http://attacker.invalid/jwks.json")),
    ];
    let mut cases = Vec::new();
    for (label, kid) in kids {
        // A `null` override would delete the member; write the header by hand for that case.
        let token = if kid.is_null() {
            sign_text(
                r#"{"alg":"RS256","typ":"JWT","kid":null}"#,
                &payload.to_string(),
            )
        } else {
            env.key.sign(json!({"kid": kid}), payload.clone())
        };
        cases.push((format!("kid: {label}"), token));
    }
    expect_all_invalid(&env, &cases);
    let fetches = env.keys.fetch_count() - fetches_before;
    assert!(
        fetches <= 1,
        "hostile kids caused {fetches} key-set fetches within one cooldown"
    );
    assert!(env.gw.is_running(), "gateway died");
    expect_control_accepted(&env);
}

#[test]
fn key_bearing_headers_naming_the_attackers_key_are_ignored_and_never_fetched() {
    let env = env();
    let attacker = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    let attacker_keys = KeyServer::start(&[&attacker]);
    let attacker_der = STANDARD.encode(attacker.rsa_public_spki_der());
    let payload = claims(json!({"scope": "admin"}));
    let everything = json!({
        "jku": attacker_keys.url(),
        "x5u": attacker_keys.url(),
        "jwk": attacker.jwk(),
        "x5c": [attacker_der],
    });
    let mut cases = Vec::new();
    for kid in [json!(attacker.kid), json!(KID)] {
        let header = merge(everything.clone(), json!({"kid": kid}));
        cases.push((
            format!("jku+x5u+jwk+x5c, kid {kid}"),
            attacker.sign(header, payload.clone()),
        ));
    }
    cases.push((
        "jku+x5u+jwk+x5c, no kid".to_string(),
        attacker.sign(
            merge(everything.clone(), json!({"kid": null})),
            payload.clone(),
        ),
    ));
    for (label, header) in [
        ("jku only", json!({"jku": attacker_keys.url()})),
        ("x5u only", json!({"x5u": attacker_keys.url()})),
        ("jku as a relative path", json!({"jku": "/jwks.json"})),
        ("x5c junk", json!({"x5c": ["!!!not base64!!!", "AAAA"]})),
        ("x5c as a string", json!({"x5c": attacker_der})),
        (
            "jwk as a string",
            json!({"jwk": attacker.jwk().to_string()}),
        ),
    ] {
        cases.push((
            format!("{label}, attacker kid"),
            attacker.sign(header, payload.clone()),
        ));
    }
    expect_all_invalid(&env, &cases);
    assert_eq!(
        attacker_keys.fetch_count(),
        0,
        "the gateway fetched keys from a URL named in a token header"
    );
    expect_control_accepted(&env);
}

#[test]
fn crit_in_any_form_is_invalid_token() {
    let env = env();
    let payload = claims(json!({}));
    let mut cases = Vec::new();
    for crit in [
        json!(["exp"]),
        json!([]),
        json!("exp"),
        json!({}),
        json!([""]),
        json!(["b64"]),
        json!(1),
    ] {
        let header = json!({"crit": crit, "b64": true});
        cases.push((
            format!("crit {crit}"),
            env.key.sign(header, payload.clone()),
        ));
    }
    cases.push((
        "crit null".to_string(),
        sign_text(
            &format!(r#"{{"alg":"RS256","kid":"{KID}","crit":null}}"#),
            &payload.to_string(),
        ),
    ));
    expect_all_invalid(&env, &cases);
    expect_control_accepted(&env);
}

/// Flips bit 0 of the byte in the middle of the signature.
fn flip_signature_bit(token: &str) -> String {
    let (rest, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    format!("{rest}.{}", b64url(&bytes))
}

#[test]
fn damaged_or_swapped_signatures_are_invalid_token() {
    let env = env();
    let token = env.token(json!({"sub": "victim"}));
    let other = env.token(json!({"sub": "attacker", "scope": "admin"}));
    let (signing_input, sig) = token.rsplit_once('.').unwrap();
    let (other_input, other_sig) = other.rsplit_once('.').unwrap();
    let sig_bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let cases = vec![
        (
            "stripped, trailing dot kept".to_string(),
            format!("{signing_input}."),
        ),
        (
            "stripped with its dot".to_string(),
            signing_input.to_string(),
        ),
        (
            "truncated by 4 characters".to_string(),
            token[..token.len() - 4].to_string(),
        ),
        (
            "truncated by 1 character".to_string(),
            token[..token.len() - 1].to_string(),
        ),
        (
            "another token's signature".to_string(),
            format!("{signing_input}.{other_sig}"),
        ),
        (
            "victim's signature on the attacker's claims".to_string(),
            format!("{other_input}.{sig}"),
        ),
        ("one bit flipped".to_string(), flip_signature_bit(&token)),
        ("character flipped".to_string(), tamper_signature(&token)),
        (
            "all zero bytes".to_string(),
            format!("{signing_input}.{}", b64url(&vec![0u8; sig_bytes.len()])),
        ),
        ("one byte extra".to_string(), {
            let mut b = sig_bytes.clone();
            b.push(0);
            format!("{signing_input}.{}", b64url(&b))
        }),
        ("one byte short".to_string(), {
            let b = &sig_bytes[..sig_bytes.len() - 1];
            format!("{signing_input}.{}", b64url(b))
        }),
        ("signature twice".to_string(), {
            let mut b = sig_bytes.clone();
            b.extend_from_slice(&sig_bytes);
            format!("{signing_input}.{}", b64url(&b))
        }),
        (
            "one byte signature".to_string(),
            format!("{signing_input}.AA"),
        ),
    ];
    expect_all_invalid(&env, &cases);
    // The genuine token still works: a failed look-alike did not evict or poison it.
    env.expect_allowed("/api/x", Some(&token));
}

#[test]
fn tampered_payload_or_header_keeping_the_signature_is_invalid_token() {
    let env = env();
    let token = env.token(json!({"sub": "user-1", "scope": "read"}));
    let mut parts = token.split('.');
    let (h, p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    let with_payload = |v: Value| format!("{h}.{}.{s}", b64url(v.to_string().as_bytes()));
    let with_header = |v: Value| format!("{}.{p}.{s}", b64url(v.to_string().as_bytes()));
    let mut reordered = String::from("{");
    let obj = payload.as_object().unwrap();
    let members: Vec<String> = obj
        .iter()
        .rev()
        .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
        .collect();
    reordered.push_str(&members.join(","));
    reordered.push('}');
    let cases = vec![
        (
            "scope raised to admin".to_string(),
            with_payload(merge(payload.clone(), json!({"scope": "admin"}))),
        ),
        (
            "sub changed".to_string(),
            with_payload(merge(payload.clone(), json!({"sub": "admin"}))),
        ),
        (
            "exp extended".to_string(),
            with_payload(merge(payload.clone(), json!({"exp": now() + 86_400}))),
        ),
        (
            "same claims, members reordered".to_string(),
            format!("{h}.{}.{s}", b64url(reordered.as_bytes())),
        ),
        (
            "typ changed in the header".to_string(),
            with_header(merge(header.clone(), json!({"typ": "at+jwt"}))),
        ),
        (
            "alg changed to PS256 in the header".to_string(),
            with_header(merge(header.clone(), json!({"alg": "PS256"}))),
        ),
    ];
    expect_all_invalid(&env, &cases);
    env.expect_allowed("/api/x", Some(&token));
}

#[test]
fn tokens_with_the_wrong_number_of_parts_or_empty_parts_are_invalid_token() {
    let env = env();
    let token = env.token(json!({}));
    let (h, rest) = token.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let jwe_header = b64url(br#"{"alg":"RSA-OAEP","enc":"A256GCM","kid":"rsa_a-RS256"}"#);
    let cases: Vec<(String, String)> = [
        (
            "JWE-shaped, five parts",
            format!(
                "{jwe_header}.{}.{}.{}.{}",
                b64url(&[7; 256]),
                b64url(&[1; 12]),
                p,
                b64url(&[2; 16])
            ),
        ),
        ("five parts from a JWS", format!("{h}.{p}.{s}.{p}.{s}")),
        ("four parts", format!("{token}.{s}")),
        ("two parts", format!("{h}.{p}")),
        ("one part", p.to_string()),
        ("six parts", format!("{token}.{h}.{p}.{s}")),
        ("leading dot", format!(".{token}")),
        ("trailing dot", format!("{token}.")),
        ("two trailing dots", format!("{token}..")),
        ("empty header", format!(".{p}.{s}")),
        ("empty payload", format!("{h}..{s}")),
        ("empty header and payload", format!("..{s}")),
        ("only dots", "..".to_string()),
        ("four dots", "....".to_string()),
        ("one dot", ".".to_string()),
    ]
    .into_iter()
    .map(|(l, t)| (l.to_string(), t))
    .collect();
    expect_all_invalid(&env, &cases);
    expect_control_accepted(&env);
}

/// base64url text for `value` whose unpadded length is not a multiple of 4, so that a padded
/// and a non-canonical spelling exist; adds a filler member until that holds.
fn encodable_with_padding(mut value: Value) -> (String, String) {
    for n in 0..3 {
        let text = value.to_string();
        let padded = URL_SAFE.encode(text.as_bytes());
        if padded.ends_with('=') {
            return (URL_SAFE_NO_PAD.encode(text.as_bytes()), padded);
        }
        value["pad"] = json!("x".repeat(n + 1));
    }
    panic!("no padded encoding found")
}

/// Replaces the last character of unpadded base64url `text` by the next one of the alphabet, which
/// sets trailing bits that encode nothing: lenient decoders read the same bytes.
fn non_canonical(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert!(text.len() % 4 != 0, "{text} has no trailing bits");
    let last = text.as_bytes()[text.len() - 1];
    let i = ALPHABET.iter().position(|&c| c == last).unwrap();
    let mut out = text[..text.len() - 1].to_string();
    out.push(ALPHABET[(i + 1) % 64] as char);
    assert!(
        URL_SAFE_NO_PAD.decode(&out).is_err(),
        "not a non-canonical spelling"
    );
    out
}

/// base64url text of a JSON value that contains `-` or `_` (so a standard-alphabet spelling
/// differs), found by varying a filler member.
fn with_url_safe_chars(value: &Value) -> String {
    for n in 0..64 {
        let v = merge(value.clone(), json!({"f": "?>".repeat(n)}));
        let text = b64url(v.to_string().as_bytes());
        if text.contains('-') || text.contains('_') {
            return text;
        }
    }
    panic!("no encoding with - or _ found")
}

#[test]
fn non_canonical_base64url_with_a_valid_signature_is_invalid_token() {
    let env = env();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": KID});
    let payload = claims(json!({}));
    let (h, h_padded) = encodable_with_padding(header.clone());
    let (p, p_padded) = encodable_with_padding(payload.clone());
    let control = sign_b64(&h, &p);
    env.expect_allowed("/api/x", Some(&control));

    let to_standard = |s: &str| s.replace('-', "+").replace('_', "/");
    let h_url = with_url_safe_chars(&header);
    let p_url = with_url_safe_chars(&payload);
    let token = sign_b64(&h, &p);
    let (signing_input, sig) = token.rsplit_once('.').unwrap();
    let sig_padded = URL_SAFE.encode(URL_SAFE_NO_PAD.decode(sig).unwrap());
    assert!(
        sig_padded.ends_with('='),
        "a 256-byte signature needs padding"
    );

    let mut cases = vec![
        (
            "standard alphabet in the header".to_string(),
            sign_b64(&to_standard(&h_url), &p),
        ),
        (
            "standard alphabet in the payload".to_string(),
            sign_b64(&h, &to_standard(&p_url)),
        ),
        (
            "non-canonical last character of the header".to_string(),
            sign_b64(&non_canonical(&h), &p),
        ),
        (
            "non-canonical last character of the payload".to_string(),
            sign_b64(&h, &non_canonical(&p)),
        ),
        (
            "non-canonical last character of the signature".to_string(),
            format!("{signing_input}.{}", non_canonical(sig)),
        ),
        (
            "padded signature".to_string(),
            format!("{signing_input}.{sig_padded}"),
        ),
    ];
    if sig.contains('-') || sig.contains('_') {
        cases.push((
            "standard alphabet in the signature".to_string(),
            format!("{signing_input}.{}", to_standard(sig)),
        ));
    }
    expect_all_invalid(&env, &cases);

    // `=` inside the credential, or whitespace, is not a b64token at all (RFC 6750 §2.1):
    // 400 invalid_request with the challenge, per the README's table.
    for (label, bad) in [
        ("padded header", sign_b64(&h_padded, &p)),
        ("padded payload", sign_b64(&h, &p_padded)),
        ("space inside", format!("{}.{} {}", h, &p[..4], &p[4..])),
        ("tab inside", format!("{h}.{p}\t.{sig}")),
    ] {
        eprintln!("case: {label}");
        let resp = env.expect_rejected("/api/x", Some(&bad), 400, Some("invalid_request"));
        assert_challenge_error(&resp, "invalid_request");
    }
    expect_control_accepted(&env);
}

#[test]
fn header_or_payload_that_is_not_a_json_object_is_invalid_token() {
    let env = env();
    let header = header_text();
    let payload = object(&std_members());
    let not_objects = [
        format!("[{payload}]"),
        "\"a string\"".to_string(),
        "42".to_string(),
        "null".to_string(),
        "true".to_string(),
        String::new(),
        "{".to_string(),
        format!("{payload}x"),
        format!("{payload}{payload}"),
        format!("\u{feff}{payload}"),
        payload.replacen("\"user-1\"", "\"\\ud800\"", 1),
        payload.replacen("\"user-1\"", "'user-1'", 1),
        payload.replacen('}', ",}", 1),
    ];
    let mut cases = Vec::new();
    for text in &not_objects {
        cases.push((format!("payload {text:.40}"), sign_text(&header, text)));
    }
    for text in [
        format!("[{header}]"),
        "\"RS256\"".to_string(),
        "0".to_string(),
        "null".to_string(),
        String::new(),
        format!("{header}x"),
    ] {
        cases.push((format!("header {text:.40}"), sign_text(&text, &payload)));
    }
    // Payload bytes that are not UTF-8 inside a string.
    let mut raw = payload.clone().into_bytes();
    let at = raw.windows(6).position(|w| w == b"user-1").unwrap();
    raw[at] = 0xff;
    cases.push((
        "payload with a non-UTF-8 byte".to_string(),
        sign_b64(&b64url(header.as_bytes()), &b64url(&raw)),
    ));
    expect_all_invalid(&env, &cases);
    expect_control_accepted(&env);
}

#[test]
fn duplicate_member_names_are_invalid_token() {
    let env = env();
    let t = now();
    let header = header_text();
    let with = |extra: &[(&str, String)]| {
        let mut m = std_members();
        m.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        object(&m)
    };
    let mut cases = vec![
        (
            "sub twice".to_string(),
            sign_text(&header, &with(&[("sub", "\"admin\"".into())])),
        ),
        (
            "exp twice, expired last".to_string(),
            sign_text(&header, &with(&[("exp", (t - 3600).to_string())])),
        ),
        (
            "exp twice, valid last".to_string(),
            sign_text(
                &header,
                &object(&[
                    ("exp".into(), (t - 3600).to_string()),
                    ("iss".into(), format!("{ISS:?}")),
                    ("aud".into(), format!("{AUD:?}")),
                    ("exp".into(), (t + 300).to_string()),
                ]),
            ),
        ),
        (
            "iss twice".to_string(),
            sign_text(&header, &with(&[("iss", "\"https://evil.test/\"".into())])),
        ),
        (
            "scope twice".to_string(),
            sign_text(
                &header,
                &with(&[("scope", "\"read\"".into()), ("scope", "\"admin\"".into())]),
            ),
        ),
        (
            "sub twice, second spelled with an escape".to_string(),
            sign_text(&header, &with(&[("s\\u0075b", "\"admin\"".into())])),
        ),
        (
            "duplicate inside a nested object".to_string(),
            sign_text(
                &header,
                &with(&[("org", r#"{"role":"user","role":"admin"}"#.into())]),
            ),
        ),
    ];
    for (label, h) in [
        (
            "alg twice, none last",
            format!(r#"{{"alg":"RS256","alg":"none","kid":"{KID}"}}"#),
        ),
        (
            "alg twice, none first",
            format!(r#"{{"alg":"none","alg":"RS256","kid":"{KID}"}}"#),
        ),
        (
            "kid twice",
            format!(r#"{{"alg":"RS256","kid":"unknown","kid":"{KID}"}}"#),
        ),
        (
            "typ twice",
            format!(r#"{{"alg":"RS256","typ":"JWT","typ":"at+jwt","kid":"{KID}"}}"#),
        ),
    ] {
        cases.push((label.to_string(), sign_text(&h, &object(&std_members()))));
    }
    expect_all_invalid(&env, &cases);
    expect_control_accepted(&env);
}

/// `depth` nested arrays around `0`: `[[[...0...]]]`.
fn nested_arrays(depth: usize) -> String {
    let mut s = String::with_capacity(depth * 2 + 1);
    s.push_str(&"[".repeat(depth));
    s.push('0');
    s.push_str(&"]".repeat(depth));
    s
}

#[test]
fn deeply_nested_claims_within_the_size_limit_are_invalid_token() {
    let mut env = env();
    let header = header_text();
    let objects = {
        let depth = 1500;
        let mut s = "{\"a\":".repeat(depth);
        s.push('0');
        s.push_str(&"}".repeat(depth));
        s
    };
    let cases = vec![
        (
            "5,000 nested arrays".to_string(),
            sign_text(&header, &payload_with("deep", &nested_arrays(5_000))),
        ),
        (
            "1,500 nested objects".to_string(),
            sign_text(&header, &payload_with("deep", &objects)),
        ),
        (
            "5,000 nested arrays in the header".to_string(),
            sign_text(
                &format!(
                    r#"{{"alg":"RS256","kid":"{KID}","x":{}}}"#,
                    nested_arrays(5_000)
                ),
                &object(&std_members()),
            ),
        ),
    ];
    for (_, token) in &cases {
        assert!(token.len() <= 16 * 1024, "case exceeds max_token_bytes");
    }
    expect_all_invalid(&env, &cases);
    assert!(env.gw.is_running(), "gateway died on deep nesting");
    expect_control_accepted(&env);
}

/// 100,000 nested arrays need a bigger token than the default 16 KiB allows, so this gateway
/// accepts tokens up to 1 MiB (and header fields to match): the parser, not the size cap, must
/// stop the attack, without a stack overflow.
#[test]
fn claim_nested_100k_deep_does_not_crash_and_a_valid_token_still_passes() {
    let key = FixtureKey::rsa_a();
    let keys = KeyServer::start(&[&key]);
    let echo = Echo::start();
    let body = format!(
        "{}\n{}\n{API_ROUTE}",
        issuer_toml("main", ISS, &keys.url(), &["RS256"], ""),
        upstream_toml("echo", &[echo.addr()], "")
    );
    let mut gw = Gateway::builder(body)
        .server_extra(
            "max_token_bytes = 1048576\nmax_header_field_bytes = 1048608\n\
             max_request_header_bytes = 2097152",
        )
        .start();
    let token = sign_text(
        &header_text(),
        &payload_with("deep", &nested_arrays(100_000)),
    );
    assert!(token.len() > 200_000 && token.len() < 1_000_000);
    let resp = client::get_with_token(gw.proxy_addr(), "/api/x", &token);
    assert_rejection(&resp, 401, Some("invalid_token"), Some(&token));
    assert_challenge_error(&resp, "invalid_token");
    assert_eq!(echo.count(), 0, "the nested token reached the upstream");
    assert!(gw.is_running(), "gateway died on a 100k-deep claim");

    let valid = key.sign(Value::Null, claims(json!({})));
    let resp = client::get_with_token(gw.proxy_addr(), "/api/x", &valid);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echo.count(), 1);
}

#[test]
fn numeric_dates_that_are_not_sane_numbers_are_invalid_token() {
    let env = env();
    let t = now();
    let header = header_text();
    let bad_values = [
        "1e300",
        "1e400",
        "9223372036854775808",
        "18446744073709551615",
        "253402300800",
        "-1",
        "-1e300",
        "-9223372036854775808",
        "\"now\"",
        "\"1795325467\"",
        "true",
        "false",
        "null",
        "[1795325467]",
        "{}",
    ];
    let mut cases = Vec::new();
    for name in ["exp", "nbf", "iat"] {
        for value in bad_values {
            cases.push((
                format!("{name}: {value}"),
                sign_text(&header, &payload_with(name, value)),
            ));
        }
    }
    // A plain integer that is merely far in the future (beyond year 9999) is not a NumericDate
    // either: accepting it would make the token valid for ever.
    cases.push((
        "exp: now + 1e12 (beyond year 9999)".to_string(),
        sign_text(
            &header,
            &payload_with("exp", &format!("{}", t + 1_000_000_000_000)),
        ),
    ));
    expect_all_invalid(&env, &cases);
    expect_control_accepted(&env);
}

#[test]
fn fractional_and_exponent_numeric_dates_are_floored_and_accepted() {
    let env = env();
    let t = now();
    let header = header_text();
    for (label, name, value) in [
        ("exp now+60.5", "exp", format!("{}.5", t + 60)),
        ("exp now+300.999", "exp", format!("{}.999", t + 300)),
        ("exp as an exponent", "exp", format!("{}e1", (t + 600) / 10)),
        ("exp as a float with .0", "exp", format!("{}.0", t + 120)),
        ("iat now-0.5", "iat", format!("{}.5", t - 1)),
        ("nbf now-10.9", "nbf", format!("{}.9", t - 11)),
    ] {
        eprintln!("case: {label}: {value}");
        let token = sign_text(&header, &payload_with(name, &value));
        env.expect_allowed("/api/x", Some(&token));
    }
    // A fractional exp further in the past than the default 30 s leeway is still expired.
    let token = sign_text(&header, &payload_with("exp", &format!("{}.9", t - 120)));
    env.expect_invalid_token("/api/x", &token);
}

#[test]
fn authorization_scheme_spelling_and_spacing() {
    let env = env();
    let token = env.token(json!({}));
    for value in [
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("BeArEr {token}"),
        format!("Bearer  {token}"),
        format!("Bearer {token} "),
    ] {
        eprintln!("case: {:.12}...", value);
        let before = env.echo.count();
        let resp = env.request("GET", "/api/x", &[("Authorization", &value)]);
        env.assert_allowed(&resp);
        assert_eq!(env.echo.count(), before + 1);
    }
    for value in [
        format!("Bearer\t{token}"),
        format!("Bearer:{token}"),
        format!("Bearer={token}"),
        format!("Token {token}"),
        format!("Bearer {token}, Bearer {token}"),
        format!("Bearer \"{token}\""),
        format!("Basic {token}"),
    ] {
        eprintln!("case: {:.12}...", value);
        let before = env.echo.count();
        let resp = env.request("GET", "/api/x", &[("Authorization", &value)]);
        assert_rejection(&resp, 400, Some("invalid_request"), Some(&token));
        assert_challenge_error(&resp, "invalid_request");
        assert_eq!(env.echo.count(), before, "malformed credential forwarded");
    }
    // Tokens anywhere but the Authorization header are not read: 401 with the bare challenge.
    for (target, headers) in [
        (format!("/api/x?access_token={token}"), vec![]),
        (
            "/api/x".to_string(),
            vec![("X-Access-Token", token.as_str())],
        ),
        ("/api/x".to_string(), vec![("Cookie", "access_token=x")]),
    ] {
        let before = env.echo.count();
        let resp = env.request("GET", &target, &headers);
        assert_rejection(&resp, 401, Some("unauthorized"), None);
        assert!(!challenge(&resp).contains("error="), "{}", challenge(&resp));
        assert_eq!(env.echo.count(), before);
    }
    // Two Authorization fields, however spelled, are 400.
    let raw = format!(
        "GET /api/x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let before = env.echo.count();
    let resp = env.send(raw.as_bytes());
    assert_rejection(&resp, 400, Some("invalid_request"), Some(&token));
    assert_eq!(env.echo.count(), before);
}

#[test]
fn token_of_exactly_max_token_bytes_is_verified_and_one_byte_more_is_400() {
    let env = env();
    let limit = 16 * 1024;
    let shaped = |len: usize| {
        let part = (len - 2) / 3;
        let mut t = format!("{}.{}.", "A".repeat(part), "B".repeat(part));
        t.push_str(&"C".repeat(len - t.len()));
        assert_eq!(t.len(), len);
        t
    };
    let at_limit = shaped(limit);
    let resp = env.expect_rejected("/api/x", Some(&at_limit), 401, Some("invalid_token"));
    assert_challenge_error(&resp, "invalid_token");

    let over = shaped(limit + 1);
    let resp = env.expect_rejected("/api/x", Some(&over), 400, Some("invalid_request"));
    assert_challenge_error(&resp, "invalid_request");
}
