//! Hot reload: on `SIGHUP`, re-read the config file, compile it completely, and swap the whole
//! runtime atomically.
//!
//! A file that does not compile changes nothing: the old runtime keeps serving and the error is
//! logged with file, line and field. A change of listeners or threads cannot be applied to a
//! running server, so such a file is refused as a whole (never half-applied) with a log line
//! that says a restart is needed. In-flight requests keep the snapshot they started with.

use crate::config;
use crate::metrics::Metrics;
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Reloads the config on `SIGHUP`.
pub struct Reloader {
    path: PathBuf,
    runtime: Arc<ArcSwap<Runtime>>,
    metrics: Arc<Metrics>,
    generation: watch::Sender<u64>,
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{0} changed: restart tokengate to apply it (nothing was applied)")]
    NeedsRestart(&'static str),
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        runtime: Arc<ArcSwap<Runtime>>,
        metrics: Arc<Metrics>,
        generation: watch::Sender<u64>,
    ) -> Self {
        Reloader {
            path,
            runtime,
            metrics,
            generation,
        }
    }

    /// Loads the file and, if it compiles and can be applied live, installs it.
    pub fn reload(&self) -> Result<u64, ReloadError> {
        let old = self.runtime.load_full();
        let new = config::reload(&self.path, &self.metrics, Some(&old))?;
        let (a, b) = (&old.settings, &new.settings);
        if a.listen != b.listen {
            return Err(ReloadError::NeedsRestart("[server] listen"));
        }
        if a.admin_listen != b.admin_listen {
            return Err(ReloadError::NeedsRestart("[server] admin_listen"));
        }
        if a.threads != b.threads {
            return Err(ReloadError::NeedsRestart("[server] threads"));
        }
        if a.tuning != b.tuning || a.upgrade_sock != b.upgrade_sock {
            return Err(ReloadError::NeedsRestart("[server] tuning"));
        }
        let hash = new.hash;
        self.runtime.store(Arc::new(new));
        let generation = *self.generation.borrow() + 1;
        self.generation.send_replace(generation);
        record_live(&self.metrics, generation, hash);
        Ok(generation)
    }
}

/// Publishes which config is live.
pub fn record_live(metrics: &Metrics, generation: u64, hash: u32) {
    let c = &metrics.config;
    c.generation.set(generation as i64);
    c.hash.set(i64::from(hash));
    c.last_success.set(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    );
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; hot reload is disabled");
                return;
            }
        };
        loop {
            tokio::select! {
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                    tracing::info!(path = %self.path.display(), "SIGHUP: reloading config");
                    match self.reload() {
                        Ok(generation) => {
                            self.metrics.config.reload_success.inc();
                            tracing::info!(generation, hash = self.runtime.load().hash, "config reloaded");
                        }
                        Err(e) => {
                            self.metrics.config.reload_failure.inc();
                            for line in e.to_string().lines() {
                                tracing::error!("config reload refused, old config keeps serving: {line}");
                            }
                        }
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
