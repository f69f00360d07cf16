//! A raw HTTP/1.1 client over `std::net::TcpStream`.
//!
//! The request bytes are written exactly as given: no normalisation of the target, no header
//! rewriting. That is what makes path-normalisation and header-spoofing tests real. Every request
//! is sent with `Connection: close`; the response is parsed with `httparse` and its body is framed
//! by `Content-Length`, chunked encoding, or EOF.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long a single request may take end to end before the client gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names as received (case preserved), in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header with this name (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the status and body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!(
                "response body is not JSON ({e}); status {}, headers {:?}, body {:?}",
                self.status,
                self.headers,
                self.text()
            ),
        }
    }

    /// Whether `needle` occurs anywhere in the body or in any header value.
    pub fn mentions(&self, needle: &str) -> bool {
        self.text().contains(needle) || self.headers.iter().any(|(_, v)| v.contains(needle))
    }
}

/// Sends `raw` to `addr` and reads the response; panics on IO or parse errors.
pub fn send(addr: SocketAddr, raw: &[u8]) -> Response {
    match try_send(addr, raw) {
        Ok(r) => r,
        Err(e) => panic!(
            "request to {addr} failed: {e}\nrequest: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(2048)])
        ),
    }
}

/// Sends `raw` to `addr` and reads the response, giving up after [`REQUEST_TIMEOUT`].
pub fn try_send(addr: SocketAddr, raw: &[u8]) -> io::Result<Response> {
    try_send_within(addr, raw, REQUEST_TIMEOUT)
}

/// Sends `raw` to `addr` and reads the response, giving up after `timeout`.
pub fn try_send_within(addr: SocketAddr, raw: &[u8], timeout: Duration) -> io::Result<Response> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(2)))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    stream.write_all(raw)?;
    stream.flush()?;
    let head_request = raw.starts_with(b"HEAD ");

    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    let mut eof = false;
    loop {
        if let Some(resp) = try_parse(&buf, eof, head_request)? {
            return Ok(resp);
        }
        if eof {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed before a complete response; got {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no complete response within {timeout:?}; got {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        match stream.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            }
            // A reset after the server has sent its full answer is a close, not an error.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !buf.is_empty() => eof = true,
            Err(e) => return Err(e),
        }
    }
}

/// Parses a complete response out of `buf`, `Ok(None)` if more bytes are needed.
fn try_parse(buf: &[u8], eof: bool, head_request: bool) -> io::Result<Option<Response>> {
    let mut start = 0;
    loop {
        let mut headers = vec![httparse::EMPTY_HEADER; 256];
        let mut parsed = httparse::Response::new(&mut headers);
        let status = parsed.parse(&buf[start..]).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad response: {e}"))
        })?;
        let head_len = match status {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => return Ok(None),
        };
        let code = parsed.code.unwrap_or(0);
        let hdrs: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let body_start = start + head_len;
        // Skip interim responses (100 Continue and friends).
        if (100..200).contains(&code) && code != 101 {
            start = body_start;
            continue;
        }
        let rest = &buf[body_start..];
        let find = |name: &str| {
            hdrs.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        };
        let body = if head_request || code == 204 || code == 304 {
            Some(Vec::new())
        } else if find("transfer-encoding")
            .map(|v| v.to_ascii_lowercase().contains("chunked"))
            .unwrap_or(false)
        {
            dechunk(rest)?
        } else if let Some(len) = find("content-length") {
            let len: usize = len.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad content-length {len:?}"),
                )
            })?;
            (rest.len() >= len).then(|| rest[..len].to_vec())
        } else if eof {
            Some(rest.to_vec())
        } else {
            None
        };
        return Ok(body.map(|body| Response {
            status: code,
            headers: hdrs,
            body,
        }));
    }
}

/// Decodes a chunked body; `Ok(None)` if it is not complete yet.
fn dechunk(mut rest: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let bad =
        |m: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunked body: {m}"));
    let mut out = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| bad("size line"))?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad(line))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers until an empty line.
            loop {
                let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                if end == 0 {
                    return Ok(Some(out));
                }
                rest = &rest[end + 2..];
            }
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&rest[..size]);
        if &rest[size..size + 2] != b"\r\n" {
            return Err(bad("missing CRLF after chunk"));
        }
        rest = &rest[size + 2..];
    }
}

/// Builds request bytes: the request line with `target` verbatim, a `Host` header (unless one is
/// given), the given headers in order, `Connection: close`, and an empty body.
pub fn build_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut raw = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        raw.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("Connection: close\r\n\r\n");
    raw.into_bytes()
}

/// Sends one request; see [`build_request`].
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    send(addr, &build_request(addr, method, target, headers))
}

/// `GET target` with no extra headers.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    request(addr, "GET", target, &[])
}

/// `GET target` with `Authorization: Bearer <token>`.
pub fn get_with_token(addr: SocketAddr, target: &str, token: &str) -> Response {
    let auth = format!("Bearer {token}");
    request(addr, "GET", target, &[("Authorization", &auth)])
}
