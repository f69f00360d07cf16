//! Differential tests: a key parsed once must decide exactly as `jsonwebtoken::crypto::verify`
//! does with the same JWK, for every algorithm, on valid, altered and foreign signatures.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::fixtures::*;
use crate::jwks;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use aws_lc_rs::signature::{KeyPair as _, ECDSA_P384_SHA384_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::DecodingKey;
use proptest::prelude::*;
use std::time::SystemTime;

/// The algorithms no public key may verify.
const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// The asymmetric algorithms, then the HMAC ones.
fn all() -> impl Iterator<Item = Algorithm> {
    ALL_ASYMMETRIC.into_iter().chain(HMAC)
}

const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";

/// A key as tokengate loads it from a JWKS, and as jsonwebtoken would read the same JWK.
struct Pair {
    ours: jwks::Key,
    theirs: DecodingKey,
}

/// The key parsed from a one-key JWKS.
fn load(jwk: &serde_json::Value) -> jwks::Key {
    let body = serde_json::json!({ "keys": [jwk] }).to_string();
    let (set, skipped) = jwks::parse(body.as_bytes(), SystemTime::now()).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    set.keys.into_iter().next().unwrap()
}

/// The fixture key for `alg`, without `alg` in its JWK: tokengate's and jsonwebtoken's reading.
fn fixture_pair(alg: Algorithm) -> Pair {
    let jwk = public_jwk(pem_for(alg), alg, "k", false);
    Pair {
        ours: load(&jwk),
        theirs: DecodingKey::from_jwk(&serde_json::from_value::<Jwk>(jwk).unwrap()).unwrap(),
    }
}

fn sign(alg: Algorithm, pem: &[u8], message: &[u8]) -> Vec<u8> {
    let b64 = jsonwebtoken::crypto::sign(message, &encoding_key(pem, alg), alg).unwrap();
    URL_SAFE_NO_PAD.decode(b64).unwrap()
}

/// Both verdicts for every algorithm; jsonwebtoken's errors (a key of the wrong family) count as
/// a refusal, which is what tokengate does with them.
fn verdicts(p: &Pair, message: &[u8], signature: &[u8]) -> Vec<(Algorithm, bool, bool)> {
    let b64 = URL_SAFE_NO_PAD.encode(signature);
    all()
        .map(|alg| {
            let theirs =
                jsonwebtoken::crypto::verify(&b64, message, &p.theirs, alg).unwrap_or(false);
            let ours = p.ours.accepts(alg) && p.ours.verifiers.verify(alg, message, signature);
            (alg, ours, theirs)
        })
        .collect()
}

fn assert_agree(p: &Pair, message: &[u8], signature: &[u8]) {
    for (alg, ours, theirs) in verdicts(p, message, signature) {
        assert_eq!(ours, theirs, "{alg:?} on a {:?} key", p.ours.kind);
    }
}

#[test]
fn agrees_with_jsonwebtoken_on_valid_and_altered_signatures() {
    for alg in ALL_ASYMMETRIC {
        let p = fixture_pair(alg);
        let good = sign(alg, pem_for(alg), MESSAGE);
        // The valid signature must pass for its own algorithm, or agreement proves nothing.
        let v = verdicts(&p, MESSAGE, &good);
        assert!(v.iter().any(|&(a, ours, _)| a == alg && ours), "{alg:?}");
        assert_agree(&p, MESSAGE, &good);
        for i in [0, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert_agree(&p, MESSAGE, &bad);
        }
        assert_agree(&p, &MESSAGE[1..], &good);
        assert_agree(&p, MESSAGE, &good[..good.len() - 1]);
        assert_agree(&p, MESSAGE, &[good.as_slice(), &[0]].concat());
        assert_agree(&p, MESSAGE, &[]);
        // Signed with one algorithm of the family, checked as each of the others.
        for other in ALL_ASYMMETRIC {
            if p.ours.kind.fits(other) {
                assert_agree(&p, MESSAGE, &sign(other, pem_for(other), MESSAGE));
            }
        }
    }
}

#[test]
fn agrees_with_jsonwebtoken_on_signatures_by_another_key() {
    let rsa = fixture_pair(Algorithm::RS256);
    for alg in [Algorithm::RS256, Algorithm::PS512] {
        assert_agree(&rsa, MESSAGE, &sign(alg, RSA_B, MESSAGE));
    }
    let rng = SystemRandom::new();
    for (alg, signing) in [
        (Algorithm::ES256, &ECDSA_P256_SHA256_FIXED_SIGNING),
        (Algorithm::ES384, &ECDSA_P384_SHA384_FIXED_SIGNING),
    ] {
        let other = EcdsaKeyPair::generate(signing).unwrap();
        let foreign = other.sign(&rng, MESSAGE).unwrap();
        assert_agree(&fixture_pair(alg), MESSAGE, foreign.as_ref());
    }
    let other = Ed25519KeyPair::generate().unwrap();
    assert_eq!(other.public_key().as_ref().len(), 32);
    let foreign = other.sign(MESSAGE);
    assert_agree(&fixture_pair(Algorithm::EdDSA), MESSAGE, foreign.as_ref());
}

#[test]
fn a_key_pinned_by_its_jwk_alg_is_parsed_for_that_algorithm_only() {
    let key = load(&public_jwk(RSA_A, Algorithm::PS256, "k", true));
    assert!(key.verifiers.verify(
        Algorithm::PS256,
        MESSAGE,
        &sign(Algorithm::PS256, RSA_A, MESSAGE)
    ));
    assert!(!key.verifiers.verify(
        Algorithm::RS256,
        MESSAGE,
        &sign(Algorithm::RS256, RSA_A, MESSAGE)
    ));
}

/// aws-lc-rs has no HMAC verification algorithm, so neither table can hold one; what can go wrong
/// is the lookup. The signature offered is one the key does verify under its own algorithm, so a
/// `verify` that ignored the algorithm asked for would pass it here.
#[test]
fn no_key_verifies_hmac() {
    for alg in ALL_ASYMMETRIC {
        let p = fixture_pair(alg);
        let own = sign(alg, pem_for(alg), MESSAGE);
        assert!(p.ours.verifiers.verify(alg, MESSAGE, &own), "{alg:?}");
        for hs in HMAC {
            assert!(!p.ours.verifiers.verify(hs, MESSAGE, &own));
        }
    }
    assert!(Verifiers::point(&[4; 65], Algorithm::HS256).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random damage to the message and the signature, on every algorithm.
    #[test]
    fn agrees_with_jsonwebtoken_on_random_damage(
        which in 0usize..9,
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
        message in prop::collection::vec(any::<u8>(), 0..64),
        damage_message in any::<bool>(),
    ) {
        let alg = ALL_ASYMMETRIC[which];
        let p = fixture_pair(alg);
        let mut signature = sign(alg, pem_for(alg), &message);
        let mut message = message;
        if damage_message && !message.is_empty() {
            let i = at.index(message.len());
            message[i] ^= mask;
        } else {
            let i = at.index(signature.len());
            signature[i] ^= mask;
        }
        for (alg, ours, theirs) in verdicts(&p, &message, &signature) {
            prop_assert_eq!(ours, theirs, "{:?}", alg);
        }
    }
}
