//! Token verification: from a compact JWS to claims that tokengate can trust, or a rejection.
//!
//! Order matters and is fixed: decode strictly, pick the issuer by exact `iss` among the route's
//! issuers, require the header `alg` to be on that issuer's allow-list (never trusting `alg`
//! alone), pick the key by `kid` from that issuer's own set and require its type to fit the
//! algorithm, check the signature with the key parsed when its set was loaded (see
//! `jwks::Verifiers`), and only then read time and audience claims.
//! Every rule is checked here against an injected `now`; none is delegated to the library's
//! validation options. Key-bearing headers (`jku`, `x5u`, `jwk`, `x5c`) are never read.

use crate::claims::{self, Claims, Parts, Scopes};
use crate::issuer::{normalise_typ, Issuer};
use crate::jwks::{Fingerprint, Key, KeySet};
use crate::reject::Rejection;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use std::sync::Arc;

/// Claims whose signature and registered claims checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub issuer: Arc<Issuer>,
    pub claims: Claims,
    pub exp: i64,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    /// Granted scopes.
    pub scopes: Scopes,
    pub client: Option<String>,
    /// The header value of each of the runtime's `forwarded_claims` (by slot), rendered once at
    /// verification.
    pub rendered: Rendered,
}

/// Header values rendered once per verified token, by slot: one buffer of `\n`-terminated slots,
/// a lone `\0` marking a claim that is absent or cannot be a header value. Neither byte can occur
/// in a header value, so slots cannot run into each other. One allocation instead of one per
/// value, and copied out on use instead of reference-counted: with thousands of tokens cached,
/// each separate allocation, and each shared count written on a hit, is one more CPU-cache miss.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered(Box<[u8]>);

const ABSENT: u8 = 0;

impl Rendered {
    pub fn new(values: impl IntoIterator<Item = Option<http::HeaderValue>>) -> Self {
        let mut buf = Vec::new();
        for v in values {
            match v {
                Some(v) => buf.extend_from_slice(v.as_bytes()),
                None => buf.push(ABSENT),
            }
            buf.push(b'\n');
        }
        Rendered(buf.into_boxed_slice())
    }

    /// The value in `slot`, or `None` where it is absent (or there is no such slot).
    pub fn get(&self, slot: usize) -> Option<http::HeaderValue> {
        let newline = |s: &[u8]| s.iter().position(|&b| b == b'\n');
        let mut rest: &[u8] = &self.0;
        for _ in 0..slot {
            rest = &rest[newline(rest)? + 1..];
        }
        let bytes = &rest[..newline(rest)?];
        if bytes == [ABSENT] {
            return None;
        }
        // Validated when rendered; checked again rather than trusted, which costs a scan of a
        // few bytes and keeps this free of `unsafe`.
        http::HeaderValue::from_bytes(bytes).ok()
    }
}

/// Verifies `token` for a route that trusts `issuers`, at unix time `now` (seconds).
pub fn verify(token: &str, issuers: &[Arc<Issuer>], now: i64) -> Result<Verified, Rejection> {
    verify_with_key(token, issuers, now).map(|(v, _)| v)
}

/// Like [`verify`], also returning the fingerprint of the key that verified the token, so that a
/// cached result can be dropped the moment that key leaves the issuer's set.
pub fn verify_with_key(
    token: &str,
    issuers: &[Arc<Issuer>],
    now: i64,
) -> Result<(Verified, Fingerprint), Rejection> {
    let parts = claims::split(token).map_err(Rejection::MalformedToken)?;
    let iss = match parts.claims.get("iss") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(Rejection::WrongIssuer),
    };
    let issuer = issuers
        .iter()
        .find(|i| i.iss == iss)
        .ok_or(Rejection::WrongIssuer)?;
    let alg: Algorithm = parts
        .header
        .alg
        .parse()
        .map_err(|_| Rejection::AlgorithmNotAllowed)?;
    if !issuer.algorithms.contains(&alg) {
        return Err(Rejection::AlgorithmNotAllowed);
    }
    if parts.header.has_crit {
        return Err(Rejection::MalformedToken(
            "unsupported critical header parameter",
        ));
    }
    if let Some(want) = &issuer.require_typ {
        match &parts.header.typ {
            Some(t) if normalise_typ(t) == *want => {}
            _ => return Err(Rejection::WrongType),
        }
    }
    let keys = issuer.keys.get().ok_or(Rejection::KeysUnavailable)?;
    let key = check_signature(&parts, alg, &keys)?.fingerprint;
    check_claims(parts.claims, issuer, now).map(|v| (v, key))
}

/// For a token rejected with [`Rejection::UnknownKey`]: the issuer whose set lacks the key, and
/// the `kid`. `None` when there is no kid to look for. Runs only on that rare path, so it simply
/// decodes the token again rather than threading the values out of `verify`.
pub fn key_miss(token: &str, issuers: &[Arc<Issuer>]) -> Option<(Arc<Issuer>, String)> {
    let parts = claims::split(token).ok()?;
    let iss = parts.claims.get("iss")?.as_str()?;
    let issuer = issuers.iter().find(|i| i.iss == iss)?;
    Some((Arc::clone(issuer), parts.header.kid?))
}

/// Checks the signature and returns the key that made it.
fn check_signature<'k>(
    parts: &Parts<'_>,
    alg: Algorithm,
    keys: &'k KeySet,
) -> Result<&'k Key, Rejection> {
    let ok = |key: &Key| {
        key.verifiers
            .verify(alg, parts.signing_input.as_bytes(), &parts.signature_bytes)
    };
    match parts.header.kid.as_deref() {
        // Every key under the kid that fits the algorithm, not just the first: one stale or
        // mistyped key sharing a kid must not shadow the key that signed the token.
        Some(kid) => {
            let mut under_kid = keys.with_kid(kid).peekable();
            if under_kid.peek().is_none() {
                return Err(Rejection::UnknownKey);
            }
            under_kid
                .filter(|k| k.accepts(alg))
                .find(|k| ok(k))
                .ok_or(Rejection::BadSignature)
        }
        // Without a kid, any key of the right type may have signed it; the set is capped at
        // MAX_KEYS, which bounds the work.
        None => {
            let mut candidates = keys.keys.iter().filter(|k| k.accepts(alg)).peekable();
            if candidates.peek().is_none() {
                return Err(Rejection::UnknownKey);
            }
            candidates.find(|k| ok(k)).ok_or(Rejection::BadSignature)
        }
    }
}

/// The time rules, shared by a fresh verification and a cache hit.
pub fn check_times(
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    leeway: i64,
    now: i64,
) -> Result<(), Rejection> {
    // RFC 7519 §4.1.4: the token must be used *before* exp, so exp itself is already too late.
    if now >= exp.saturating_add(leeway) {
        return Err(Rejection::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(Rejection::NotYetValid);
    }
    if iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(Rejection::IssuedInFuture);
    }
    Ok(())
}

fn check_claims(claims: Claims, issuer: &Arc<Issuer>, now: i64) -> Result<Verified, Rejection> {
    let date = |name: &'static str| {
        claims::numeric_date(&claims, name).map_err(|_| {
            Rejection::MalformedToken(match name {
                "exp" => "exp is not a valid NumericDate",
                "nbf" => "nbf is not a valid NumericDate",
                _ => "iat is not a valid NumericDate",
            })
        })
    };
    let exp = date("exp")?.ok_or(Rejection::MalformedToken("exp is required"))?;
    let nbf = date("nbf")?;
    let iat = date("iat")?;
    check_times(exp, nbf, iat, issuer.leeway, now)?;
    let auds = claims::audiences(&claims);
    if !auds
        .iter()
        .any(|a| issuer.audiences.iter().any(|want| want == a))
    {
        return Err(Rejection::WrongAudience);
    }
    Ok(Verified {
        scopes: claims::scopes(&claims, &issuer.scope_claims),
        client: claims::client(&claims, &issuer.client_claims),
        issuer: Arc::clone(issuer),
        claims,
        exp,
        iat,
        nbf,
        rendered: Rendered::default(),
    })
}

#[cfg(test)]
mod tests;
