//! The key refresh service: loads each URL-sourced issuer's keys at start and keeps them fresh.
//!
//! It runs as a pingora background service, so nothing is spawned before the server forks. A
//! failed fetch keeps the last good set and retries with exponential backoff and jitter; it never
//! clears keys that work. Requests never wait on it.

use super::fetch::fetch;
use crate::issuer::{Issuer, KeySource};
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Refreshes the key sets of the issuers in the live runtime.
pub struct Refresher {
    runtime: Arc<ArcSwap<Runtime>>,
}

impl Refresher {
    pub fn new(runtime: Arc<ArcSwap<Runtime>>) -> Self {
        Refresher { runtime }
    }
}

#[async_trait]
impl BackgroundService for Refresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let issuers: Vec<Arc<Issuer>> = self.runtime.load().issuers.clone();
        let tasks: Vec<_> = issuers
            .into_iter()
            .filter(|i| matches!(i.source, KeySource::Uri { .. }))
            .map(|i| tokio::spawn(keep_fresh(i)))
            .collect();
        // Resolves on shutdown; a closed channel means the server is gone, so stop too.
        let _ = shutdown.changed().await;
        for t in tasks {
            t.abort();
        }
    }
}

/// Loads `issuer`'s keys now and then every `refresh`, forever.
async fn keep_fresh(issuer: Arc<Issuer>) {
    let KeySource::Uri { url, client } = &issuer.source else {
        return;
    };
    let mut retry = FIRST_RETRY;
    loop {
        let wait = match fetch(client, url).await {
            Ok((set, skipped)) => {
                for why in skipped {
                    tracing::warn!(issuer = %issuer.name, "skipping key: {why}");
                }
                tracing::info!(issuer = %issuer.name, keys = set.keys.len(), "key set loaded");
                issuer.metrics.keys.set(set.keys.len() as i64);
                issuer.keys.set(set);
                retry = FIRST_RETRY;
                issuer.refresh
            }
            Err(e) => {
                tracing::warn!(issuer = %issuer.name, error = %e, retry_in = ?retry, "key set fetch failed; keeping the last good set");
                let wait = retry;
                retry = (retry * 2).min(MAX_RETRY).min(issuer.refresh.max(FIRST_RETRY));
                wait
            }
        };
        tokio::time::sleep(jitter(wait)).await;
    }
}

/// `d` minus up to 10%, so that many gateways do not refresh in lockstep.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(1.0 - fastrand::f64() * 0.1)
}
