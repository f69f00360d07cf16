//! Unit tests for `claims`: strict splitting and decoding, NumericDates, claim paths, scopes,
//! client and audience extraction.
#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s.as_bytes())
}

/// A compact token from raw header and payload JSON text, with a dummy (but base64url) signature.
fn token(header: &str, payload: &str) -> String {
    format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
}

const HEADER: &str = r#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#;

fn obj(v: Value) -> Claims {
    match v {
        Value::Object(m) => m.into(),
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn split_decodes_header_claims_and_signing_input() {
    let t = token(HEADER, r#"{"sub":"alice","n":1}"#);
    let parts = split(&t).unwrap();
    assert_eq!(
        parts.header,
        JoseHeader {
            alg: "RS256".into(),
            kid: Some("k1".into()),
            typ: Some("at+jwt".into()),
            has_crit: false,
        }
    );
    assert_eq!(parts.claims, obj(json!({"sub": "alice", "n": 1})));
    let (input, sig) = t.rsplit_once('.').unwrap();
    assert_eq!(parts.signing_input, input);
    assert_eq!(parts.signature, sig);
}

#[test]
fn split_reports_crit_whatever_its_value() {
    for crit in [r#"["exp"]"#, "[]", "null", r#""x""#] {
        let h = format!(r#"{{"alg":"RS256","crit":{crit}}}"#);
        let t = token(&h, "{}");
        let parts = split(&t).unwrap();
        assert!(parts.header.has_crit, "crit = {crit}");
    }
}

#[test]
fn split_ignores_key_bearing_headers() {
    let h = r#"{"alg":"RS256","jku":"https://evil/jwks","x5u":"https://evil/c","jwk":{"kty":"oct","k":"AA"},"x5c":["AA"]}"#;
    let t = token(h, "{}");
    let parts = split(&t).unwrap();
    assert_eq!(
        parts.header,
        JoseHeader {
            alg: "RS256".into(),
            kid: None,
            typ: None,
            has_crit: false
        }
    );
}

#[test]
fn split_rejects_wrong_shapes() {
    let good_h = b64(HEADER);
    let good_p = b64("{}");
    let sig = b64("sig");
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "token must have three dot-separated parts"),
        ("abc".into(), "token must have three dot-separated parts"),
        (
            format!("{good_h}.{good_p}"),
            "token must have three dot-separated parts",
        ),
        (
            format!("{good_h}.{good_p}.{sig}.x"),
            "token must have three dot-separated parts",
        ),
        (
            format!("{good_h}.a.b.c.d"),
            "encrypted tokens (JWE) are not accepted",
        ),
        (format!("{good_h}.{good_p}."), "token has no signature"),
        (format!("{good_h}.{good_p}.a"), "signature is not base64url"),
        (
            format!("{good_h}.{good_p}.ab+c"),
            "signature is not base64url",
        ),
        (
            format!("{good_h}.{good_p}.ab=="),
            "signature is not base64url",
        ),
        (format!("!!.{good_p}.{sig}"), "header is not base64url"),
        (format!("{good_h}.!!.{sig}"), "payload is not base64url"),
        (
            format!("{}.{good_p}.{sig}", b64("[1]")),
            "header is not a JSON object",
        ),
        (
            format!("{good_h}.{}.{sig}", b64("[1]")),
            "payload is not a JSON object",
        ),
        (
            format!("{good_h}.{}.{sig}", b64("\"s\"")),
            "payload is not a JSON object",
        ),
        (
            format!("{}.{good_p}.{sig}", b64("{")),
            "header is not valid JSON (or repeats a member)",
        ),
        (
            format!("{good_h}.{}.{sig}", b64("{} x")),
            "payload is not valid JSON (or repeats a claim)",
        ),
        (format!("{}.{good_p}.{sig}", b64("{}")), "header has no alg"),
        (
            format!("{}.{good_p}.{sig}", b64(r#"{"alg":1}"#)),
            "header member has the wrong type",
        ),
        (
            format!("{}.{good_p}.{sig}", b64(r#"{"alg":"RS256","kid":7}"#)),
            "header member has the wrong type",
        ),
        (
            format!("{}.{good_p}.{sig}", b64(r#"{"alg":"RS256","typ":null}"#)),
            "header member has the wrong type",
        ),
    ];
    for (t, want) in cases {
        assert_eq!(split(&t).unwrap_err(), want, "token {t:?}");
    }
}

#[test]
fn split_rejects_padded_base64_in_any_part() {
    // Lengths chosen so that each part needs padding.
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","x":12}"#);
    let p = URL_SAFE_NO_PAD.encode(br#"{"a":1}"#);
    let s = URL_SAFE_NO_PAD.encode(b"si");
    assert!(h.len() % 4 != 0 && p.len() % 4 != 0 && s.len() % 4 != 0);
    let pad = |x: &str| format!("{x}{}", "=".repeat((4 - x.len() % 4) % 4));
    assert!(split(&format!("{h}.{p}.{s}")).is_ok());
    assert_eq!(
        split(&format!("{}.{p}.{s}", pad(&h))).unwrap_err(),
        "header is not base64url"
    );
    assert_eq!(
        split(&format!("{h}.{}.{s}", pad(&p))).unwrap_err(),
        "payload is not base64url"
    );
    assert_eq!(
        split(&format!("{h}.{p}.{}", pad(&s))).unwrap_err(),
        "signature is not base64url"
    );
}

/// Changes the last base64url character so that only the unused trailing bits differ.
fn non_canonical(part: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // With 2 or 3 characters in the last quantum, the low 4 or 2 bits of the last one are unused.
    assert!(matches!(part.len() % 4, 2 | 3), "part has no trailing bits");
    let last = *part.as_bytes().last().unwrap();
    let idx = ALPHABET.iter().position(|&c| c == last).unwrap();
    let mut out = part[..part.len() - 1].to_string();
    out.push(ALPHABET[idx ^ 1] as char);
    out
}

#[test]
fn split_rejects_non_canonical_base64_in_any_part() {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","x":12}"#);
    let p = URL_SAFE_NO_PAD.encode(br#"{"a":1}"#);
    let s = URL_SAFE_NO_PAD.encode(b"si");
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    for part in [&h, &p, &s] {
        let changed = non_canonical(part);
        assert_ne!(&changed, part);
        assert_eq!(
            lenient.decode(&changed).unwrap(),
            lenient.decode(part).unwrap()
        );
    }
    assert_eq!(
        split(&format!("{}.{p}.{s}", non_canonical(&h))).unwrap_err(),
        "header is not base64url"
    );
    assert_eq!(
        split(&format!("{h}.{}.{s}", non_canonical(&p))).unwrap_err(),
        "payload is not base64url"
    );
    assert_eq!(
        split(&format!("{h}.{p}.{}", non_canonical(&s))).unwrap_err(),
        "signature is not base64url"
    );
}

#[test]
fn split_rejects_standard_alphabet_base64() {
    // 0xfb 0xff encodes to "-_8" in base64url and "+/8" in standard base64.
    let s = URL_SAFE_NO_PAD.encode([0xfb, 0xff]);
    assert_eq!(s, "-_8");
    let h = b64(HEADER);
    let p = b64("{}");
    assert!(split(&format!("{h}.{p}.-_8")).is_ok());
    assert_eq!(
        split(&format!("{h}.{p}.+/8")).unwrap_err(),
        "signature is not base64url"
    );
}

#[test]
fn duplicate_member_names_are_rejected_at_every_depth() {
    let payloads = [
        r#"{"sub":"a","sub":"b"}"#,
        r#"{"sub":"a","s\u0075b":"b"}"#,
        r#"{"x":{"role":"user","role":"admin"}}"#,
        r#"{"x":[{"a":1},{"b":1,"b":2}]}"#,
    ];
    for p in payloads {
        assert_eq!(
            split(&token(HEADER, p)).unwrap_err(),
            "payload is not valid JSON (or repeats a claim)",
            "{p}"
        );
    }
    let h = r#"{"alg":"RS256","alg":"none"}"#;
    assert_eq!(
        split(&token(h, "{}")).unwrap_err(),
        "header is not valid JSON (or repeats a member)"
    );
    let h = r#"{"alg":"RS256","kid":"a","k\u0069d":"b"}"#;
    assert_eq!(
        split(&token(h, "{}")).unwrap_err(),
        "header is not valid JSON (or repeats a member)"
    );
}

/// The top level's repeat check goes pairwise up to 16 members and sorts beyond: a repeat must be
/// caught on both sides of that line, wherever in the object the two copies stand.
#[test]
fn repeated_claims_are_found_in_objects_of_any_size() {
    for n in [2, 15, 16, 17, 40, 2_000] {
        let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let body = |names: &[String]| {
            let members: Vec<String> = names.iter().map(|c| format!(r#""{c}":1"#)).collect();
            format!("{{{}}}", members.join(","))
        };
        let t = token(HEADER, &body(&names));
        let claims = split(&t).unwrap().claims;
        assert_eq!(claims.get(&names[n - 1]), Some(&json!(1)), "{n} claims");
        for (i, j) in [(0, n - 1), (n / 2, n / 2 + 1), (n - 2, n - 1), (0, 1)] {
            if j >= n || i == j {
                continue;
            }
            let mut repeated = names.clone();
            repeated[j] = repeated[i].clone();
            assert_eq!(
                split(&token(HEADER, &body(&repeated))).unwrap_err(),
                "payload is not valid JSON (or repeats a claim)",
                "{n} claims, #{i} repeated at #{j}"
            );
        }
    }
}

#[test]
fn claims_compare_as_a_set() {
    let a = split(&token(HEADER, r#"{"sub":"a","n":1}"#))
        .unwrap()
        .claims;
    let b = split(&token(HEADER, r#"{"n":1,"sub":"a"}"#))
        .unwrap()
        .claims;
    assert_eq!(a, b);
    let c = split(&token(HEADER, r#"{"n":1,"sub":"b"}"#))
        .unwrap()
        .claims;
    assert_ne!(a, c);
    let d = split(&token(HEADER, r#"{"n":1}"#)).unwrap().claims;
    assert_ne!(a, d);
    assert_ne!(d, a);
}

#[test]
fn same_member_name_in_different_objects_is_fine() {
    let p = r#"{"a":{"id":1},"b":{"id":2},"id":3}"#;
    let t = token(HEADER, p);
    let parts = split(&t).unwrap();
    assert_eq!(
        parts.claims,
        obj(json!({"a": {"id": 1}, "b": {"id": 2}, "id": 3}))
    );
}

#[test]
fn strict_decoding_keeps_every_json_type() {
    let p = r#"{"s":"x","i":-3,"u":18446744073709551615,"f":1.5,"b":true,"n":null,"a":[1,"two",[]],"o":{}}"#;
    let t = token(HEADER, p);
    let parts = split(&t).unwrap();
    let want: Map<String, Value> = serde_json::from_str(p).unwrap();
    assert_eq!(parts.claims, want.into());
}

#[test]
fn deeply_nested_payload_is_an_error_not_a_crash() {
    for depth in [200, 10_000, 100_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let p = format!(
                r#"{{"deep":{}1{}}}"#,
                open.repeat(depth),
                close.repeat(depth)
            );
            assert_eq!(
                split(&token(HEADER, &p)).unwrap_err(),
                "payload is not valid JSON (or repeats a claim)",
                "depth {depth} of {open}"
            );
        }
    }
}

#[test]
fn moderately_nested_payload_is_accepted() {
    let p = format!(r#"{{"deep":{}1{}}}"#, "[".repeat(20), "]".repeat(20));
    assert!(split(&token(HEADER, &p)).is_ok());
}

#[test]
fn numeric_date_table() {
    let cases: Vec<(Value, Result<Option<i64>, InvalidDate>)> = vec![
        (json!(0), Ok(Some(0))),
        (json!(1_700_000_000), Ok(Some(1_700_000_000))),
        (json!(1_700_000_000.9), Ok(Some(1_700_000_000))),
        (json!(0.5), Ok(Some(0))),
        (json!(253_402_300_799_u64), Ok(Some(253_402_300_799))),
        // Later than 9999-12-31T23:59:59Z, even though it floors to it.
        (json!(253_402_300_799.5), Err(InvalidDate)),
        (json!(253_402_300_800_u64), Err(InvalidDate)),
        (json!(1e300), Err(InvalidDate)),
        (json!(u64::MAX), Err(InvalidDate)),
        (json!(-1), Err(InvalidDate)),
        (json!(-0.5), Err(InvalidDate)),
        (json!(i64::MIN), Err(InvalidDate)),
        (json!("1700000000"), Err(InvalidDate)),
        (json!(true), Err(InvalidDate)),
        (json!(null), Err(InvalidDate)),
        (json!([1]), Err(InvalidDate)),
        (json!({"v": 1}), Err(InvalidDate)),
    ];
    for (v, want) in cases {
        let claims = obj(json!({ "exp": v.clone() }));
        assert_eq!(numeric_date(&claims, "exp"), want, "exp = {v}");
    }
    assert_eq!(numeric_date(&Claims::default(), "exp"), Ok(None));
}

#[test]
fn claim_path_prefers_the_literal_name_then_walks_dots() {
    let claims = obj(json!({
        "sub": "alice",
        "realm_access": {"roles": ["admin"], "deep": {"x": 1}},
        "https://example.com/roles": ["literal"],
        "https://example": {"com/roles": ["nested"]},
        "a.b": "literal",
        "a": {"b": "nested"},
        "s": "not-an-object",
    }));
    let cases: &[(&str, Option<Value>)] = &[
        ("sub", Some(json!("alice"))),
        ("realm_access.roles", Some(json!(["admin"]))),
        ("realm_access.deep.x", Some(json!(1))),
        ("realm_access.deep.y", None),
        ("realm_access.roles.0", None),
        ("https://example.com/roles", Some(json!(["literal"]))),
        ("a.b", Some(json!("literal"))),
        ("s.x", None),
        ("missing", None),
        ("missing.x", None),
        ("", None),
    ];
    for (name, want) in cases {
        let path = ClaimPath::new(name);
        assert_eq!(path.as_str(), *name);
        assert_eq!(path.lookup(&claims), want.as_ref(), "{name}");
    }
}

#[test]
fn claim_path_without_dots_does_not_walk() {
    let claims = obj(json!({"x": {"": 1}}));
    assert_eq!(ClaimPath::new("y").lookup(&claims), None);
}

#[test]
fn scopes_are_the_sorted_deduplicated_union_of_scope_claims() {
    let names = vec![
        "scope".to_string(),
        "scp".to_string(),
        "permissions".to_string(),
    ];
    let claims = obj(json!({
        "scope": "b  a read:data ",
        "scp": ["c", "a", 7, null],
        "permissions": "z",
    }));
    assert_eq!(
        scopes(&claims, &names).to_vec(),
        vec!["a", "b", "c", "read:data", "z"]
    );
}

#[test]
fn an_array_item_with_a_space_is_no_scope_at_all() {
    // Kept whole in the space-separated set it would read as two scopes, `read` and `data`.
    let names = vec!["scp".to_string()];
    let got = scopes(&obj(json!({"scp": ["read data", "write", ""]})), &names);
    assert_eq!(got.to_vec(), vec!["write"]);
    assert!(!got.contains("read") && !got.contains("data") && !got.contains("read data"));
}

#[test]
fn scopes_ignore_unconfigured_and_ill_typed_claims() {
    let names = vec!["scope".to_string()];
    let claims = obj(json!({"scp": ["admin"], "scope": 5}));
    assert!(scopes(&claims, &names).is_empty());
    let claims = obj(json!({"scope": {"admin": true}}));
    assert!(scopes(&claims, &names).is_empty());
    assert!(scopes(&obj(json!({"scope": ""})), &names).is_empty());
}

#[test]
fn scopes_are_split_only_on_spaces_never_on_prefixes() {
    let names = vec!["scope".to_string()];
    let claims = obj(json!({"scope": "read:dat read:data:x"}));
    let got = scopes(&claims, &names);
    assert_eq!(got.to_vec(), vec!["read:dat", "read:data:x"]);
    assert!(!got.contains("read:data"));
}

#[test]
fn client_is_the_first_configured_claim_present() {
    let names = vec![
        "azp".to_string(),
        "client_id".to_string(),
        "cid".to_string(),
    ];
    let cases: &[(Value, Option<&str>)] = &[
        (json!({"azp": "web", "client_id": "cli"}), Some("web")),
        (json!({"client_id": "cli", "cid": "x"}), Some("cli")),
        (json!({"cid": "x"}), Some("x")),
        (json!({"sub": "alice"}), None),
        // The first present claim decides, even when it is not a string.
        (json!({"azp": 5, "client_id": "cli"}), None),
    ];
    for (claims, want) in cases {
        assert_eq!(
            client(&obj(claims.clone()), &names).as_deref(),
            *want,
            "{claims}"
        );
    }
}

#[test]
fn audiences_accept_a_string_or_an_array_of_strings() {
    let cases: &[(Value, &[&str])] = &[
        (json!({"aud": "api"}), &["api"]),
        (json!({"aud": ["api", "other"]}), &["api", "other"]),
        (json!({"aud": ["api", 5, null]}), &["api"]),
        (json!({"aud": []}), &[]),
        (json!({"aud": 5}), &[]),
        (json!({"aud": {"api": true}}), &[]),
        (json!({}), &[]),
    ];
    for (claims, want) in cases {
        let claims = obj(claims.clone());
        assert_eq!(audiences(&claims), *want, "{claims:?}");
    }
}
