//! The admin listener: `/metrics`, `/healthz` and `/readyz`, for Prometheus and orchestrators.
//!
//! It must stay cheap and must never expose configuration, keys or request data. Bind it to
//! loopback or a management network: it is not authenticated.

use crate::metrics::Metrics;
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

/// Serves the admin endpoints.
pub struct Admin {
    runtime: Arc<ArcSwap<Runtime>>,
    metrics: Arc<Metrics>,
}

impl Admin {
    pub fn new(runtime: Arc<ArcSwap<Runtime>>, metrics: Arc<Metrics>) -> Self {
        Admin { runtime, metrics }
    }
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = r.body().len();
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, len.into());
    r
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let text = "text/plain; charset=utf-8";
        match session.req_header().uri.path() {
            "/metrics" => {
                let rt = self.runtime.load();
                rt.observe_key_age(std::time::SystemTime::now());
                self.metrics.token_cache_entries.set(rt.tokens.len() as i64);
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.metrics.render(),
                )
            }
            "/healthz" => reply(StatusCode::OK, text, b"ok\n".to_vec()),
            "/readyz" => {
                let rt = self.runtime.load();
                let missing: Vec<&str> = rt
                    .issuers
                    .iter()
                    .filter(|i| i.keys.get().is_none())
                    .map(|i| i.name.as_str())
                    .collect();
                if missing.is_empty() {
                    reply(StatusCode::OK, text, b"ready\n".to_vec())
                } else {
                    let body = format!("not ready: no keys for issuer(s) {}\n", missing.join(", "));
                    reply(StatusCode::SERVICE_UNAVAILABLE, text, body.into_bytes())
                }
            }
            _ => reply(StatusCode::NOT_FOUND, text, b"not found\n".to_vec()),
        }
    }
}
