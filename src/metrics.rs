//! Prometheus metrics: families registered once, children resolved when a config is compiled.
//!
//! Labels come only from config names (route, issuer) and static reason strings, never from
//! request data: no path, `sub`, `kid` or token can create a series. `with_label_values` takes a
//! lock, so it is called at compile time only; the request path touches pre-resolved handles.

use crate::reject::Reason;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The label used for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "-";

/// Every metric family tokengate exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    decide: Histogram,
    jwks_keys: IntGaugeVec,
    jwks_refresh: IntCounterVec,
    jwks_last_success: GaugeVec,
    jwks_age: GaugeVec,
    jwks_unknown_kid: IntCounterVec,
    jwks_refetch_suppressed: IntCounterVec,
    jwks_stale: IntGaugeVec,
    pub config: ConfigMetrics,
    pub token_cache_entries: IntGauge,
}

/// Which config is live, and how reloads went.
#[derive(Debug, Clone)]
pub struct ConfigMetrics {
    pub reload_success: IntCounter,
    pub reload_failure: IntCounter,
    pub last_success: Gauge,
    pub generation: IntGauge,
    pub hash: IntGauge,
}

/// Pre-resolved children for one route.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    /// One counter per [`Reason`], indexed by [`Reason::index`].
    requests: Vec<IntCounter>,
    pub duration: Histogram,
}

impl RouteMetrics {
    pub fn count(&self, reason: Reason) {
        if let Some(c) = self.requests.get(reason.index()) {
            c.inc();
        }
    }
}

/// Pre-resolved children for one issuer.
#[derive(Debug, Clone)]
pub struct IssuerMetrics {
    pub keys: IntGauge,
    pub refresh_ok: IntCounter,
    /// The vector, because failure results are a small fixed set resolved when they first occur.
    refresh: IntCounterVec,
    name: String,
    pub last_success: Gauge,
    pub age: Gauge,
    pub unknown_kid: IntCounter,
    pub refetch_suppressed: IntCounter,
    pub stale: IntGauge,
}

impl IssuerMetrics {
    /// Counts a failed refresh; `result` is one of a fixed set of static labels.
    pub fn refresh_failed(&self, result: &'static str) {
        self.refresh
            .with_label_values(&[self.name.as_str(), result])
            .inc();
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "tokengate_requests_total",
                "Requests by route, decision and reason.",
            ),
            &["route", "decision", "reason"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tokengate_request_duration_seconds",
                "Time from request start to the end of the response, by route.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )?;
        let decide = Histogram::with_opts(
            HistogramOpts::new(
                "tokengate_decision_duration_seconds",
                "Time spent deciding a request: routing, token verification and policy.",
            )
            .buckets(vec![
                0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
            ]),
        )?;
        let jwks_keys = IntGaugeVec::new(
            Opts::new(
                "tokengate_jwks_keys",
                "Usable keys in the issuer's current key set.",
            ),
            &["issuer"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "tokengate_build_info",
                "Build information; the value is always 1.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let jwks_refresh = IntCounterVec::new(
            Opts::new(
                "tokengate_jwks_refresh_total",
                "Key-set fetches by issuer and result.",
            ),
            &["issuer", "result"],
        )?;
        let jwks_last_success = GaugeVec::new(
            Opts::new(
                "tokengate_jwks_last_success_timestamp_seconds",
                "Unix time of the issuer's last successful key-set fetch.",
            ),
            &["issuer"],
        )?;
        let jwks_age = GaugeVec::new(
            Opts::new(
                "tokengate_jwks_age_seconds",
                "Age of the key set in use, in seconds.",
            ),
            &["issuer"],
        )?;
        let jwks_unknown_kid = IntCounterVec::new(
            Opts::new(
                "tokengate_jwks_unknown_kid_total",
                "Tokens whose kid was not in the issuer's key set.",
            ),
            &["issuer"],
        )?;
        let jwks_refetch_suppressed = IntCounterVec::new(
            Opts::new(
                "tokengate_jwks_refetch_suppressed_total",
                "Unknown-kid refetches not made because of the cooldown or the negative cache.",
            ),
            &["issuer"],
        )?;
        let jwks_stale = IntGaugeVec::new(
            Opts::new(
                "tokengate_jwks_stale",
                "1 while the issuer's key set is served past its expiry.",
            ),
            &["issuer"],
        )?;
        for c in [&jwks_refresh, &jwks_unknown_kid, &jwks_refetch_suppressed] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(jwks_last_success.clone()))?;
        registry.register(Box::new(jwks_age.clone()))?;
        registry.register(Box::new(jwks_stale.clone()))?;
        let reloads = IntCounterVec::new(
            Opts::new("tokengate_config_reload_total", "Config reloads by result."),
            &["result"],
        )?;
        let config = ConfigMetrics {
            reload_success: reloads.with_label_values(&["success"]),
            reload_failure: reloads.with_label_values(&["failure"]),
            last_success: Gauge::new(
                "tokengate_config_last_reload_success_timestamp_seconds",
                "Unix time the live config was loaded.",
            )?,
            generation: IntGauge::new(
                "tokengate_config_generation",
                "Starts at 1 and grows by one with each successful reload.",
            )?,
            hash: IntGauge::new(
                "tokengate_config_hash",
                "Fingerprint of the live config file's text.",
            )?,
        };
        let token_cache_entries = IntGauge::new(
            "tokengate_token_cache_entries",
            "Verified tokens currently cached (approximate).",
        )?;
        registry.register(Box::new(token_cache_entries.clone()))?;
        registry.register(Box::new(reloads))?;
        registry.register(Box::new(config.last_success.clone()))?;
        registry.register(Box::new(config.generation.clone()))?;
        registry.register(Box::new(config.hash.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(decide.clone()))?;
        registry.register(Box::new(jwks_keys.clone()))?;
        registry.register(Box::new(build_info))?;
        Ok(Metrics {
            registry,
            requests,
            duration,
            decide,
            jwks_keys,
            jwks_refresh,
            jwks_last_success,
            jwks_age,
            jwks_unknown_kid,
            jwks_refetch_suppressed,
            jwks_stale,
            config,
            token_cache_entries,
        })
    }

    /// Resolves the children of route `name`.
    pub fn route(&self, name: &str) -> RouteMetrics {
        RouteMetrics {
            requests: Reason::ALL
                .iter()
                .map(|r| {
                    self.requests
                        .with_label_values(&[name, r.decision(), r.label()])
                })
                .collect(),
            duration: self.duration.with_label_values(&[name]),
        }
    }

    /// Resolves the children of issuer `name`.
    pub fn issuer(&self, name: &str) -> IssuerMetrics {
        IssuerMetrics {
            keys: self.jwks_keys.with_label_values(&[name]),
            refresh_ok: self.jwks_refresh.with_label_values(&[name, "ok"]),
            refresh: self.jwks_refresh.clone(),
            name: name.to_string(),
            last_success: self.jwks_last_success.with_label_values(&[name]),
            age: self.jwks_age.with_label_values(&[name]),
            unknown_kid: self.jwks_unknown_kid.with_label_values(&[name]),
            refetch_suppressed: self.jwks_refetch_suppressed.with_label_values(&[name]),
            stale: self.jwks_stale.with_label_values(&[name]),
        }
    }

    /// The histogram of time spent deciding.
    pub fn decide(&self) -> &Histogram {
        &self.decide
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}
