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
//! One timer serves a connection for its whole life (see [`within`]), so that waiting for the next
//! request costs no timer registration.
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
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

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

/// Awaits `fut` until `deadline`, timed by the connection's `timer`: `None` once the deadline has
/// passed first.
///
/// The timer stays registered with tokio from one wait to the next, and is moved only when it
/// would fire after `deadline`; when it fires before, it is moved to `deadline` and the wait goes
/// on. Waiting for the next request on a kept-alive connection thus moves no timer, since its
/// deadline only grows, until the timer reaches its own deadline: then it wakes the task once and
/// is registered again, at the deadline of the wait then running. On a busy connection that is
/// once at the first request's `header_timeout` and then about once per `keepalive_timeout` (a
/// head arriving in pieces moves it earlier, to that head's deadline). A timer made
/// and dropped per wait (`tokio::time::timeout`) takes the timer wheel's lock to insert and again
/// to remove on every request whose head has to be waited for, and when the worker last parked with no
/// earlier timer, the insert also writes to the runtime's wake-up eventfd (tokio cannot tell that
/// the thread registering is the one that would sleep), and the next park returns at once: with
/// one connection, where the worker parks between requests, that was an eventfd write and an
/// extra `epoll_wait` on every request (`benches/syscalls.sh`: 8.99 system calls per request
/// before, 7.00 after).
async fn within<F: Future>(
    mut timer: Pin<&mut Sleep>,
    deadline: Instant,
    fut: F,
) -> Option<F::Output> {
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    tokio::pin!(fut);
    loop {
        tokio::select! {
            // What is ready wins over a deadline reached at the same moment, as with `timeout`.
            biased;
            out = &mut fut => return Some(out),
            () = timer.as_mut() => {
                // It fired at its own deadline, which is at most `deadline`.
                if timer.deadline() >= deadline {
                    return None;
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

/// Reads one request head from `stream`, within `bounds`, timed by the connection's `timer`
/// (any deadline: [`within`] moves it).
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    bounds: Bounds,
    mut timer: Pin<&mut Sleep>,
) -> Head {
    let mut buf = BytesMut::with_capacity(INITIAL_BUFFER);
    let first_byte = Instant::now() + bounds.first_byte;
    match within(timer.as_mut(), first_byte, stream.read_buf(&mut buf)).await {
        Some(Ok(n)) if n > 0 => {}
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
        match within(timer.as_mut(), deadline, stream.read_buf(&mut buf)).await {
            Some(Ok(n)) if n > 0 => {}
            Some(_) => return Head::Gone,
            None => return Head::TimedOut,
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
    async fn next_head(
        &self,
        stream: &mut Stream,
        bounds: Bounds,
        timer: Pin<&mut Sleep>,
    ) -> Option<BytesMut> {
        let refused = match read_head(stream, bounds, timer).await {
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
        // The connection's one timer (`within`). Its placeholder deadline is later than any wait's,
        // so the first wait registers it once, at that wait's deadline; an elapsed placeholder
        // would be registered, fire and be registered again.
        let timer = tokio::time::sleep(Duration::MAX);
        tokio::pin!(timer);
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
                    head = self.next_head(&mut stream, bounds, timer.as_mut()) => head,
                    _ = watch.wait_for(|down| *down) => None,
                }
            } else {
                self.next_head(&mut stream, bounds, timer.as_mut()).await
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
