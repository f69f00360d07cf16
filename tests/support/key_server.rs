//! `KeyServer`: a JWKS endpoint the gateway fetches keys from, with failure modes.
//!
//! Serves `GET /jwks.json` from a swappable key set and `GET /.well-known/openid-configuration`,
//! counts JWKS fetches and discovery fetches separately, can attach a `Cache-Control` header to
//! the key set, and can answer with an error status, a non-JSON body, or not at all (`Hang`: the
//! request is held open until the mode changes or the server is dropped).

use super::keys::{jwks, FixtureKey};
use super::server::{respond, BackgroundServer, Handler, HandlerFuture};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// How `/jwks.json` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 with the current key set.
    Normal,
    /// This status with a small JSON error body.
    Status(u16),
    /// 200 with a body that is not JSON.
    Garbage,
    /// No answer until the mode changes (then answers in the new mode) or the server is dropped.
    Hang,
}

struct State {
    jwks: Mutex<Value>,
    issuer: Mutex<String>,
    cache_control: Mutex<Option<String>>,
    fetches: AtomicUsize,
    fetch_times: Mutex<Vec<Instant>>,
    discovery_fetches: AtomicUsize,
    mode: watch::Sender<Mode>,
}

/// A running JWKS server on `127.0.0.1`; dropping it stops it.
pub struct KeyServer {
    state: Arc<State>,
    server: BackgroundServer,
}

impl KeyServer {
    /// Starts on a fresh port serving `keys`.
    pub fn start(keys: &[&FixtureKey]) -> Self {
        let state = Self::state(keys);
        let server = BackgroundServer::start("jwks", Self::handler(state.clone()));
        KeyServer { state, server }
    }

    /// Starts on a specific address (e.g. one reserved earlier so the gateway could be configured
    /// before the key server existed). Retries binding for a few seconds.
    pub fn start_on(addr: SocketAddr, keys: &[&FixtureKey]) -> Self {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let listener = loop {
            match std::net::TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("KeyServer: bind {addr} failed ({e}), retrying");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => panic!("KeyServer: cannot bind reserved address {addr}: {e}"),
            }
        };
        let state = Self::state(keys);
        let server =
            BackgroundServer::start_on_listener("jwks", listener, Self::handler(state.clone()));
        KeyServer { state, server }
    }

    fn state(keys: &[&FixtureKey]) -> Arc<State> {
        let (mode, _) = watch::channel(Mode::Normal);
        Arc::new(State {
            jwks: Mutex::new(jwks(keys)),
            issuer: Mutex::new(super::ISS.to_string()),
            cache_control: Mutex::new(None),
            fetches: AtomicUsize::new(0),
            fetch_times: Mutex::new(Vec::new()),
            discovery_fetches: AtomicUsize::new(0),
            mode,
        })
    }

    fn handler(state: Arc<State>) -> Handler {
        Arc::new(
            move |req: hyper::Request<hyper::body::Incoming>| -> HandlerFuture {
                let state = state.clone();
                Box::pin(async move {
                    let path = req.uri().path().to_string();
                    let host = req
                        .headers()
                        .get(hyper::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("127.0.0.1")
                        .to_string();
                    match (req.method().as_str(), path.as_str()) {
                        ("GET", "/jwks.json") => {
                            lock(&state.fetch_times).push(Instant::now());
                            state.fetches.fetch_add(1, Ordering::SeqCst);
                            let mut rx = state.mode.subscribe();
                            loop {
                                let mode = *rx.borrow_and_update();
                                match mode {
                                    Mode::Normal => {
                                        let body = lock(&state.jwks).to_string();
                                        let mut resp = respond(200, "application/json", body);
                                        let cc = lock(&state.cache_control).clone();
                                        if let Some(v) = cc.and_then(|v| {
                                            hyper::header::HeaderValue::from_str(&v).ok()
                                        }) {
                                            resp.headers_mut()
                                                .insert(hyper::header::CACHE_CONTROL, v);
                                        }
                                        return resp;
                                    }
                                    Mode::Status(code) => {
                                        return respond(
                                            code,
                                            "application/json",
                                            json!({"error": "test"}).to_string(),
                                        )
                                    }
                                    Mode::Garbage => {
                                        return respond(
                                            200,
                                            "application/json",
                                            "<html>this is not a key set</html>",
                                        )
                                    }
                                    Mode::Hang => {
                                        if rx.changed().await.is_err() {
                                            return respond(500, "text/plain", "shutting down");
                                        }
                                    }
                                }
                            }
                        }
                        ("GET", "/.well-known/openid-configuration") => {
                            state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
                            let body = json!({
                                "issuer": *lock(&state.issuer),
                                "jwks_uri": format!("http://{host}/jwks.json"),
                            });
                            respond(200, "application/json", body.to_string())
                        }
                        _ => respond(404, "text/plain", "not found"),
                    }
                })
            },
        )
    }

    /// Replaces the served key set.
    pub fn set_keys(&self, keys: &[&FixtureKey]) {
        *lock(&self.state.jwks) = jwks(keys);
    }

    /// Replaces the served JWKS document with arbitrary JSON.
    pub fn set_jwks(&self, doc: Value) {
        *lock(&self.state.jwks) = doc;
    }

    /// Switches the answer mode; requests hanging in `Hang` are answered in the new mode.
    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.send_replace(mode);
    }

    /// Sets the `issuer` announced by the discovery document.
    pub fn set_issuer(&self, issuer: &str) {
        *lock(&self.state.issuer) = issuer.to_string();
    }

    /// Sets (or with `None` removes) the `Cache-Control` header sent with the key set in
    /// `Normal` mode, e.g. `Some("max-age=60")`.
    pub fn set_cache_control(&self, value: Option<&str>) {
        *lock(&self.state.cache_control) = value.map(str::to_string);
    }

    /// How many `GET /jwks.json` requests arrived (in any mode).
    pub fn fetch_count(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// When each `GET /jwks.json` request arrived, in order (any mode).
    pub fn fetch_times(&self) -> Vec<Instant> {
        lock(&self.state.fetch_times).clone()
    }

    /// How many `GET /.well-known/openid-configuration` requests arrived.
    pub fn discovery_count(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT/jwks.json`
    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr())
    }

    /// `http://127.0.0.1:PORT/.well-known/openid-configuration`
    pub fn discovery_url(&self) -> String {
        format!("http://{}/.well-known/openid-configuration", self.addr())
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        // Wake any hanging handler so the runtime can shut down promptly.
        self.state.mode.send_replace(Mode::Status(503));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
