//! A key's public material parsed once, when its key set is loaded, for each algorithm the key
//! may verify.
//!
//! `jsonwebtoken::crypto::verify` takes the raw key and rebuilds the aws-lc-rs public key on
//! every call, which every token the cache has not seen pays for (README BENCHMARKS has what it
//! cost). Here the same aws-lc-rs key is built once, when the JWKS is loaded. The parameter
//! tables below are jsonwebtoken 11's own aws_lc_rs backend, algorithm for algorithm
//! (`crypto/aws_lc/{rsa,ecdsa,eddsa}.rs`), including the 2048–8192-bit RSA bounds, and
//! differential tests (`agrees_with_jsonwebtoken_*`) hold every algorithm to
//! `jsonwebtoken::crypto::verify` on valid, altered and foreign signatures.

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use jsonwebtoken::Algorithm;

/// The parsed key for each algorithm a key may verify; at most six (the RSA family).
#[derive(Clone)]
pub struct Verifiers(Box<[(Algorithm, ParsedPublicKey)]>);

/// The algorithms an RSA key may verify.
pub const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// How jsonwebtoken's aws_lc_rs backend checks each RSA algorithm.
fn rsa_params(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    use Algorithm::*;
    Some(match alg {
        RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// How it checks the others. HMAC is in neither table: a public key must never verify it.
fn point_params(alg: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => return None,
    })
}

impl Verifiers {
    /// An RSA key from its big-endian modulus and exponent, parsed for each RSA algorithm in
    /// `algs` (others are skipped).
    pub fn rsa(n: &[u8], e: &[u8], algs: &[Algorithm]) -> Result<Self, String> {
        let components = sig::RsaPublicKeyComponents { n, e };
        let parsed = algs
            .iter()
            .filter_map(|&alg| rsa_params(alg).map(|p| (alg, p)))
            .map(|(alg, p)| {
                components
                    .to_parsed_public_key(p)
                    .map(|k| (alg, k))
                    .map_err(|e| format!("RSA key rejected: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Verifiers(parsed.into_boxed_slice()))
    }

    /// A key in the form aws-lc-rs reads directly (an uncompressed EC point, or the 32 bytes of
    /// an Ed25519 key), for the one algorithm its curve allows. Parsing proves an EC point lies
    /// on its curve: an invalid-curve attack needs one that does not.
    pub fn point(bytes: &[u8], alg: Algorithm) -> Result<Self, String> {
        let params = point_params(alg).ok_or("not an EC or EdDSA algorithm")?;
        let key = ParsedPublicKey::new(params, bytes).map_err(|e| format!("key rejected: {e}"))?;
        Ok(Verifiers(Box::new([(alg, key)])))
    }

    /// Whether `signature` (raw bytes) is a valid `alg` signature of `message` under this key.
    /// `false` when the key was not parsed for `alg`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.0
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

#[cfg(test)]
mod tests;
