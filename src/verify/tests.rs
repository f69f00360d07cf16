//! Unit tests for `verify`: every algorithm, key selection, header attacks, registered claims at
//! their exact time boundaries, and malformed encodings. Time is always injected.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::fixtures::*;
use crate::issuer::KeySource;
use crate::jwks::{self, KeyStore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Header;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

const NOW: i64 = 1_700_000_000;
const ISS: &str = "https://issuer.example/";
const AUD: &str = "https://api.example";
const LEEWAY: i64 = 30;

// ---- keys and tokens -------------------------------------------------------------------------

/// The issuer's published set: rsa_a as "a", and one key of every other type.
fn default_jwks() -> Vec<Value> {
    vec![
        public_jwk(RSA_A, Algorithm::RS256, "a", false),
        public_jwk(EC256, Algorithm::ES256, "ec256", false),
        public_jwk(EC384, Algorithm::ES384, "ec384", false),
        public_jwk(ED25519, Algorithm::EdDSA, "ed", false),
    ]
}

fn kid_for(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ec256",
        Algorithm::ES384 => "ec384",
        Algorithm::EdDSA => "ed",
        _ => "a",
    }
}

fn store(keys: &[Value]) -> Arc<KeyStore> {
    let store = Arc::new(KeyStore::default());
    let body = serde_json::to_vec(&json!({ "keys": keys })).unwrap();
    let (set, skipped) = jwks::parse(&body, SystemTime::UNIX_EPOCH).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    store.set(set);
    store
}

fn issuer_with(f: impl FnOnce(&mut Issuer)) -> Arc<Issuer> {
    let mut issuer = Issuer {
        name: "t".into(),
        iss: ISS.into(),
        audiences: vec![AUD.into()],
        algorithms: ALL_ASYMMETRIC.to_vec(),
        leeway: LEEWAY,
        scope_claims: vec!["scope".into(), "scp".into(), "permissions".into()],
        client_claims: vec!["azp".into(), "client_id".into(), "cid".into()],
        require_typ: None,
        source: KeySource::File(PathBuf::new()),
        refresh: Duration::from_secs(3600),
        fetch_timeout: Duration::from_secs(5),
        keys: store(&default_jwks()),
        metrics: crate::metrics::Metrics::new().unwrap().issuer("t"),
    };
    f(&mut issuer);
    Arc::new(issuer)
}

fn issuer() -> Arc<Issuer> {
    issuer_with(|_| {})
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "alice",
        "exp": NOW + 600,
        "iat": NOW - 10,
        "scope": "write read",
        "azp": "web",
    })
}

fn claims_with(name: &str, value: Value) -> Value {
    let mut c = claims();
    c.as_object_mut().unwrap().insert(name.into(), value);
    c
}

fn claims_without(name: &str) -> Value {
    let mut c = claims();
    c.as_object_mut().unwrap().remove(name);
    c
}

/// Mints a token with jsonwebtoken, `typ` left out.
fn mint_with(pem: &[u8], alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.typ = None;
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &encoding_key(pem, alg)).unwrap()
}

/// An RS256 token from rsa_a with kid "a".
fn mint(claims: &Value) -> String {
    mint_with(RSA_A, Algorithm::RS256, Some("a"), claims)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs raw header and payload text, for shapes jsonwebtoken would never produce.
fn sign_raw(header: &str, payload: &str, pem: &[u8], alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &encoding_key(pem, alg), alg).unwrap();
    format!("{input}.{sig}")
}

/// Signs a JSON header and payload with rsa_a, RS256.
fn sign_json(header: &Value, payload: &Value) -> String {
    sign_raw(
        &header.to_string(),
        &payload.to_string(),
        RSA_A,
        Algorithm::RS256,
    )
}

fn run(token: &str) -> Result<Verified, Rejection> {
    verify(token, &[issuer()], NOW)
}

fn run_at(token: &str, now: i64) -> Result<Verified, Rejection> {
    verify(token, &[issuer()], now)
}

fn is_malformed(r: &Rejection) -> bool {
    matches!(r, Rejection::MalformedToken(_))
}

// ---- algorithms ------------------------------------------------------------------------------

#[test]
fn every_supported_algorithm_is_accepted_when_allowed() {
    for alg in ALL_ASYMMETRIC {
        let only = issuer_with(|i| i.algorithms = vec![alg]);
        let token = mint_with(pem_for(alg), alg, Some(kid_for(alg)), &claims());
        let v = verify(&token, &[only], NOW).unwrap_or_else(|e| panic!("{alg:?}: {e:?}"));
        assert_eq!(v.claims["sub"], "alice", "{alg:?}");
    }
}

#[test]
fn every_supported_algorithm_is_accepted_without_a_kid() {
    for alg in ALL_ASYMMETRIC {
        let token = mint_with(pem_for(alg), alg, None, &claims());
        assert!(run(&token).is_ok(), "{alg:?}: {:?}", run(&token));
    }
}

#[test]
fn algorithm_outside_the_allow_list_is_rejected() {
    let rs256_only = issuer_with(|i| i.algorithms = vec![Algorithm::RS256]);
    for alg in ALL_ASYMMETRIC
        .into_iter()
        .filter(|a| *a != Algorithm::RS256)
    {
        let token = mint_with(pem_for(alg), alg, Some(kid_for(alg)), &claims());
        assert_eq!(
            verify(&token, &[Arc::clone(&rs256_only)], NOW).unwrap_err(),
            Rejection::AlgorithmNotAllowed,
            "{alg:?}"
        );
    }
}

#[test]
fn unknown_or_miscased_alg_names_are_not_allowed() {
    for alg in ["rs256", "Rs256", "RS256 ", "HS1", "ES512", "RSA-OAEP", ""] {
        let token = sign_json(&json!({"alg": alg, "kid": "a"}), &claims());
        assert_eq!(
            run(&token).unwrap_err(),
            Rejection::AlgorithmNotAllowed,
            "alg {alg:?}"
        );
    }
}

#[test]
fn alg_none_is_rejected_with_or_without_a_signature() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(json!({"alg": alg}).to_string().as_bytes());
        let payload = b64(claims().to_string().as_bytes());
        let unsigned = format!("{header}.{payload}.");
        assert_eq!(
            run(&unsigned).unwrap_err(),
            Rejection::MalformedToken("token has no signature"),
            "{alg} unsigned"
        );
        let signed = sign_json(&json!({"alg": alg, "kid": "a"}), &claims());
        assert_eq!(
            run(&signed).unwrap_err(),
            Rejection::AlgorithmNotAllowed,
            "{alg} signed"
        );
        // A stray signature part that is not even a signature.
        let stray = format!("{header}.{payload}.{}", b64(b"x"));
        assert_eq!(
            run(&stray).unwrap_err(),
            Rejection::AlgorithmNotAllowed,
            "{alg} stray"
        );
    }
}

/// Byte strings an attacker can learn about the issuer's RSA key and try as an HMAC secret.
fn public_key_secrets() -> Vec<Vec<u8>> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    let text = std::str::from_utf8(RSA_A).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
    let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
    let spki_b64 = base64::engine::general_purpose::STANDARD.encode(&spki);
    let lines: Vec<String> = spki_b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    );
    let jwk = public_jwk(RSA_A, Algorithm::RS256, "a", false);
    let jwks = json!({"keys": default_jwks()});
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    vec![
        pem.clone().into_bytes(),
        pem.trim_end().as_bytes().to_vec(),
        spki,
        jwk.to_string().into_bytes(),
        serde_json::to_vec(&jwks).unwrap(),
        n,
    ]
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    let careless = issuer_with(|i| {
        i.algorithms = vec![
            Algorithm::RS256,
            Algorithm::HS256,
            Algorithm::HS384,
            Algorithm::HS512,
        ]
    });
    for (i, secret) in public_key_secrets().iter().enumerate() {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            for kid in [Some("a"), None] {
                let token = mint_with(secret, alg, kid, &claims());
                // The normal case: HMAC is never on the allow-list.
                assert_eq!(
                    run(&token).unwrap_err(),
                    Rejection::AlgorithmNotAllowed,
                    "secret #{i} {alg:?}"
                );
                // Even an allow-list that names HMAC never turns the RSA key into a secret.
                let got = verify(&token, &[Arc::clone(&careless)], NOW);
                assert!(
                    matches!(got, Err(Rejection::BadSignature | Rejection::UnknownKey)),
                    "secret #{i} {alg:?} kid {kid:?}: {got:?}"
                );
            }
        }
    }
}

// ---- key selection ---------------------------------------------------------------------------

#[test]
fn key_of_the_wrong_type_under_a_kid_is_rejected() {
    let cases = [
        (Algorithm::ES256, "a"),
        (Algorithm::ES384, "ec256"),
        (Algorithm::ES256, "ec384"),
        (Algorithm::EdDSA, "a"),
        (Algorithm::RS256, "ec256"),
        (Algorithm::PS256, "ed"),
    ];
    for (alg, kid) in cases {
        let token = mint_with(pem_for(alg), alg, Some(kid), &claims());
        assert_eq!(
            run(&token).unwrap_err(),
            Rejection::BadSignature,
            "{alg:?} with kid {kid}"
        );
    }
}

#[test]
fn every_key_sharing_the_kid_is_tried() {
    // A stale RSA key and an EC key under the same kid as the signing key must not shadow it,
    // in either order.
    let token = mint_with(RSA_A, Algorithm::RS256, Some("a"), &claims());
    let ec = mint_with(EC256, Algorithm::ES256, Some("a"), &claims());
    let sets = [
        vec![
            public_jwk(RSA_B, Algorithm::RS256, "a", false),
            public_jwk(EC256, Algorithm::ES256, "a", false),
            public_jwk(RSA_A, Algorithm::RS256, "a", false),
        ],
        vec![
            public_jwk(RSA_A, Algorithm::RS256, "a", false),
            public_jwk(EC256, Algorithm::ES256, "a", false),
            public_jwk(RSA_B, Algorithm::RS256, "a", false),
        ],
    ];
    for keys in sets {
        let issuer = issuer_with(|i| i.keys = store(&keys));
        let issuers = [issuer];
        assert!(verify(&token, &issuers, NOW).is_ok());
        assert!(verify(&ec, &issuers, NOW).is_ok());
        let (_, by) = verify_with_key(&token, &issuers, NOW).unwrap();
        let signer = issuers[0]
            .keys
            .get()
            .unwrap()
            .keys
            .iter()
            .find(|k| k.fingerprint == by)
            .cloned()
            .unwrap();
        assert_eq!(signer.kind, crate::jwks::KeyKind::Rsa);
        // A key that is not in the set still gets nowhere under that kid.
        let other = mint_with(EC384, Algorithm::ES384, Some("a"), &claims());
        assert_eq!(
            verify(&other, &issuers, NOW).unwrap_err(),
            Rejection::BadSignature
        );
    }
}

#[test]
fn key_pinned_to_another_algorithm_is_not_used() {
    let mut pinned = public_jwk(RSA_A, Algorithm::RS256, "a", false);
    pinned["alg"] = json!("RS256");
    let i = issuer_with(|i| i.keys = store(&[pinned]));
    let ps = mint_with(RSA_A, Algorithm::PS256, Some("a"), &claims());
    assert_eq!(
        verify(&ps, &[Arc::clone(&i)], NOW).unwrap_err(),
        Rejection::BadSignature
    );
    let ps_no_kid = mint_with(RSA_A, Algorithm::PS256, None, &claims());
    assert_eq!(
        verify(&ps_no_kid, &[Arc::clone(&i)], NOW).unwrap_err(),
        Rejection::UnknownKey
    );
    let rs = mint_with(RSA_A, Algorithm::RS256, Some("a"), &claims());
    assert!(verify(&rs, &[i], NOW).is_ok());
}

#[test]
fn token_signed_by_another_key_under_a_known_kid_is_rejected() {
    let token = mint_with(RSA_B, Algorithm::RS256, Some("a"), &claims());
    assert_eq!(run(&token).unwrap_err(), Rejection::BadSignature);
}

#[test]
fn token_without_kid_is_checked_against_every_fitting_key() {
    let keys = [
        public_jwk(RSA_B, Algorithm::RS256, "b", false),
        public_jwk(EC256, Algorithm::ES256, "ec256", false),
        public_jwk(RSA_A, Algorithm::RS256, "a", false),
    ];
    let i = issuer_with(|i| i.keys = store(&keys));
    for pem in [RSA_A, RSA_B] {
        let token = mint_with(pem, Algorithm::RS256, None, &claims());
        assert!(verify(&token, &[Arc::clone(&i)], NOW).is_ok());
    }
}

#[test]
fn token_without_kid_signed_by_an_unknown_key_is_rejected() {
    let token = mint_with(RSA_B, Algorithm::RS256, None, &claims());
    assert_eq!(run(&token).unwrap_err(), Rejection::BadSignature);
}

#[test]
fn token_without_kid_and_no_fitting_key_is_an_unknown_key() {
    let rsa_only =
        issuer_with(|i| i.keys = store(&[public_jwk(RSA_A, Algorithm::RS256, "a", false)]));
    for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        let token = mint_with(pem_for(alg), alg, None, &claims());
        assert_eq!(
            verify(&token, &[Arc::clone(&rsa_only)], NOW).unwrap_err(),
            Rejection::UnknownKey,
            "{alg:?}"
        );
    }
}

#[test]
fn unknown_kid_is_rejected() {
    for kid in ["nope", "", "A", "a "] {
        let token = mint_with(RSA_A, Algorithm::RS256, Some(kid), &claims());
        assert_eq!(
            run(&token).unwrap_err(),
            Rejection::UnknownKey,
            "kid {kid:?}"
        );
    }
}

#[test]
fn keys_not_loaded_is_a_temporary_failure() {
    let empty = issuer_with(|i| i.keys = Arc::new(KeyStore::default()));
    let token = mint(&claims());
    assert_eq!(
        verify(&token, &[empty], NOW).unwrap_err(),
        Rejection::KeysUnavailable
    );
}

#[test]
fn keys_are_taken_only_from_the_issuer_named_by_iss() {
    let b = issuer_with(|i| {
        i.name = "b".into();
        i.iss = "https://b.example/".into();
        i.keys = store(&[public_jwk(RSA_B, Algorithm::RS256, "b", false)]);
    });
    let issuers = [issuer(), Arc::clone(&b)];
    // A token from b, signed with b's key, verifies against b.
    let from_b = mint_with(
        RSA_B,
        Algorithm::RS256,
        Some("b"),
        &claims_with("iss", json!("https://b.example/")),
    );
    assert_eq!(verify(&from_b, &issuers, NOW).unwrap().issuer.name, "b");
    // b's key cannot vouch for a token claiming to come from the first issuer.
    let forged = mint_with(RSA_B, Algorithm::RS256, Some("b"), &claims());
    assert_eq!(
        verify(&forged, &issuers, NOW).unwrap_err(),
        Rejection::UnknownKey
    );
    let forged = mint_with(RSA_B, Algorithm::RS256, None, &claims());
    assert_eq!(
        verify(&forged, &issuers, NOW).unwrap_err(),
        Rejection::BadSignature
    );
    // An issuer the route does not trust is a wrong issuer, whatever its keys.
    assert_eq!(
        verify(&from_b, &[issuer()], NOW).unwrap_err(),
        Rejection::WrongIssuer
    );
}

// ---- header parameters -----------------------------------------------------------------------

#[test]
fn crit_header_is_refused() {
    for crit in [json!(["exp"]), json!([]), json!(["b64"])] {
        let token = sign_json(
            &json!({"alg": "RS256", "kid": "a", "crit": crit, "exp": NOW}),
            &claims(),
        );
        let got = run(&token).unwrap_err();
        assert_eq!(
            got,
            Rejection::MalformedToken("unsupported critical header parameter"),
            "{crit}"
        );
    }
}

#[test]
fn key_bearing_headers_are_ignored() {
    let attacker = public_jwk(RSA_B, Algorithm::RS256, "a", false);
    let attacker_der = {
        let text = std::str::from_utf8(RSA_B).unwrap();
        text.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    for (kid, want) in [
        (Some("a"), Rejection::BadSignature),
        (Some("attacker"), Rejection::UnknownKey),
        (None, Rejection::BadSignature),
    ] {
        let mut header = json!({
            "alg": "RS256",
            "jwk": attacker,
            "jku": "https://attacker.example/jwks.json",
            "x5u": "https://attacker.example/cert.pem",
            "x5c": [attacker_der],
        });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let token = sign_raw(
            &header.to_string(),
            &claims().to_string(),
            RSA_B,
            Algorithm::RS256,
        );
        assert_eq!(run(&token).unwrap_err(), want, "kid {kid:?}");
    }
}

#[test]
fn key_bearing_headers_do_not_break_a_genuine_token() {
    let header = json!({"alg": "RS256", "kid": "a", "jku": "https://x/", "x5u": "https://y/"});
    assert!(run(&sign_json(&header, &claims())).is_ok());
}

#[test]
fn required_typ_matches_case_insensitively_with_optional_media_prefix() {
    let at = issuer_with(|i| i.require_typ = Some("at+jwt".into()));
    let cases: &[(Option<&str>, bool)] = &[
        (Some("at+jwt"), true),
        (Some("application/at+jwt"), true),
        (Some("AT+JWT"), true),
        (Some("Application/At+Jwt"), true),
        (Some("JWT"), false),
        (Some("jwt"), false),
        (Some("at+jwt "), false),
        (Some("application/jwt"), false),
        (Some("at+jwt; x=1"), false),
        (Some(""), false),
        (None, false),
    ];
    for (typ, ok) in cases {
        let mut header = json!({"alg": "RS256", "kid": "a"});
        if let Some(t) = typ {
            header["typ"] = json!(t);
        }
        let got = verify(&sign_json(&header, &claims()), &[Arc::clone(&at)], NOW);
        if *ok {
            assert!(got.is_ok(), "typ {typ:?}: {got:?}");
        } else {
            assert_eq!(got.unwrap_err(), Rejection::WrongType, "typ {typ:?}");
        }
    }
}

#[test]
fn typ_is_not_checked_when_not_required() {
    for typ in ["JWT", "anything", "at+jwt"] {
        let header = json!({"alg": "RS256", "kid": "a", "typ": typ});
        assert!(run(&sign_json(&header, &claims())).is_ok(), "{typ}");
    }
}

#[test]
fn non_string_typ_is_malformed() {
    let at = issuer_with(|i| i.require_typ = Some("at+jwt".into()));
    let token = sign_json(
        &json!({"alg": "RS256", "kid": "a", "typ": ["at+jwt"]}),
        &claims(),
    );
    assert!(is_malformed(&verify(&token, &[at], NOW).unwrap_err()));
}

// ---- iss and aud -----------------------------------------------------------------------------

#[test]
fn issuer_must_match_exactly() {
    let cases = [
        json!("https://issuer.example"),
        json!("https://issuer.example//"),
        json!("https://ISSUER.example/"),
        json!("http://issuer.example/"),
        json!(" https://issuer.example/"),
        json!(""),
        json!(["https://issuer.example/"]),
        json!({"iss": "https://issuer.example/"}),
        json!(5),
        json!(null),
        json!(true),
    ];
    for iss in cases {
        let token = mint(&claims_with("iss", iss.clone()));
        assert_eq!(
            run(&token).unwrap_err(),
            Rejection::WrongIssuer,
            "iss {iss}"
        );
    }
    assert_eq!(
        run(&mint(&claims_without("iss"))).unwrap_err(),
        Rejection::WrongIssuer
    );
}

#[test]
fn audience_must_name_a_configured_audience() {
    let two = issuer_with(|i| i.audiences = vec![AUD.into(), "second".into()]);
    let cases: &[(Option<Value>, bool)] = &[
        (Some(json!(AUD)), true),
        (Some(json!("second")), true),
        (Some(json!([AUD])), true),
        (Some(json!(["other", "second"])), true),
        (Some(json!(["other", 7, AUD])), true),
        (Some(json!("other")), false),
        (Some(json!(["other", "more"])), false),
        (Some(json!([])), false),
        (Some(json!("")), false),
        (Some(json!("https://api.example/")), false),
        (Some(json!("https://API.example")), false),
        (Some(json!(5)), false),
        (Some(json!(null)), false),
        (Some(json!({"aud": AUD})), false),
        (Some(json!([[AUD]])), false),
        (None, false),
    ];
    for (aud, ok) in cases {
        let c = match aud {
            Some(a) => claims_with("aud", a.clone()),
            None => claims_without("aud"),
        };
        let got = verify(&mint(&c), &[Arc::clone(&two)], NOW);
        if *ok {
            assert!(got.is_ok(), "aud {aud:?}: {got:?}");
        } else {
            assert_eq!(got.unwrap_err(), Rejection::WrongAudience, "aud {aud:?}");
        }
    }
}

// ---- time ------------------------------------------------------------------------------------

#[test]
fn exp_is_required() {
    assert_eq!(
        run(&mint(&claims_without("exp"))).unwrap_err(),
        Rejection::MalformedToken("exp is required")
    );
}

#[test]
fn expired_token_is_rejected_at_exact_leeway_limit() {
    let exp = NOW;
    let token = mint(&claims_with("exp", json!(exp)));
    let cases = [
        (exp - 1, true),
        (exp, true),
        (exp + LEEWAY - 1, true),
        (exp + LEEWAY, false),
        (exp + LEEWAY + 1, false),
        (i64::MAX, false),
    ];
    for (now, ok) in cases {
        let got = run_at(&token, now);
        if ok {
            assert_eq!(got.unwrap().exp, exp, "now = exp + {}", now - exp);
        } else {
            assert_eq!(got.unwrap_err(), Rejection::Expired, "now = {now}");
        }
    }
}

#[test]
fn expired_token_without_leeway_is_rejected_at_exp() {
    let strict = issuer_with(|i| i.leeway = 0);
    let token = mint(&claims_with("exp", json!(NOW)));
    assert!(verify(&token, &[Arc::clone(&strict)], NOW - 1).is_ok());
    assert_eq!(
        verify(&token, &[strict], NOW).unwrap_err(),
        Rejection::Expired
    );
}

#[test]
fn nbf_is_accepted_up_to_the_leeway_into_the_future() {
    let cases = [
        (NOW - 100, true),
        (NOW, true),
        (NOW + LEEWAY, true),
        (NOW + LEEWAY + 1, false),
    ];
    for (nbf, ok) in cases {
        let got = run(&mint(&claims_with("nbf", json!(nbf))));
        if ok {
            assert_eq!(got.unwrap().nbf, Some(nbf), "nbf = now + {}", nbf - NOW);
        } else {
            assert_eq!(
                got.unwrap_err(),
                Rejection::NotYetValid,
                "nbf = now + {}",
                nbf - NOW
            );
        }
    }
}

#[test]
fn iat_is_accepted_up_to_the_leeway_into_the_future() {
    let cases = [
        (0, true),
        (NOW, true),
        (NOW + LEEWAY, true),
        (NOW + LEEWAY + 1, false),
    ];
    for (iat, ok) in cases {
        let got = run(&mint(&claims_with("iat", json!(iat))));
        if ok {
            assert_eq!(got.unwrap().iat, Some(iat), "iat = now + {}", iat - NOW);
        } else {
            assert_eq!(
                got.unwrap_err(),
                Rejection::IssuedInFuture,
                "iat = now + {}",
                iat - NOW
            );
        }
    }
}

#[test]
fn nbf_and_iat_are_optional() {
    let v = run(&mint(&claims_without("iat"))).unwrap();
    assert_eq!((v.iat, v.nbf), (None, None));
}

#[test]
fn fractional_dates_are_floored_and_accepted() {
    let mut c = claims();
    c["exp"] = json!(NOW as f64 + 100.9);
    c["nbf"] = json!(NOW as f64 - 0.5);
    c["iat"] = json!(NOW as f64 + LEEWAY as f64 + 0.9);
    let v = run(&mint(&c)).unwrap();
    assert_eq!(v.exp, NOW + 100);
    assert_eq!(v.nbf, Some(NOW - 1));
    assert_eq!(v.iat, Some(NOW + LEEWAY));
    // Flooring never extends a lifetime: exp = now + leeway - 0.5 is already too late.
    let late = mint(&claims_with("exp", json!(NOW as f64 - LEEWAY as f64 + 0.5)));
    assert_eq!(run(&late).unwrap_err(), Rejection::Expired);
}

#[test]
fn unusable_numeric_dates_are_malformed() {
    let bad = [
        json!("1700000600"),
        json!(true),
        json!(-1),
        json!(-0.5),
        json!(1e300),
        json!(253_402_300_800_i64),
        json!(u64::MAX),
        json!(null),
        json!([NOW + 600]),
        json!({"t": NOW + 600}),
    ];
    for name in ["exp", "nbf", "iat"] {
        for value in &bad {
            let got = run(&mint(&claims_with(name, value.clone()))).unwrap_err();
            assert!(is_malformed(&got), "{name} = {value}: {got:?}");
        }
    }
}

#[test]
fn far_future_exp_within_year_9999_is_fine() {
    let v = run(&mint(&claims_with("exp", json!(253_402_300_799_i64)))).unwrap();
    assert_eq!(v.exp, 253_402_300_799);
}

// ---- encoding --------------------------------------------------------------------------------

fn split3(token: &str) -> (&str, &str, &str) {
    let mut it = token.split('.');
    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
}

#[test]
fn genuine_token_verifies_and_exposes_its_claims() {
    let mut c = claims();
    c["nbf"] = json!(NOW - 5);
    c["scp"] = json!(["admin", "read"]);
    let v = run(&mint(&c)).unwrap();
    assert_eq!(v.issuer.name, "t");
    assert_eq!(v.exp, NOW + 600);
    assert_eq!(v.iat, Some(NOW - 10));
    assert_eq!(v.nbf, Some(NOW - 5));
    assert_eq!(v.scopes.to_vec(), vec!["admin", "read", "write"]);
    assert_eq!(v.client.as_deref(), Some("web"));
    assert_eq!(Value::Object(v.claims.into()), c);
}

#[test]
fn tampered_payload_is_rejected() {
    let token = mint(&claims());
    let (h, _, s) = split3(&token);
    for change in [
        claims_with("sub", json!("mallory")),
        claims_with("scope", json!("admin")),
        claims_with("exp", json!(NOW + 6000)),
    ] {
        let p = b64(change.to_string().as_bytes());
        assert_eq!(
            run(&format!("{h}.{p}.{s}")).unwrap_err(),
            Rejection::BadSignature
        );
    }
}

#[test]
fn tampered_header_is_rejected() {
    let token = mint(&claims());
    let (_, p, s) = split3(&token);
    for header in [
        json!({"alg": "RS256", "kid": "a", "typ": "at+jwt"}),
        json!({"alg": "RS256", "kid": "a", "x": 1}),
        json!({"alg": "RS256", "kid": "a", "jwk": {}}),
    ] {
        let h = b64(header.to_string().as_bytes());
        assert_eq!(
            run(&format!("{h}.{p}.{s}")).unwrap_err(),
            Rejection::BadSignature,
            "{header}"
        );
    }
}

#[test]
fn truncated_or_swapped_signatures_are_rejected() {
    let token = mint(&claims());
    let (h, p, s) = split3(&token);
    let raw = URL_SAFE_NO_PAD.decode(s).unwrap();
    for keep in [raw.len() - 1, raw.len() / 2, 1] {
        let cut = b64(&raw[..keep]);
        assert_eq!(
            run(&format!("{h}.{p}.{cut}")).unwrap_err(),
            Rejection::BadSignature,
            "{keep} bytes"
        );
    }
    let longer = b64(&[&raw[..], &[0]].concat());
    assert_eq!(
        run(&format!("{h}.{p}.{longer}")).unwrap_err(),
        Rejection::BadSignature
    );
    for cut in [1, 2, 4, 5] {
        let got = run(&format!("{h}.{p}.{}", &s[..s.len() - cut])).unwrap_err();
        assert!(
            matches!(got, Rejection::BadSignature | Rejection::MalformedToken(_)),
            "cut {cut}: {got:?}"
        );
    }
    let other = mint(&claims_with("sub", "bob".into()));
    let (_, _, other_sig) = split3(&other);
    assert_eq!(
        run(&format!("{h}.{p}.{other_sig}")).unwrap_err(),
        Rejection::BadSignature
    );
    let ps = mint_with(RSA_A, Algorithm::PS256, Some("a"), &claims());
    let (_, _, ps_sig) = split3(&ps);
    assert_eq!(
        run(&format!("{h}.{p}.{ps_sig}")).unwrap_err(),
        Rejection::BadSignature
    );
    let zeros = b64(&[0u8; 256]);
    assert_eq!(
        run(&format!("{h}.{p}.{zeros}")).unwrap_err(),
        Rejection::BadSignature
    );
}

#[test]
fn ecdsa_signature_in_der_form_is_rejected() {
    // JWS ECDSA signatures are fixed-size r||s; a DER-wrapped one must not verify.
    let token = mint_with(EC256, Algorithm::ES256, Some("ec256"), &claims());
    let (h, p, s) = split3(&token);
    let raw = URL_SAFE_NO_PAD.decode(s).unwrap();
    let int = |x: &[u8]| {
        let mut v = x.to_vec();
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let (r, s2) = raw.split_at(32);
    let body = [int(r), int(s2)].concat();
    let der = [vec![0x30, body.len() as u8], body].concat();
    assert_eq!(
        run(&format!("{h}.{p}.{}", b64(&der))).unwrap_err(),
        Rejection::BadSignature
    );
}

#[test]
fn five_part_jwe_shape_is_malformed() {
    let token = mint(&claims());
    let (h, p, s) = split3(&token);
    let jwe = format!("{h}.{p}.{s}.{p}.{s}");
    assert_eq!(
        run(&jwe).unwrap_err(),
        Rejection::MalformedToken("encrypted tokens (JWE) are not accepted")
    );
    for bad in [
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.{s}"),
        token.replace('.', ""),
    ] {
        assert!(is_malformed(&run(&bad).unwrap_err()), "{bad}");
    }
}

fn with_padding(part: &str) -> String {
    format!("{part}{}", "=".repeat((4 - part.len() % 4) % 4))
}

fn flip_trailing_bits(part: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert!(
        matches!(part.len() % 4, 2 | 3),
        "no trailing bits in a part of {} chars",
        part.len()
    );
    let last = *part.as_bytes().last().unwrap();
    let idx = ALPHABET.iter().position(|&c| c == last).unwrap();
    format!("{}{}", &part[..part.len() - 1], ALPHABET[idx ^ 1] as char)
}

/// A token whose three parts all have a partial last base64 quantum.
fn token_with_trailing_bits() -> String {
    for pad in 0..3 {
        let c = claims_with("x", json!("y".repeat(pad)));
        let token = sign_raw(
            r#"{"alg":"RS256","kid":"ab"}"#,
            &c.to_string(),
            RSA_A,
            Algorithm::RS256,
        );
        let (h, p, s) = split3(&token);
        if [h, p, s].iter().all(|x| x.len() % 4 != 0) {
            return token;
        }
    }
    panic!("no suitable token");
}

#[test]
fn padded_base64_is_malformed() {
    let i = issuer_with(|i| i.keys = store(&[public_jwk(RSA_A, Algorithm::RS256, "ab", false)]));
    let token = token_with_trailing_bits();
    assert!(verify(&token, &[Arc::clone(&i)], NOW).is_ok());
    let (h, p, s) = split3(&token);
    for bad in [
        format!("{}.{p}.{s}", with_padding(h)),
        format!("{h}.{}.{s}", with_padding(p)),
        format!("{h}.{p}.{}", with_padding(s)),
    ] {
        let got = verify(&bad, &[Arc::clone(&i)], NOW).unwrap_err();
        assert!(is_malformed(&got), "{got:?}");
    }
}

#[test]
fn non_canonical_base64_is_malformed() {
    let i = issuer_with(|i| i.keys = store(&[public_jwk(RSA_A, Algorithm::RS256, "ab", false)]));
    let token = token_with_trailing_bits();
    let (h, p, s) = split3(&token);
    for bad in [
        format!("{}.{p}.{s}", flip_trailing_bits(h)),
        format!("{h}.{}.{s}", flip_trailing_bits(p)),
        format!("{h}.{p}.{}", flip_trailing_bits(s)),
    ] {
        let got = verify(&bad, &[Arc::clone(&i)], NOW).unwrap_err();
        assert!(is_malformed(&got), "{got:?}");
    }
}

#[test]
fn payload_that_is_not_an_object_is_malformed() {
    for payload in [
        "[]",
        r#"[{"iss":"https://issuer.example/"}]"#,
        "\"x\"",
        "1",
        "null",
        "",
    ] {
        let token = sign_raw(
            r#"{"alg":"RS256","kid":"a"}"#,
            payload,
            RSA_A,
            Algorithm::RS256,
        );
        assert!(is_malformed(&run(&token).unwrap_err()), "{payload}");
    }
}

#[test]
fn duplicate_claim_names_are_malformed() {
    let base = format!(r#""iss":"{ISS}","aud":"{AUD}","exp":{}"#, NOW + 600);
    let payloads = [
        format!(r#"{{{base},"sub":"a","sub":"b"}}"#),
        format!(r#"{{{base},"exp":{}}}"#, NOW + 99_999),
        format!(r#"{{{base},"aud":"other"}}"#),
        format!(r#"{{"iss":"https://evil/",{base}}}"#),
        format!(r#"{{{base},"realm":{{"roles":["user"],"roles":["admin"]}}}}"#),
    ];
    for p in payloads {
        let token = sign_raw(r#"{"alg":"RS256","kid":"a"}"#, &p, RSA_A, Algorithm::RS256);
        assert_eq!(
            run(&token).unwrap_err(),
            Rejection::MalformedToken("payload is not valid JSON (or repeats a claim)"),
            "{p}"
        );
    }
    let header = r#"{"alg":"RS256","kid":"a","kid":"b"}"#;
    let token = sign_raw(header, &claims().to_string(), RSA_A, Algorithm::RS256);
    assert!(is_malformed(&run(&token).unwrap_err()));
}

#[test]
fn deeply_nested_claim_is_an_error_not_a_crash() {
    for depth in [10_000, 200] {
        let p = format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"deep":{}{}}}"#,
            NOW + 600,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let token = sign_raw(r#"{"alg":"RS256","kid":"a"}"#, &p, RSA_A, Algorithm::RS256);
        assert!(is_malformed(&run(&token).unwrap_err()), "depth {depth}");
    }
}

#[test]
fn garbage_tokens_are_malformed() {
    for t in ["", ".", "..", "a.b.c", "Bearer x.y.z", "eyJ.eyJ.sig"] {
        assert!(is_malformed(&run(t).unwrap_err()), "{t:?}");
    }
}

// ---- order of checks -------------------------------------------------------------------------

#[test]
fn alg_and_crit_are_checked_before_keys_are_needed() {
    let empty = issuer_with(|i| {
        i.keys = Arc::new(KeyStore::default());
        i.algorithms = vec![Algorithm::RS256];
    });
    let es = mint_with(EC256, Algorithm::ES256, Some("ec256"), &claims());
    assert_eq!(
        verify(&es, &[Arc::clone(&empty)], NOW).unwrap_err(),
        Rejection::AlgorithmNotAllowed
    );
    let crit = sign_json(
        &json!({"alg": "RS256", "kid": "a", "crit": ["x"]}),
        &claims(),
    );
    assert!(is_malformed(&verify(&crit, &[empty], NOW).unwrap_err()));
}

#[test]
fn signature_is_checked_before_any_claim() {
    let mut c = claims();
    c["exp"] = json!(NOW - 1000);
    c["aud"] = json!("other");
    c["nbf"] = json!(NOW + 1000);
    let forged = mint_with(RSA_B, Algorithm::RS256, Some("a"), &c);
    assert_eq!(run(&forged).unwrap_err(), Rejection::BadSignature);
    let forged = mint_with(
        RSA_B,
        Algorithm::RS256,
        Some("a"),
        &claims_with("exp", json!("soon")),
    );
    assert_eq!(run(&forged).unwrap_err(), Rejection::BadSignature);
}

// ---- key_miss --------------------------------------------------------------------------------

#[test]
fn key_miss_names_the_issuer_and_kid_of_an_unknown_key() {
    let b = issuer_with(|i| {
        i.name = "b".into();
        i.iss = "https://b.example/".into();
    });
    let issuers = [issuer(), Arc::clone(&b)];
    let token = mint_with(
        RSA_B,
        Algorithm::RS256,
        Some("new"),
        &claims_with("iss", json!("https://b.example/")),
    );
    assert_eq!(
        verify(&token, &issuers, NOW).unwrap_err(),
        Rejection::UnknownKey
    );
    let (who, kid) = key_miss(&token, &issuers).unwrap();
    assert_eq!((who.name.as_str(), kid.as_str()), ("b", "new"));
}

#[test]
fn key_miss_is_none_without_a_kid_or_a_trusted_issuer() {
    let issuers = [issuer()];
    let no_kid = mint_with(RSA_B, Algorithm::RS256, None, &claims());
    assert!(key_miss(&no_kid, &issuers).is_none());
    let stranger = mint_with(
        RSA_B,
        Algorithm::RS256,
        Some("k"),
        &claims_with("iss", json!("https://x/")),
    );
    assert!(key_miss(&stranger, &issuers).is_none());
    assert!(key_miss("not.a.token", &issuers).is_none());
}

#[test]
fn rendered_slots_round_trip_absent_empty_and_missing() {
    let hv = |s: &str| Some(http::HeaderValue::from_str(s).unwrap());
    let r = Rendered::new([hv("alice"), None, hv(""), hv("a,b c")]);
    assert_eq!(r.get(0), hv("alice"));
    assert_eq!(r.get(1), None);
    assert_eq!(r.get(2), hv(""));
    assert_eq!(r.get(3), hv("a,b c"));
    assert_eq!(r.get(4), None, "past the last slot");
    assert_eq!(Rendered::default().get(0), None);
}
