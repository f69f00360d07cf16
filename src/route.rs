//! Routes and the router: which route, if any, governs a request.
//!
//! Routes are tried in file order and the first whose host, method and path all match wins, as in
//! priority-ordered access policies; no match means the request is refused, never forwarded. The
//! router only ever sees a normalised path and a normalised host (see `path` and `decision`).

use crate::claims::ClaimPath;
use crate::issuer::Issuer;
use crate::metrics::RouteMetrics;
use crate::policy::Policy;
use crate::upstream::Upstream;
use http::{HeaderName, Method};
use std::collections::HashMap;
use std::sync::Arc;

/// How a route matches the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// `path = "/x"` or `"/x/"`: both `/x` and `/x/`, so that a trailing slash cannot step around
    /// the rule in either direction. Stored without the trailing slash (except `/`).
    Exact(String),
    /// `path_prefix = "/x"`: `/x` and everything below it, segment-aware (never `/xy`).
    Prefix(String),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => {
                path == p
                    || (p != "/"
                        && path.len() == p.len() + 1
                        && path.starts_with(p.as_str())
                        && path.ends_with('/'))
            }
            PathMatch::Prefix(p) => {
                p == "/"
                    || (path.starts_with(p.as_str())
                        && matches!(path.as_bytes().get(p.len()), None | Some(b'/')))
            }
        }
    }

    /// Whether every path `other` matches is also matched by `self`.
    fn covers(&self, other: &PathMatch) -> bool {
        match (self, other) {
            // The compiler stores exact paths without a trailing slash, but a PathMatch built
            // directly may keep one, and `/a` already matches `/a/`.
            (PathMatch::Exact(a), PathMatch::Exact(b)) => {
                a == b || b.strip_suffix('/') == Some(a.as_str())
            }
            (PathMatch::Exact(_), PathMatch::Prefix(_)) => false,
            (PathMatch::Prefix(_), PathMatch::Exact(b))
            | (PathMatch::Prefix(_), PathMatch::Prefix(b)) => self.matches(b),
        }
    }
}

/// What a route demands of the caller.
#[derive(Debug)]
pub enum Auth {
    /// No token is read; identity headers are still stripped.
    None,
    Jwt {
        issuers: Vec<Arc<Issuer>>,
        policy: Policy,
    },
}

/// One `forward_claims` entry.
#[derive(Debug, Clone)]
pub struct ForwardClaim {
    pub header: HeaderName,
    /// `header`'s bytes (see [`ForwardClaim::wire`]); private, so only `new` sets it and it
    /// always spells `header`.
    wire: bytes::Bytes,
    pub claim: ClaimPath,
    /// Index of `claim` in [`crate::runtime::Runtime::forwarded_claims`], where each verified
    /// token keeps its header value rendered once.
    pub slot: usize,
}

impl ForwardClaim {
    /// An entry not yet given its slot (assigned once every route is compiled).
    pub fn new(header: HeaderName, claim: ClaimPath) -> Self {
        ForwardClaim {
            wire: bytes::Bytes::copy_from_slice(header.as_str().as_bytes()),
            header,
            claim,
            slot: 0,
        }
    }

    /// `header`'s bytes, as pingora takes a name it stores without copying: handed a `HeaderName`
    /// that is not a standard one, pingora copies its text into a new buffer for every request.
    pub fn wire(&self) -> &bytes::Bytes {
        &self.wire
    }
}

/// One compiled `[[route]]`.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// Lower-case, without port or trailing dot.
    pub host: Option<String>,
    /// `None` matches any method.
    pub methods: Option<Vec<Method>>,
    pub path: PathMatch,
    pub upstream: Arc<Upstream>,
    pub auth: Auth,
    /// Headers to set on the upstream request from verified claims.
    pub forward_claims: Vec<ForwardClaim>,
    pub strip_authorization: bool,
    pub metrics: RouteMetrics,
}

impl Route {
    pub fn matches(&self, host: Option<&str>, method: &Method, path: &str) -> bool {
        self.host.as_deref().is_none_or(|h| Some(h) == host)
            // HEAD is GET without a body to every framework, so a GET rule governs it too.
            && self.methods.as_ref().is_none_or(|m| {
                m.contains(method) || (*method == Method::HEAD && m.contains(&Method::GET))
            })
            && self.path.matches(path)
    }

    /// Whether `self`, placed earlier, matches every request `later` matches, leaving it dead.
    pub fn shadows(&self, later: &Route) -> bool {
        let host = match (&self.host, &later.host) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        let methods = match (&self.methods, &later.methods) {
            (None, _) => true,
            (Some(a), Some(b)) => b
                .iter()
                .all(|m| a.contains(m) || (*m == Method::HEAD && a.contains(&Method::GET))),
            (Some(_), None) => false,
        };
        host && methods && self.path.covers(&later.path)
    }
}

/// The ordered route table, indexed by the first path segment so that a request is only tested
/// against routes that could match it, still in file order.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Arc<Route>>,
    /// Routes whose pattern starts with this segment (`/api/...` under `api`), by position.
    by_segment: HashMap<Box<str>, Vec<usize>>,
    /// Routes that match any first segment (`path_prefix = "/"`, `path = "/"`), by position.
    anywhere: Vec<usize>,
}

/// The first segment of a normalised path: `api` for `/api/x`, empty for `/`.
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').next().unwrap_or("")
}

impl Router {
    pub fn new(routes: Vec<Arc<Route>>) -> Self {
        let mut by_segment: HashMap<Box<str>, Vec<usize>> = HashMap::new();
        let mut anywhere = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            match &r.path {
                PathMatch::Prefix(p) if p == "/" => anywhere.push(i),
                PathMatch::Exact(p) | PathMatch::Prefix(p) => {
                    by_segment
                        .entry(first_segment(p).into())
                        .or_default()
                        .push(i);
                }
            }
        }
        Router {
            routes,
            by_segment,
            anywhere,
        }
    }

    /// The first route matching the request, in file order.
    pub fn find(&self, host: Option<&str>, method: &Method, path: &str) -> Option<&Arc<Route>> {
        let bucket = self
            .by_segment
            .get(first_segment(path))
            .map_or(&[][..], Vec::as_slice);
        // Both lists are in file order; walk them merged so the first match is the earliest.
        let (mut a, mut b) = (bucket.iter().peekable(), self.anywhere.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => return None,
            };
            let route = next.and_then(|&i| self.routes.get(i))?;
            if route.matches(host, method, path) {
                return Some(route);
            }
        }
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}

#[cfg(test)]
mod tests;
