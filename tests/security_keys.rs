//! Security class: hostile key sets (JWKS).
//!
//! The key set is untrusted network input. Each key is validated on its own and an unusable one
//! is skipped with a logged reason: RSA moduli below 2048 or above 8192 bits, EC points that are
//! not on their curve or published under the wrong curve, keys whose `use`/`key_ops` do not allow
//! verification, symmetric (`oct`) keys, small or even RSA exponents, unknown key types. One bad
//! key never poisons the set: in the same document the good keys keep verifying. Every token
//! that only a skipped key could verify is refused with 401 `invalid_token`, never forwarded.
//!
//! Where possible the refused tokens carry a signature that *would* verify if the skipped key had
//! been loaded (signed by that key's private half), so the tests fail if a check is dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use std::time::Duration;
use support::keys::{b64_json, b64url, fixture_path};
use support::*;

const API_ROUTE: &str = r#"
[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
auth = "jwt"
"#;

/// The algorithms the issuer allows: every family, so that a refusal is never just "alg not on
/// the allow-list".
const ALGS: &[&str] = &["RS256", "PS256", "ES256", "ES384", "EdDSA"];

// ---- a minimal RSA signer (the crypto library refuses to load keys under 2048 bits) ----------

/// Reads one DER TLV: (tag, contents, rest).
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

fn strip_zeros(b: &[u8]) -> &[u8] {
    &b[b.iter().take_while(|&&x| x == 0).count()..]
}

/// An RSA private key read from a PKCS#8 PEM fixture: modulus, public and private exponents.
struct RawRsa {
    n: Vec<u8>,
    e: Vec<u8>,
    d: Vec<u8>,
}

impl RawRsa {
    fn load(file: &str) -> Self {
        let text = std::fs::read_to_string(fixture_path(file)).expect("read fixture");
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let pkcs8 = STANDARD.decode(body).expect("PEM base64");
        let (_, info, _) = der(&pkcs8);
        let (_, _version, rest) = der(info);
        let (_, _alg_id, rest) = der(rest);
        let (tag, octets, _) = der(rest);
        assert_eq!(tag, 0x04, "PKCS#8 private key is an OCTET STRING");
        let (_, rsa_key, _) = der(octets);
        let (_, _version, rest) = der(rsa_key);
        let (_, n, rest) = der(rest);
        let (_, e, rest) = der(rest);
        let (_, d, _) = der(rest);
        RawRsa {
            n: strip_zeros(n).to_vec(),
            e: strip_zeros(e).to_vec(),
            d: strip_zeros(d).to_vec(),
        }
    }

    fn bits(&self) -> usize {
        self.n.len() * 8 - self.n[0].leading_zeros() as usize
    }

    /// The public JWK.
    fn jwk(&self, kid: &str) -> Value {
        json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
               "n": b64url(&self.n), "e": b64url(&self.e)})
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`, base64url.
    fn sign_rs256(&self, message: &[u8]) -> String {
        let em = pkcs1_sha256_encoding(message, self.n.len());
        b64url(&modpow(&em, &self.d, &self.n))
    }
}

/// EMSA-PKCS1-v1_5 encoding of SHA-256(`message`) for a `k`-byte modulus.
fn pkcs1_sha256_encoding(message: &[u8], k: usize) -> Vec<u8> {
    const DIGEST_INFO: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
    let t_len = DIGEST_INFO.len() + hash.as_ref().len();
    let mut em = vec![0x00, 0x01];
    em.extend(std::iter::repeat_n(0xff, k - t_len - 3));
    em.push(0x00);
    em.extend_from_slice(&DIGEST_INFO);
    em.extend_from_slice(hash.as_ref());
    em
}

/// Little-endian 32-bit limbs of a big-endian byte string, zero-extended to `limbs`.
fn limbs_of(be: &[u8], limbs: usize) -> Vec<u32> {
    let mut out = vec![0u32; limbs];
    for (i, &b) in be.iter().rev().enumerate() {
        out[i / 4] |= u32::from(b) << (8 * (i % 4));
    }
    out
}

fn be_of(limbs: &[u32], len: usize) -> Vec<u8> {
    (0..len)
        .rev()
        .map(|i| (limbs[i / 4] >> (8 * (i % 4))) as u8)
        .collect()
}

/// `a >= b` for equal-length limb vectors.
fn ge(a: &[u32], b: &[u32]) -> bool {
    for i in (0..a.len()).rev() {
        if a[i] != b[i] {
            return a[i] > b[i];
        }
    }
    true
}

/// `a -= b` (wrapping), equal lengths.
fn sub_in_place(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0i64;
    for i in 0..a.len() {
        let x = i64::from(a[i]) - i64::from(b[i]) - borrow;
        a[i] = x as u32;
        borrow = i64::from(x < 0);
    }
}

/// Montgomery product `a * b * R^-1 mod n` (CIOS), all `s` limbs; `n0inv = -n^-1 mod 2^32`.
fn mont_mul(a: &[u32], b: &[u32], n: &[u32], n0inv: u32) -> Vec<u32> {
    let s = n.len();
    let mut t = vec![0u32; s + 2];
    for &bi in b {
        let mut carry = 0u64;
        for j in 0..s {
            let x = u64::from(t[j]) + u64::from(a[j]) * u64::from(bi) + carry;
            t[j] = x as u32;
            carry = x >> 32;
        }
        let x = u64::from(t[s]) + carry;
        t[s] = x as u32;
        t[s + 1] = (x >> 32) as u32;
        let m = t[0].wrapping_mul(n0inv);
        let mut carry = (u64::from(t[0]) + u64::from(m) * u64::from(n[0])) >> 32;
        for j in 1..s {
            let x = u64::from(t[j]) + u64::from(m) * u64::from(n[j]) + carry;
            t[j - 1] = x as u32;
            carry = x >> 32;
        }
        let x = u64::from(t[s]) + carry;
        t[s - 1] = x as u32;
        t[s] = t[s + 1] + (x >> 32) as u32;
        t[s + 1] = 0;
    }
    let mut r = t[..=s].to_vec();
    let mut n_ext = n.to_vec();
    n_ext.push(0);
    if ge(&r, &n_ext) {
        sub_in_place(&mut r, &n_ext);
    }
    r.truncate(s);
    r
}

/// `base^exp mod n` for big-endian byte strings; the result has `n`'s length.
fn modpow(base: &[u8], exp: &[u8], n: &[u8]) -> Vec<u8> {
    let s = n.len().div_ceil(4);
    let nl = limbs_of(n, s);
    // -n^-1 mod 2^32 by Newton's iteration.
    let mut inv = 1u32;
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(nl[0].wrapping_mul(inv)));
    }
    let n0inv = inv.wrapping_neg();
    // R^2 mod n, R = 2^(32 s), by doubling 1 2*32*s times.
    let mut r2 = vec![0u32; s + 1];
    r2[0] = 1;
    let mut n_ext = nl.clone();
    n_ext.push(0);
    for _ in 0..2 * 32 * s {
        let mut carry = 0u32;
        for limb in r2.iter_mut() {
            let next = *limb >> 31;
            *limb = *limb << 1 | carry;
            carry = next;
        }
        if ge(&r2, &n_ext) {
            sub_in_place(&mut r2, &n_ext);
        }
    }
    r2.truncate(s);
    let mut one = vec![0u32; s];
    one[0] = 1;
    let base_m = mont_mul(&limbs_of(base, s), &r2, &nl, n0inv);
    let mut x = mont_mul(&one, &r2, &nl, n0inv);
    for byte in exp {
        for bit in (0..8).rev() {
            x = mont_mul(&x, &x, &nl, n0inv);
            if byte >> bit & 1 == 1 {
                x = mont_mul(&x, &base_m, &nl, n0inv);
            }
        }
    }
    be_of(&mont_mul(&x, &one, &nl, n0inv), n.len())
}

/// A token over `claims` with header `{"alg":"RS256","typ":"JWT","kid":kid}` signed by `key`.
fn sign_raw_rsa(key: &RawRsa, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let message = format!("{}.{}", b64_json(&header), b64_json(claims));
    let sig = key.sign_rs256(message.as_bytes());
    format!("{message}.{sig}")
}

// ---- the crafted key set ----------------------------------------------------------------------

/// One unusable key: the JWK, and (when one can be made) a token that this key alone would verify.
struct BadKey {
    label: &'static str,
    kid: String,
    jwk: Value,
    token: Option<String>,
}

fn jwk_with(key: &FixtureKey, overrides: Value) -> Value {
    merge(key.jwk(), overrides)
}

/// Every kind of unusable key, each with a distinct kid.
fn bad_keys() -> Vec<BadKey> {
    let rsa_b = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    let ec256 = FixtureKey::load("ec256.pem", Algorithm::ES256);
    let ed = FixtureKey::load("ed25519.pem", Algorithm::EdDSA);
    let weak = RawRsa::load("rsa_1024.pem");
    assert_eq!(weak.bits(), 1024, "fixture rsa_1024.pem is not 1024-bit");
    let payload = claims(json!({"scope": "admin"}));
    let signed_b = |kid: &str| Some(rsa_b.sign(json!({"kid": kid}), payload.clone()));

    // A 9000-bit odd modulus (not a real key: nothing can sign for it).
    let mut huge = vec![0xc5u8; 1125];
    huge[1124] |= 1;
    // The P-256 point with y altered: not on the curve.
    let ec_jwk = ec256.jwk();
    let mut y = URL_SAFE_NO_PAD
        .decode(ec_jwk["y"].as_str().unwrap())
        .unwrap();
    y[31] ^= 0x01;
    let ed_x = URL_SAFE_NO_PAD
        .decode(ed.jwk()["x"].as_str().unwrap())
        .unwrap();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut identity_forgery = [0u8; 64];
    identity_forgery[0] = 1;
    let secret = b"shared-hmac-secret-of-the-attacker";
    // With e = 1, the "signature" is the encoded message itself.
    let e1_token = {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-e1"});
        let message = format!("{}.{}", b64_json(&header), b64_json(&payload));
        let n_len = URL_SAFE_NO_PAD
            .decode(rsa_b.jwk()["n"].as_str().unwrap())
            .unwrap()
            .len();
        let em = pkcs1_sha256_encoding(message.as_bytes(), n_len);
        Some(format!("{message}.{}", b64url(&em)))
    };

    let mut out = vec![
        BadKey {
            label: "RSA-1024",
            kid: "weak-1024".into(),
            jwk: weak.jwk("weak-1024"),
            token: Some(sign_raw_rsa(&weak, "weak-1024", &payload)),
        },
        BadKey {
            label: "RSA-9000",
            kid: "huge-9000".into(),
            jwk: json!({"kty": "RSA", "kid": "huge-9000", "n": b64url(&huge), "e": "AQAB"}),
            token: None,
        },
        BadKey {
            label: "EC point not on the curve",
            kid: "ec-off-curve".into(),
            jwk: jwk_with(&ec256, json!({"kid": "ec-off-curve", "y": b64url(&y)})),
            token: Some(ec256.sign(json!({"kid": "ec-off-curve"}), payload.clone())),
        },
        BadKey {
            label: "P-256 key published as P-384",
            kid: "ec-wrong-curve".into(),
            jwk: jwk_with(
                &ec256,
                json!({"kid": "ec-wrong-curve", "crv": "P-384", "alg": null}),
            ),
            token: Some(ec256.sign(json!({"kid": "ec-wrong-curve"}), payload.clone())),
        },
        BadKey {
            label: "use enc",
            kid: "rsa-enc".into(),
            jwk: jwk_with(&rsa_b, json!({"kid": "rsa-enc", "use": "enc"})),
            token: signed_b("rsa-enc"),
        },
        BadKey {
            label: "key_ops encrypt",
            kid: "rsa-ops-encrypt".into(),
            jwk: jwk_with(
                &rsa_b,
                json!({"kid": "rsa-ops-encrypt", "use": null, "key_ops": ["encrypt"]}),
            ),
            token: signed_b("rsa-ops-encrypt"),
        },
        BadKey {
            label: "key_ops as a string",
            kid: "rsa-ops-string".into(),
            jwk: jwk_with(
                &rsa_b,
                json!({"kid": "rsa-ops-string", "use": null, "key_ops": "verify"}),
            ),
            token: signed_b("rsa-ops-string"),
        },
        BadKey {
            label: "oct (HMAC) key",
            kid: "hmac".into(),
            jwk: json!({"kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64url(secret)}),
            token: Some(hmac_token(
                secret,
                &json!({"alg": "HS256", "typ": "JWT", "kid": "hmac"}),
                &payload,
            )),
        },
        BadKey {
            label: "RSA exponent 1",
            kid: "rsa-e1".into(),
            jwk: jwk_with(&rsa_b, json!({"kid": "rsa-e1", "e": "AQ"})),
            token: e1_token,
        },
        BadKey {
            label: "RSA exponent even",
            kid: "rsa-e-even".into(),
            jwk: jwk_with(&rsa_b, json!({"kid": "rsa-e-even", "e": "AAEAAg"})),
            token: signed_b("rsa-e-even"),
        },
        BadKey {
            label: "RSA key pinned to ES256",
            kid: "rsa-alg-es256".into(),
            jwk: jwk_with(&rsa_b, json!({"kid": "rsa-alg-es256", "alg": "ES256"})),
            token: signed_b("rsa-alg-es256"),
        },
        BadKey {
            label: "RSA key pinned to alg none",
            kid: "rsa-alg-none".into(),
            jwk: jwk_with(&rsa_b, json!({"kid": "rsa-alg-none", "alg": "none"})),
            token: signed_b("rsa-alg-none"),
        },
        BadKey {
            label: "unknown kty",
            kid: "kty-xyz".into(),
            jwk: jwk_with(&rsa_b, json!({"kid": "kty-xyz", "kty": "XYZ"})),
            token: signed_b("kty-xyz"),
        },
        BadKey {
            label: "RSA without n",
            kid: "rsa-no-n".into(),
            jwk: jwk_with(&rsa_b, json!({"kid": "rsa-no-n", "n": null})),
            token: signed_b("rsa-no-n"),
        },
        BadKey {
            label: "RSA n not base64url",
            kid: "rsa-bad-n".into(),
            jwk: jwk_with(&rsa_b, json!({"kid": "rsa-bad-n", "n": "!!!!"})),
            token: signed_b("rsa-bad-n"),
        },
        BadKey {
            label: "OKP on X25519",
            kid: "okp-x25519".into(),
            jwk: jwk_with(
                &ed,
                json!({"kid": "okp-x25519", "crv": "X25519", "alg": null}),
            ),
            token: Some(ed.sign(json!({"kid": "okp-x25519"}), payload.clone())),
        },
        BadKey {
            // The identity point: with R = identity and S = 0 a "signature" verifies for every
            // message, so loading this key would let anyone mint tokens.
            label: "Ed25519 identity point (small order)",
            kid: "ed-identity".into(),
            jwk: jwk_with(&ed, json!({"kid": "ed-identity", "x": b64url(&identity)})),
            token: Some(raw_token(
                &json!({"alg": "EdDSA", "typ": "JWT", "kid": "ed-identity"}),
                &payload,
                &identity_forgery,
            )),
        },
        BadKey {
            label: "Ed25519 with a 31-byte key",
            kid: "ed-short".into(),
            jwk: jwk_with(&ed, json!({"kid": "ed-short", "x": b64url(&ed_x[..31])})),
            token: None,
        },
    ];
    for (i, junk) in [
        json!("a string"),
        json!(42),
        Value::Null,
        json!({}),
        json!([]),
    ]
    .into_iter()
    .enumerate()
    {
        out.push(BadKey {
            label: "not a JWK object",
            kid: format!("junk-{i}"),
            jwk: junk,
            token: None,
        });
    }
    out
}

/// The good keys: `rsa_a` (RS256) and `ec256` (ES256).
fn good_keys() -> (FixtureKey, FixtureKey) {
    (
        FixtureKey::rsa_a(),
        FixtureKey::load("ec256.pem", Algorithm::ES256),
    )
}

fn issuer_block_uri(keys: &KeyServer) -> String {
    issuer_toml("main", ISS, &keys.url(), ALGS, "")
}

fn jwks_keys_gauge(gw: &Gateway) -> f64 {
    metric_samples(&gw.metrics(), "tokengate_jwks_keys")
        .into_iter()
        .find(|s| s.labels.get("issuer").map(String::as_str) == Some("main"))
        .map_or(-1.0, |s| s.value)
}

/// Every bad key was skipped and logged, every token only a bad key could verify is 401
/// `invalid_token` and never forwarded, and both good keys still verify.
fn assert_bad_keys_skipped_and_good_keys_work(gw: &Gateway, echo: &Echo, bad: &[BadKey]) {
    let (rsa_a, ec256) = good_keys();
    assert_eq!(
        jwks_keys_gauge(gw),
        2.0,
        "exactly the two good keys must be loaded"
    );
    let log_has = |needle: &str| {
        gw.stderr()
            .lines()
            .any(|l| l.contains("skipping key") && l.contains(needle))
    };
    assert!(
        wait_until(Duration::from_secs(5), || log_has("weak-1024")),
        "the log does not mention skipped keys:\n{}",
        gw.stderr()
    );
    for key in bad {
        let needle = if key.jwk.get("kid").is_some() {
            format!("kid {}", key.kid)
        } else {
            "kid -".to_string()
        };
        assert!(
            log_has(&needle),
            "the log does not mention the skipped {} key ({needle})",
            key.label
        );
    }
    for key in bad {
        let Some(token) = &key.token else { continue };
        eprintln!("case: token for the {} key", key.label);
        let before = echo.count();
        let resp = client::get_with_token(gw.proxy_addr(), "/api/x", token);
        assert_rejection(&resp, 401, Some("invalid_token"), Some(token));
        assert_challenge_error(&resp, "invalid_token");
        assert_eq!(
            echo.count(),
            before,
            "{} token reached the upstream",
            key.label
        );
    }
    // Without a kid every loaded key of the right type is tried: the skipped rsa_b copies
    // (use enc, key_ops encrypt, ...) must not be among them.
    let rsa_b = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    let no_kid = rsa_b.sign(json!({"kid": null}), claims(json!({})));
    let resp = client::get_with_token(gw.proxy_addr(), "/api/x", &no_kid);
    assert_rejection(&resp, 401, Some("invalid_token"), Some(&no_kid));
    assert_challenge_error(&resp, "invalid_token");

    let before = echo.count();
    for good in [&rsa_a, &ec256] {
        let token = good.sign(Value::Null, claims(json!({})));
        let resp = client::get_with_token(gw.proxy_addr(), "/api/x", &token);
        assert_eq!(
            resp.status,
            200,
            "good key {} rejected: {}",
            good.kid,
            resp.text()
        );
    }
    assert_eq!(echo.count(), before + 2);
}

#[test]
fn hand_rolled_rsa_signer_matches_the_library() {
    // The control for every hand-signed token in this file: for rsa_a (which the library can
    // load) the hand-rolled PKCS#1 v1.5 signature is byte-for-byte the library's.
    let key = FixtureKey::rsa_a();
    let raw = RawRsa::load("rsa_a.pem");
    assert_eq!(raw.bits(), 2048);
    let payload = claims(json!({}));
    assert_eq!(
        sign_raw_rsa(&raw, &key.kid, &payload),
        key.sign(Value::Null, payload)
    );
}

#[test]
fn one_set_mixing_every_kind_of_unusable_key_with_good_keys_keeps_only_the_good_ones() {
    let (rsa_a, ec256) = good_keys();
    let bad = bad_keys();
    // Bad keys first, one good key in the middle, one last.
    let mut entries: Vec<Value> = bad.iter().map(|k| k.jwk.clone()).collect();
    entries.insert(entries.len() / 2, rsa_a.jwk());
    entries.push(ec256.jwk());
    let keys = KeyServer::start(&[&rsa_a]);
    keys.set_jwks(json!({ "keys": entries }));
    let echo = Echo::start();
    let gw = Gateway::start(format!(
        "{}\n{}\n{API_ROUTE}",
        issuer_block_uri(&keys),
        upstream_toml("echo", &[echo.addr()], "")
    ));
    assert_bad_keys_skipped_and_good_keys_work(&gw, &echo, &bad);
}

#[test]
fn the_same_set_from_a_jwks_file_is_validated_key_by_key_at_load() {
    let (rsa_a, ec256) = good_keys();
    let bad = bad_keys();
    let mut entries: Vec<Value> = bad.iter().map(|k| k.jwk.clone()).collect();
    entries.push(rsa_a.jwk());
    entries.push(ec256.jwk());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, json!({ "keys": entries }).to_string()).unwrap();
    let echo = Echo::start();
    let issuer = format!(
        "[[issuer]]\nname = \"main\"\nissuer = {ISS:?}\naudiences = [{AUD:?}]\n\
         jwks_file = {:?}\nalgorithms = {}\n",
        file.display().to_string(),
        toml_list(ALGS)
    );
    let gw = Gateway::start(format!(
        "{issuer}\n{}\n{API_ROUTE}",
        upstream_toml("echo", &[echo.addr()], "")
    ));
    assert_bad_keys_skipped_and_good_keys_work(&gw, &echo, &bad);
}

/// A skipped key that reuses the good key's kid, placed before it, must not shadow it.
#[test]
fn skipped_key_with_the_good_keys_kid_does_not_shadow_it() {
    let rsa_a = FixtureKey::rsa_a();
    let weak = RawRsa::load("rsa_1024.pem");
    let rsa_b = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    let keys = KeyServer::start(&[&rsa_a]);
    keys.set_jwks(json!({"keys": [
        weak.jwk(&rsa_a.kid),
        jwk_with(&rsa_b, json!({"kid": rsa_a.kid, "use": "enc"})),
        json!({"kty": "oct", "kid": rsa_a.kid, "k": "c2VjcmV0"}),
        rsa_a.jwk(),
    ]}));
    let echo = Echo::start();
    let gw = Gateway::start(format!(
        "{}\n{}\n{API_ROUTE}",
        issuer_block_uri(&keys),
        upstream_toml("echo", &[echo.addr()], "")
    ));
    assert_eq!(jwks_keys_gauge(&gw), 1.0);
    for (label, token) in [
        (
            "RSA-1024",
            sign_raw_rsa(&weak, &rsa_a.kid, &claims(json!({}))),
        ),
        (
            "rsa_b",
            rsa_b.sign(json!({"kid": rsa_a.kid}), claims(json!({}))),
        ),
        (
            "HS256",
            hmac_token(
                b"secret",
                &json!({"alg": "HS256", "kid": rsa_a.kid}),
                &claims(json!({})),
            ),
        ),
    ] {
        eprintln!("case: {label} under the shared kid");
        let resp = client::get_with_token(gw.proxy_addr(), "/api/x", &token);
        assert_rejection(&resp, 401, Some("invalid_token"), Some(&token));
        assert_challenge_error(&resp, "invalid_token");
    }
    assert_eq!(echo.count(), 0);
    let good = rsa_a.sign(Value::Null, claims(json!({})));
    let resp = client::get_with_token(gw.proxy_addr(), "/api/x", &good);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echo.count(), 1);
}

/// A refresh that yields only unusable keys is a failed refresh: the last good set stays.
#[test]
fn a_refetched_set_of_only_unusable_keys_does_not_replace_the_good_set() {
    let rsa_a = FixtureKey::rsa_a();
    let keys = KeyServer::start(&[&rsa_a]);
    let echo = Echo::start();
    let gw = Gateway::start(format!(
        "{}\n{}\n{API_ROUTE}",
        issuer_block_uri(&keys),
        upstream_toml("echo", &[echo.addr()], "")
    ));
    let good = rsa_a.sign(Value::Null, claims(json!({})));
    assert_eq!(
        client::get_with_token(gw.proxy_addr(), "/api/x", &good).status,
        200
    );

    let bad = bad_keys();
    keys.set_jwks(json!({"keys": bad.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}));
    let fetches = keys.fetch_count();
    // A token naming a kid not in the current set triggers one refetch of the (now bad) set.
    let rsa_b = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    let probe = rsa_b.sign(json!({"kid": "rsa-enc"}), claims(json!({})));
    let resp = client::get_with_token(gw.proxy_addr(), "/api/x", &probe);
    assert_rejection(&resp, 401, Some("invalid_token"), Some(&probe));
    assert_challenge_error(&resp, "invalid_token");
    assert!(
        wait_until(Duration::from_secs(5), || keys.fetch_count() > fetches),
        "the unknown kid did not trigger a refetch"
    );
    assert_eq!(jwks_keys_gauge(&gw), 1.0, "the good set must stay");
    let good = rsa_a.sign(Value::Null, claims(json!({"jti": "after"})));
    let resp = client::get_with_token(gw.proxy_addr(), "/api/x", &good);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echo.count(), 2);
}
