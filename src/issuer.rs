//! A compiled issuer: who signs tokens, how to check them, and where its keys live.
//!
//! Built once by the config compiler; immutable afterwards except for its key store, which the
//! refresh service swaps. Nothing on the request path looks an issuer up by name.

use crate::jwks::KeyStore;
use jsonwebtoken::Algorithm;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Fetched over HTTP(S) and kept fresh by the refresh service.
    Remote(Remote),
    /// A JWKS file, read at load time.
    File(PathBuf),
}

/// Where to find a remote key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The JWKS URL itself.
    Jwks(String),
    /// An OpenID Connect discovery document whose `jwks_uri` names the key set.
    Discovery(String),
}

/// A remote key source and its lifecycle settings.
#[derive(Debug, Clone)]
pub struct Remote {
    pub location: Location,
    /// Timeouts, TLS roots (system store plus `ca_file`) and no redirects, set at config time.
    pub client: reqwest::Client,
    /// Whether a discovered `jwks_uri` may be plain `http://`.
    pub allow_insecure_http: bool,
    /// Bounds on the lifetime taken from `Cache-Control: max-age` or `Expires`.
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// At most one unknown-`kid` refetch per this interval; unknown kids are remembered as long.
    pub refetch_cooldown: Duration,
    /// With no successful refresh for this long, the keys are dropped: fail closed.
    pub max_stale: Duration,
    /// Where the last good set is persisted, if `[server] state_dir` is set.
    pub state_file: Option<PathBuf>,
}

/// One `[[issuer]]`.
#[derive(Debug)]
pub struct Issuer {
    pub name: String,
    /// The exact `iss` value.
    pub iss: String,
    pub audiences: Vec<String>,
    /// The allow-list; a token's `alg` outside it is refused before any key is touched.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: i64,
    pub scope_claims: Vec<String>,
    pub client_claims: Vec<String>,
    /// Required `typ`, normalised by [`normalise_typ`].
    pub require_typ: Option<String>,
    pub source: KeySource,
    /// Key-set lifetime when the response has no caching headers.
    pub refresh: Duration,
    pub fetch_timeout: Duration,
    pub keys: Arc<KeyStore>,
    pub metrics: crate::metrics::IssuerMetrics,
}

impl Remote {
    /// A key-set lifetime bounded to `[min_ttl, max_ttl]`.
    pub fn clamp_ttl(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min_ttl, self.max_ttl.max(self.min_ttl))
    }
}

impl Issuer {
    /// Whether `other` speaks for the same issuer with keys from the same place, so that its
    /// key store can carry over a reload. File-sourced issuers never carry over: a reload is how
    /// an edited key file is picked up.
    pub fn same_keys(&self, other: &Issuer) -> bool {
        let same_source = match (&self.source, &other.source) {
            (KeySource::Remote(a), KeySource::Remote(b)) => a.location == b.location,
            _ => false,
        };
        same_source && self.name == other.name && self.iss == other.iss
    }
}

/// `typ` compares case-insensitively and `application/` may be omitted (RFC 7515 §4.1.9), so
/// `at+jwt` and `application/at+jwt` are the same type.
pub fn normalise_typ(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) => rest.to_string(),
        None => lower,
    }
}
