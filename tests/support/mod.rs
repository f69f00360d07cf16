//! Integration-test harness for tokengate.
//!
//! Everything here runs on real sockets on 127.0.0.1 with OS-assigned ports:
//! - [`KeyServer`] serves a JWKS (with failure modes), [`Echo`] is a recording upstream;
//! - [`Gateway`] runs the `tokengate` binary on a generated config;
//! - [`client`] is a raw HTTP/1.1 client that sends bytes exactly as given;
//! - [`FixtureKey`] signs tokens with the keys in `tests/fixtures/`;
//! - [`Env`] wires the common case together: one issuer `main` (rsa_a, RS256) and one upstream
//!   `echo`, plus the routes a test supplies.
//!
//! Tests are synchronous; every wait is a bounded poll against a deadline.
#![allow(dead_code, unused_imports)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod echo;
pub mod gateway;
pub mod key_server;
pub mod keys;
mod server;

pub use client::Response;
pub use echo::{Echo, Recorded};
pub use gateway::{reserve_addr, Gateway};
pub use key_server::{KeyServer, Mode};
pub use keys::{hmac_token, jwks, merge, raw_token, tamper_signature, FixtureKey};

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The `iss` of the default issuer `main`.
pub const ISS: &str = "https://issuer.test/";
/// The audience of the default issuer `main`.
pub const AUD: &str = "https://api.test";

/// Unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Claims that pass the default issuer: `iss`, `aud`, `sub`, `iat = now`, `exp = now + 300`.
pub fn std_claims() -> Value {
    let t = now();
    json!({"iss": ISS, "aud": AUD, "sub": "user-1", "iat": t, "exp": t + 300})
}

/// [`std_claims`] with `overrides` merged in (`null` removes a claim).
pub fn claims(overrides: Value) -> Value {
    merge(std_claims(), overrides)
}

/// A TOML string array: `["a", "b"]`.
pub fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// An `[[issuer]]` block fetching keys from `jwks_url` over http (insecure http allowed), with
/// audience [`AUD`]; `extra` lines are appended inside the block.
pub fn issuer_toml(
    name: &str,
    iss: &str,
    jwks_url: &str,
    algorithms: &[&str],
    extra: &str,
) -> String {
    format!(
        "[[issuer]]\nname = {name:?}\nissuer = {iss:?}\naudiences = [{AUD:?}]\njwks_uri = {jwks_url:?}\n\
         allow_insecure_http = true\nalgorithms = {}\n{extra}\n",
        toml_list(algorithms)
    )
}

/// An `[[upstream]]` block; `extra` lines are appended inside the block.
pub fn upstream_toml(name: &str, targets: &[SocketAddr], extra: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|a| a.to_string()).collect();
    let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    format!(
        "[[upstream]]\nname = {name:?}\ntargets = {}\n{extra}\n",
        toml_list(&refs)
    )
}

/// The common test setup: a key server holding `rsa_a` (RS256), an echo upstream named `echo`, an
/// issuer `main` ([`ISS`], [`AUD`], RS256 only) and the routes the test gives.
pub struct Env {
    pub key: FixtureKey,
    pub keys: KeyServer,
    pub echo: Echo,
    pub gw: Gateway,
}

impl Env {
    /// Starts everything and waits for readiness. `issuer_extra` lines go into the `main` issuer
    /// block (e.g. `leeway = 0`); `extra_config` is appended to the file: the `[[route]]` blocks
    /// and any further `[[upstream]]`/`[[issuer]]` blocks.
    pub fn start(issuer_extra: &str, extra_config: &str) -> Env {
        Self::start_with_mode(Mode::Normal, issuer_extra, extra_config)
    }

    /// Like [`Env::start`], but the key server is put in `mode` before the gateway starts; unless
    /// that is `Normal`, only `/healthz` is awaited (the issuer is expected to have no keys).
    pub fn start_with_mode(mode: Mode, issuer_extra: &str, extra_config: &str) -> Env {
        let key = FixtureKey::rsa_a();
        let keys = KeyServer::start(&[&key]);
        keys.set_mode(mode);
        let echo = Echo::start();
        let body = format!(
            "{}\n{}\n{}",
            issuer_toml("main", ISS, &keys.url(), &["RS256"], issuer_extra),
            upstream_toml("echo", &[echo.addr()], ""),
            extra_config
        );
        let builder = Gateway::builder(body);
        let gw = if mode == Mode::Normal {
            builder.start()
        } else {
            builder.wait_healthy().start()
        };
        Env {
            key,
            keys,
            echo,
            gw,
        }
    }

    /// A token signed by `rsa_a` with [`std_claims`] plus `overrides`.
    pub fn token(&self, overrides: Value) -> String {
        self.key.sign(Value::Null, claims(overrides))
    }

    /// `GET target`, with a bearer token if given.
    pub fn get(&self, target: &str, token: Option<&str>) -> Response {
        match token {
            Some(t) => client::get_with_token(self.gw.proxy_addr(), target, t),
            None => client::get(self.gw.proxy_addr(), target),
        }
    }

    /// A request with arbitrary method and headers.
    pub fn request(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
        client::request(self.gw.proxy_addr(), method, target, headers)
    }

    /// Raw bytes to the proxy listener.
    pub fn send(&self, raw: &[u8]) -> Response {
        client::send(self.gw.proxy_addr(), raw)
    }

    /// [`assert_rejection`] plus: nothing was ever forwarded to the echo upstream.
    pub fn assert_rejected(
        &self,
        resp: &Response,
        status: u16,
        error: Option<&str>,
        token: Option<&str>,
    ) {
        assert_rejection(resp, status, error, token);
        assert_eq!(
            self.echo.count(),
            0,
            "a rejected request reached the upstream: {:?}",
            self.echo.requests()
        );
    }

    /// Asserts a 200 relayed from the echo upstream and returns what the echo recorded.
    pub fn assert_allowed(&self, resp: &Response) -> Recorded {
        assert_eq!(
            resp.status,
            200,
            "expected the request to be allowed; headers {:?}, body {}",
            resp.headers,
            resp.text()
        );
        let echoed = resp.json();
        assert!(
            echoed.get("path").is_some(),
            "200 did not come from the echo upstream: {}",
            resp.text()
        );
        self.echo.last()
    }

    /// `GET target` (bearer `token` if given) must be relayed: 200 from the echo, exactly one new
    /// upstream request. Returns that request.
    pub fn expect_allowed(&self, target: &str, token: Option<&str>) -> Recorded {
        let before = self.echo.count();
        let resp = self.get(target, token);
        let rec = self.assert_allowed(&resp);
        assert_eq!(
            self.echo.count(),
            before + 1,
            "expected exactly one upstream request"
        );
        rec
    }

    /// `GET target` must be rejected with `status` (and JSON `error` if given), without leaking
    /// the token and without any new upstream request.
    pub fn expect_rejected(
        &self,
        target: &str,
        token: Option<&str>,
        status: u16,
        error: Option<&str>,
    ) -> Response {
        let before = self.echo.count();
        let resp = self.get(target, token);
        assert_rejection(&resp, status, error, token);
        assert_eq!(
            self.echo.count(),
            before,
            "a rejected request reached the upstream: {:?}",
            self.echo.requests().last()
        );
        resp
    }

    /// `GET target` with `token` must be 401 `invalid_token` with the matching challenge.
    pub fn expect_invalid_token(&self, target: &str, token: &str) -> Response {
        let resp = self.expect_rejected(target, Some(token), 401, Some("invalid_token"));
        assert_challenge_error(&resp, "invalid_token");
        resp
    }

    /// `GET target` with `token` must be 403 `insufficient_scope` naming `required` in the
    /// challenge's `scope` attribute.
    pub fn expect_insufficient_scope(&self, target: &str, token: &str, required: &str) -> Response {
        let resp = self.expect_rejected(target, Some(token), 403, Some("insufficient_scope"));
        assert_challenge_error(&resp, "insufficient_scope");
        let c = challenge(&resp);
        assert!(
            c.contains(&format!("scope=\"{required}\"")),
            "challenge lacks scope=\"{required}\": {c}"
        );
        resp
    }
}

/// Asserts a gateway rejection: the status, a JSON body whose `error` is a non-empty string (equal
/// to `error` when given) and whose `error_description` is a string, and that the token (if given)
/// appears neither in the body nor in any response header.
pub fn assert_rejection(resp: &Response, status: u16, error: Option<&str>, token: Option<&str>) {
    assert_eq!(
        resp.status,
        status,
        "unexpected status; headers {:?}, body {}",
        resp.headers,
        resp.text()
    );
    let body = resp.json();
    let got = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("rejection body has no string \"error\": {}", resp.text()));
    assert!(!got.is_empty(), "empty \"error\" in {}", resp.text());
    if let Some(expected) = error {
        assert_eq!(got, expected, "JSON error code; body {}", resp.text());
    }
    assert!(
        body.get("error_description").is_some_and(Value::is_string),
        "rejection body has no string \"error_description\": {}",
        resp.text()
    );
    if let Some(token) = token {
        assert_token_not_leaked(resp, token);
    }
}

/// Asserts neither the token nor its signature segment appear in the response.
pub fn assert_token_not_leaked(resp: &Response, token: &str) {
    if token.is_empty() {
        return;
    }
    assert!(!resp.mentions(token), "response leaks the token: {resp:?}");
    if let Some((_, sig)) = token.rsplit_once('.') {
        if sig.len() >= 16 {
            assert!(
                !resp.mentions(sig),
                "response leaks the token signature: {resp:?}"
            );
        }
    }
}

/// The `WWW-Authenticate` header; panics if absent.
pub fn challenge(resp: &Response) -> String {
    resp.header("www-authenticate")
        .unwrap_or_else(|| {
            panic!(
                "no WWW-Authenticate header; status {}, headers {:?}",
                resp.status, resp.headers
            )
        })
        .to_string()
}

/// Asserts a `Bearer` challenge carrying `error="<code>"`.
pub fn assert_challenge_error(resp: &Response, code: &str) {
    let c = challenge(resp);
    assert!(
        c.trim_start().starts_with("Bearer"),
        "challenge is not a Bearer challenge: {c}"
    );
    assert!(
        c.contains(&format!("error=\"{code}\"")),
        "challenge lacks error=\"{code}\": {c}"
    );
}

/// The 401 `invalid_token` shape, and nothing forwarded.
pub fn assert_invalid_token(env: &Env, resp: &Response, token: &str) {
    env.assert_rejected(resp, 401, Some("invalid_token"), Some(token));
    assert_challenge_error(resp, "invalid_token");
}

/// Asserts a `Retry-After` header holding delay-seconds or an HTTP-date.
pub fn assert_retry_after(resp: &Response) {
    let retry = resp
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After header: {:?}", resp.headers))
        .trim();
    assert!(
        retry.parse::<u64>().is_ok() || retry.ends_with("GMT"),
        "Retry-After is neither delay-seconds nor an HTTP-date: {retry:?}"
    );
}

/// Polls `f` every 20 ms until it is true or `timeout` passes; returns whether it became true.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(gateway::POLL);
    }
}

/// One Prometheus sample: its labels and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of metric `name` in Prometheus text `text`.
pub fn metric_samples(text: &str, name: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || !line.starts_with(name) {
            continue;
        }
        let rest = &line[name.len()..];
        let (labels, value) = if let Some(inner) = rest.strip_prefix('{') {
            let Some(close) = inner.rfind('}') else {
                continue;
            };
            (parse_labels(&inner[..close]), inner[close + 1..].trim())
        } else if rest.starts_with(' ') {
            (BTreeMap::new(), rest.trim())
        } else {
            continue; // a longer metric name sharing the prefix
        };
        let value = value.split_whitespace().next().unwrap_or("");
        if let Ok(value) = value.parse::<f64>() {
            out.push(Sample { labels, value });
        }
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(name.trim().to_string(), value);
    }
    out
}

/// The 1-based number of the only line of `text` containing `needle`; panics if there is not
/// exactly one.
pub fn line_of(text: &str, needle: &str) -> usize {
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "expected exactly one line containing {needle:?}, found {hits:?} in:\n{text}"
    );
    hits[0]
}
