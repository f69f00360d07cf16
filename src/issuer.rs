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
    /// A JWKS URL, fetched by the refresh service with this client (its TLS roots are set).
    Uri { url: String, client: reqwest::Client },
    /// A JWKS file, read at load time.
    File(PathBuf),
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
    pub refresh: Duration,
    pub fetch_timeout: Duration,
    pub keys: Arc<KeyStore>,
    pub metrics: crate::metrics::IssuerMetrics,
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
