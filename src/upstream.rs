//! Upstreams: choosing a target, and the header hygiene applied to every forwarded request.
//!
//! Header hygiene is a security boundary: the upstream trusts identity headers because only the
//! gateway can set them. So every inbound copy of every identity header, in any case and any
//! number of duplicates, is removed on every route before the gateway sets its own, and the
//! client's `X-Forwarded-For` is replaced rather than extended.

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::lb::{selection::RoundRobin, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;
use std::net::IpAddr;
use std::time::Duration;

/// One compiled `[[upstream]]`.
pub struct Upstream {
    pub name: String,
    targets: LoadBalancer<RoundRobin>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Resolves `targets` (host:port) once, at load time.
    pub fn new(
        name: String,
        targets: &[String],
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> std::io::Result<Self> {
        Ok(Upstream {
            name,
            targets: LoadBalancer::try_from_iter(targets.iter().map(String::as_str))?,
            connect_timeout,
            read_timeout,
        })
    }

    /// The next target, round-robin, as a plain-HTTP peer with this upstream's timeouts.
    pub fn peer(&self) -> Option<Box<HttpPeer>> {
        let backend = self.targets.select(b"", 256)?;
        let mut peer = HttpPeer::new(backend.addr, false, String::new());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.total_connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        peer.options.write_timeout = Some(self.read_timeout);
        Some(Box::new(peer))
    }
}

/// Every identity header the gateway may set, to be removed from inbound requests.
#[derive(Debug, Clone, Default)]
pub struct IdentityHeaders {
    /// Lower-case prefix reserved for the gateway (default `x-auth-`), `_` written as `-`;
    /// empty disables it.
    pub prefix: String,
    /// Names set by any route's `forward_claims`, whatever their prefix.
    pub names: Vec<HeaderName>,
}

/// Headers that make an upstream framework change the host, scheme, client address, path or
/// method it acts on. The gateway decided on what it saw, so none of them may reach the upstream
/// from the client: an upstream honouring `X-Forwarded-Host` or `X-HTTP-Method-Override` would
/// otherwise act on a request other than the one the route allowed.
const OVERRIDES: [&str; 14] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "forwarded",
    "x-real-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

impl IdentityHeaders {
    /// Whether a client-sent header `name` must be removed. Names compare with `_` read as `-`,
    /// because CGI-style upstreams (WSGI, Rack, PHP) map both spellings to the same variable.
    fn reserved(&self, name: &str) -> bool {
        let folded: std::borrow::Cow<'_, str> = if name.contains('_') {
            name.replace('_', "-").into()
        } else {
            name.into()
        };
        (!self.prefix.is_empty() && folded.starts_with(self.prefix.as_str()))
            || self.names.iter().any(|n| n.as_str() == folded)
            || OVERRIDES.contains(&folded.as_ref())
    }

    /// Removes every client-sent identity or routing-override header from `req`, in any case,
    /// spelling and number of copies.
    pub fn strip(&self, req: &mut RequestHeader) {
        let doomed: Vec<HeaderName> = req
            .headers
            .keys()
            .filter(|n| self.reserved(n.as_str()))
            .cloned()
            .collect();
        for name in doomed {
            req.remove_header(&name);
        }
    }
}

/// Sets the forwarding headers for the client at `client` (replacing any client-sent copies).
pub fn set_forwarded(req: &mut RequestHeader, client: Option<IpAddr>) -> pingora::Result<()> {
    if let Some(ip) = client {
        req.insert_header("x-forwarded-for", ip.to_string())?;
    }
    req.insert_header("x-forwarded-proto", HeaderValue::from_static("http"))?;
    Ok(())
}
