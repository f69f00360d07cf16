//! Fixture signing keys and token minting.
//!
//! [`FixtureKey`] loads a PKCS#8 PEM from `tests/fixtures/`, publishes its public half as a JWK and
//! signs tokens with arbitrary header overrides. [`raw_token`] and [`hmac_token`] build the attack
//! tokens (alg `none`, HS256 keyed with the RSA public key, ...) that a real signer refuses to make.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

/// A private key from `tests/fixtures/` plus the algorithm it signs with.
#[derive(Clone)]
pub struct FixtureKey {
    /// The `kid` published in the JWKS and put in token headers.
    pub kid: String,
    pub alg: Algorithm,
    /// The fixture file name, e.g. `rsa_a.pem`.
    pub file: String,
    encoding: EncodingKey,
    publish_alg: bool,
}

/// The JOSE name of an algorithm (`RS256`, `EdDSA`, ...).
pub fn alg_name(alg: Algorithm) -> String {
    match serde_json::to_value(alg) {
        Ok(Value::String(s)) => s,
        other => panic!("cannot name algorithm {alg:?}: {other:?}"),
    }
}

/// The path of a fixture file.
pub fn fixture_path(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(file)
}

impl FixtureKey {
    /// Loads `tests/fixtures/<file>` for `alg`; the kid is `<stem>-<alg>`, e.g. `rsa_a-RS256`.
    pub fn load(file: &str, alg: Algorithm) -> Self {
        let path = fixture_path(file);
        let pem = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
        let encoding = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            other => panic!("FixtureKey does not do {other:?}; use hmac_token"),
        }
        .unwrap_or_else(|e| panic!("cannot load {file} as {alg:?}: {e}"));
        let stem = file.trim_end_matches(".pem");
        FixtureKey {
            kid: format!("{stem}-{}", alg_name(alg)),
            alg,
            file: file.to_string(),
            encoding,
            publish_alg: true,
        }
    }

    /// `rsa_a.pem` signing RS256: the default key of most tests.
    pub fn rsa_a() -> Self {
        Self::load("rsa_a.pem", Algorithm::RS256)
    }

    /// Replaces the kid.
    pub fn with_kid(mut self, kid: &str) -> Self {
        self.kid = kid.to_string();
        self
    }

    /// Publishes the JWK without an `alg` member.
    pub fn without_jwk_alg(mut self) -> Self {
        self.publish_alg = false;
        self
    }

    /// The same key material signing with another algorithm of the same family (kid re-derived).
    pub fn with_alg(&self, alg: Algorithm) -> Self {
        Self::load(&self.file, alg)
    }

    /// The public JWK: key material, `kid`, `use: sig` and (unless disabled) `alg`.
    pub fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg)
            .unwrap_or_else(|e| panic!("cannot derive JWK for {}: {e}", self.kid));
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = self.publish_alg.then(|| self.alg.into());
        serde_json::to_value(&jwk).expect("serialise JWK")
    }

    /// The default header: `{"alg": <alg>, "typ": "JWT", "kid": <kid>}`.
    pub fn header(&self) -> Value {
        json!({"alg": alg_name(self.alg), "typ": "JWT", "kid": self.kid})
    }

    /// Signs `claims` with this key. `header_overrides` (an object, or `null`) is merged over
    /// [`Self::header`]; a `null` member removes that header field. The signature always uses
    /// this key's algorithm, whatever the header claims.
    pub fn sign(&self, header_overrides: Value, claims: Value) -> String {
        let header = merge(self.header(), header_overrides);
        let message = format!("{}.{}", b64_json(&header), b64_json(&claims));
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg)
            .unwrap_or_else(|e| panic!("signing with {} failed: {e}", self.kid));
        format!("{message}.{sig}")
    }

    /// For RSA keys: the public key as a DER `SubjectPublicKeyInfo`.
    pub fn rsa_public_spki_der(&self) -> Vec<u8> {
        let pkcs1 = self.rsa_public_pkcs1_der();
        // AlgorithmIdentifier { rsaEncryption, NULL }
        let alg_id: &[u8] = &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let mut bit_string = vec![0u8];
        bit_string.extend_from_slice(&pkcs1);
        let mut inner = alg_id.to_vec();
        inner.extend(der(0x03, &bit_string));
        der(0x30, &inner)
    }

    /// For RSA keys: the public key as a DER PKCS#1 `RSAPublicKey`.
    pub fn rsa_public_pkcs1_der(&self) -> Vec<u8> {
        let jwk = self.jwk();
        let field = |name: &str| {
            let text = jwk[name]
                .as_str()
                .unwrap_or_else(|| panic!("{} is not an RSA key", self.kid));
            URL_SAFE_NO_PAD.decode(text).expect("JWK base64url")
        };
        let mut inner = der_uint(&field("n"));
        inner.extend(der_uint(&field("e")));
        der(0x30, &inner)
    }

    /// For RSA keys: the public key as a `-----BEGIN PUBLIC KEY-----` PEM.
    pub fn rsa_public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.rsa_public_spki_der())
    }

    /// For RSA keys: the public key as a `-----BEGIN RSA PUBLIC KEY-----` PEM.
    pub fn rsa_public_pkcs1_pem(&self) -> String {
        pem("RSA PUBLIC KEY", &self.rsa_public_pkcs1_der())
    }
}

/// A JWKS document holding the public keys.
pub fn jwks(keys: &[&FixtureKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

/// Merges `overrides` into `base` (both objects): members replace, `null` members delete.
/// A non-object `overrides` (e.g. `null`) leaves `base` untouched.
pub fn merge(mut base: Value, overrides: Value) -> Value {
    if let (Some(b), Value::Object(o)) = (base.as_object_mut(), overrides) {
        for (k, v) in o {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
    base
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url of a JSON value's compact serialisation.
pub fn b64_json(value: &Value) -> String {
    b64url(value.to_string().as_bytes())
}

/// A token assembled from parts: `b64(header).b64(payload).b64(signature)`. An empty signature
/// gives the trailing-dot form `h.p.` used by `alg: none` tokens.
pub fn raw_token(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64_json(header),
        b64_json(payload),
        b64url(signature)
    )
}

/// A correctly computed HMAC token (`HS256`/`HS384`/`HS512` named by `header.alg`) keyed with
/// `secret`: the "public key as HMAC secret" attack.
pub fn hmac_token(secret: &[u8], header: &Value, payload: &Value) -> String {
    let alg: Algorithm = serde_json::from_value(header["alg"].clone())
        .unwrap_or_else(|e| panic!("header alg {:?} is not an algorithm: {e}", header["alg"]));
    let message = format!("{}.{}", b64_json(header), b64_json(payload));
    let sig =
        jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(secret), alg)
            .unwrap_or_else(|e| panic!("HMAC signing failed: {e}"));
    format!("{message}.{sig}")
}

/// Flips one character in the middle of the signature segment, keeping it valid base64url.
pub fn tamper_signature(token: &str) -> String {
    let (rest, sig) = token
        .rsplit_once('.')
        .expect("token has a signature segment");
    let mut sig: Vec<u8> = sig.bytes().collect();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
    format!("{rest}.{}", String::from_utf8_lossy(&sig))
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, (len & 0xff) as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    match trimmed.first() {
        Some(&b) if b & 0x80 == 0 => {}
        _ => content.push(0),
    }
    content.extend(trimmed);
    der(0x02, &content)
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
