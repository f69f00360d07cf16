//! The compiled, immutable configuration a request is decided against.
//!
//! A request takes one `Arc<Runtime>` snapshot at its start and uses it to the end, so a reload
//! that swaps the runtime never mixes two configs within one request.

use crate::cache::TokenCache;
use crate::claims::ClaimPath;
use crate::issuer::Issuer;
use crate::metrics::RouteMetrics;
use crate::route::Router;
use crate::upstream::IdentityHeaders;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `[server]` after compilation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub listen: Vec<String>,
    pub admin_listen: Option<String>,
    pub threads: usize,
    pub max_token_bytes: usize,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
    /// Where last good key sets are persisted; `None` disables persistence.
    pub state_dir: Option<PathBuf>,
    pub log: LogSettings,
    /// Verified tokens remembered at most; 0 disables the cache.
    pub token_cache_capacity: u64,
    /// The Unix socket over which a graceful upgrade hands over listening sockets.
    pub upgrade_sock: PathBuf,
    pub limits: HeaderLimits,
    pub tuning: Tuning,
    /// How long an idle keep-alive connection waits for its next request.
    pub keepalive_timeout: Duration,
    /// How long a whole request head may take to arrive (slowloris bound).
    pub header_timeout: Duration,
}

/// pingora server tuning; defaults measured with `make bench` (see README, BENCHMARKS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Let idle worker threads steal tasks from busy ones. The compiled default is on only with
    /// more than one thread.
    pub work_stealing: bool,
    /// Idle upstream connections kept for reuse (across all upstreams).
    pub upstream_keepalive_pool_size: usize,
    /// Accept tasks per listening socket.
    pub listener_tasks_per_fd: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            work_stealing: true,
            upstream_keepalive_pool_size: 512,
            listener_tasks_per_fd: 1,
        }
    }
}

/// Bounds on the request head, checked before anything else reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Header fields, counting repeats.
    pub max_headers: usize,
    /// Request target plus every header name and value.
    pub max_total_bytes: usize,
    /// One header's name plus value.
    pub max_field_bytes: usize,
}

impl Default for HeaderLimits {
    fn default() -> Self {
        HeaderLimits {
            max_headers: 100,
            max_total_bytes: 64 * 1024,
            max_field_bytes: 32 * 1024,
        }
    }
}

/// `[log]` after compilation. Applied at start; a reload keeps the running logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// A `tracing` filter directive such as `info` or `info,tokengate=debug`.
    pub level: String,
    pub format: LogFormat,
    /// One line per request under the `access` target.
    pub access_log: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            format: LogFormat::Json,
            access_log: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Logfmt,
}

/// Everything the request path needs, resolved.
#[derive(Debug)]
pub struct Runtime {
    pub settings: Settings,
    pub issuers: Vec<Arc<Issuer>>,
    pub router: Router,
    pub identity: IdentityHeaders,
    /// Metric children for requests no route matched.
    pub unmatched: RouteMetrics,
    /// Fingerprint of the config text this runtime was compiled from.
    pub hash: u32,
    /// Verified tokens of this config generation.
    pub tokens: TokenCache,
    /// The only claims kept from a verified token: those some route forwards or requires, and
    /// `sub` for the access log. Everything else is dropped before caching, to bound memory.
    pub retained_claims: Vec<String>,
    /// Every claim some route forwards, once each: a verified token renders their header values
    /// when it is verified, so cache hits forward them without building strings.
    pub forwarded_claims: Vec<ClaimPath>,
}

impl Runtime {
    /// Ready when every issuer has a usable key set.
    pub fn ready(&self) -> bool {
        self.issuers.iter().all(|i| i.keys.get().is_some())
    }

    /// Updates each issuer's key-age gauge; called when metrics are scraped, since age changes
    /// continuously and nothing else needs it.
    pub fn observe_key_age(&self, now: SystemTime) {
        for issuer in &self.issuers {
            if let Some(set) = issuer.keys.get() {
                let age = now.duration_since(set.fetched_at).unwrap_or(Duration::ZERO);
                issuer.metrics.age.set(age.as_secs_f64());
            }
        }
    }
}
