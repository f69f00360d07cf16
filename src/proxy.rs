//! The pingora hooks: thin glue that sequences the pure core around the proxy's IO.
//!
//! `request_filter` takes a runtime snapshot, calls `decision::decide`, and either keeps the
//! permit or writes the rejection. The later hooks apply the permit (path, identity headers) and
//! record metrics. No policy logic lives here.

use crate::access;
use crate::decision::{self, Permit};
use crate::jwks::refresh;
use crate::metrics::Metrics;
use crate::reject::{Reason, Rejection, Response};
use crate::route::Route;
use crate::runtime::Runtime;
use crate::upstream;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The proxy application.
pub struct Gateway {
    runtime: Arc<ArcSwap<Runtime>>,
    metrics: Arc<Metrics>,
}

impl Gateway {
    pub fn new(runtime: Arc<ArcSwap<Runtime>>, metrics: Arc<Metrics>) -> Self {
        Gateway { runtime, metrics }
    }
}

/// Per-request state.
pub struct Ctx {
    start: Instant,
    runtime: Option<Arc<Runtime>>,
    route: Option<Arc<Route>>,
    permit: Option<Permit>,
    reason: Reason,
    decide_time: std::time::Duration,
    upstream_status: Option<u16>,
}

impl Ctx {
    /// The matched route's name, or the metrics' name for no route.
    fn route_name(&self) -> &str {
        self.route
            .as_ref()
            .map_or(crate::metrics::UNMATCHED_ROUTE, |r| r.name.as_str())
    }
}

/// Unix time in whole seconds, the clock every rule is checked against.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Writes a rejection response. The body is small and complete, so it is sent in one go.
async fn write(session: &mut Session, resp: Response) -> Result<()> {
    let mut h = ResponseHeader::build(resp.status, Some(5))?;
    h.insert_header("content-type", "application/json")?;
    h.insert_header("cache-control", "no-store")?;
    h.insert_header("content-length", resp.body.len().to_string())?;
    if let Some(c) = &resp.challenge {
        h.insert_header("www-authenticate", c.as_str())?;
    }
    if let Some(r) = resp.retry_after {
        h.insert_header("retry-after", r.to_string())?;
    }
    session.write_response_header(Box::new(h), false).await?;
    session
        .write_response_body(Some(Bytes::from(resp.body)), true)
        .await
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            runtime: None,
            route: None,
            permit: None,
            reason: Reason::Ok,
            decide_time: std::time::Duration::ZERO,
            upstream_status: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let runtime = self.runtime.load_full();
        // pingora keeps an idle HTTP/1.1 connection open forever (or as long as the client's
        // Keep-Alive header asks); cap the wait for the next request.
        let cap = runtime.settings.keepalive_timeout.as_secs().max(1);
        if session.get_keepalive().is_some_and(|t| t == 0 || t > cap) {
            session.set_keepalive(Some(cap));
        }
        // The decide time runs from the context's creation, just before this hook: it also
        // counts pingora's early request filter and downstream modules (none are configured),
        // and saves a clock read.
        let req = session.req_header();
        let mut decision = decision::decide_raw(&runtime, req, req.raw_path(), unix_now());
        if let Some((issuer, kid)) = decision.key_miss.take() {
            if refresh::refetch_for_unknown_kid(&issuer, &kid).await {
                let req = session.req_header();
                decision = decision::decide_raw(&runtime, req, req.raw_path(), unix_now());
            }
        }
        ctx.decide_time = ctx.start.elapsed();
        self.metrics.decide().observe(ctx.decide_time.as_secs_f64());
        ctx.route = decision.route;
        ctx.runtime = Some(runtime);
        match decision.outcome {
            Ok(permit) => {
                ctx.permit = Some(permit);
                Ok(false)
            }
            Err(rejection) => {
                ctx.reason = rejection.reason();
                // An unread request body would desynchronise a reused connection.
                if session.req_header().headers.contains_key("content-length")
                    || session
                        .req_header()
                        .headers
                        .contains_key("transfer-encoding")
                {
                    session.set_keepalive(None);
                }
                write(session, rejection.respond()).await?;
                Ok(true)
            }
        }
    }

    /// What pingora's own logs say about a request (upstream failures are logged at warn or
    /// error). pingora's default prints the request target with its query, which may carry a
    /// token (`?access_token=`, RFC 6750 §2.3) or other secrets; the access log leaves the query
    /// out for the same reason.
    fn request_summary(&self, session: &Session, ctx: &Ctx) -> String {
        let req = session.req_header();
        format!(
            "{} {}, route {}",
            req.method,
            req.uri.path(),
            ctx.route_name()
        )
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        ctx.route
            .as_ref()
            .map(|r| r.upstream.peer())
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "forwarding without a route"))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let (Some(runtime), Some(route), Some(permit)) = (&ctx.runtime, &ctx.route, &ctx.permit)
        else {
            return Error::e_explain(ErrorType::InternalError, "forwarding without a permit");
        };
        runtime.identity.strip(req);
        // pingora calls this hook again for each retry (a reused upstream connection that fails
        // is retried on a new one), each time with a fresh copy of the client's request, so the
        // headers are rendered for each attempt.
        for (name, value) in permit.identity_headers(route) {
            req.insert_header(name, value)?;
        }
        if route.strip_authorization {
            req.remove_header("authorization");
        }
        if let Some(host) = &permit.host {
            req.insert_header("host", host.as_str())?;
        }
        // Marked sensitive so that no debug log (pingora's included) prints the token.
        if let Some(mut v) = req.headers.get(http::header::AUTHORIZATION).cloned() {
            v.set_sensitive(true);
            req.insert_header(http::header::AUTHORIZATION, v)?;
        }
        // Rewritten only where the bytes on the wire would differ, as the host is: `raw_path` is
        // exactly the request target pingora writes upstream.
        if req.raw_path() != permit.path_and_query.as_bytes() {
            let uri = permit.path_and_query.parse().map_err(|_| {
                Error::explain(ErrorType::InternalError, "normalised path is not a URI")
            })?;
            req.set_uri(uri);
        }
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        upstream::set_forwarded(req, client)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let rejection = match (e.esource(), e.etype()) {
            (
                ErrorSource::Upstream,
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ) => Some(Rejection::UpstreamTimeout),
            (ErrorSource::Upstream, _) => Some(Rejection::UpstreamUnavailable),
            (ErrorSource::Internal | ErrorSource::Unset, _) if ctx.permit.is_some() => {
                Some(Rejection::UpstreamUnavailable)
            }
            _ => None,
        };
        let Some(rejection) = rejection else {
            // Downstream trouble: the client went away or sent garbage; nothing useful to add.
            let code = match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            };
            if code > 0 {
                ctx.reason = Reason::InvalidRequest;
                let _ = session.respond_error(code).await;
            }
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        };
        ctx.reason = rejection.reason();
        let resp = rejection.respond();
        let status = resp.status;
        if let Err(err) = write(session, resp).await {
            tracing::debug!(error = %err, "could not send the upstream error response");
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_status = Some(upstream_response.status.as_u16());
        Ok(())
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let (Some(runtime), elapsed) = (&ctx.runtime, ctx.start.elapsed()) else {
            return;
        };
        let metrics = ctx
            .route
            .as_ref()
            .map_or(&runtime.unmatched, |r| &r.metrics);
        metrics.count(ctx.reason);
        metrics.duration.observe(elapsed.as_secs_f64());
        if !runtime.settings.log.access_log {
            return;
        }
        let req = session.req_header();
        let verified = ctx.permit.as_ref().and_then(|p| p.verified.as_ref());
        let entry = access::Entry {
            route: ctx.route_name(),
            method: req.method.as_str(),
            // The query is left out: it may carry secrets (`?access_token=`, RFC 6750 §2.3).
            path: ctx.permit.as_ref().map_or(req.uri.path(), |p| {
                p.path_and_query
                    .split_once('?')
                    .map_or(p.path_and_query.as_str(), |(path, _)| path)
            }),
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            issuer: verified.map(|v| v.issuer.name.as_str()),
            sub: verified
                .and_then(|v| v.claims.get("sub"))
                .and_then(|s| s.as_str()),
            client: verified.and_then(|v| v.client.as_deref()),
            upstream: ctx
                .permit
                .as_ref()
                .and(ctx.route.as_ref())
                .map(|r| r.upstream.name.as_str()),
            upstream_status: ctx.upstream_status,
            duration_us: elapsed.as_micros() as u64,
            decide_us: ctx.decide_time.as_micros() as u64,
        };
        access::record(ctx.reason, &entry);
    }
}
