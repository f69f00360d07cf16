//! The verified-token cache: a token whose signature and claims checked out is remembered, so a
//! repeated token skips only the parse and the signature.
//!
//! - Keyed by the SHA-256 of the token bytes: a collision would hand one caller another's
//!   identity, so the key must be collision-resistant, and only 32 bytes are kept per entry.
//! - Only successful verifications are stored. Inserting therefore costs an attacker a validly
//!   signed token per entry, and moka's TinyLFU admission keeps a burst of one-off tokens from
//!   evicting the frequently used ones. Failures are never cached: they are cheap to reject again
//!   and caching them would let garbage evict good entries.
//! - An entry expires at the token's `exp` plus leeway, and the cache holds at most
//!   `token_cache_capacity` entries (0 disables it).
//! - On every hit the caller re-checks the time rules against `now` and evaluates route policy; a
//!   hit is only usable while the issuer still has keys and still publishes the very key (by
//!   fingerprint, not just `kid`) that verified the token, so removing or replacing a key
//!   revokes every cached result it produced at once.

use crate::jwks::Fingerprint;
use crate::verify::Verified;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A cached verification.
#[derive(Debug, Clone)]
pub struct Cached {
    pub verified: Arc<Verified>,
    /// The key that verified the token.
    pub key: Fingerprint,
}

impl Cached {
    /// Whether this result may still stand for a route trusting `issuers`: the issuer must be one
    /// of them (the same compiled issuer) and must still publish the verifying key.
    pub fn usable_for(&self, issuers: &[Arc<crate::issuer::Issuer>]) -> bool {
        let issuer = &self.verified.issuer;
        issuers.iter().any(|i| Arc::ptr_eq(i, issuer)) && issuer.keys.has_key(&self.key)
    }
}

/// The table hash of a cache key. The key is already a SHA-256 digest, uniformly distributed and
/// not steerable without a preimage, so its first eight bytes are the hash: hashing it again
/// (moka's default is SipHash) would spend time on every lookup for nothing.
#[derive(Default)]
pub struct DigestPrefix(u64);

impl Hasher for DigestPrefix {
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as a length write and then the 32 bytes: each write contributes its
        // first eight bytes, which for the digest is the uniformly distributed part.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Table = moka::sync::Cache<[u8; 32], Cached, BuildHasherDefault<DigestPrefix>>;

struct ExpireAtExp;

impl moka::Expiry<[u8; 32], Cached> for ExpireAtExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Cached,
        _created_at: Instant,
    ) -> Option<Duration> {
        let v = &value.verified;
        let until = v.exp.saturating_add(v.issuer.leeway);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Some(Duration::from_secs(until.saturating_sub(now).max(0) as u64))
    }
}

/// The most entries the table is sized for up front: about 2 MiB of slots at 8 bytes each, two
/// slots per entry. A larger bound still works; its table grows on demand past this.
const MAX_PRESIZED: u64 = 131_072;

/// The cache, or nothing when disabled.
pub struct TokenCache {
    inner: Option<Table>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.inner.as_ref().map(|c| c.entry_count()))
            .finish()
    }
}

/// The cache key of a token: the SHA-256 of its bytes.
fn key(token: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl TokenCache {
    pub fn new(capacity: u64) -> Self {
        let inner = (capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                // Sized for the bound from the start (up to MAX_PRESIZED entries): a table left
                // to grow doubles, rehashing every entry, while the cache fills under load, and
                // runs fuller, so a lookup probes more slots (each one a CPU-cache miss once
                // thousands of tokens are cached).
                .initial_capacity(capacity.min(MAX_PRESIZED) as usize)
                .expire_after(ExpireAtExp)
                .build_with_hasher(BuildHasherDefault::default())
        });
        TokenCache { inner }
    }

    /// The cache key of `token`, or `None` when the cache is disabled: a disabled cache costs no
    /// hash per request.
    pub fn key_of(&self, token: &[u8]) -> Option<[u8; 32]> {
        self.inner.as_ref().map(|_| key(token))
    }

    /// The cached result for `token`, if any.
    pub fn get(&self, key: &[u8; 32]) -> Option<Cached> {
        self.inner.as_ref()?.get(key)
    }

    /// Remembers a successful verification by the key with fingerprint `by`.
    pub fn insert(&self, key: [u8; 32], verified: Arc<Verified>, by: Fingerprint) {
        if let Some(cache) = &self.inner {
            cache.insert(key, Cached { verified, key: by });
        }
    }

    /// Forgets `token` (its key was revoked).
    pub fn remove(&self, key: &[u8; 32]) {
        if let Some(cache) = &self.inner {
            cache.invalidate(key);
        }
    }

    /// Entries currently held, for metrics. Settles moka's pending bookkeeping first, which is
    /// why it is called on scrape only, never per request.
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn table_hash_is_the_digest_prefix_and_tells_keys_apart() {
        let build = BuildHasherDefault::<DigestPrefix>::default();
        let hashes: std::collections::HashSet<u64> = (0..10_000)
            .map(|i| build.hash_one(key(format!("token-{i}").as_bytes())))
            .collect();
        assert_eq!(hashes.len(), 10_000, "distinct digests must hash apart");
        // Only the first eight bytes of the digest count.
        let a = key(b"x");
        let mut b = a;
        b[8..].fill(0);
        assert_eq!(build.hash_one(a), build.hash_one(b));
        b[0] ^= 1;
        assert_ne!(build.hash_one(a), build.hash_one(b));
    }
}
