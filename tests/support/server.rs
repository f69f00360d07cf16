//! A tiny hyper HTTP/1.1 server on its own tokio runtime, shared by [`super::KeyServer`] and
//! [`super::Echo`].
//!
//! Tests are plain synchronous `#[test]` functions, so each server owns a multi-threaded runtime
//! with one worker thread. Dropping the server shuts the runtime down, which cancels the accept
//! loop and every open connection (including handlers that are deliberately hanging).

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The boxed future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;

/// A request handler: called once per request.
pub type Handler = Arc<dyn Fn(Request<Incoming>) -> HandlerFuture + Send + Sync>;

/// A running server; dropping it stops it.
pub struct BackgroundServer {
    runtime: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
}

impl BackgroundServer {
    /// Binds `127.0.0.1:0` and serves `handler`.
    pub fn start(name: &str, handler: Handler) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        Self::start_on_listener(name, listener, handler)
    }

    /// Serves `handler` on an already bound listener.
    pub fn start_on_listener(
        name: &str,
        listener: std::net::TcpListener,
        handler: Handler,
    ) -> Self {
        let addr = listener.local_addr().expect("listener address");
        listener
            .set_nonblocking(true)
            .expect("set listener non-blocking");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("test-{name}"))
            .enable_all()
            .build()
            .expect("build tokio runtime");
        runtime.spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("test server: cannot adopt listener: {e}");
                    return;
                }
            };
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let fut = handler(req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    // Connection errors (client went away, gateway reset) are not test failures.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        BackgroundServer {
            runtime: Some(runtime),
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A response with a status, a content type and a body.
pub fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
