//! Fetching a JWKS document over HTTP(S), bounded in time and size.
//!
//! The client (timeouts, TLS roots, no redirects) is built at config time; this file only reads
//! one response. A slow or hostile identity provider can cost at most the timeout and 1 MiB.

use super::{parse, JwksError, KeySet};
use std::time::SystemTime;

/// The largest JWKS body read; real key sets are a few KiB.
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
}

/// Fetches and parses the key set at `url`. Returns the keys and the reasons any were skipped.
pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<(KeySet, Vec<String>), FetchError> {
    let mut resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json, application/jwk-set+json")
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(parse(&body, SystemTime::now())?)
}
