//! Key fixtures shared by the unit tests: the PEM files in tests/fixtures, and how each
//! algorithm's encoding key is read from them.
#![allow(clippy::unwrap_used)]

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

pub const RSA_A: &[u8] = include_bytes!("../tests/fixtures/rsa_a.pem");
pub const RSA_B: &[u8] = include_bytes!("../tests/fixtures/rsa_b.pem");
pub const RSA_1024: &[u8] = include_bytes!("../tests/fixtures/rsa_1024.pem");
pub const EC256: &[u8] = include_bytes!("../tests/fixtures/ec256.pem");
pub const EC384: &[u8] = include_bytes!("../tests/fixtures/ec384.pem");
pub const ED25519: &[u8] = include_bytes!("../tests/fixtures/ed25519.pem");

/// Every algorithm a public key can verify.
pub const ALL_ASYMMETRIC: [Algorithm; 9] = {
    let rsa = crate::jwks::RSA_ALGORITHMS;
    [
        rsa[0],
        rsa[1],
        rsa[2],
        rsa[3],
        rsa[4],
        rsa[5],
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ]
};

/// The fixture that signs `alg` by default: rsa_a for the RSA family.
pub fn pem_for(alg: Algorithm) -> &'static [u8] {
    match alg {
        Algorithm::ES256 => EC256,
        Algorithm::ES384 => EC384,
        Algorithm::EdDSA => ED25519,
        _ => RSA_A,
    }
}

/// `pem` read as a signing key for `alg` (an HMAC algorithm takes the bytes as the secret).
pub fn encoding_key(pem: &[u8], alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Ok(EncodingKey::from_secret(pem)),
        _ => EncodingKey::from_rsa_pem(pem),
    }
    .unwrap()
}

/// The public JWK of a fixture key as JSON, with `kid`, and its `alg` only when `keep_alg` (without
/// it an RSA key fits every RS/PS algorithm).
pub fn public_jwk(pem: &[u8], alg: Algorithm, kid: &str, keep_alg: bool) -> Value {
    let key = encoding_key(pem, alg);
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&key, alg).unwrap()).unwrap();
    let o = jwk.as_object_mut().unwrap();
    o.insert("kid".into(), json!(kid));
    if !keep_alg {
        o.remove("alg");
    }
    jwk
}
