//! Reading each request head under one deadline, before pingora parses it.
//!
//! pingora 0.9 bounds each *read* of a request head (60 s), not the head as a whole, so a client
//! that drips a byte every few seconds holds a connection and its task for as long as it likes
//! (slowloris). nginx (`client_header_timeout`) and HAProxy (`timeout http-request`) bound the
//! whole head instead, and so does this layer: it reads until the blank line that ends the head,
//! within `header_timeout`, and then hands the bytes to pingora as the connection's already-read
//! prefix. Parsing, validation and everything after stay pingora's; the proxy hooks never see a
//! difference.
//!
//! The clock starts when the connection is accepted for its first request, and at the first byte
//! of each later request on a kept-alive connection: the idle wait between requests is bounded
//! by `keepalive_timeout` instead, as in nginx.
//!
//! Only cleartext HTTP/1.x reaches this layer: tokengate's listeners are plain TCP and h2c is
//! off, so there is no other protocol to hand on.

use crate::proxy::Gateway;
use crate::reject::{Rejection, Response};
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// What reading a head produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// The bytes up to and including the blank line ending the head, and maybe body bytes after.
    Complete(BytesMut),
    /// The client closed, reset or stayed silent: nothing to answer.
    Gone,
    /// Part of a head arrived, but not all of it before the deadline.
    TimedOut,
    /// More than the allowed head bytes arrived without a blank line.
    TooLarge,
}

/// Bounds for one head.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// How long to wait for the first byte.
    pub first_byte: Duration,
    /// When the whole head must have arrived; `None` starts the clock at the first byte.
    pub deadline: Option<Instant>,
    /// The head's allowance from its first byte, when `deadline` is `None`.
    pub header_timeout: Duration,
    /// The most head bytes read while looking for its end.
    pub max_bytes: usize,
}

/// pingora's initial header buffer; the head is read into a buffer pingora then keeps.
const INITIAL_BUFFER: usize = 4096;

/// Reads one request head from `stream`, within `bounds`.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, bounds: Bounds) -> Head {
    let mut buf = BytesMut::with_capacity(INITIAL_BUFFER);
    let first = tokio::time::timeout(bounds.first_byte, stream.read_buf(&mut buf)).await;
    match first {
        Ok(Ok(n)) if n > 0 => {}
        _ => return Head::Gone,
    }
    let deadline = bounds
        .deadline
        .unwrap_or_else(|| Instant::now() + bounds.header_timeout);
    // Where the search for the blank line resumes: a terminator can straddle two reads.
    let mut scanned = 0;
    loop {
        if head_ends(&buf, scanned) {
            return Head::Complete(buf);
        }
        if buf.len() > bounds.max_bytes {
            return Head::TooLarge;
        }
        scanned = buf.len().saturating_sub(2);
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return Head::Gone,
            Err(_) => return Head::TimedOut,
        }
    }
}

/// Whether `buf` holds the empty line that ends a head (`\n\n` or `\n\r\n`), looking from
/// `from`. httparse accepts bare LF line endings, so both spellings must count; finding one is
/// necessary for pingora to see a complete head, so an answer of "no" is never premature.
/// Empty lines before the request line are skipped, as httparse skips them (RFC 9112 §2.2):
/// otherwise a client could open with a blank line and then drip the real head past the deadline.
fn head_ends(buf: &[u8], from: usize) -> bool {
    let leading = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let mut rest = &buf[from.max(leading).min(buf.len())..];
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        rest = &rest[i + 1..];
        match rest {
            [b'\n', ..] | [b'\r', b'\n', ..] => return true,
            _ => {}
        }
    }
    false
}

/// The bytes of a whole HTTP/1.1 response for a denial sent before any request exists, closing
/// the connection.
pub fn raw_response(resp: &Response) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(resp.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        resp.status,
        resp.body.len()
    )
    .into_bytes();
    out.extend_from_slice(&resp.body);
    out
}

/// Answers a head that will not be read (too slow, too large) and closes the connection.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, rejection: Rejection) {
    let bytes = raw_response(&rejection.respond());
    // The client may already be gone; there is nobody left to tell.
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// The proxy application with head deadlines in front of pingora's HTTP/1 loop.
pub struct HeadDeadline {
    proxy: Arc<HttpProxy<Gateway>>,
    runtime: Arc<ArcSwap<Runtime>>,
}

impl HeadDeadline {
    pub fn new(proxy: HttpProxy<Gateway>, runtime: Arc<ArcSwap<Runtime>>) -> Self {
        HeadDeadline {
            proxy: Arc::new(proxy),
            runtime,
        }
    }

    /// Reads the next head, or answers and gives up on the connection.
    async fn next_head(&self, stream: &mut Stream, bounds: Bounds) -> Option<BytesMut> {
        let refused = match read_head(stream, bounds).await {
            Head::Complete(buf) => return Some(buf),
            Head::Gone => return None,
            Head::TimedOut => Rejection::HeaderTimeout,
            Head::TooLarge => Rejection::HeadersTooLarge("the request head is too large"),
        };
        self.runtime.load().unmatched.count(refused.reason());
        refuse(stream, refused).await;
        None
    }
}

#[async_trait]
impl ServerApp for HeadDeadline {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let accepted = Instant::now();
        // Whether this is a later request on the connection, and what pingora carried to it.
        let mut carried: Option<Option<HttpPersistentSettings>> = None;
        loop {
            let (header_timeout, keepalive, max_bytes) = {
                let runtime = self.runtime.load();
                let s = &runtime.settings;
                (
                    s.header_timeout,
                    s.keepalive_timeout,
                    s.limits.max_total_bytes,
                )
            };
            let reused = carried.is_some();
            let bounds = if reused {
                Bounds {
                    first_byte: keepalive,
                    deadline: None,
                    header_timeout,
                    max_bytes,
                }
            } else {
                Bounds {
                    first_byte: header_timeout,
                    deadline: Some(accepted + header_timeout),
                    header_timeout,
                    max_bytes,
                }
            };
            let head = if reused {
                // An idle kept-alive connection is dropped as soon as shutdown begins, as
                // pingora does for the requests it parks.
                let mut watch = shutdown.clone();
                if *watch.borrow() {
                    return None;
                }
                tokio::select! {
                    biased;
                    head = self.next_head(&mut stream, bounds) => head,
                    _ = watch.wait_for(|down| *down) => None,
                }
            } else {
                self.next_head(&mut stream, bounds).await
            }?;

            let mut session = ServerSession::new_http1(stream);
            let mut settings = match carried.take() {
                Some(Some(settings)) => settings,
                Some(None) => HttpPersistentSettings::for_session(&session),
                None => {
                    // The first request on the connection: what pingora's own loop sets.
                    session.set_keepalive(if *shutdown.borrow() {
                        None
                    } else {
                        Some(keepalive.as_secs().max(1))
                    });
                    HttpPersistentSettings::for_session(&session)
                }
            };
            settings.set_pipelined_prefix(head);
            settings.apply_to_session(&mut session);

            let (next, next_settings) = self
                .proxy
                .process_new_http(session, shutdown)
                .await?
                .consume();
            stream = next;
            carried = Some(next_settings);
        }
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests;
