//! Compiling the raw config into runtime types: names resolved to handles, durations and
//! algorithms parsed, bounds checked, shadowed routes found.
//!
//! All problems are collected, not just the first, each with its line, block and field. A config
//! either compiles completely or not at all.

use super::raw::{RawConfig, RawIssuer, RawLog, RawRoute, RawServer, RawUpstream};
use super::{Diagnostic, Source};
use crate::cache::TokenCache;
use crate::claims::ClaimPath;
use crate::duration::ConfigDuration;
use crate::issuer::{normalise_typ, Issuer, KeySource, Location, Remote};
use crate::jwks::{self, KeyStore};
use crate::metrics::{Metrics, UNMATCHED_ROUTE};
use crate::path;
use crate::policy::Policy;
use crate::route::{Auth, ForwardClaim, PathMatch, Route, Router};
use crate::runtime::{HeaderLimits, LogFormat, LogSettings, Runtime, Settings, Tuning};
use crate::upstream::{self, IdentityHeaders, Upstream};
use http::{HeaderName, Method};
use jsonwebtoken::Algorithm;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use toml::Spanned;

/// Token lifetime and age rules must lie in [1 minute, 30 days]: shorter cannot survive clock
/// skew and network latency, longer is not an access token (Auth0's maximum is 2592000 s).
const LIFETIME_BOUNDS: (u64, u64) = (60, 2_592_000);
const MAX_LEEWAY: u64 = 300;
const DEFAULT_SCOPE_CLAIMS: [&str; 3] = ["scope", "scp", "permissions"];
const DEFAULT_CLIENT_CLAIMS: [&str; 3] = ["azp", "client_id", "cid"];
const SUPPORTED_ALGORITHMS: &str = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

/// Headers a `forward_claims` entry may not set: they carry framing, routing or credentials.
/// Compared with the entry's name [folded](upstream::folded), so `x_forwarded_for` is one of them.
const RESERVED_HEADERS: [&str; 11] = [
    "authorization",
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "keep-alive",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

struct Errors<'s> {
    src: &'s Source<'s>,
    list: Vec<Diagnostic>,
}

impl Errors<'_> {
    fn at(&mut self, span: Range<usize>, context: &str, message: impl Into<String>) {
        self.list.push(Diagnostic {
            line: self.src.line(span.start),
            context: context.to_string(),
            message: message.into(),
        });
    }
}

/// Compiles `raw`; relative file paths resolve against `base`.
pub fn compile(
    raw: RawConfig,
    src: &Source<'_>,
    base: &Path,
    metrics: &Metrics,
    previous: Option<&Runtime>,
) -> Result<Runtime, Vec<Diagnostic>> {
    let mut errs = Errors {
        src,
        list: Vec::new(),
    };
    let mut settings = compile_server(raw.server.as_ref().map(|s| s.get_ref()), &mut errs);
    settings.log = compile_log(raw.log.as_ref().map(|l| l.get_ref()), &mut errs);
    let prefix = raw
        .server
        .as_ref()
        .and_then(|s| s.get_ref().identity_header_prefix.as_ref())
        .map_or_else(
            || "x-auth-".to_string(),
            |p| p.get_ref().to_ascii_lowercase().replace('_', "-"),
        );

    let mut issuers: Vec<Arc<Issuer>> = Vec::new();
    let mut issuer_names: HashMap<String, usize> = HashMap::new();
    for (i, spanned) in raw.issuer.iter().enumerate() {
        let r = spanned.get_ref();
        let ctx = format!("issuer #{} '{}'", i + 1, r.name.get_ref());
        if let Some(prev) = issuer_names.insert(r.name.get_ref().clone(), i) {
            errs.at(
                r.name.span(),
                &ctx,
                format!(
                    "field 'name': duplicate issuer name (also issuer #{})",
                    prev + 1
                ),
            );
        }
        check_name(&mut errs, &ctx, &r.name);
        if let Some(mut issuer) = compile_issuer(
            r,
            &ctx,
            base,
            settings.state_dir.as_deref(),
            metrics,
            &mut errs,
        ) {
            if let Some(old) =
                previous.and_then(|p| p.issuers.iter().find(|o| o.same_keys(&issuer)))
            {
                issuer.keys = Arc::clone(&old.keys);
            }
            issuers.push(Arc::new(issuer));
        }
    }

    let mut upstreams: HashMap<String, Arc<Upstream>> = HashMap::new();
    for (i, spanned) in raw.upstream.iter().enumerate() {
        let r = spanned.get_ref();
        let ctx = format!("upstream #{} '{}'", i + 1, r.name.get_ref());
        check_name(&mut errs, &ctx, &r.name);
        if upstreams.contains_key(r.name.get_ref()) {
            errs.at(r.name.span(), &ctx, "field 'name': duplicate upstream name");
            continue;
        }
        if let Some(u) = compile_upstream(r, &ctx, &mut errs) {
            upstreams.insert(r.name.get_ref().clone(), Arc::new(u));
        }
    }

    let mut routes: Vec<Arc<Route>> = Vec::new();
    let mut route_names: HashMap<String, usize> = HashMap::new();
    let mut forwarded: Vec<HeaderName> = Vec::new();
    let mut forwarded_claims: Vec<ClaimPath> = Vec::new();
    for (i, spanned) in raw.route.iter().enumerate() {
        let r = spanned.get_ref();
        let ctx = format!("route #{} '{}'", i + 1, r.name.get_ref());
        check_name(&mut errs, &ctx, &r.name);
        if r.name.get_ref() == UNMATCHED_ROUTE {
            errs.at(
                r.name.span(),
                &ctx,
                format!("field 'name': '{UNMATCHED_ROUTE}' is reserved"),
            );
        }
        if let Some(prev) = route_names.insert(r.name.get_ref().clone(), i) {
            errs.at(
                r.name.span(),
                &ctx,
                format!(
                    "field 'name': duplicate route name (also route #{})",
                    prev + 1
                ),
            );
        }
        let Some(mut route) = compile_route(
            r,
            &ctx,
            &issuers,
            &issuer_names,
            &upstreams,
            metrics,
            &mut errs,
        ) else {
            continue;
        };
        if let Some((j, earlier)) = routes.iter().enumerate().find(|(_, e)| e.shadows(&route)) {
            errs.at(
                r.name.span(),
                &ctx,
                format!(
                    "route is never used: every request it matches is matched first by route '{}' (#{})",
                    earlier.name,
                    j + 1
                ),
            );
        }
        for f in &mut route.forward_claims {
            let name = upstream::folded(&f.header);
            if !forwarded.contains(&name) {
                forwarded.push(name);
            }
            f.slot = match forwarded_claims.iter().position(|c| *c == f.claim) {
                Some(slot) => slot,
                None => {
                    forwarded_claims.push(f.claim.clone());
                    forwarded_claims.len() - 1
                }
            };
        }
        routes.push(Arc::new(route));
    }
    if raw.route.is_empty() {
        errs.list.push(Diagnostic {
            line: 1,
            context: String::new(),
            message: "no [[route]] defined: every request would be refused".into(),
        });
    }
    if !errs.list.is_empty() {
        errs.list.sort_by_key(|d| d.line);
        return Err(errs.list);
    }
    let retained_claims = retained_claims(&routes);
    Ok(Runtime {
        issuers,
        router: Router::new(routes),
        identity: IdentityHeaders {
            prefix,
            names: forwarded,
        },
        unmatched: metrics.route(UNMATCHED_ROUTE),
        hash: 0,
        tokens: TokenCache::new(settings.token_cache_capacity),
        retained_claims,
        forwarded_claims,
        settings,
    })
}

/// Top-level claim names any route reads (both the literal name and the first segment of a
/// dotted path), plus `sub`.
fn retained_claims(routes: &[Arc<Route>]) -> Vec<String> {
    let mut out = vec!["sub".to_string()];
    let mut keep = |path: &ClaimPath| {
        for name in path.roots() {
            if !out.iter().any(|o| o == name) {
                out.push(name.to_string());
            }
        }
    };
    for route in routes {
        route.forward_claims.iter().for_each(|f| keep(&f.claim));
        if let Auth::Jwt { policy, .. } = &route.auth {
            policy.claims.iter().for_each(|(c, _)| keep(c));
        }
    }
    out
}

fn check_name(errs: &mut Errors<'_>, ctx: &str, name: &Spanned<String>) {
    let n = name.get_ref();
    if n.is_empty()
        || n.len() > 64
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        errs.at(
            name.span(),
            ctx,
            "field 'name': must be 1-64 characters of A-Z a-z 0-9 _ - .",
        );
    }
}

fn secs(d: &Option<Spanned<ConfigDuration>>) -> Option<(Duration, Range<usize>)> {
    d.as_ref().map(|s| (s.get_ref().0, s.span()))
}

/// A `[server]` timeout between 1 s and 1 h, or `default` when absent.
fn bounded(
    raw: &Option<Spanned<ConfigDuration>>,
    field: &str,
    default: Duration,
    errs: &mut Errors<'_>,
) -> Duration {
    secs(raw).map_or(default, |(d, span)| {
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&d) {
            errs.at(
                span,
                "server",
                format!("field '{field}': must be between 1s and 1h"),
            );
        }
        d
    })
}

fn compile_server(raw: Option<&RawServer>, errs: &mut Errors<'_>) -> Settings {
    let ctx = "server";
    let default = RawServer::default();
    let raw = raw.unwrap_or(&default);
    let listen = match &raw.listen {
        None => vec!["0.0.0.0:8080".to_string()],
        Some(l) => {
            if l.get_ref().is_empty() {
                errs.at(
                    l.span(),
                    ctx,
                    "field 'listen': at least one address is required",
                );
            }
            for a in l.get_ref() {
                if a.parse::<std::net::SocketAddr>().is_err() {
                    errs.at(
                        l.span(),
                        ctx,
                        format!("field 'listen': '{a}' is not an IP:port address"),
                    );
                }
            }
            l.get_ref().clone()
        }
    };
    let admin_listen = match &raw.admin_listen {
        None => Some("127.0.0.1:9090".to_string()),
        Some(a) if a.get_ref().is_empty() => None,
        Some(a) => {
            if a.get_ref().parse::<std::net::SocketAddr>().is_err() {
                errs.at(
                    a.span(),
                    ctx,
                    format!(
                        "field 'admin_listen': '{}' is not an IP:port address",
                        a.get_ref()
                    ),
                );
            }
            Some(a.get_ref().clone())
        }
    };
    let threads = match &raw.threads {
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(t) => {
            if !(1..=256).contains(t.get_ref()) {
                errs.at(t.span(), ctx, "field 'threads': must be between 1 and 256");
            }
            *t.get_ref()
        }
    };
    let max_token_bytes = match &raw.max_token_bytes {
        None => 16 * 1024,
        Some(m) => {
            if !(1024..=1024 * 1024).contains(m.get_ref()) {
                errs.at(
                    m.span(),
                    ctx,
                    "field 'max_token_bytes': must be between 1024 and 1048576",
                );
            }
            *m.get_ref()
        }
    };
    if let Some(p) = &raw.identity_header_prefix {
        let v = p.get_ref();
        if !v.is_empty() && (HeaderName::from_bytes(v.as_bytes()).is_err() || v.len() < 3) {
            errs.at(p.span(), ctx, "field 'identity_header_prefix': must be a header-name prefix of 3+ characters, or empty");
        }
    }
    Settings {
        listen,
        admin_listen,
        threads,
        max_token_bytes,
        grace_period: secs(&raw.grace_period).map_or(Duration::from_secs(10), |d| d.0),
        graceful_shutdown_timeout: secs(&raw.graceful_shutdown_timeout)
            .map_or(Duration::from_secs(5), |d| d.0),
        state_dir: raw.state_dir.as_ref().map(|d| PathBuf::from(d.get_ref())),
        log: LogSettings::default(),
        limits: header_limits(raw, max_token_bytes, errs),
        tuning: tuning(raw, threads, errs),
        keepalive_timeout: bounded(
            &raw.keepalive_timeout,
            "keepalive_timeout",
            Duration::from_secs(60),
            errs,
        ),
        // nginx waits 60 s for a head, HAProxy's documented examples 10 s; a head is one or two
        // packets, so 10 s only ever cuts clients that are stalling on purpose.
        header_timeout: bounded(
            &raw.header_timeout,
            "header_timeout",
            Duration::from_secs(10),
            errs,
        ),
        // Whoever binds the upgrade socket receives the listeners, so by default it lives in the
        // state directory rather than a world-writable one.
        upgrade_sock: raw.upgrade_sock.as_ref().map_or_else(
            || match &raw.state_dir {
                Some(d) => PathBuf::from(d.get_ref()).join("upgrade.sock"),
                None => PathBuf::from("/tmp/tokengate-upgrade.sock"),
            },
            |s| PathBuf::from(s.get_ref()),
        ),
        token_cache_capacity: raw
            .token_cache_capacity
            .as_ref()
            .map_or(100_000, |c| *c.get_ref()),
    }
}

/// pingora 0.9 parses at most 256 header fields; a head with more is refused by pingora itself,
/// so a larger `max_request_headers` would be a limit that never applies.
const MAX_HEADER_FIELDS: usize = 256;

/// The most `max_request_header_bytes` and `max_header_field_bytes` may be. pingora refuses a head
/// over 1 MiB itself; twice that still leaves room for the largest `max_token_bytes` (1 MiB) in a
/// field and its head, and anything beyond is a typo, not a policy.
const MAX_HEADER_BYTES: usize = 2 * 1024 * 1024;

fn header_limits(raw: &RawServer, max_token_bytes: usize, errs: &mut Errors<'_>) -> HeaderLimits {
    let d = HeaderLimits::default();
    let mut get =
        |v: &Option<Spanned<usize>>, field: &str, default: usize, (min, max): (usize, usize)| {
            v.as_ref().map_or(default, |s| {
                if !(min..=max).contains(s.get_ref()) {
                    errs.at(
                        s.span(),
                        "server",
                        format!("field '{field}': must be between {min} and {max}"),
                    );
                }
                *s.get_ref()
            })
        };
    // A field must hold "authorization: Bearer " plus the largest token allowed.
    let field_min = max_token_bytes + 32;
    let limits = HeaderLimits {
        max_headers: get(
            &raw.max_request_headers,
            "max_request_headers",
            d.max_headers,
            (8, MAX_HEADER_FIELDS),
        ),
        max_total_bytes: get(
            &raw.max_request_header_bytes,
            "max_request_header_bytes",
            d.max_total_bytes,
            (4096, MAX_HEADER_BYTES),
        ),
        max_field_bytes: get(
            &raw.max_header_field_bytes,
            "max_header_field_bytes",
            d.max_field_bytes.max(field_min),
            (field_min, MAX_HEADER_BYTES),
        ),
    };
    if limits.max_total_bytes < limits.max_field_bytes {
        if let Some(s) = &raw.max_request_header_bytes {
            errs.at(
                s.span(),
                "server",
                "field 'max_request_header_bytes': must not be below max_header_field_bytes",
            );
        }
    }
    limits
}

fn tuning(raw: &RawServer, threads: usize, errs: &mut Errors<'_>) -> Tuning {
    let d = Tuning::default();
    let mut bounded = |v: &Option<Spanned<usize>>, field: &str, default: usize, max: usize| {
        v.as_ref().map_or(default, |s| {
            if !(1..=max).contains(s.get_ref()) {
                errs.at(
                    s.span(),
                    "server",
                    format!("field '{field}': must be between 1 and {max}"),
                );
            }
            *s.get_ref()
        })
    };
    Tuning {
        // With one thread there is nothing to steal, and pingora's work-stealing runtime (tokio's
        // multi-thread scheduler) only adds bookkeeping: 3-4% more CPU per request with one
        // worker, measured paired (README, BENCHMARKS). With several threads, stealing keeps a
        // busy one from starving the connections it owns.
        work_stealing: raw.work_stealing.unwrap_or(d.work_stealing && threads > 1),
        upstream_keepalive_pool_size: bounded(
            &raw.upstream_keepalive_pool_size,
            "upstream_keepalive_pool_size",
            d.upstream_keepalive_pool_size,
            1 << 20,
        ),
        listener_tasks_per_fd: bounded(
            &raw.listener_tasks_per_fd,
            "listener_tasks_per_fd",
            d.listener_tasks_per_fd,
            64,
        ),
    }
}

fn compile_log(raw: Option<&RawLog>, errs: &mut Errors<'_>) -> LogSettings {
    let Some(raw) = raw else {
        return LogSettings::default();
    };
    let (settings, problems) = log_settings(raw);
    for (span, message) in problems {
        errs.at(span, "log", message);
    }
    settings
}

/// `[log]` as settings, with each problem found as (span, message). Shared with the logger's
/// early peek at the file, so both read the section by the same rules.
pub fn log_settings(raw: &RawLog) -> (LogSettings, Vec<(Range<usize>, String)>) {
    let mut out = LogSettings::default();
    let mut problems = Vec::new();
    if let Some(level) = &raw.level {
        if tracing_subscriber::EnvFilter::try_new(level.get_ref()).is_err() {
            problems.push((
                level.span(),
                format!("field 'level': '{}' is not a log filter", level.get_ref()),
            ));
        }
        out.level = level.get_ref().clone();
    }
    if let Some(format) = &raw.format {
        match format.get_ref().as_str() {
            "json" => out.format = LogFormat::Json,
            "logfmt" => out.format = LogFormat::Logfmt,
            other => problems.push((
                format.span(),
                format!("field 'format': '{other}' is not \"json\" or \"logfmt\""),
            )),
        }
    }
    if let Some(a) = raw.access_log {
        out.access_log = a;
    }
    (out, problems)
}

fn compile_issuer(
    r: &RawIssuer,
    ctx: &str,
    base: &Path,
    state_dir: Option<&Path>,
    metrics: &Metrics,
    errs: &mut Errors<'_>,
) -> Option<Issuer> {
    let before = errs.list.len();
    if r.issuer.get_ref().is_empty() {
        errs.at(r.issuer.span(), ctx, "field 'issuer': must not be empty");
    }
    if r.audiences.get_ref().is_empty() || r.audiences.get_ref().iter().any(String::is_empty) {
        errs.at(
            r.audiences.span(),
            ctx,
            "field 'audiences': at least one non-empty audience is required",
        );
    }
    let algorithms = compile_algorithms(r, ctx, errs);
    let leeway = secs(&r.leeway).map_or(30, |(d, span)| {
        if d.as_secs() > MAX_LEEWAY {
            errs.at(span, ctx, format!("field 'leeway': at most {MAX_LEEWAY}s"));
        }
        d.as_secs() as i64
    });
    let fetch_timeout = secs(&r.jwks_fetch_timeout).map_or(Duration::from_secs(5), |(d, span)| {
        if d.is_zero() || d > Duration::from_secs(60) {
            errs.at(
                span,
                ctx,
                "field 'jwks_fetch_timeout': must be between 1s and 60s",
            );
        }
        d
    });
    let refresh = secs(&r.jwks_refresh).map_or(Duration::from_secs(3600), |(d, span)| {
        if d < Duration::from_secs(1) {
            errs.at(span, ctx, "field 'jwks_refresh': must be at least 1s");
        }
        d
    });
    let require_typ = r.require_typ.as_ref().map(|t| {
        if t.get_ref().trim().is_empty() {
            errs.at(t.span(), ctx, "field 'require_typ': must not be empty");
        }
        normalise_typ(t.get_ref())
    });
    let list = |v: &Option<Spanned<Vec<String>>>,
                field: &str,
                default: &[&str],
                errs: &mut Errors<'_>| match v {
        None => default.iter().map(|s| s.to_string()).collect(),
        Some(l) => {
            if l.get_ref().is_empty() {
                errs.at(l.span(), ctx, format!("field '{field}': must not be empty"));
            }
            l.get_ref().clone()
        }
    };
    let scope_claims = list(&r.scope_claims, "scope_claims", &DEFAULT_SCOPE_CLAIMS, errs);
    let client_claims = list(
        &r.client_claims,
        "client_claims",
        &DEFAULT_CLIENT_CLAIMS,
        errs,
    );
    let keys = Arc::new(KeyStore::default());
    let discovery = r.discovery || r.discovery_uri.is_some();
    let given = [r.jwks_uri.is_some(), r.jwks_file.is_some(), discovery];
    let source = match given.iter().filter(|g| **g).count() {
        0 => {
            errs.at(
                r.name.span(),
                ctx,
                "missing field 'jwks_uri' (or 'jwks_file', or discovery = true)",
            );
            None
        }
        1 => {
            if let Some(f) = &r.jwks_file {
                file_source(r, f, &keys, base, ctx, errs)
            } else {
                remote_source(r, fetch_timeout, base, state_dir, ctx, errs)
            }
        }
        _ => {
            let span = r
                .jwks_file
                .as_ref()
                .or(r.jwks_uri.as_ref())
                .map_or(r.name.span(), Spanned::span);
            errs.at(
                span,
                ctx,
                "give exactly one of 'jwks_uri', 'jwks_file' and discovery",
            );
            None
        }
    };
    if errs.list.len() != before {
        return None;
    }
    let issuer_metrics = metrics.issuer(r.name.get_ref());
    if let Some(set) = keys.get() {
        issuer_metrics.keys.set(set.keys.len() as i64);
    }
    Some(Issuer {
        name: r.name.get_ref().clone(),
        iss: r.issuer.get_ref().clone(),
        audiences: r.audiences.get_ref().clone(),
        algorithms,
        leeway,
        scope_claims,
        client_claims,
        require_typ,
        source: source?,
        refresh,
        fetch_timeout,
        keys,
        metrics: issuer_metrics,
    })
}

fn compile_algorithms(r: &RawIssuer, ctx: &str, errs: &mut Errors<'_>) -> Vec<Algorithm> {
    let Some(list) = &r.algorithms else {
        return vec![Algorithm::RS256];
    };
    if list.get_ref().is_empty() {
        errs.at(
            list.span(),
            ctx,
            "field 'algorithms': at least one algorithm is required",
        );
    }
    let mut out = Vec::new();
    for name in list.get_ref() {
        match name.parse::<Algorithm>() {
            Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => errs.at(
                list.span(),
                ctx,
                format!("field 'algorithms': {name} is not allowed: HMAC would turn a public key into a shared secret"),
            ),
            Ok(a) => out.push(a),
            Err(_) if name.eq_ignore_ascii_case("none") => {
                errs.at(list.span(), ctx, "field 'algorithms': 'none' is never allowed")
            }
            Err(_) => errs.at(
                list.span(),
                ctx,
                format!("field 'algorithms': unknown algorithm '{name}' (supported: {SUPPORTED_ALGORITHMS})"),
            ),
        }
    }
    out
}

fn file_source(
    r: &RawIssuer,
    f: &Spanned<String>,
    keys: &KeyStore,
    base: &Path,
    ctx: &str,
    errs: &mut Errors<'_>,
) -> Option<KeySource> {
    let file = base.join(f.get_ref());
    let loaded = std::fs::read(&file)
        .map_err(|e| e.to_string())
        .and_then(|b| jwks::parse(&b, SystemTime::now()).map_err(|e| e.to_string()));
    match loaded {
        Ok((set, skipped)) => {
            for s in skipped {
                tracing::warn!(issuer = %r.name.get_ref(), "skipping key in {}: {s}", file.display());
            }
            keys.set(set);
            Some(KeySource::File(file))
        }
        Err(e) => {
            errs.at(
                f.span(),
                ctx,
                format!("field 'jwks_file': {}: {e}", file.display()),
            );
            None
        }
    }
}

/// Checks a configured URL: it must parse, and be https unless plain http is explicitly allowed.
fn checked_url(
    r: &RawIssuer,
    u: &Spanned<String>,
    field: &str,
    ctx: &str,
    errs: &mut Errors<'_>,
) -> Option<String> {
    let url = match reqwest::Url::parse(u.get_ref()) {
        Ok(url) => url,
        Err(e) => {
            errs.at(u.span(), ctx, format!("field '{field}': not a URL: {e}"));
            return None;
        }
    };
    match url.scheme() {
        "https" => Some(url.to_string()),
        "http" if r.allow_insecure_http => Some(url.to_string()),
        "http" => {
            errs.at(
                u.span(),
                ctx,
                format!("field '{field}': plain http:// is refused; use https:// or set allow_insecure_http = true"),
            );
            None
        }
        other => {
            errs.at(
                u.span(),
                ctx,
                format!("field '{field}': unsupported scheme '{other}'"),
            );
            None
        }
    }
}

fn remote_source(
    r: &RawIssuer,
    timeout: Duration,
    base: &Path,
    state_dir: Option<&Path>,
    ctx: &str,
    errs: &mut Errors<'_>,
) -> Option<KeySource> {
    let location = match (&r.jwks_uri, &r.discovery_uri) {
        (Some(u), _) => Location::Jwks(checked_url(r, u, "jwks_uri", ctx, errs)?),
        (None, Some(d)) => Location::Discovery(checked_url(r, d, "discovery_uri", ctx, errs)?),
        (None, None) => {
            // OpenID Connect Discovery 1.0 §4: the document lives under the issuer identifier.
            let url = format!(
                "{}/.well-known/openid-configuration",
                r.issuer.get_ref().trim_end_matches('/')
            );
            let spanned = Spanned::new(r.issuer.span(), url);
            Location::Discovery(checked_url(r, &spanned, "issuer", ctx, errs)?)
        }
    };
    let dur =
        |d: &Option<Spanned<ConfigDuration>>, default: u64, field: &str, errs: &mut Errors<'_>| {
            secs(d).map_or(Duration::from_secs(default), |(d, span)| {
                if d.is_zero() {
                    errs.at(
                        span,
                        ctx,
                        format!("field '{field}': must be greater than zero"),
                    );
                }
                d
            })
        };
    let min_ttl = dur(&r.jwks_min_ttl, 300, "jwks_min_ttl", errs);
    let max_ttl = dur(&r.jwks_max_ttl, 86_400, "jwks_max_ttl", errs);
    if min_ttl > max_ttl {
        let span = r.jwks_min_ttl.as_ref().map_or(r.name.span(), Spanned::span);
        errs.at(
            span,
            ctx,
            "field 'jwks_min_ttl': must not exceed jwks_max_ttl",
        );
    }
    let refetch_cooldown = dur(&r.jwks_refetch_cooldown, 30, "jwks_refetch_cooldown", errs);
    let max_stale = dur(&r.jwks_max_stale, 86_400, "jwks_max_stale", errs);
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tokengate/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &r.ca_file {
        let file = base.join(ca.get_ref());
        let certs = std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()));
        match certs {
            Ok(certs) if !certs.is_empty() => {
                for c in certs {
                    builder = builder.add_root_certificate(c);
                }
            }
            Ok(_) => {
                errs.at(
                    ca.span(),
                    ctx,
                    format!("field 'ca_file': {}: no certificates", file.display()),
                );
                return None;
            }
            Err(e) => {
                errs.at(
                    ca.span(),
                    ctx,
                    format!("field 'ca_file': {}: {e}", file.display()),
                );
                return None;
            }
        }
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(e) => {
            errs.at(
                r.name.span(),
                ctx,
                format!("cannot build an HTTP client: {e}"),
            );
            return None;
        }
    };
    Some(KeySource::Remote(Remote {
        location,
        client,
        allow_insecure_http: r.allow_insecure_http,
        min_ttl,
        max_ttl,
        refetch_cooldown,
        max_stale,
        state_file: state_dir.map(|d| d.join(format!("jwks-{}.json", r.name.get_ref()))),
    }))
}

fn compile_upstream(r: &RawUpstream, ctx: &str, errs: &mut Errors<'_>) -> Option<Upstream> {
    if r.targets.get_ref().is_empty() {
        errs.at(
            r.targets.span(),
            ctx,
            "field 'targets': at least one host:port is required",
        );
        return None;
    }
    let connect = secs(&r.connect_timeout).map_or(Duration::from_secs(5), |d| d.0);
    let read = secs(&r.read_timeout).map_or(Duration::from_secs(60), |d| d.0);
    for (field, d) in [
        ("connect_timeout", &r.connect_timeout),
        ("read_timeout", &r.read_timeout),
    ] {
        if let Some(s) = d {
            if s.get_ref().0.is_zero() {
                errs.at(
                    s.span(),
                    ctx,
                    format!("field '{field}': must be greater than zero"),
                );
            }
        }
    }
    match Upstream::new(r.name.get_ref().clone(), r.targets.get_ref(), connect, read) {
        Ok(u) => Some(u),
        Err(e) => {
            errs.at(r.targets.span(), ctx, format!("field 'targets': {e}"));
            None
        }
    }
}

fn compile_route(
    r: &RawRoute,
    ctx: &str,
    issuers: &[Arc<Issuer>],
    issuer_names: &HashMap<String, usize>,
    upstreams: &HashMap<String, Arc<Upstream>>,
    metrics: &Metrics,
    errs: &mut Errors<'_>,
) -> Option<Route> {
    let before = errs.list.len();
    let path = route_path(r, ctx, errs);
    let methods = r.methods.as_ref().map(|m| {
        if m.get_ref().is_empty() {
            errs.at(
                m.span(),
                ctx,
                "field 'methods': must not be empty (omit it to allow any method)",
            );
        }
        m.get_ref()
            .iter()
            .filter_map(|name| {
                let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase());
                match Method::from_bytes(name.as_bytes()) {
                    Ok(method) if ok => Some(method),
                    _ => {
                        errs.at(
                            m.span(),
                            ctx,
                            format!("field 'methods': '{name}' is not an upper-case HTTP method"),
                        );
                        None
                    }
                }
            })
            .collect::<Vec<_>>()
    });
    let host = r.host.as_ref().map(|h| {
        let v = h.get_ref().trim_end_matches('.').to_ascii_lowercase();
        if v.is_empty()
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        {
            errs.at(
                h.span(),
                ctx,
                "field 'host': must be a host name without port or scheme",
            );
        }
        v
    });
    let upstream = upstreams.get(r.upstream.get_ref()).cloned();
    if upstream.is_none() {
        errs.at(
            r.upstream.span(),
            ctx,
            format!(
                "field 'upstream': unknown upstream '{}'",
                r.upstream.get_ref()
            ),
        );
    }
    let auth = match r.auth.as_ref().map(|a| (a.get_ref().as_str(), a.span())) {
        None | Some(("jwt", _)) => compile_jwt(r, ctx, issuers, issuer_names, errs),
        Some(("none", _)) => {
            let rules = [
                ("issuers", r.issuers.as_ref().map(Spanned::span)),
                ("scopes_all", r.scopes_all.as_ref().map(Spanned::span)),
                ("scopes_any", r.scopes_any.as_ref().map(Spanned::span)),
                ("clients", r.clients.as_ref().map(Spanned::span)),
                ("claims", r.claims.as_ref().map(Spanned::span)),
                (
                    "max_token_lifetime",
                    r.max_token_lifetime.as_ref().map(Spanned::span),
                ),
                ("max_token_age", r.max_token_age.as_ref().map(Spanned::span)),
                (
                    "forward_claims",
                    r.forward_claims.as_ref().map(Spanned::span),
                ),
            ];
            for (field, at) in rules {
                if let Some(at) = at {
                    errs.at(
                        at,
                        ctx,
                        format!(
                            "field '{field}': token rules cannot be combined with auth = \"none\""
                        ),
                    );
                }
            }
            Some(Auth::None)
        }
        Some((other, span)) => {
            errs.at(
                span,
                ctx,
                format!("field 'auth': '{other}' is not \"jwt\" or \"none\""),
            );
            None
        }
    };
    let forward_claims = compile_forward_claims(r, ctx, errs);
    if errs.list.len() != before {
        return None;
    }
    let auth = auth?;
    // On `auth = "none"` nothing verified the Authorization header, so by default it is not passed
    // on: an upstream that decodes tokens without verifying them must not mistake it for one the
    // gateway checked.
    let strip_authorization = r
        .strip_authorization
        .as_ref()
        .map_or(matches!(auth, Auth::None), |s| *s.get_ref());
    Some(Route {
        name: r.name.get_ref().clone(),
        host,
        methods,
        path: path?,
        upstream: upstream?,
        auth,
        forward_claims,
        strip_authorization,
        metrics: metrics.route(r.name.get_ref()),
    })
}

fn route_path(r: &RawRoute, ctx: &str, errs: &mut Errors<'_>) -> Option<PathMatch> {
    let (field, raw, exact) = match (&r.path, &r.path_prefix) {
        (Some(p), None) => ("path", p, true),
        (None, Some(p)) => ("path_prefix", p, false),
        (Some(_), Some(p)) => {
            errs.at(
                p.span(),
                ctx,
                "field 'path_prefix': give exactly one of 'path' and 'path_prefix'",
            );
            return None;
        }
        (None, None) => {
            errs.at(
                r.name.span(),
                ctx,
                "missing field 'path' (or 'path_prefix')",
            );
            return None;
        }
    };
    match path::normalise(raw.get_ref()) {
        Ok(n) if n.trim_end_matches('/') == raw.get_ref().trim_end_matches('/') => {
            let n = if n == "/" {
                n
            } else {
                n.trim_end_matches('/').to_string()
            };
            Some(if exact {
                PathMatch::Exact(n)
            } else {
                PathMatch::Prefix(n)
            })
        }
        Ok(n) => {
            errs.at(
                raw.span(),
                ctx,
                format!("field '{field}': not in normal form (requests are matched as '{n}')"),
            );
            None
        }
        Err(e) => {
            errs.at(raw.span(), ctx, format!("field '{field}': {e}"));
            None
        }
    }
}

fn is_scope_token(s: &str) -> bool {
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn compile_jwt(
    r: &RawRoute,
    ctx: &str,
    issuers: &[Arc<Issuer>],
    issuer_names: &HashMap<String, usize>,
    errs: &mut Errors<'_>,
) -> Option<Auth> {
    let chosen: Vec<Arc<Issuer>> = match &r.issuers {
        None => {
            if issuer_names.is_empty() {
                errs.at(
                    r.name.span(),
                    ctx,
                    "auth = \"jwt\" needs at least one [[issuer]]",
                );
            }
            issuers.to_vec()
        }
        Some(list) => {
            if list.get_ref().is_empty() {
                errs.at(list.span(), ctx, "field 'issuers': must not be empty");
            }
            let mut out = Vec::new();
            for name in list.get_ref() {
                if !issuer_names.contains_key(name) {
                    errs.at(
                        list.span(),
                        ctx,
                        format!("field 'issuers': unknown issuer '{name}'"),
                    );
                } else if let Some(i) = issuers.iter().find(|i| &i.name == name) {
                    out.push(Arc::clone(i));
                }
            }
            out
        }
    };
    // The token's iss picks the issuer; two with the same iss on one route would make the
    // second unreachable.
    for (i, a) in chosen.iter().enumerate() {
        if let Some(b) = chosen[..i].iter().find(|b| b.iss == a.iss) {
            let span = r.issuers.as_ref().map_or(r.name.span(), Spanned::span);
            errs.at(
                span,
                ctx,
                format!(
                    "field 'issuers': '{}' and '{}' have the same issuer '{}'",
                    b.name, a.name, a.iss
                ),
            );
        }
    }
    let mut scopes = |v: &Option<Spanned<Vec<String>>>, field: &str| -> Vec<String> {
        let Some(l) = v else { return Vec::new() };
        if l.get_ref().is_empty() {
            errs.at(l.span(), ctx, format!("field '{field}': must not be empty"));
        }
        for s in l.get_ref() {
            if !is_scope_token(s) {
                errs.at(l.span(), ctx, format!("field '{field}': '{s}' is not a valid scope (no spaces, quotes or backslashes)"));
            }
        }
        l.get_ref().clone()
    };
    let scopes_all = scopes(&r.scopes_all, "scopes_all");
    let scopes_any = scopes(&r.scopes_any, "scopes_any");
    let clients = r.clients.as_ref().map(|c| {
        if c.get_ref().is_empty() || c.get_ref().iter().any(String::is_empty) {
            errs.at(
                c.span(),
                ctx,
                "field 'clients': must list at least one non-empty client id",
            );
        }
        c.get_ref().clone()
    });
    let mut claims = Vec::new();
    if let Some(map) = &r.claims {
        for (name, value) in map.get_ref() {
            let json = match value {
                toml::Value::String(s) => serde_json::Value::String(s.clone()),
                toml::Value::Integer(i) => serde_json::Value::from(*i),
                toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
                _ => {
                    errs.at(
                        map.span(),
                        ctx,
                        format!("field 'claims': '{name}' must be a string, integer or boolean"),
                    );
                    continue;
                }
            };
            if name.is_empty() {
                errs.at(map.span(), ctx, "field 'claims': empty claim name");
            }
            claims.push((ClaimPath::new(name), json));
        }
    }
    let mut bound = |d: &Option<Spanned<ConfigDuration>>, field: &str| {
        secs(d).map(|(d, span)| {
            let s = d.as_secs();
            if !(LIFETIME_BOUNDS.0..=LIFETIME_BOUNDS.1).contains(&s) {
                errs.at(
                    span,
                    ctx,
                    format!(
                        "field '{field}': {s}s is outside {}s..={}s (1 minute to 30 days)",
                        LIFETIME_BOUNDS.0, LIFETIME_BOUNDS.1
                    ),
                );
            }
            s as i64
        })
    };
    let max_lifetime = bound(&r.max_token_lifetime, "max_token_lifetime");
    let max_age = bound(&r.max_token_age, "max_token_age");
    let challenge: Vec<&str> = scopes_all
        .iter()
        .chain(scopes_any.iter())
        .map(String::as_str)
        .collect();
    Some(Auth::Jwt {
        issuers: chosen,
        policy: Policy {
            scope_challenge: challenge.join(" ").into(),
            scopes_all,
            scopes_any,
            clients,
            claims,
            max_lifetime,
            max_age,
        },
    })
}

fn compile_forward_claims(r: &RawRoute, ctx: &str, errs: &mut Errors<'_>) -> Vec<ForwardClaim> {
    let Some(map) = &r.forward_claims else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // Each name folded (`_` read as `-`), with its spelling in the file: CGI-style upstreams read
    // `x_forwarded_for` as `X-Forwarded-For`, and `x_user` next to `x-user` as one variable.
    let mut seen: Vec<(HeaderName, &str)> = Vec::new();
    for (header, claim) in map.get_ref() {
        let problem = match HeaderName::from_bytes(header.as_bytes()) {
            Err(_) => Some(format!("'{header}' is not a header name")),
            Ok(h) => {
                let name = upstream::folded(&h);
                if RESERVED_HEADERS.contains(&name.as_str()) {
                    Some(format!("'{header}' cannot carry a claim"))
                } else if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                    Some(format!(
                        "'{first}' and '{header}' name the same header (case is ignored and '_' \
                         reads as '-')"
                    ))
                } else if claim.is_empty() {
                    Some(format!("'{header}' names no claim"))
                } else {
                    seen.push((name, header));
                    out.push(ForwardClaim::new(h, ClaimPath::new(claim)));
                    None
                }
            }
        };
        if let Some(problem) = problem {
            errs.at(
                map.span(),
                ctx,
                format!("field 'forward_claims': {problem}"),
            );
        }
    }
    out
}
