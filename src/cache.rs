//! The verified-token cache: a token whose signature and claims checked out is remembered, so a
//! repeated token skips only the parse and the signature.
//!
//! - Keyed by a 128-bit AES-GCM-SIV tag of the token bytes under a random key drawn when the
//!   cache is built (see [`TokenMac`]). A collision would hand one caller another's identity, so two
//!   different tokens must practically never share a key, and no one may be able to search for a
//!   pair that does. Only 16 bytes are kept per entry.
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
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM_SIV};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
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

/// The table hash of a cache key. The key is already a keyed tag, evenly spread and not
/// steerable without the cache's secret key, so its first eight bytes are the hash: hashing it
/// again (moka's default is SipHash) would spend time on every lookup for nothing.
#[derive(Default)]
pub struct TagPrefix(u64);

impl Hasher for TagPrefix {
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as a length write and then the 16 bytes: each write contributes its
        // first eight bytes, which for the tag is the evenly spread part.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A token's cache key: its [`TokenMac`] tag.
pub type CacheKey = [u8; 16];

type Table = moka::sync::Cache<CacheKey, Cached, BuildHasherDefault<TagPrefix>>;

struct ExpireAtExp;

impl moka::Expiry<CacheKey, Cached> for ExpireAtExp {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
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
    inner: Option<Inner>,
}

/// An enabled cache: the table and the key its entries are filed under.
struct Inner {
    table: Table,
    mac: TokenMac,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field(
                "entries",
                &self.inner.as_ref().map(|i| i.table.entry_count()),
            )
            .finish()
    }
}

/// Cache keys: the AES-256-GCM-SIV tag of a token (sealing an empty message, the token as the
/// additional data, a fixed nonce) under a key drawn from the system RNG for this cache alone.
///
/// GCM-SIV's tag is AES applied to POLYVAL of the token and its length. POLYVAL is an
/// almost-XOR-universal hash: two different tokens of at most n 16-byte blocks collide in it for
/// at most n + 1 of its 2^128 keys, and AES, a permutation, keeps distinct values distinct, so two
/// tokens share a tag with odds of at most (n + 1) / 2^127 (the tag's top bit is fixed), plus
/// AES's own distinguishing advantage. The key never leaves the process and no tag does, and
/// since a tag is a pseudorandom function of the token, what the table's layout may show through
/// timing (its first eight bytes pick the slot) tells nothing about the key or any other tag. A
/// forged token therefore meets one of c cached tokens with odds of at most c (n + 1) / 2^127 per
/// try, where n is `max_token_bytes` / 16 and c `token_cache_capacity`: below 2^-100 with the
/// defaults (16 KiB, 100,000), and still below 2^-90 at 1 MiB tokens and a million entries.
///
/// The nonce is fixed on purpose: GCM-SIV is built to stay secure when nonces repeat (RFC 8452),
/// which with a fixed one makes it a deterministic keyed hash. SHA-256, the key before, needed no
/// secret, but it costs 0.40 µs per token of 0.6 KiB on the benchmark host, on every request
/// with a token, against 0.17 µs for this (criterion `cache_key/{sha256_reference,tag}`).
struct TokenMac(LessSafeKey);

impl TokenMac {
    fn new() -> Result<Self, Unspecified> {
        let mut key = [0u8; 32];
        SystemRandom::new().fill(&mut key)?;
        Ok(TokenMac(LessSafeKey::new(UnboundKey::new(
            &AES_256_GCM_SIV,
            &key,
        )?)))
    }

    /// The tag of `token`; `None` only if aws-lc refuses the input, which for a token within
    /// `max_token_bytes` cannot happen (GCM-SIV takes additional data up to 2^36 bytes).
    fn tag(&self, token: &[u8]) -> Option<CacheKey> {
        let nonce = Nonce::assume_unique_for_key([0; 12]);
        let tag = self
            .0
            .seal_in_place_separate_tag(nonce, Aad::from(token), &mut [])
            .ok()?;
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_ref());
        Some(out)
    }
}

impl TokenCache {
    pub fn new(capacity: u64) -> Self {
        if capacity == 0 {
            return TokenCache { inner: None };
        }
        let Ok(mac) = TokenMac::new() else {
            // Without a key there is nothing safe to key entries by: every token is verified.
            tracing::error!("no random key for the token cache: the cache is disabled");
            return TokenCache { inner: None };
        };
        let table = moka::sync::Cache::builder()
            .max_capacity(capacity)
            // Sized for the bound from the start (up to MAX_PRESIZED entries): a table left to
            // grow doubles, rehashing every entry, while the cache fills under load, and runs
            // fuller, so a lookup probes more slots (each one a CPU-cache miss once thousands of
            // tokens are cached).
            .initial_capacity(capacity.min(MAX_PRESIZED) as usize)
            .expire_after(ExpireAtExp)
            .build_with_hasher(BuildHasherDefault::default());
        TokenCache {
            inner: Some(Inner { table, mac }),
        }
    }

    /// The cache key of `token`, or `None` when the cache is disabled: a disabled cache costs no
    /// hash per request.
    pub fn key_of(&self, token: &[u8]) -> Option<CacheKey> {
        self.inner.as_ref().and_then(|i| i.mac.tag(token))
    }

    /// The cached result for `token`, if any.
    pub fn get(&self, key: &CacheKey) -> Option<Cached> {
        self.inner.as_ref()?.table.get(key)
    }

    /// Remembers a successful verification by the key with fingerprint `by`.
    pub fn insert(&self, key: CacheKey, verified: Arc<Verified>, by: Fingerprint) {
        if let Some(inner) = &self.inner {
            inner.table.insert(key, Cached { verified, key: by });
        }
    }

    /// Forgets `token` (its key was revoked).
    pub fn remove(&self, key: &CacheKey) {
        if let Some(inner) = &self.inner {
            inner.table.invalidate(key);
        }
    }

    /// Entries currently held, for metrics. Settles moka's pending bookkeeping first, which is
    /// why it is called on scrape only, never per request.
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| {
            i.table.run_pending_tasks();
            i.table.entry_count()
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

    fn mac() -> TokenMac {
        TokenMac::new().unwrap_or_else(|_| panic!("no RNG"))
    }

    fn tag(mac: &TokenMac, token: &[u8]) -> CacheKey {
        mac.tag(token).unwrap_or_else(|| panic!("no tag"))
    }

    #[test]
    fn table_hash_is_the_tag_prefix_and_tells_keys_apart() {
        let mac = mac();
        let build = BuildHasherDefault::<TagPrefix>::default();
        let hashes: std::collections::HashSet<u64> = (0..10_000)
            .map(|i| build.hash_one(tag(&mac, format!("token-{i}").as_bytes())))
            .collect();
        assert_eq!(hashes.len(), 10_000, "distinct tags must hash apart");
        // Only the first eight bytes of the tag count.
        let a = tag(&mac, b"x");
        let mut b = a;
        b[8..].fill(0);
        assert_eq!(build.hash_one(a), build.hash_one(b));
        b[0] ^= 1;
        assert_ne!(build.hash_one(a), build.hash_one(b));
    }

    /// Every bit of a token is in its key, and so is its length: POLYVAL pads the additional data
    /// with zeros to a whole block, so without the length `t` and `t\0` would collide.
    #[test]
    fn a_key_changes_with_every_bit_and_with_the_length() {
        let mac = mac();
        let token: Vec<u8> = (0..651u32).map(|i| b'A' + (i % 26) as u8).collect();
        let mut keys = std::collections::HashSet::from([tag(&mac, &token)]);
        for i in 0..token.len() {
            for bit in 0..8 {
                let mut t = token.clone();
                t[i] ^= 1 << bit;
                assert!(keys.insert(tag(&mac, &t)), "byte {i} bit {bit}");
            }
        }
        for t in [&b""[..], b"\0", b"\0\0", &[0; 16], &[0; 17], b"ab", b"ab\0"] {
            assert!(keys.insert(tag(&mac, t)), "{t:?}");
        }
        assert_eq!(
            tag(&mac, &token),
            tag(&mac, &token.clone()),
            "a key is stable"
        );
    }

    /// Each cache draws its own key, so no tag means anything outside the process that made it.
    #[test]
    fn every_cache_keys_tokens_with_its_own_secret() {
        let (a, b) = (TokenCache::new(10), TokenCache::new(10));
        assert_eq!(a.key_of(b"t"), a.key_of(b"t"));
        assert!(a.key_of(b"t").is_some());
        assert_ne!(a.key_of(b"t"), b.key_of(b"t"));
        assert_eq!(
            TokenCache::new(0).key_of(b"t"),
            None,
            "a disabled cache keys nothing"
        );
    }
}
