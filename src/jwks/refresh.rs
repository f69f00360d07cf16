//! The key-set lifecycle of remote issuers: first load, scheduled refresh, unknown-`kid`
//! refetch, outage handling and persistence.
//!
//! - The refresh service (a pingora background service, so nothing is spawned before the server
//!   forks) loads each issuer at start and refreshes it before the set expires, with jitter. The
//!   lifetime comes from `Cache-Control`/`Expires`, clamped to `[min_ttl, max_ttl]`.
//! - A failed refresh keeps the last good set and retries with exponential backoff and jitter.
//!   When no refresh has succeeded for `max_stale`, the set is dropped: fail closed (503).
//! - At start, if the provider cannot be reached, the last good set persisted in the state
//!   directory is used, if it was fetched within `max_stale`.
//! - An unknown `kid` may trigger one refetch per issuer per cooldown; concurrent misses share it
//!   (they wait on the issuer's fetch lock) and unknown kids are remembered for one cooldown.
//!
//! Requests never wait on a scheduled refresh; only a request whose `kid` is unknown waits, at
//! most one fetch timeout, for the one refetch that may bring its key.

use super::fetch::{discover, fetch, FetchError, Fetched};
use super::{parse, KeySet};
use crate::issuer::{Issuer, KeySource, Location, Remote};
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Refreshes the key sets of the issuers in the live runtime, restarting its per-issuer tasks
/// whenever a reload installs a new runtime.
pub struct Refresher {
    runtime: Arc<ArcSwap<Runtime>>,
    reloaded: tokio::sync::watch::Receiver<u64>,
}

impl Refresher {
    /// `reloaded` changes each time a new runtime is installed.
    pub fn new(
        runtime: Arc<ArcSwap<Runtime>>,
        reloaded: tokio::sync::watch::Receiver<u64>,
    ) -> Self {
        Refresher { runtime, reloaded }
    }
}

fn spawn_all(runtime: &Runtime) -> Vec<tokio::task::JoinHandle<()>> {
    runtime
        .issuers
        .iter()
        .filter(|i| matches!(i.source, KeySource::Remote(_)))
        .flat_map(|i| {
            [
                tokio::spawn(keep_fresh(Arc::clone(i))),
                tokio::spawn(fail_closed_timer(Arc::clone(i))),
            ]
        })
        .collect()
}

#[async_trait]
impl BackgroundService for Refresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut reloaded = self.reloaded.clone();
        let mut tasks = spawn_all(&self.runtime.load());
        let ready = tokio::spawn(notify_when_ready(Arc::clone(&self.runtime)));
        loop {
            tokio::select! {
                changed = reloaded.changed() => {
                    if changed.is_err() {
                        // The reloader is gone; keep refreshing what we have until shutdown.
                        let _ = shutdown.changed().await;
                        break;
                    }
                    for t in tasks.drain(..) {
                        t.abort();
                    }
                    // Issuers that carried over keep their key stores and their schedule.
                    tasks = spawn_all(&self.runtime.load());
                }
                // Resolves on shutdown; a closed channel means the server is gone, so stop too.
                _ = shutdown.changed() => break,
            }
        }
        ready.abort();
        for t in tasks {
            t.abort();
        }
    }
}

/// Tells systemd (`Type=notify`) that the gateway is ready, once every issuer has keys, so that
/// `systemctl start` and dependent units wait for a gateway that can decide. A no-op outside
/// systemd.
async fn notify_when_ready(runtime: Arc<ArcSwap<Runtime>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if runtime.load().ready() {
            break;
        }
    }
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot notify systemd of readiness");
    }
    tracing::info!("ready: every issuer has a key set");
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Loads `issuer`'s keys now and keeps them fresh, forever.
pub async fn keep_fresh(issuer: Arc<Issuer>) {
    let KeySource::Remote(remote) = &issuer.source else {
        return;
    };
    let mut jwks_url: Option<String> = None;
    let mut retry = FIRST_RETRY;
    let mut first = true;
    // The lifetime of the set in use: what the provider asked for, clamped.
    let mut lifetime = remote.clamp_ttl(issuer.refresh);
    if issuer.keys.get().is_some() {
        // Carried over a reload with keys: resume the schedule rather than fetch now.
        tokio::time::sleep(issuer.keys.until_scheduled(SystemTime::now())).await;
    }
    loop {
        let result = {
            let _fetching = issuer.keys.fetch_lock.lock().await;
            refresh_once(&issuer, remote, &mut jwks_url).await
        };
        let wait = match result {
            Ok(ttl) => {
                retry = FIRST_RETRY;
                lifetime = ttl;
                // Refresh before expiry, at 80-95% of the lifetime, so that gateways spread out.
                let wait = ttl.mul_f64(0.80 + fastrand::f64() * 0.15);
                issuer.keys.schedule(SystemTime::now() + wait);
                wait
            }
            Err(e) => {
                issuer.metrics.refresh_failed(e.label());
                tracing::warn!(issuer = %issuer.name, error = %e, retry_in = ?retry,
                    "key set refresh failed; keeping the last good set");
                if first && issuer.keys.get().is_none() {
                    load_persisted(&issuer, remote);
                }
                // Failing closed after max_stale is fail_closed_timer's job, on its own clock.
                let wait = jitter(retry);
                retry = (retry * 2).min(MAX_RETRY);
                wait
            }
        };
        first = false;
        tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
        mark_stale(&issuer, lifetime);
    }
}

/// Drops `issuer`'s set the moment it becomes older than `max_stale`, independently of fetches
/// that may be hanging for up to their timeout.
async fn fail_closed_timer(issuer: Arc<Issuer>) {
    let KeySource::Remote(remote) = &issuer.source else {
        return;
    };
    loop {
        let wait =
            enforce_max_stale(&issuer, remote, SystemTime::now()).unwrap_or(Duration::from_secs(1));
        tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
    }
}

/// Fetches once (discovering the JWKS URL first when needed) and installs the result.
/// Returns the clamped lifetime of the new set. The caller holds the fetch lock.
async fn refresh_once(
    issuer: &Issuer,
    remote: &Remote,
    jwks_url: &mut Option<String>,
) -> Result<Duration, FetchError> {
    let url = match (&remote.location, jwks_url.as_ref()) {
        (Location::Jwks(url), _) => url.clone(),
        (Location::Discovery(_), Some(url)) => url.clone(),
        (Location::Discovery(doc), None) => {
            let url =
                discover(&remote.client, doc, &issuer.iss, remote.allow_insecure_http).await?;
            *jwks_url = Some(url.clone());
            url
        }
    };
    let fetched = match fetch(&remote.client, &url).await {
        Ok(f) => f,
        Err(e) => {
            // The provider may have moved its keys; discover again next time.
            *jwks_url = None;
            return Err(e);
        }
    };
    let ttl = remote.clamp_ttl(fetched.max_age.unwrap_or(issuer.refresh));
    install(issuer, remote, fetched);
    Ok(ttl)
}

fn install(issuer: &Issuer, remote: &Remote, fetched: Fetched) {
    for why in &fetched.skipped {
        tracing::warn!(issuer = %issuer.name, "skipping key: {why}");
    }
    let Fetched { set, body, .. } = fetched;
    let fetched_at = set.fetched_at;
    tracing::info!(issuer = %issuer.name, keys = set.keys.len(), "key set loaded");
    let m = &issuer.metrics;
    m.keys.set(set.keys.len() as i64);
    m.refresh_ok.inc();
    m.last_success.set(unix(fetched_at));
    m.age.set(0.0);
    m.stale.set(0);
    issuer.keys.set(set);
    if let Some(path) = &remote.state_file {
        if let Err(e) = persist(path, issuer, remote, &body, fetched_at) {
            tracing::warn!(issuer = %issuer.name, path = %path.display(), error = %e, "cannot persist key set");
        }
    }
}

/// Drops the set when it is older than `max_stale`. Returns how long until that happens.
fn enforce_max_stale(issuer: &Issuer, remote: &Remote, now: SystemTime) -> Option<Duration> {
    let set = issuer.keys.get()?;
    let age = now.duration_since(set.fetched_at).unwrap_or(Duration::ZERO);
    if age >= remote.max_stale {
        tracing::error!(issuer = %issuer.name, age = ?age,
            "no successful key refresh within jwks_max_stale; failing closed");
        issuer.keys.clear_if(&set);
        issuer.metrics.keys.set(0);
        return None;
    }
    Some(remote.max_stale - age)
}

/// Sets the stale gauge: 1 while the set in use is older than its expected lifetime.
fn mark_stale(issuer: &Issuer, lifetime: Duration) {
    let Some(set) = issuer.keys.get() else { return };
    let age = SystemTime::now()
        .duration_since(set.fetched_at)
        .unwrap_or(Duration::ZERO);
    // Only ever raise the flag here: `install` lowers it when a fresh set arrives, so a persisted
    // set loaded at start stays stale until the provider answers again.
    if age > lifetime {
        issuer.metrics.stale.set(1);
    }
}

/// The persisted form: whose set it is and where it came from (a set persisted for another
/// issuer or key location must never be loaded for this one), when it was fetched, and the
/// document as the provider sent it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Persisted {
    iss: String,
    location: String,
    fetched_at: u64,
    jwks: Box<serde_json::value::RawValue>,
}

fn location(remote: &Remote) -> String {
    match &remote.location {
        Location::Jwks(u) => format!("jwks {u}"),
        Location::Discovery(u) => format!("discovery {u}"),
    }
}

/// Writes the set atomically: a temporary file in the same directory, then a rename.
fn persist(
    path: &Path,
    issuer: &Issuer,
    remote: &Remote,
    body: &[u8],
    fetched_at: SystemTime,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let jwks = serde_json::from_slice(body).map_err(std::io::Error::other)?;
    let doc = Persisted {
        iss: issuer.iss.clone(),
        location: location(remote),
        fetched_at: fetched_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        jwks,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut tmp, &doc).map_err(std::io::Error::other)?;
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Loads the persisted set if it is younger than `max_stale`.
fn load_persisted(issuer: &Issuer, remote: &Remote) {
    let Some(path) = &remote.state_file else {
        return;
    };
    let loaded = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Persisted>(&b).map_err(|e| e.to_string()))
        .and_then(|p| {
            if p.iss != issuer.iss || p.location != location(remote) {
                return Err("persisted set belongs to another issuer or key location".into());
            }
            let now = SystemTime::now();
            let at = UNIX_EPOCH
                .checked_add(Duration::from_secs(p.fetched_at))
                .filter(|at| *at <= now + Duration::from_secs(60))
                .ok_or("persisted set claims to be fetched in the future")?;
            let age = now.duration_since(at).unwrap_or(Duration::ZERO);
            if age >= remote.max_stale {
                return Err(format!(
                    "persisted set is {}s old, past jwks_max_stale",
                    age.as_secs()
                ));
            }
            parse(p.jwks.get().as_bytes(), at)
                .map(|(set, _)| set)
                .map_err(|e| e.to_string())
        });
    match loaded {
        Ok(set) => {
            tracing::warn!(issuer = %issuer.name, path = %path.display(), keys = set.keys.len(),
                "identity provider unreachable; serving the persisted key set");
            issuer.metrics.keys.set(set.keys.len() as i64);
            issuer.metrics.last_success.set(unix(set.fetched_at));
            issuer.metrics.stale.set(1);
            issuer.keys.set(set);
        }
        Err(e) => {
            tracing::info!(issuer = %issuer.name, path = %path.display(), "no usable persisted key set: {e}")
        }
    }
}

/// Called when a well-formed token from `issuer` with an allowed algorithm names a `kid` that
/// is not in the cached set. Returns whether the set now holds `kid` (so the request should be
/// decided again).
pub async fn refetch_for_unknown_kid(issuer: &Issuer, kid: &str) -> bool {
    issuer.metrics.unknown_kid.inc();
    let KeySource::Remote(remote) = &issuer.source else {
        return false;
    };
    let now = SystemTime::now();
    let has_kid = |set: Option<Arc<KeySet>>| set.is_some_and(|s| s.by_kid(kid).is_some());
    if issuer
        .keys
        .recently_unknown(kid, now, remote.refetch_cooldown)
    {
        issuer.metrics.refetch_suppressed.inc();
        return false;
    }
    if !issuer.keys.claim_refetch(now, remote.refetch_cooldown) {
        // Another request claimed this cooldown's refetch. If it is still in flight, share it by
        // waiting for the fetch lock; if not, answer at once rather than queue behind nothing.
        issuer.metrics.refetch_suppressed.inc();
        if issuer.keys.fetching() {
            drop(issuer.keys.fetch_lock.lock().await);
        }
        let found = has_kid(issuer.keys.get());
        if !found {
            issuer.keys.remember_unknown(kid, now);
        }
        return found;
    }
    let found = {
        let _fetching = issuer.keys.fetch_lock.lock().await;
        // A scheduled refresh may have brought the key while this request waited for the lock.
        if has_kid(issuer.keys.get()) {
            true
        } else {
            let mut url = None;
            match refresh_once(issuer, remote, &mut url).await {
                Ok(_) => has_kid(issuer.keys.get()),
                Err(e) => {
                    issuer.metrics.refresh_failed(e.label());
                    tracing::warn!(issuer = %issuer.name, error = %e, "unknown-kid refetch failed");
                    false
                }
            }
        }
    };
    if !found {
        issuer.keys.remember_unknown(kid, now);
    }
    found
}

/// `d` minus up to 10%, so that many gateways do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(1.0 - fastrand::f64() * 0.1)
}
