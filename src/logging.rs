//! Logging setup: `tracing` is the one facade. pingora's own `log` records are bridged into it
//! by tracing-subscriber's `tracing-log` integration, so every line has the same format.
//!
//! `run` logs JSON (or logfmt) as set in `[log]`; `RUST_LOG`, when set, overrides the level for
//! debugging. `check` and `demo` print human-readable text.

use crate::config::compile::log_settings;
use crate::config::raw::RawLog;
use crate::runtime::{LogFormat, LogSettings};
use serde::Deserialize;
use std::path::Path;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Reads only `[log]` from a config file, before the full load, so that the logger exists while
/// the config is compiled. Any problem here falls back to the defaults: the full load reports it.
pub fn peek(path: &Path) -> LogSettings {
    #[derive(Deserialize)]
    struct LogOnly {
        log: Option<RawLog>,
    }
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| toml::from_str::<LogOnly>(&t).ok())
        .and_then(|c| c.log)
        .map_or_else(LogSettings::default, |raw| log_settings(&raw).0)
}

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Structured logs on stderr, for `run`.
pub fn init_structured(settings: &LogSettings) {
    let registry = tracing_subscriber::registry().with(filter(&settings.level));
    let result = match settings.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("tokengate: logging already initialised: {e}");
    }
}

/// Human-readable logs on stderr, for `check` and `demo`.
pub fn init_text() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter("info"))
        .try_init();
}
