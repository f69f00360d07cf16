//! Unit tests for `jwks`: parsing untrusted key sets key by key, the key-type / algorithm table,
//! and the key store.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::fixtures::*;
use serde_json::json;
use std::time::Duration;

fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Reads one DER TLV (short or long length form): (tag, contents, rest).
fn der(bytes: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = bytes[0];
    let (len, head) = match bytes[1] {
        l if l < 0x80 => (usize::from(l), 2),
        l => {
            let n = usize::from(l & 0x7f);
            let len = bytes[2..2 + n]
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
            (len, 2 + n)
        }
    };
    (tag, &bytes[head..head + len], &bytes[head + len..])
}

/// The public JWK of the 1024-bit fixture, which the crypto library refuses to load, read from
/// its PKCS#8 DER by hand.
fn rsa_1024_jwk(kid: &str) -> Value {
    let text = std::str::from_utf8(RSA_1024).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let (_, info, _) = der(&pkcs8);
    let (_, _version, rest) = der(info);
    let (_, _alg_id, rest) = der(rest);
    let (tag, octets, _) = der(rest);
    assert_eq!(tag, 0x04);
    let (_, rsa_key, _) = der(octets);
    let (_, _version, rest) = der(rsa_key);
    let (_, n, rest) = der(rest);
    let (_, e, _) = der(rest);
    let jwk = json!({"kty": "RSA", "kid": kid, "n": b64(strip_zeros(n)), "e": b64(e)});
    assert_eq!(strip_zeros(n).len(), 128, "fixture is not 1024-bit");
    jwk
}

fn rsa_a(kid: &str) -> Value {
    public_jwk(RSA_A, Algorithm::RS256, kid, false)
}

fn doc(keys: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

fn with(mut jwk: Value, field: &str, value: Value) -> Value {
    jwk.as_object_mut().unwrap().insert(field.into(), value);
    jwk
}

fn without(mut jwk: Value, field: &str) -> Value {
    jwk.as_object_mut().unwrap().remove(field);
    jwk
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_with_modulus(n: &[u8], kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "n": b64(n), "e": "AQAB"})
}

/// Parses `[good, bad]` and returns the skip reasons, asserting the good key survived.
fn skip_reason(bad: Value) -> String {
    let (set, skipped) = parse(&doc(&[rsa_a("good"), bad.clone()]), at()).unwrap();
    assert_eq!(set.keys.len(), 1, "bad key was loaded: {bad}");
    assert_eq!(set.keys[0].kid.as_deref(), Some("good"));
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    skipped.into_iter().next().unwrap()
}

#[test]
fn parses_every_supported_key_type() {
    let keys = [
        public_jwk(RSA_A, Algorithm::RS256, "rsa", true),
        public_jwk(EC256, Algorithm::ES256, "p256", true),
        public_jwk(EC384, Algorithm::ES384, "p384", true),
        public_jwk(ED25519, Algorithm::EdDSA, "ed", true),
    ];
    let (set, skipped) = parse(&doc(&keys), at()).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(set.fetched_at, at());
    let got: Vec<_> = set
        .keys
        .iter()
        .map(|k| (k.kid.as_deref(), k.kind, k.alg))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("rsa"), KeyKind::Rsa, Some(Algorithm::RS256)),
            (Some("p256"), KeyKind::EcP256, Some(Algorithm::ES256)),
            (Some("p384"), KeyKind::EcP384, Some(Algorithm::ES384)),
            (Some("ed"), KeyKind::Ed25519, Some(Algorithm::EdDSA)),
        ]
    );
}

#[test]
fn kid_and_alg_are_optional() {
    let jwk = without(rsa_a("x"), "kid");
    let (set, _) = parse(&doc(&[jwk]), at()).unwrap();
    assert_eq!(set.keys[0].kid, None);
    assert_eq!(set.keys[0].alg, None);
}

#[test]
fn use_sig_and_key_ops_with_verify_are_accepted() {
    let keys = [
        with(rsa_a("use"), "use", json!("sig")),
        with(rsa_a("ops"), "key_ops", json!(["sign", "verify"])),
        with(
            with(rsa_a("both"), "use", json!("sig")),
            "key_ops",
            json!(["verify"]),
        ),
    ];
    let (set, skipped) = parse(&doc(&keys), at()).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(set.keys.len(), 3);
}

#[test]
fn unusable_keys_are_skipped_with_a_reason() {
    let ec = public_jwk(EC256, Algorithm::ES256, "ec", false);
    let ed = public_jwk(ED25519, Algorithm::EdDSA, "ed", false);
    let off_curve = {
        let mut y = URL_SAFE_NO_PAD.decode(ec["y"].as_str().unwrap()).unwrap();
        let last = y.len() - 1;
        y[last] ^= 1;
        with(ec.clone(), "y", json!(b64(&y)))
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "oct key",
            json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
            "symmetric keys are never used",
        ),
        (
            "oct key with alg",
            json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}),
            "symmetric keys are never used",
        ),
        (
            "RSA 1024",
            rsa_1024_jwk("small"),
            "RSA modulus of 1024 bits",
        ),
        (
            "RSA 8200",
            rsa_with_modulus(&[0xff; 1025], "huge"),
            "RSA modulus of 8200 bits",
        ),
        (
            "RSA even exponent",
            with(rsa_a("e"), "e", json!("Ag")),
            "exponent",
        ),
        (
            "RSA empty exponent",
            with(rsa_a("e"), "e", json!("")),
            "exponent",
        ),
        (
            "RSA zero exponent",
            with(rsa_a("e"), "e", json!("AA")),
            "exponent",
        ),
        (
            "RSA 5-byte exponent",
            with(rsa_a("e"), "e", json!(b64(&[1, 0, 0, 0, 1]))),
            "exponent",
        ),
        (
            "RSA no n",
            without(rsa_a("n"), "n"),
            "missing or non-string 'n'",
        ),
        (
            "RSA numeric n",
            with(rsa_a("n"), "n", json!(5)),
            "missing or non-string 'n'",
        ),
        (
            "RSA padded n",
            with(rsa_a("n"), "n", json!("AQAB=")),
            "'n' is not base64url",
        ),
        (
            "RSA with ES256",
            with(rsa_a("x"), "alg", json!("ES256")),
            "does not fit",
        ),
        (
            "RSA with HS256",
            with(rsa_a("x"), "alg", json!("HS256")),
            "does not fit",
        ),
        (
            "RSA with EdDSA",
            with(rsa_a("x"), "alg", json!("EdDSA")),
            "does not fit",
        ),
        (
            "RSA with RSA-OAEP",
            with(rsa_a("x"), "alg", json!("RSA-OAEP")),
            "unsupported alg",
        ),
        (
            "RSA with alg none",
            with(rsa_a("x"), "alg", json!("none")),
            "unsupported alg",
        ),
        (
            "RSA numeric alg",
            with(rsa_a("x"), "alg", json!(256)),
            "'alg' is not a string",
        ),
        ("EC off curve", off_curve, "EC point is not on the curve"),
        (
            "EC short x",
            with(ec.clone(), "x", json!(b64(&[7; 31]))),
            "wrong length",
        ),
        (
            "EC long y",
            with(ec.clone(), "y", json!(b64(&[7; 33]))),
            "wrong length",
        ),
        (
            "EC P-256 coordinates as P-384",
            with(ec.clone(), "crv", json!("P-384")),
            "wrong length",
        ),
        (
            "EC P-521",
            with(ec.clone(), "crv", json!("P-521")),
            "unsupported curve",
        ),
        (
            "EC secp256k1",
            with(ec.clone(), "crv", json!("secp256k1")),
            "unsupported curve",
        ),
        (
            "EC P-256 with ES384",
            with(ec.clone(), "alg", json!("ES384")),
            "does not fit",
        ),
        (
            "EC P-256 with RS256",
            with(ec.clone(), "alg", json!("RS256")),
            "does not fit",
        ),
        (
            "EC no y",
            without(ec.clone(), "y"),
            "missing or non-string 'y'",
        ),
        (
            "OKP Ed448",
            with(ed.clone(), "crv", json!("Ed448")),
            "unsupported OKP curve",
        ),
        (
            "OKP X25519",
            with(ed.clone(), "crv", json!("X25519")),
            "unsupported OKP curve",
        ),
        (
            "OKP short",
            with(ed.clone(), "x", json!(b64(&[1; 31]))),
            "not 32 bytes",
        ),
        (
            "OKP identity point (small order: forgeable)",
            with(ed.clone(), "x", json!(b64(&ED25519_IDENTITY))),
            "not a canonical point of large order",
        ),
        (
            "OKP point of order 8",
            with(ed.clone(), "x", json!(b64(&ED25519_ORDER_8))),
            "not a canonical point of large order",
        ),
        (
            "OKP non-canonical encoding (y = p + 1)",
            with(ed.clone(), "x", json!(b64(&ED25519_NON_CANONICAL))),
            "not a canonical point of large order",
        ),
        (
            "OKP with ES256",
            with(ed.clone(), "alg", json!("ES256")),
            "does not fit",
        ),
        (
            "use enc",
            with(rsa_a("x"), "use", json!("enc")),
            "'use' is not 'sig'",
        ),
        (
            "use SIG",
            with(rsa_a("x"), "use", json!("SIG")),
            "'use' is not 'sig'",
        ),
        (
            "use non-string",
            with(rsa_a("x"), "use", json!(["sig"])),
            "'use' is not 'sig'",
        ),
        (
            "key_ops sign only",
            with(rsa_a("x"), "key_ops", json!(["sign"])),
            "'key_ops' does not allow 'verify'",
        ),
        (
            "key_ops empty",
            with(rsa_a("x"), "key_ops", json!([])),
            "'key_ops' does not allow 'verify'",
        ),
        (
            "key_ops string",
            with(rsa_a("x"), "key_ops", json!("verify")),
            "'key_ops' is not an array",
        ),
        (
            "numeric kid",
            with(rsa_a("x"), "kid", json!(1)),
            "'kid' is not a string",
        ),
        (
            "no kty",
            without(rsa_a("x"), "kty"),
            "missing or non-string 'kty'",
        ),
        (
            "kty lower case",
            with(rsa_a("x"), "kty", json!("rsa")),
            "unsupported kty",
        ),
        ("not an object", json!("key"), "not an object"),
        ("null", json!(null), "not an object"),
    ];
    for (what, bad, want) in cases {
        let reason = skip_reason(bad);
        assert!(reason.starts_with("key #1 "), "{what}: {reason}");
        assert!(reason.contains(want), "{what}: {reason:?} lacks {want:?}");
    }
}

#[test]
fn rsa_modulus_size_boundaries() {
    let bits_2047 = [&[0x7f][..], &[0xff; 255]].concat();
    let bits_2048 = [&[0x80][..], &[0; 255]].concat();
    let bits_2048_leading_zeros = [&[0, 0][..], &bits_2048].concat();
    let bits_8192 = vec![0xff; 1024];
    let bits_8193 = [&[0x01][..], &[0; 1024]].concat();
    let cases: [(&[u8], bool); 5] = [
        (&bits_2047, false),
        (&bits_2048, true),
        (&bits_2048_leading_zeros, true),
        (&bits_8192, true),
        (&bits_8193, false),
    ];
    for (n, ok) in cases {
        let got = parse(&doc(&[rsa_with_modulus(n, "k")]), at());
        assert_eq!(got.is_ok(), ok, "modulus of {} bytes: {got:?}", n.len());
    }
}

#[test]
fn rsa_key_with_zero_or_empty_modulus_is_skipped_not_a_panic() {
    // Untrusted input: an all-zero or empty modulus has no bits at all and must be skipped.
    for n in ["", "AA", "AAAA"] {
        let bad = json!({"kty": "RSA", "kid": "z", "n": n, "e": "AQAB"});
        let result = std::panic::catch_unwind(|| parse(&doc(&[rsa_a("good"), bad]), at()));
        let (set, skipped) = result
            .unwrap_or_else(|_| panic!("parse panicked on n = {n:?}"))
            .unwrap();
        assert_eq!(set.keys.len(), 1);
        assert!(skipped[0].contains("RSA modulus of 0 bits"), "{skipped:?}");
    }
}

#[test]
fn one_bad_key_never_poisons_the_set() {
    let keys = [
        json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
        rsa_a("a"),
        rsa_1024_jwk("small"),
        public_jwk(RSA_B, Algorithm::RS256, "b", false),
        json!(42),
    ];
    let (set, skipped) = parse(&doc(&keys), at()).unwrap();
    let kids: Vec<_> = set.keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
    assert_eq!(kids, ["a", "b"]);
    assert_eq!(skipped.len(), 3);
    assert!(skipped[0].starts_with("key #0 (kid h): "), "{skipped:?}");
    assert!(
        skipped[1].starts_with("key #2 (kid small): "),
        "{skipped:?}"
    );
    assert!(skipped[2].starts_with("key #4 (kid -): "), "{skipped:?}");
}

#[test]
fn skip_reason_truncates_a_long_kid() {
    let kid = "k".repeat(200);
    let reason = skip_reason(json!({"kty": "oct", "kid": kid, "k": "AA"}));
    assert!(reason.contains(&"k".repeat(64)), "{reason}");
    assert!(!reason.contains(&"k".repeat(65)), "{reason}");
}

#[test]
fn documents_that_are_not_a_jwks_are_refused() {
    let bodies: &[&[u8]] = &[
        b"",
        b"not json",
        b"null",
        b"[]",
        b"{}",
        br#"{"keys": {}}"#,
        br#"{"keys": "x"}"#,
        br#"{"keys": null}"#,
        br#"{"Keys": []}"#,
        b"\xff\xfe",
    ];
    for body in bodies {
        assert_eq!(
            parse(body, at()).unwrap_err(),
            JwksError::NotJwks,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_set_with_no_usable_key_is_refused() {
    assert_eq!(
        parse(&doc(&[]), at()).unwrap_err(),
        JwksError::NoUsableKeys(0)
    );
    let keys = [json!({"kty": "oct", "k": "AA"}), rsa_1024_jwk("small")];
    assert_eq!(
        parse(&doc(&keys), at()).unwrap_err(),
        JwksError::NoUsableKeys(2)
    );
}

#[test]
fn errors_render_without_key_material() {
    assert_eq!(
        JwksError::NotJwks.to_string(),
        "not a JSON object with a 'keys' array"
    );
    assert_eq!(
        JwksError::NoUsableKeys(3).to_string(),
        "no usable keys (3 skipped)"
    );
}

#[test]
fn at_most_max_keys_are_kept() {
    let keys: Vec<Value> = (0..MAX_KEYS + 6).map(|i| rsa_a(&format!("k{i}"))).collect();
    let (set, skipped) = parse(&doc(&keys), at()).unwrap();
    assert_eq!(set.keys.len(), MAX_KEYS);
    assert_eq!(set.keys[MAX_KEYS - 1].kid.as_deref(), Some("k63"));
    assert_eq!(
        skipped,
        vec![format!(
            "key #{MAX_KEYS} and later: more than {MAX_KEYS} keys"
        )]
    );
}

#[test]
fn exactly_max_keys_are_all_kept() {
    let keys: Vec<Value> = (0..MAX_KEYS).map(|i| rsa_a(&format!("k{i}"))).collect();
    let (set, skipped) = parse(&doc(&keys), at()).unwrap();
    assert_eq!(set.keys.len(), MAX_KEYS);
    assert!(skipped.is_empty());
}

#[test]
fn skipped_keys_do_not_count_towards_the_cap() {
    let mut keys: Vec<Value> = (0..MAX_KEYS)
        .map(|_| json!({"kty": "oct", "k": "AA"}))
        .collect();
    keys.push(rsa_a("last"));
    let (set, skipped) = parse(&doc(&keys), at()).unwrap();
    assert_eq!(set.keys.len(), 1);
    // Reasons are capped at 32 lines plus one line counting the rest, so a hostile set cannot
    // flood the log.
    assert_eq!(skipped.len(), 33);
    assert_eq!(
        skipped.last().map(String::as_str),
        Some("32 more keys skipped")
    );
}

#[test]
fn key_kind_fits_exactly_its_algorithms() {
    use Algorithm::*;
    let all = [
        HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
    ];
    let table: [(KeyKind, &[Algorithm]); 4] = [
        (KeyKind::Rsa, &[RS256, RS384, RS512, PS256, PS384, PS512]),
        (KeyKind::EcP256, &[ES256]),
        (KeyKind::EcP384, &[ES384]),
        (KeyKind::Ed25519, &[EdDSA]),
    ];
    for (kind, fitting) in table {
        for alg in all {
            assert_eq!(kind.fits(alg), fitting.contains(&alg), "{kind:?} / {alg:?}");
        }
    }
}

#[test]
fn a_key_pinned_by_its_alg_accepts_only_that_algorithm() {
    let keys = [
        public_jwk(RSA_A, Algorithm::PS256, "pinned", true),
        rsa_a("free"),
    ];
    let (set, _) = parse(&doc(&keys), at()).unwrap();
    let pinned = set.by_kid("pinned").unwrap();
    let free = set.by_kid("free").unwrap();
    assert!(pinned.accepts(Algorithm::PS256));
    assert!(!pinned.accepts(Algorithm::RS256));
    assert!(!pinned.accepts(Algorithm::ES256));
    for alg in [Algorithm::RS256, Algorithm::RS512, Algorithm::PS384] {
        assert!(free.accepts(alg), "{alg:?}");
    }
    assert!(!free.accepts(Algorithm::HS256));
    assert!(!free.accepts(Algorithm::EdDSA));
}

#[test]
fn by_kid_finds_the_first_key_with_that_kid_only() {
    let keys = [
        without(rsa_a("none"), "kid"),
        public_jwk(RSA_A, Algorithm::RS256, "dup", true),
        public_jwk(RSA_B, Algorithm::RS384, "dup", true),
    ];
    let (set, _) = parse(&doc(&keys), at()).unwrap();
    assert_eq!(set.by_kid("dup").unwrap().alg, Some(Algorithm::RS256));
    assert!(set.by_kid("none").is_none());
    assert!(set.by_kid("").is_none());
    assert!(set.by_kid("DUP").is_none());
}

#[test]
fn key_debug_output_has_no_key_material() {
    let jwk = rsa_a("a");
    let (set, _) = parse(&doc(std::slice::from_ref(&jwk)), at()).unwrap();
    let text = format!("{:?}", set.keys[0]);
    assert!(text.contains("kid: Some(\"a\")"), "{text}");
    let n = jwk["n"].as_str().unwrap();
    assert!(!text.contains(&n[..16]), "{text}");
}

#[test]
fn key_store_is_empty_until_set_and_swaps_whole_sets() {
    let store = KeyStore::default();
    assert!(store.get().is_none());
    let (first, _) = parse(&doc(&[rsa_a("one")]), at()).unwrap();
    store.set(first);
    let held = store.get().unwrap();
    let (second, _) = parse(&doc(&[rsa_a("two"), rsa_a("three")]), at()).unwrap();
    store.set(second);
    // A reader keeps the set it loaded; new readers see the new one.
    assert_eq!(held.keys.len(), 1);
    assert_eq!(store.get().unwrap().keys.len(), 2);
    store.clear();
    assert!(store.get().is_none());
}

/// Ed25519 encodings that are no usable key. The identity point (y = 1): small order, so it
/// verifies forged signatures.
const ED25519_IDENTITY: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
};
/// A point of order 8 (from the list of small-order encodings that libsodium refuses).
const ED25519_ORDER_8: [u8; 32] = [
    0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
    0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
];
/// y = p + 1 = 2^255 - 18: the identity again, written non-canonically.
const ED25519_NON_CANONICAL: [u8; 32] = {
    let mut b = [0xffu8; 32];
    b[0] = 0xee;
    b[31] = 0x7f;
    b
};
