//! `Echo`: a recording upstream.
//!
//! Answers every request with 200 and a JSON description of what it received
//! (`{"method", "path", "headers"}`), and records each request so tests can assert what the
//! gateway forwarded, and that rejected requests were never forwarded at all. Optionally waits
//! before answering, to provoke upstream read timeouts.

use super::server::{respond, BackgroundServer, HandlerFuture};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target as received, including the query string.
    pub target: String,
    /// Header names lowercased, in order, duplicates kept.
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header (name case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A running recording upstream on `127.0.0.1`; dropping it stops it.
pub struct Echo {
    log: Arc<Mutex<Vec<Recorded>>>,
    server: BackgroundServer,
}

impl Echo {
    /// Starts an echo that answers immediately.
    pub fn start() -> Self {
        Self::start_with_delay(Duration::ZERO)
    }

    /// Starts an echo that waits `delay` before answering each request.
    pub fn start_with_delay(delay: Duration) -> Self {
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::new(Mutex::new(Vec::new()));
        let recorder = log.clone();
        let server = BackgroundServer::start(
            "echo",
            Arc::new(
                move |req: hyper::Request<hyper::body::Incoming>| -> HandlerFuture {
                    let recorder = recorder.clone();
                    Box::pin(async move {
                        let method = req.method().to_string();
                        let target = req
                            .uri()
                            .path_and_query()
                            .map(|pq| pq.as_str().to_string())
                            .unwrap_or_else(|| req.uri().to_string());
                        let headers: Vec<(String, String)> = req
                            .headers()
                            .iter()
                            .map(|(n, v)| {
                                (
                                    n.as_str().to_ascii_lowercase(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect();
                        let recorded = Recorded {
                            method,
                            target,
                            headers,
                        };
                        lock(&recorder).push(recorded.clone());
                        // Drain the request body so the connection stays usable.
                        let _ = req.into_body().collect().await;
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let mut header_map = Map::new();
                        for (n, v) in &recorded.headers {
                            let entry = header_map
                                .entry(n.clone())
                                .or_insert_with(|| Value::Array(Vec::new()));
                            if let Value::Array(values) = entry {
                                values.push(Value::String(v.clone()));
                            }
                        }
                        let body = json!({
                            "method": recorded.method,
                            "path": recorded.target,
                            "headers": header_map,
                        });
                        respond(200, "application/json", body.to_string())
                    })
                },
            ),
        );
        Echo { log, server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        lock(&self.log).len()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.log).clone()
    }

    /// The most recent request; panics if there was none.
    pub fn last(&self) -> Recorded {
        lock(&self.log)
            .last()
            .cloned()
            .expect("the echo upstream received no request")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
