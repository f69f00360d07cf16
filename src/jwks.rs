//! Key sets: parsing a JWKS document into verification keys, and holding each issuer's current set.
//!
//! A JWKS is untrusted input from the network. Each key is validated on its own and an unusable key
//! is skipped with a reason, never poisoning the rest of the set: HMAC (`oct`) keys are never
//! loaded (a public key must never become an HMAC secret), RSA moduli must be 2048 to 8192 bits,
//! EC points must lie on their declared curve, and `use` / `key_ops` must allow verification.
//! Reading the current set is lock-free; it is swapped whole when a fetch succeeds.

pub mod fetch;
pub mod refresh;
mod verifier;

pub use verifier::{Verifiers, RSA_ALGORITHMS};

use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most keys kept from one document; identity providers publish a handful.
pub const MAX_KEYS: usize = 64;
/// The most skip reasons reported per document: a hostile set must not flood the log.
const MAX_REASONS: usize = 32;

/// The kind of public key, fixing which algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    /// Whether a key of this kind may verify `alg`: the key type must match the algorithm.
    pub fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (KeyKind::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (KeyKind::EcP256, ES256)
                | (KeyKind::EcP384, ES384)
                | (KeyKind::Ed25519, EdDSA)
        )
    }
}

/// One verification key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    pub kind: KeyKind,
    /// The JWK's own `alg`, which pins the key to one algorithm when present.
    pub alg: Option<Algorithm>,
    /// The public key, parsed for each algorithm it may verify.
    pub verifiers: Verifiers,
    /// SHA-256 of the key as published: its type, public material, `kid` and `alg` pin. A
    /// cached verification stands only while a key with this fingerprint is in the set, so it
    /// dies when its key leaves the set, when the `kid` is reused for a new key, and when the
    /// same material is re-published under another `kid` or algorithm.
    pub fingerprint: Fingerprint,
}

/// See [`Key::fingerprint`].
pub type Fingerprint = [u8; 32];

fn fingerprint(kind: KeyKind, parts: &[&[u8]]) -> Fingerprint {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(format!("{kind:?}").as_bytes());
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl Key {
    /// Whether this key may verify a token signed with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// An issuer's usable keys at one moment.
#[derive(Debug, Clone)]
pub struct KeySet {
    pub keys: Vec<Key>,
    pub fetched_at: SystemTime,
}

impl KeySet {
    /// The key with this `kid`, if any.
    pub fn by_kid(&self, kid: &str) -> Option<&Key> {
        self.with_kid(kid).next()
    }

    /// Every key with this `kid`. A set may publish several (an RSA and an EC key, or two during
    /// a rotation that reuses the kid); a token's signature is checked against each that fits.
    pub fn with_kid<'s, 'q>(&'s self, kid: &'q str) -> impl Iterator<Item = &'s Key> + use<'s, 'q> {
        self.keys
            .iter()
            .filter(move |k| k.kid.as_deref() == Some(kid))
    }
}

/// Why a whole document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("not a JSON object with a 'keys' array")]
    NotJwks,
    #[error("no usable keys ({0} skipped)")]
    NoUsableKeys(usize),
}

/// Parses a JWKS document. Returns the usable keys and, for each skipped key, why.
pub fn parse(body: &[u8], fetched_at: SystemTime) -> Result<(KeySet, Vec<String>), JwksError> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| JwksError::NotJwks)?;
    let entries = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NotJwks)?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    let mut skipped_silently = 0usize;
    for (i, entry) in entries.iter().enumerate() {
        if keys.len() == MAX_KEYS {
            skipped.push(format!("key #{i} and later: more than {MAX_KEYS} keys"));
            break;
        }
        match parse_key(entry) {
            Ok(k) => keys.push(k),
            Err(why) if skipped.len() < MAX_REASONS => {
                let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("-");
                skipped.push(format!("key #{i} (kid {kid:.64}): {why}"));
            }
            Err(_) => skipped_silently += 1,
        }
    }
    if skipped_silently > 0 {
        skipped.push(format!("{skipped_silently} more keys skipped"));
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys(skipped.len() + skipped_silently));
    }
    Ok((KeySet { keys, fetched_at }, skipped))
}

fn field<'v>(jwk: &'v Value, name: &str) -> Result<&'v str, String> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing or non-string '{name}'"))
}

fn b64(jwk: &Value, name: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(field(jwk, name)?)
        .map_err(|_| format!("'{name}' is not base64url"))
}

fn parse_key(jwk: &Value) -> Result<Key, String> {
    if !jwk.is_object() {
        return Err("not an object".into());
    }
    if let Some(u) = jwk.get("use") {
        if u.as_str() != Some("sig") {
            return Err("'use' is not 'sig'".into());
        }
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops.as_array().ok_or("'key_ops' is not an array")?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("'key_ops' does not allow 'verify'".into());
        }
    }
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("'kid' is not a string".into()),
    };
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(s)) => Some(
            s.parse::<Algorithm>()
                .map_err(|_| format!("unsupported alg {s:.16}"))?,
        ),
        Some(_) => return Err("'alg' is not a string".into()),
    };
    let (kind, verifiers, material) = match field(jwk, "kty")? {
        "RSA" => rsa(jwk, alg)?,
        "EC" => ec(jwk)?,
        "OKP" => okp(jwk)?,
        "oct" => return Err("symmetric keys are never used".into()),
        other => return Err(format!("unsupported kty {other:.16}")),
    };
    if let Some(a) = alg {
        if !kind.fits(a) {
            return Err(format!("alg {a:?} does not fit the key type"));
        }
    }
    // Length-prefixed parts, so that no two (kid, alg) pairs hash alike.
    let alg_name = alg.map(|a| format!("{a:?}"));
    let fingerprint = fingerprint(
        kind,
        &[
            &material,
            if kid.is_some() { b"kid" } else { b"-" },
            kid.as_deref().unwrap_or("").as_bytes(),
            alg_name.as_deref().unwrap_or("").as_bytes(),
        ],
    );
    Ok(Key {
        kid,
        kind,
        alg,
        verifiers,
        fingerprint,
    })
}

fn rsa(jwk: &Value, alg: Option<Algorithm>) -> Result<(KeyKind, Verifiers, Fingerprint), String> {
    let n = b64(jwk, "n")?;
    let e = b64(jwk, "e")?;
    let n = strip_zeros(&n);
    let e = strip_zeros(&e);
    // `n` has no leading zero byte now, so its first byte fixes the bit length exactly.
    let bits = n
        .first()
        .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) {
        return Err(format!("RSA modulus of {bits} bits is outside 2048..=8192"));
    }
    if e.is_empty() || e.len() > 4 || e == [1] || e.last().is_some_and(|b| b & 1 == 0) {
        return Err("RSA exponent is not a small odd number".into());
    }
    // A key without `alg` may verify any RSA algorithm: parse it for each, once, here.
    let algs = match &alg {
        Some(a) => std::slice::from_ref(a),
        None => &RSA_ALGORITHMS[..],
    };
    Ok((
        KeyKind::Rsa,
        Verifiers::rsa(n, e, algs)?,
        fingerprint(KeyKind::Rsa, &[n, e]),
    ))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let lead = b.iter().take_while(|&&x| x == 0).count();
    &b[lead..]
}

fn ec(jwk: &Value) -> Result<(KeyKind, Verifiers, Fingerprint), String> {
    let (kind, size, alg) = match field(jwk, "crv")? {
        "P-256" => (KeyKind::EcP256, 32, Algorithm::ES256),
        "P-384" => (KeyKind::EcP384, 48, Algorithm::ES384),
        other => return Err(format!("unsupported curve {other:.16}")),
    };
    let x = b64(jwk, "x")?;
    let y = b64(jwk, "y")?;
    if x.len() != size || y.len() != size {
        return Err("EC coordinates have the wrong length for the curve".into());
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let verifiers =
        Verifiers::point(&point, alg).map_err(|_| "EC point is not on the curve".to_string())?;
    Ok((kind, verifiers, fingerprint(kind, &[&x, &y])))
}

fn okp(jwk: &Value) -> Result<(KeyKind, Verifiers, Fingerprint), String> {
    if field(jwk, "crv")? != "Ed25519" {
        return Err("unsupported OKP curve".into());
    }
    let x = b64(jwk, "x")?;
    let Ok(encoded) = <[u8; 32]>::try_from(x.as_slice()) else {
        return Err("Ed25519 key is not 32 bytes".into());
    };
    // aws-lc checks only the length. A key of small order (the identity, or a point of order 2,
    // 4 or 8) verifies forged signatures: with the identity, R = identity and S = 0 pass for
    // every message. An encoding that is not canonical, or not a point, is no key at all (RFC
    // 8032 §5.1.3).
    let point = curve25519_dalek::edwards::CompressedEdwardsY(encoded).decompress();
    if !point.is_some_and(|p| p.compress().0 == encoded && !p.is_small_order()) {
        return Err("Ed25519 key is not a canonical point of large order".into());
    }
    let verifiers =
        Verifiers::point(&x, Algorithm::EdDSA).map_err(|_| "Ed25519 key rejected".to_string())?;
    Ok((
        KeyKind::Ed25519,
        verifiers,
        fingerprint(KeyKind::Ed25519, &[&x]),
    ))
}

/// How many unknown kids an issuer remembers; a flood of forged kids evicts only forged kids.
const UNKNOWN_KID_CAPACITY: u64 = 1024;

/// An issuer's current key set, read lock-free on every request and replaced whole, plus the
/// state that keeps unknown-`kid` refetches rare.
#[derive(Debug)]
pub struct KeyStore {
    current: ArcSwapOption<KeySet>,
    /// Serialises this issuer's fetches. Background refreshes and unknown-kid refetches both take
    /// it, so concurrent misses wait for the one fetch in flight instead of starting their own.
    pub(crate) fetch_lock: tokio::sync::Mutex<()>,
    /// When the last unknown-kid refetch was claimed, in ms since the epoch (0: never).
    last_refetch_ms: AtomicU64,
    /// Kids recently found unknown, with when they were seen; remembered for one cooldown.
    unknown: moka::sync::Cache<String, SystemTime>,
    /// When the next scheduled refresh is due, in ms since the epoch (0: now). Kept here so that a
    /// refresh task restarted by a config reload resumes the schedule instead of refetching.
    next_refresh_ms: AtomicU64,
}

impl Default for KeyStore {
    fn default() -> Self {
        KeyStore {
            current: ArcSwapOption::empty(),
            fetch_lock: tokio::sync::Mutex::new(()),
            last_refetch_ms: AtomicU64::new(0),
            unknown: moka::sync::Cache::new(UNKNOWN_KID_CAPACITY),
            next_refresh_ms: AtomicU64::new(0),
        }
    }
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl KeyStore {
    /// The current set, or `None` until the first successful load (and after failing closed).
    pub fn get(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    /// Whether the current set still holds the key with fingerprint `fp`. On every cache hit, so
    /// it borrows the set instead of taking a reference count.
    pub fn has_key(&self, fp: &Fingerprint) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|set| set.keys.iter().any(|k| k.fingerprint == *fp))
    }

    pub fn set(&self, set: KeySet) {
        self.current.store(Some(Arc::new(set)));
    }

    pub fn clear(&self) {
        self.current.store(None);
    }

    /// Clears the set only if it is still `expected`, so a set installed meanwhile survives.
    pub fn clear_if(&self, expected: &Arc<KeySet>) {
        self.current.rcu(|cur| match cur {
            Some(c) if Arc::ptr_eq(c, expected) => None,
            other => other.clone(),
        });
    }

    /// Whether a fetch is in flight right now.
    pub fn fetching(&self) -> bool {
        self.fetch_lock.try_lock().is_err()
    }

    /// Records when the next scheduled refresh is due.
    pub fn schedule(&self, at: SystemTime) {
        self.next_refresh_ms.store(epoch_ms(at), Ordering::Release);
    }

    /// How long until the next scheduled refresh (zero if due or never scheduled).
    pub fn until_scheduled(&self, now: SystemTime) -> Duration {
        Duration::from_millis(
            self.next_refresh_ms
                .load(Ordering::Acquire)
                .saturating_sub(epoch_ms(now)),
        )
    }

    /// Whether `kid` was found unknown less than `cooldown` ago.
    pub fn recently_unknown(&self, kid: &str, now: SystemTime, cooldown: Duration) -> bool {
        self.unknown
            .get(kid)
            .is_some_and(|seen| now.duration_since(seen).unwrap_or(Duration::ZERO) < cooldown)
    }

    /// Remembers `kid` as unknown. Long kids are not stored: they cannot be real.
    pub fn remember_unknown(&self, kid: &str, now: SystemTime) {
        if kid.len() <= 256 {
            self.unknown.insert(kid.to_string(), now);
        }
    }

    /// Claims the refetch slot if the last refetch was at least `cooldown` ago. Exactly one caller
    /// wins per cooldown, however many race.
    pub fn claim_refetch(&self, now: SystemTime, cooldown: Duration) -> bool {
        let now_ms = epoch_ms(now);
        let last = self.last_refetch_ms.load(Ordering::Acquire);
        if last != 0 && now_ms.saturating_sub(last) < cooldown.as_millis() as u64 {
            return false;
        }
        self.last_refetch_ms
            .compare_exchange(last, now_ms.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests;
