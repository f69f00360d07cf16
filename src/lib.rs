//! tokengate: a reverse proxy that enforces bearer-token (JWT) access policy in front of HTTP APIs.
//!
//! A request walks through the gateway in one direction, and the modules follow that walk:
//!
//! ```text
//! client -> proxy (pingora hooks, thin)
//!             path     normalise(raw target) -> normalised path      | unsafe -> 400
//!             route    Router::find(host, method, path) -> &Route    | none -> 404, never forwarded
//!             token    bearer_bytes(headers) -> &[u8]                | missing -> 401, malformed -> 400
//!             cache    keyed tag of the bytes -> a cached Verified   | hit: time rules re-checked
//!             token    check_syntax(bytes) -> &str (on a miss)       | not a b64token -> 400
//!             verify   verify(token, issuers, now) -> Verified       | bad -> 401 invalid_token
//!             jwks     key sets per issuer, fetched in background    | unavailable -> 503
//!             policy   evaluate(policy, &verified, now)              | deny -> 403 / 401
//!             reject   the ONE place a denial becomes a response + metric reason
//!          -> upstream (peer choice, header hygiene) -> metrics
//! config: raw (serde mirror of the TOML) -> compile (names resolved to handles, bounds checked)
//! ```
//!
//! Everything from `path` to `reject` is pure: it takes the current time as an argument, does no IO
//! and knows nothing of pingora. Only `proxy.rs` and `admin.rs` touch pingora sessions.

pub mod access;
pub mod admin;
pub mod app;
pub mod cache;
pub mod claims;
pub mod cli;
pub mod config;
pub mod decision;
pub mod demo;
pub mod duration;
#[cfg(test)]
mod fixtures;
pub mod head;
pub mod issuer;
pub mod jwks;
pub mod logging;
pub mod metrics;
pub mod path;
pub mod policy;
pub mod proxy;
pub mod reject;
pub mod reload;
pub mod route;
pub mod runtime;
pub mod token;
pub mod upstream;
pub mod verify;
