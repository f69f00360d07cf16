//! One round trip to an identity provider: a JWKS document, or an OpenID Connect discovery
//! document, bounded in time (the client's timeouts) and size (1 MiB).
//!
//! Also reads how long the provider says the set may be cached. Nothing here retries, sleeps or
//! stores: the refresh service decides what to do with the result.

use super::{parse, JwksError, KeySet};
use std::time::{Duration, SystemTime};

/// The largest body read; real key sets are a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a fetch produced no key set.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("body exceeds {MAX_BODY} bytes")]
    TooLarge,
    #[error("{0}")]
    Invalid(#[from] JwksError),
    #[error("discovery document: {0}")]
    Discovery(&'static str),
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch { expected: String, found: String },
}

impl FetchError {
    /// The `result` label of `tokengate_jwks_refresh_total`.
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::Transport(e) if e.is_timeout() => "timeout",
            FetchError::Transport(_) => "unreachable",
            FetchError::Status(_) => "http_error",
            FetchError::TooLarge => "too_large",
            FetchError::Invalid(_) => "invalid",
            FetchError::Discovery(_) | FetchError::IssuerMismatch { .. } => "discovery_error",
        }
    }
}

/// A fetched key set.
#[derive(Debug)]
pub struct Fetched {
    pub set: KeySet,
    /// Why individual keys were skipped.
    pub skipped: Vec<String>,
    /// The lifetime the provider asked for (`Cache-Control: max-age` or `Expires`), unclamped.
    pub max_age: Option<Duration>,
    /// The body as received, for persisting.
    pub body: Vec<u8>,
}

async fn get(
    client: &reqwest::Client,
    url: &str,
) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
    let mut resp = client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "application/json, application/jwk-set+json",
        )
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(FetchError::TooLarge);
    }
    let max_age = max_age(resp.headers(), SystemTime::now());
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

/// Fetches and parses the key set at `url`.
pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<Fetched, FetchError> {
    let (body, max_age) = get(client, url).await?;
    let (set, skipped) = parse(&body, SystemTime::now())?;
    Ok(Fetched {
        set,
        skipped,
        max_age,
        body,
    })
}

/// Reads the discovery document at `url` and returns its `jwks_uri`, after checking that its
/// `issuer` is exactly `expected` (OpenID Connect Discovery 1.0 §4.3): a document that speaks for
/// another issuer must not supply this issuer's keys.
pub async fn discover(
    client: &reqwest::Client,
    url: &str,
    expected: &str,
    allow_http: bool,
) -> Result<String, FetchError> {
    let (body, _) = get(client, url).await?;
    let doc: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| FetchError::Discovery("not JSON"))?;
    let issuer = doc
        .get("issuer")
        .and_then(serde_json::Value::as_str)
        .ok_or(FetchError::Discovery("no issuer"))?;
    if issuer != expected {
        return Err(FetchError::IssuerMismatch {
            expected: expected.to_string(),
            found: issuer.chars().take(200).collect(),
        });
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(serde_json::Value::as_str)
        .ok_or(FetchError::Discovery("no jwks_uri"))?;
    let parsed = reqwest::Url::parse(jwks_uri)
        .map_err(|_| FetchError::Discovery("jwks_uri is not a URL"))?;
    match parsed.scheme() {
        "https" => Ok(parsed.to_string()),
        "http" if allow_http => Ok(parsed.to_string()),
        _ => Err(FetchError::Discovery("jwks_uri is not https")),
    }
}

/// The cache lifetime a response asks for: `Cache-Control: max-age` wins over `Expires`;
/// `no-store` / `no-cache` mean "as short as allowed" (zero, clamped up by the caller).
pub fn max_age(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(cc) = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    {
        for directive in cc.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-store" || lower == "no-cache" {
                return Some(Duration::ZERO);
            }
            if let Some(v) = lower.strip_prefix("max-age=") {
                if let Ok(secs) = v.trim_matches('"').parse::<u64>() {
                    return Some(Duration::from_secs(secs));
                }
            }
        }
    }
    let expires = headers.get(reqwest::header::EXPIRES)?.to_str().ok()?;
    match httpdate::parse_http_date(expires) {
        Ok(at) => Some(at.duration_since(now).unwrap_or(Duration::ZERO)),
        // RFC 9111 §5.3: an invalid Expires means "already expired".
        Err(_) => Some(Duration::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, CACHE_CONTROL, EXPIRES};

    fn headers(pairs: &[(reqwest::header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn cache_lifetime_comes_from_max_age_then_expires() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(600));
        let cases: Vec<(HeaderMap, Option<u64>)> = vec![
            (headers(&[]), None),
            (
                headers(&[(CACHE_CONTROL, "public, max-age=120")]),
                Some(120),
            ),
            (
                headers(&[(CACHE_CONTROL, "max-age=60"), (EXPIRES, &later)]),
                Some(60),
            ),
            (headers(&[(CACHE_CONTROL, "no-store")]), Some(0)),
            (headers(&[(EXPIRES, &later)]), Some(600)),
            (headers(&[(EXPIRES, "yesterday-ish")]), Some(0)),
            (headers(&[(CACHE_CONTROL, "max-age=oops")]), None),
        ];
        for (h, want) in cases {
            assert_eq!(max_age(&h, now).map(|d| d.as_secs()), want, "{h:?}");
        }
    }
}
