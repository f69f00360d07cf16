//! The access log: one structured line per request under the `access` target.
//!
//! It records who was let through or refused and why; it never records the token, the
//! `Authorization` header, or any claim other than `sub` and the client id.

use crate::reject::Reason;

/// What one request did, gathered by the proxy hooks.
#[derive(Debug, Default)]
pub struct Entry<'a> {
    pub route: &'a str,
    pub method: &'a str,
    /// The normalised path when the request was routed, else the raw path.
    pub path: &'a str,
    pub status: u16,
    pub issuer: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub client: Option<&'a str>,
    pub upstream: Option<&'a str>,
    pub upstream_status: Option<u16>,
    pub duration_us: u64,
    pub decide_us: u64,
}

/// Emits one access-log line.
pub fn record(reason: Reason, e: &Entry<'_>) {
    tracing::info!(
        target: "access",
        route = e.route,
        method = e.method,
        path = e.path,
        status = e.status,
        decision = reason.decision(),
        reason = reason.label(),
        issuer = e.issuer,
        sub = e.sub,
        client = e.client,
        upstream = e.upstream,
        upstream_status = e.upstream_status,
        duration_us = e.duration_us,
        decide_us = e.decide_us,
    );
}
