//! Upstreams: choosing a target, and the header hygiene applied to every forwarded request.
//!
//! Header hygiene is a security boundary: the upstream trusts identity headers because only the
//! gateway can set them. So every inbound copy of every identity header, in any case and any
//! number of duplicates, is removed on every route before the gateway sets its own, and the
//! client's `X-Forwarded-For` is replaced rather than extended.

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// One compiled `[[upstream]]`.
pub struct Upstream {
    pub name: String,
    /// One peer per resolved target address, with this upstream's timeouts, in config order and
    /// then resolver order. Built once because every target is always eligible: no health checks
    /// or discovery are configured. If health checks are ever added, `peer` must consult them.
    peers: Box<[HttpPeer]>,
    /// The round-robin position, shared by every route using this upstream and reset with each
    /// reload. `Relaxed` is enough: only the spread matters, not an order between threads; on
    /// overflow it wraps, and one target is picked twice in a row once every 2^64 requests.
    next: AtomicUsize,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Resolves `targets` (host:port) at load time, which includes every reload: the only time
    /// DNS is read again. A name contributes every address it resolves to; an address named twice
    /// is used once. A list that resolves to no address at all is an error, so that a route can
    /// never load without somewhere to forward to.
    pub fn new(
        name: String,
        targets: &[String],
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> std::io::Result<Self> {
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for target in targets {
            for addr in target.as_str().to_socket_addrs()? {
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
        }
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "resolves to no address",
            ));
        }
        let peers = addrs
            .into_iter()
            .map(|addr| {
                let mut peer = HttpPeer::new(addr, false, String::new());
                peer.options.connection_timeout = Some(connect_timeout);
                peer.options.total_connection_timeout = Some(connect_timeout);
                peer.options.read_timeout = Some(read_timeout);
                peer.options.write_timeout = Some(read_timeout);
                peer
            })
            .collect();
        Ok(Upstream {
            name,
            peers,
            next: AtomicUsize::new(0),
        })
    }

    /// The next target, round-robin, as a plain-HTTP peer with this upstream's timeouts. `new`
    /// refuses a list without addresses, so there is always one; a single target skips the
    /// shared counter.
    pub fn peer(&self) -> Box<HttpPeer> {
        let i = match self.peers.len() {
            1 => 0,
            n => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        Box::new(self.peers[i].clone())
    }
}

/// Every identity header the gateway may set, to be removed from inbound requests.
///
/// Both fields hold names already [`folded`], so that matching a client's header costs no
/// allocation: only the client's side is folded, byte by byte, as it is compared.
#[derive(Debug, Clone, Default)]
pub struct IdentityHeaders {
    /// Lower-case prefix reserved for the gateway (default `x-auth-`), `_` written as `-`;
    /// empty disables it.
    pub prefix: String,
    /// Names set by any route's `forward_claims`, whatever their prefix, [`folded`].
    pub names: Vec<HeaderName>,
}

/// `name` with every `_` written as `-`: the form in which two header names are the same to a
/// CGI-style upstream (WSGI, Rack, PHP and Go's `net/http/cgi` map both to one `HTTP_*` variable).
pub fn folded(name: &HeaderName) -> HeaderName {
    if !name.as_str().contains('_') {
        return name.clone();
    }
    let bytes: Vec<u8> = name.as_str().bytes().map(fold).collect();
    // `-` is a token character wherever `_` was one, so this cannot fail; keeping the original
    // on the impossible path keeps compilation panic-free.
    HeaderName::from_bytes(&bytes).unwrap_or_else(|_| name.clone())
}

fn fold(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b
    }
}

/// Whether the lower-case header name `name` is `folded` once its `_` are read as `-`.
fn reads_as(name: &[u8], folded: &[u8]) -> bool {
    name.len() == folded.len() && name.iter().zip(folded).all(|(&a, &b)| fold(a) == b)
}

/// Headers that make an upstream framework change the host, scheme, client address, path or
/// method it acts on. The gateway decided on what it saw, so none of them may reach the upstream
/// from the client: an upstream honouring `X-Forwarded-Host` or `X-HTTP-Method-Override` would
/// otherwise act on a request other than the one the route allowed.
const OVERRIDES: [&str; 24] = [
    // host, scheme and port
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "forwarded",
    "x-original-host",
    // the scheme, as Rack, Django and IIS-era proxies spell it
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "front-end-https",
    "x-url-scheme",
    // the client address
    "x-real-ip",
    "client-ip",
    "true-client-ip",
    "x-client-ip",
    // the path
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-envoy-original-path",
    // the method
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

impl IdentityHeaders {
    /// Whether a client-sent header `name` (lower-case, as `HeaderName` keeps it) must be
    /// removed. Names compare [`folded`] on both sides: a client's `x-user` must go when a route
    /// forwards `x_user`, and its `x_user` when a route forwards `x-user`.
    fn reserved(&self, name: &str) -> bool {
        let name = name.as_bytes();
        let prefix = self.prefix.as_bytes();
        (!prefix.is_empty()
            && name
                .get(..prefix.len())
                .is_some_and(|h| reads_as(h, prefix)))
            || self
                .names
                .iter()
                .any(|n| reads_as(name, n.as_str().as_bytes()))
            || OVERRIDES.iter().any(|o| reads_as(name, o.as_bytes()))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn identity(prefix: &str, names: &[&str]) -> IdentityHeaders {
        IdentityHeaders {
            prefix: prefix.into(),
            names: names
                .iter()
                .map(|n| folded(&HeaderName::from_bytes(n.as_bytes()).unwrap()))
                .collect(),
        }
    }

    fn upstream(list: &[&str]) -> std::io::Result<Upstream> {
        let list: Vec<String> = list.iter().map(|t| t.to_string()).collect();
        Upstream::new(
            "u".into(),
            &list,
            Duration::from_secs(1),
            Duration::from_secs(2),
        )
    }

    fn picks(u: &Upstream, n: usize) -> Vec<String> {
        (0..n).map(|_| u.peer()._address.to_string()).collect()
    }

    #[test]
    fn targets_take_turns_in_config_order_and_a_repeated_one_counts_once() {
        let u = upstream(&["127.0.0.1:1", "[::1]:2", "127.0.0.1:3", "127.0.0.1:1"]).unwrap();
        let once = ["127.0.0.1:1", "[::1]:2", "127.0.0.1:3"];
        assert_eq!(picks(&u, 6), [once, once].concat());
    }

    #[test]
    fn the_turn_wraps_around_the_counter() {
        let u = upstream(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]).unwrap();
        u.next.store(usize::MAX, Ordering::Relaxed);
        // usize::MAX % 3 == 0, then the counter wraps to 0.
        assert_eq!(picks(&u, 3), ["127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:2"]);
    }

    #[test]
    fn every_peer_carries_the_upstream_timeouts() {
        let u = upstream(&["127.0.0.1:8080", "127.0.0.1:8081"]).unwrap();
        for _ in 0..2 {
            let p = u.peer();
            assert_eq!(p.options.connection_timeout, Some(Duration::from_secs(1)));
            assert_eq!(
                p.options.total_connection_timeout,
                Some(Duration::from_secs(1))
            );
            assert_eq!(p.options.read_timeout, Some(Duration::from_secs(2)));
            assert_eq!(p.options.write_timeout, Some(Duration::from_secs(2)));
            assert!(!p.is_tls());
        }
    }

    #[test]
    fn a_malformed_target_fails_the_whole_list_and_an_empty_list_is_refused() {
        assert!(upstream(&["no-port"]).is_err());
        assert!(upstream(&["127.0.0.1:1", "no-port"]).is_err());
        assert!(upstream(&[]).is_err());
    }

    #[test]
    fn folded_writes_underscores_as_dashes() {
        for (name, want) in [
            ("x_user", "x-user"),
            ("x-user", "x-user"),
            ("_a__b_", "-a--b-"),
        ] {
            let h = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(folded(&h).as_str(), want, "{name}");
        }
    }

    #[test]
    fn reserved_names_match_in_every_spelling_on_both_sides() {
        // Configured as `x_user` or as `x-user`: the same set of client names is removed.
        for configured in ["x_user", "x-user"] {
            let ids = identity("x-auth-", &[configured]);
            for (client, reserved) in [
                ("x-user", true),
                ("x_user", true),
                ("x-auth-sub", true),
                ("x_auth_sub", true),
                ("x-auth_", true),
                ("x-forwarded-for", true),
                ("x_forwarded_for", true),
                ("x_real_ip", true),
                ("x-user-id", false),
                ("x-use", false),
                ("xuser", false),
                ("x-auth", false),
                ("accept", false),
            ] {
                assert_eq!(ids.reserved(client), reserved, "{configured}: {client}");
            }
        }
    }

    #[test]
    fn an_empty_prefix_reserves_only_named_headers() {
        let ids = identity("", &["x_user"]);
        assert!(ids.reserved("x-user"));
        assert!(!ids.reserved("x-auth-sub"));
        assert!(!ids.reserved(""));
    }
}
