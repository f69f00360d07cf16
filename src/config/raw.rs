//! The serde mirror of the TOML file: field names, types and defaults, and nothing else.
//!
//! No logic lives here. Fields whose values are checked later are wrapped in `Spanned` so that the
//! compile step can name the line an error is on. `deny_unknown_fields` everywhere: a typo in a
//! security policy must be an error, never a silently ignored key.

use crate::duration::ConfigDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: Option<Spanned<RawServer>>,
    #[serde(default)]
    pub issuer: Vec<Spanned<RawIssuer>>,
    #[serde(default)]
    pub upstream: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    pub route: Vec<Spanned<RawRoute>>,
    pub log: Option<Spanned<RawLog>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    pub access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<Vec<String>>>,
    pub admin_listen: Option<Spanned<String>>,
    pub threads: Option<Spanned<usize>>,
    pub max_token_bytes: Option<Spanned<usize>>,
    pub identity_header_prefix: Option<Spanned<String>>,
    pub grace_period: Option<Spanned<ConfigDuration>>,
    pub graceful_shutdown_timeout: Option<Spanned<ConfigDuration>>,
    pub state_dir: Option<Spanned<String>>,
    pub token_cache_capacity: Option<Spanned<u64>>,
    pub upgrade_sock: Option<Spanned<String>>,
    pub max_request_headers: Option<Spanned<usize>>,
    pub max_request_header_bytes: Option<Spanned<usize>>,
    pub max_header_field_bytes: Option<Spanned<usize>>,
    pub work_stealing: Option<bool>,
    pub keepalive_timeout: Option<Spanned<ConfigDuration>>,
    pub header_timeout: Option<Spanned<ConfigDuration>>,
    pub upstream_keepalive_pool_size: Option<Spanned<usize>>,
    pub listener_tasks_per_fd: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    pub name: Spanned<String>,
    pub issuer: Spanned<String>,
    pub audiences: Spanned<Vec<String>>,
    pub jwks_uri: Option<Spanned<String>>,
    pub jwks_file: Option<Spanned<String>>,
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub ca_file: Option<Spanned<String>>,
    pub algorithms: Option<Spanned<Vec<String>>>,
    pub leeway: Option<Spanned<ConfigDuration>>,
    pub scope_claims: Option<Spanned<Vec<String>>>,
    pub client_claims: Option<Spanned<Vec<String>>>,
    pub require_typ: Option<Spanned<String>>,
    pub jwks_refresh: Option<Spanned<ConfigDuration>>,
    pub jwks_fetch_timeout: Option<Spanned<ConfigDuration>>,
    #[serde(default)]
    pub discovery: bool,
    pub discovery_uri: Option<Spanned<String>>,
    pub jwks_min_ttl: Option<Spanned<ConfigDuration>>,
    pub jwks_max_ttl: Option<Spanned<ConfigDuration>>,
    pub jwks_refetch_cooldown: Option<Spanned<ConfigDuration>>,
    pub jwks_max_stale: Option<Spanned<ConfigDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: Spanned<String>,
    pub targets: Spanned<Vec<String>>,
    pub connect_timeout: Option<Spanned<ConfigDuration>>,
    pub read_timeout: Option<Spanned<ConfigDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Spanned<String>,
    pub path: Option<Spanned<String>>,
    pub path_prefix: Option<Spanned<String>>,
    pub methods: Option<Spanned<Vec<String>>>,
    pub host: Option<Spanned<String>>,
    pub upstream: Spanned<String>,
    pub auth: Option<Spanned<String>>,
    pub issuers: Option<Spanned<Vec<String>>>,
    pub scopes_all: Option<Spanned<Vec<String>>>,
    pub scopes_any: Option<Spanned<Vec<String>>>,
    pub clients: Option<Spanned<Vec<String>>>,
    pub claims: Option<Spanned<BTreeMap<String, toml::Value>>>,
    pub max_token_lifetime: Option<Spanned<ConfigDuration>>,
    pub max_token_age: Option<Spanned<ConfigDuration>>,
    pub forward_claims: Option<Spanned<BTreeMap<String, String>>>,
    pub strip_authorization: Option<Spanned<bool>>,
}
