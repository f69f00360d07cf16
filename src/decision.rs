//! The whole decision for one request: normalise, route, extract, verify, apply policy.
//!
//! Pure and pingora-free: it reads the request head as `http` types, takes the current time as an
//! argument, and returns either a permit (what to forward, and with which identity headers) or a
//! rejection. The proxy only sequences IO around it.

use crate::claims::{ClaimPath, Claims};
use crate::issuer::Issuer;
use crate::path;
use crate::policy;
use crate::reject::Rejection;
use crate::route::{Auth, Route};
use crate::runtime::{HeaderLimits, Runtime};
use crate::token::{self, ExtractError};
use crate::verify::{self, Rendered, Verified};
use http::header::{AUTHORIZATION, HOST};
use http::request::Parts;
use http::{HeaderValue, Method};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// Identity headers to set on the upstream request: each name as [`ForwardClaim::wire`] holds it.
///
/// [`ForwardClaim::wire`]: crate::route::ForwardClaim::wire
pub type IdentityHeaders = Vec<(bytes::Bytes, HeaderValue)>;

/// What to forward.
#[derive(Debug)]
pub struct Permit {
    /// The normalised path that was matched, plus the original query.
    pub path_and_query: String,
    /// The `Host` to send when the client's differs from it: the canonical host that was
    /// matched, with the client's port. `None` when the client's single `Host` already reads
    /// exactly so (most requests: a rewrite costs allocations and header-map updates), or when
    /// an HTTP/1.0 request named no host.
    pub host: Option<String>,
    /// The verified token, for the identity headers and logging; `None` on `auth = "none"`
    /// routes.
    pub verified: Option<Arc<Verified>>,
}

impl Permit {
    /// The identity headers to set on an upstream request for `route` (the route that gave this
    /// permit), rendered from the verified token on each call: pingora builds a fresh upstream
    /// request for every retry, and each must carry them.
    pub fn identity_headers(&self, route: &Route) -> IdentityHeaders {
        self.verified
            .as_ref()
            .map_or_else(Vec::new, |v| identity_headers(route, v))
    }
}

/// The outcome, with the route that produced it (for metrics) when one matched.
#[derive(Debug)]
pub struct Decision {
    pub route: Option<Arc<Route>>,
    pub outcome: Result<Permit, Rejection>,
    /// When the token's `kid` was not in its issuer's set: that issuer and kid, so that the caller
    /// may refetch the set once and decide again.
    pub key_miss: Option<(Arc<Issuer>, String)>,
}

impl Decision {
    /// A rejection before any route was chosen.
    pub fn refused(rejection: Rejection) -> Self {
        Decision {
            route: None,
            outcome: Err(rejection),
            key_miss: None,
        }
    }
}

/// Whether the request target, as the client sent it, names a resource: origin form (`/path`)
/// or absolute form (`http://host/path`), RFC 9112 §3.2; `*` passes here and is refused by the
/// path rules. pingora anchors any other target (`admin/x`, `mailto:x`) to `/`, which would then
/// be routed and forwarded as `/`: not a bypass, but not the request the client made either.
fn target_form(raw: &[u8]) -> Result<(), Rejection> {
    let scheme = |s: &[u8]| {
        raw.get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    };
    if raw.starts_with(b"/") || raw == b"*" || scheme(b"http://") || scheme(b"https://") {
        Ok(())
    } else {
        Err(Rejection::BadTarget(
            "request target must be a path or an absolute URL",
        ))
    }
}

/// Decides a request as the client sent it: `raw_target` (the request target's bytes on the
/// wire) must name a resource before [`decide`] reads the target as parsed.
pub fn decide_raw(rt: &Runtime, req: &Parts, raw_target: &[u8], now: i64) -> Decision {
    match target_form(raw_target) {
        Ok(()) => decide(rt, req, now),
        Err(rejection) => Decision::refused(rejection),
    }
}

/// Decides `req` against `rt` at unix time `now` (seconds).
pub fn decide(rt: &Runtime, req: &Parts, now: i64) -> Decision {
    let routed = route(rt, req);
    let route = match routed {
        Ok(r) => r,
        Err(rejection) => return Decision::refused(rejection),
    };
    let outcome = authorize(rt, &route.0, req, now).map(|verified| Permit {
        path_and_query: with_query(route.1, req.uri.query()),
        host: route.2,
        verified,
    });
    let key_miss = match (&outcome, &route.0.auth) {
        (Err(Rejection::UnknownKey), Auth::Jwt { issuers, .. }) => {
            let values = req
                .headers
                .get_all(AUTHORIZATION)
                .iter()
                .map(HeaderValue::as_bytes);
            token::extract_bearer(values, rt.settings.max_token_bytes)
                .ok()
                .and_then(|t| verify::key_miss(t, issuers))
        }
        _ => None,
    };
    Decision {
        route: Some(route.0),
        outcome,
        key_miss,
    }
}

/// The normalised path with the client's query appended, in the path's own buffer: `format!`
/// would build a second string, through the formatting machinery, on every request with a query.
fn with_query(mut path: String, query: Option<&str>) -> String {
    if let Some(q) = query {
        path.reserve_exact(1 + q.len());
        path.push('?');
        path.push_str(q);
    }
    path
}

/// Bounds the request head before anything parses it further.
fn check_limits(req: &Parts, limits: &HeaderLimits) -> Result<(), Rejection> {
    if req.headers.len() > limits.max_headers {
        return Err(Rejection::HeadersTooLarge("too many header fields"));
    }
    let uri = &req.uri;
    let mut total = uri.path().len()
        + uri.query().map_or(0, str::len)
        + uri.authority().map_or(0, |a| a.as_str().len());
    for (name, value) in &req.headers {
        let field = name.as_str().len() + value.len();
        if field > limits.max_field_bytes {
            return Err(Rejection::HeadersTooLarge("a header field is too large"));
        }
        total += field + 4;
    }
    if total > limits.max_total_bytes {
        return Err(Rejection::HeadersTooLarge("request header is too large"));
    }
    Ok(())
}

fn route(rt: &Runtime, req: &Parts) -> Result<(Arc<Route>, String, Option<String>), Rejection> {
    check_limits(req, &rt.settings.limits)?;
    if req.method == Method::CONNECT {
        return Err(Rejection::BadTarget("CONNECT is not supported"));
    }
    // Methods are case-sensitive, but some frameworks upper-case them: `get` must not slip past a
    // `GET` rule to a catch-all and then be served as GET.
    if !req
        .method
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b == b'-')
    {
        return Err(Rejection::BadTarget("method must be upper-case"));
    }
    let host = request_host(req)?;
    let path = path::normalise(req.uri.path()).map_err(Rejection::BadPath)?;
    let route = rt
        .router
        .find(host.as_ref().map(|(h, _)| h.as_ref()), &req.method, &path)
        .ok_or(Rejection::NoRoute)?;
    let host_header = host.and_then(|(h, port)| {
        let mut digits = itoa::Buffer::new();
        let port = port.map(|p| digits.format(p));
        // `request_host` allowed at most one `Host` header. Most clients already send the
        // canonical spelling: it is compared in place, and a string built only for a rewrite.
        let canonical = req
            .headers
            .get(HOST)
            .is_some_and(|sent| reads_as(sent.as_bytes(), &h, port));
        (!canonical).then(|| match port {
            Some(p) => [h.as_ref(), ":", p].concat(),
            None => h.into_owned(),
        })
    });
    Ok((Arc::clone(route), path, host_header))
}

/// Whether `sent` is exactly `host`, followed by `:port` when there is a port.
fn reads_as(sent: &[u8], host: &str, port: Option<&str>) -> bool {
    match port {
        None => sent == host.as_bytes(),
        Some(p) => sent
            .strip_prefix(host.as_bytes())
            .and_then(|rest| rest.strip_prefix(b":"))
            .is_some_and(|digits| digits == p.as_bytes()),
    }
}

/// A normalised host, and the port the client gave with it.
type HostPort<'a> = (Cow<'a, str>, Option<u16>);

/// The host the client addressed: the authority of an absolute-form target (RFC 9112 §3.2.2
/// makes it override `Host`), else the single `Host` header; with its port, if any. Only an
/// HTTP/1.0 request may come without either: RFC 9112 §3.2 requires a 400 for an HTTP/1.1 one,
/// as nginx and HAProxy answer, and pingora lets it through.
/// `X-Forwarded-Host` is never consulted: clients control it.
/// The host borrows from the request unless it had to be lower-cased or lose a trailing dot.
fn request_host(req: &Parts) -> Result<Option<HostPort<'_>>, Rejection> {
    if let Some(auth) = req.uri.authority() {
        return split_authority(auth.as_str()).map(Some);
    }
    let mut hosts = req.headers.get_all(HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(Rejection::BadTarget("more than one Host header"));
    }
    let Some(v) = first else {
        if req.version >= http::Version::HTTP_11 {
            return Err(Rejection::BadTarget("Host header is required"));
        }
        return Ok(None);
    };
    let text = v
        .to_str()
        .map_err(|_| Rejection::BadTarget("Host header is not ASCII"))?;
    split_authority(text).map(Some)
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2) split and checked: the port absent, empty, or digits
/// forming a `u16`. RFC 9112 §3.2 requires a 400 for anything else (`:abc`, `:+80`, `:99999`,
/// userinfo, a second colon), which a lenient authority parser would just ignore.
fn split_authority(text: &str) -> Result<HostPort<'_>, Rejection> {
    let malformed = Rejection::BadTarget("Host header is malformed");
    // A reg-name or IPv4 address has no colon; an IP literal's colons sit inside its brackets.
    let end = if text.starts_with('[') {
        text.find(']').map_or(text.len(), |i| i + 1)
    } else {
        text.find(':').unwrap_or(text.len())
    };
    let (host, rest) = text.split_at(end);
    let port = match rest.strip_prefix(':') {
        None if rest.is_empty() => None,
        Some("") => None,
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse().map_err(|_| malformed.clone())?)
        }
        _ => return Err(malformed),
    };
    Ok((normalise_host(host)?, port))
}

/// Lower-cases a host and drops one trailing dot, refusing anything that is not a plain DNS name,
/// a dotted-quad IPv4 address or an IPv6 literal. The upstream then receives exactly this
/// spelling, so it cannot read a host the router did not match (`WWW.EXAMPLE..` matching
/// `www.example` here, something else there). Most clients already send the canonical spelling,
/// which is borrowed, not copied.
fn normalise_host(host: &str) -> Result<Cow<'_, str>, Rejection> {
    let h = host.strip_suffix('.').unwrap_or(host);
    let valid = match h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(literal) => literal.parse::<std::net::Ipv6Addr>().is_ok(),
        None if ends_in_a_number(h) => h.parse::<std::net::Ipv4Addr>().is_ok(),
        None => {
            !h.is_empty()
                && h.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        }
    };
    if !valid {
        return Err(Rejection::BadTarget("Host header is malformed"));
    }
    Ok(if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    })
}

/// Whether the last label is a number (decimal, or hex after `0x`), as in the WHATWG URL
/// standard's IPv4 rule. No top-level domain is numeric, so such a host is meant as an IPv4
/// address, and upstreams that parse it with `inet_aton` read `127.1`, `0x7f.0.0.1` or
/// `2130706433` as 127.0.0.1: a route for `127.0.0.1` would not match them here, and a later
/// route would send them on. Only the one canonical dotted-quad spelling is therefore accepted.
fn ends_in_a_number(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    match last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()),
    }
}

fn authorize(
    rt: &Runtime,
    route: &Route,
    req: &Parts,
    now: i64,
) -> Result<Option<Arc<Verified>>, Rejection> {
    let (issuers, policy) = match &route.auth {
        Auth::None => return Ok(None),
        Auth::Jwt { issuers, policy } => (issuers, policy),
    };
    let values = req
        .headers
        .get_all(AUTHORIZATION)
        .iter()
        .map(HeaderValue::as_bytes);
    let token =
        token::bearer_bytes(values, rt.settings.max_token_bytes).map_err(extract_rejection)?;
    let verified = verified(rt, token, issuers, now)?;
    policy::evaluate(policy, &verified, now)?;
    Ok(Some(verified))
}

fn extract_rejection(e: ExtractError) -> Rejection {
    match e {
        ExtractError::Missing => Rejection::MissingToken,
        ExtractError::Malformed(d) => Rejection::BadAuthorization(d),
        ExtractError::TooLarge => Rejection::TokenTooLarge,
    }
}

/// The token (its bytes, syntax not yet checked) verified: from the cache when a usable result
/// is there (time rules re-checked against `now`), else checked and verified now, and cached.
fn verified(
    rt: &Runtime,
    token: &[u8],
    issuers: &[Arc<Issuer>],
    now: i64,
) -> Result<Arc<Verified>, Rejection> {
    // `None` when the cache is disabled: then nothing is looked up, hashed or stored. A hit
    // skips the b64token scan: only tokens that passed it are cached, and the key is a keyed
    // tag of the bytes (`cache::TokenMac`), so a hit means these very bytes passed it before.
    let key = rt.tokens.key_of(token);
    let hit = key.as_ref().and_then(|k| rt.tokens.get(k));
    if let (Some(key), Some(hit)) = (&key, hit) {
        if hit.usable_for(issuers) {
            let v = &hit.verified;
            verify::check_times(v.exp, v.nbf, v.iat, v.issuer.leeway, now)?;
            return Ok(hit.verified);
        }
        // Either another route's issuer verified it (verify below rejects it properly), or its
        // key has left the set: forget it, so the revocation is immediate and permanent.
        if issuers.iter().any(|i| Arc::ptr_eq(i, &hit.verified.issuer)) {
            rt.tokens.remove(key);
        }
    }
    let token = token::check_syntax(token).map_err(extract_rejection)?;
    let (mut v, by) = verify::verify_with_key(token, issuers, now)?;
    v.claims
        .retain(|name| rt.retained_claims.iter().any(|r| r == name));
    v.rendered = Rendered::new(rt.forwarded_claims.iter().map(|c| render(c, &v.claims)));
    let v = Arc::new(v);
    if let Some(key) = key {
        rt.tokens.insert(key, Arc::clone(&v), by);
    }
    Ok(v)
}

/// The `forward_claims` headers for a verified token, from the values rendered when it was
/// verified.
fn identity_headers(route: &Route, verified: &Verified) -> IdentityHeaders {
    route
        .forward_claims
        .iter()
        .filter_map(|f| {
            let value = verified.rendered.get(f.slot)?;
            Some((f.wire().clone(), value))
        })
        .collect()
}

/// A claim's header value. A claim that is absent, or whose value cannot be a header value (CR,
/// LF, NUL...), gives `None` and is not sent: the upstream must treat a missing header as "no
/// claim", and an injected line break must never reach it.
/// Nor is a value the upstream would read as something else: an array with an element holding a
/// comma (`["eng,admin"]` would read as the two groups of `["eng","admin"]` once joined), or a
/// value or element with leading or trailing whitespace, which HTTP parsers trim (RFC 9110 §5.5,
/// §5.6.1), so that `" admin"` would arrive as `admin`.
fn render(claim: &ClaimPath, claims: &Claims) -> Option<HeaderValue> {
    let text: Cow<'_, str> = match claim.lookup(claims)? {
        Value::String(s) => Cow::Borrowed(s),
        Value::Array(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect();
            // A list's elements are trimmed too, around each comma (RFC 9110 §5.6.1).
            if items.iter().any(|i| i.contains(',') || padded(i)) {
                return None;
            }
            Cow::Owned(items.join(","))
        }
        Value::Null => return None,
        other => Cow::Owned(other.to_string()),
    };
    if padded(&text) {
        return None;
    }
    HeaderValue::from_str(&text).ok()
}

/// Whether `text` starts or ends with whitespace an HTTP parser would trim.
fn padded(text: &str) -> bool {
    text.trim_matches([' ', '\t']).len() != text.len()
}

#[cfg(test)]
mod tests;
