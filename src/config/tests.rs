//! Unit tests for `config` and `config::compile`, through `load_str`: every error names the file,
//! the line, the block and the field; valid configs compile completely; shipped configs load.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::route::{Auth, PathMatch};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use std::time::Duration;

const RSA_A: &[u8] = include_bytes!("../../tests/fixtures/rsa_a.pem");

/// A temporary directory with a valid JWKS file, for `jwks_file` issuers.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let key = EncodingKey::from_rsa_pem(RSA_A).unwrap();
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap()).unwrap();
        jwk["kid"] = json!("a");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("jwks.json"),
            json!({ "keys": [jwk] }).to_string(),
        )
        .unwrap();
        Env { dir }
    }

    fn jwks(&self) -> String {
        self.dir
            .path()
            .join("jwks.json")
            .display()
            .to_string()
            .replace('\\', "\\\\")
    }

    /// Replaces `{JWKS}` in `text` with the JWKS file's absolute path.
    fn text(&self, text: &str) -> String {
        text.replace("{JWKS}", &self.jwks())
    }

    fn load(&self, text: &str) -> Result<Runtime, ConfigError> {
        load_str(
            &self.text(text),
            "test.toml",
            Path::new("."),
            &Metrics::new().unwrap(),
        )
    }

    fn ok(&self, text: &str) -> Runtime {
        self.load(text)
            .unwrap_or_else(|e| panic!("config should load:\n{e}\n---\n{text}"))
    }

    fn err(&self, text: &str) -> String {
        match self.load(text) {
            Ok(_) => panic!("config should be refused:\n{text}"),
            Err(e) => e.to_string(),
        }
    }
}

/// The 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in config"))
        + 1
}

/// Asserts that `err` has a line `test.toml:<line>: <context>: ...` containing every word.
fn assert_diag(err: &str, line: usize, context: &str, words: &[&str]) {
    let prefix = format!("test.toml:{line}: {context}: ");
    let found = err
        .lines()
        .find(|l| l.starts_with(&prefix) && words.iter().all(|w| l.contains(w)));
    assert!(
        found.is_some(),
        "expected a line starting {prefix:?} containing {words:?}, got:\n{err}"
    );
}

const ISSUER: &str = r#"
[[issuer]]
name = "idp"
issuer = "https://issuer.example/"
audiences = ["api"]
jwks_file = "{JWKS}"
"#;

const UPSTREAM: &str = r#"
[[upstream]]
name = "u"
targets = ["127.0.0.1:1"]
"#;

/// An issuer, an upstream, and these routes.
fn with_routes(routes: &str) -> String {
    format!("{ISSUER}{UPSTREAM}{routes}")
}

/// An issuer with these extra lines, an upstream and one public route.
fn with_issuer_lines(lines: &str) -> String {
    format!(
        r#"
[[issuer]]
name = "idp"
issuer = "https://issuer.example/"
audiences = ["api"]
{lines}
{UPSTREAM}
[[route]]
name = "a"
path_prefix = "/"
upstream = "u"
"#
    )
}

fn route(name: &str, body: &str) -> String {
    format!("\n[[route]]\nname = \"{name}\"\nupstream = \"u\"\n{body}\n")
}

// ---- valid configs ---------------------------------------------------------------------------

#[test]
fn valid_config_compiles_completely() {
    let env = Env::new();
    let text = format!(
        r#"
[server]
listen = ["127.0.0.1:8080"]
threads = 2
max_token_bytes = 4096
identity_header_prefix = "X-Gw-"

[[issuer]]
name = "one"
issuer = "https://one.example/"
audiences = ["api"]
jwks_file = "{{JWKS}}"
algorithms = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
leeway = "1m"
require_typ = "application/AT+JWT"

[[issuer]]
name = "two"
issuer = "https://two.example/"
audiences = ["api", "other"]
jwks_file = "{{JWKS}}"
{UPSTREAM}
[[upstream]]
name = "v"
targets = ["127.0.0.1:2", "127.0.0.1:3"]

[[route]]
name = "admin"
path_prefix = "/api/admin/"
methods = ["GET", "POST"]
host = "API.Example.com."
upstream = "u"
issuers = ["one"]
scopes_all = ["admin"]
scopes_any = ["a", "b"]
clients = ["web"]
claims = {{ "tier" = "gold", "level" = 3, "verified" = true }}
max_token_lifetime = "10m"
max_token_age = 300
forward_claims = {{ "x-gw-sub" = "sub", "X-User" = "sub" }}
strip_authorization = true

[[route]]
name = "api"
path_prefix = "/api"
upstream = "v"

[[route]]
name = "status"
path = "/status"
upstream = "u"
auth = "none"
"#
    );
    let rt = env.ok(&text);
    assert_eq!(rt.issuers.len(), 2);
    assert_eq!(rt.router.routes().len(), 3);
    assert!(rt.ready());
    let names: Vec<_> = rt.router.routes().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["admin", "api", "status"]);

    let one = &rt.issuers[0];
    assert_eq!(one.name, "one");
    assert_eq!(one.leeway, 60);
    assert_eq!(one.require_typ.as_deref(), Some("at+jwt"));
    assert_eq!(one.algorithms.len(), 5);
    let two = &rt.issuers[1];
    assert_eq!(two.algorithms, vec![Algorithm::RS256], "default allow-list");
    assert_eq!(two.leeway, 30, "default leeway");
    assert_eq!(two.scope_claims, ["scope", "scp", "permissions"]);
    assert_eq!(two.client_claims, ["azp", "client_id", "cid"]);

    let admin = &rt.router.routes()[0];
    assert_eq!(admin.host.as_deref(), Some("api.example.com"));
    assert_eq!(admin.path, PathMatch::Prefix("/api/admin".into()));
    assert_eq!(admin.methods.as_ref().unwrap().len(), 2);
    assert!(admin.strip_authorization);
    let mut headers: Vec<_> = admin
        .forward_claims
        .iter()
        .map(|f| (f.header.as_str(), f.claim.as_str()))
        .collect();
    headers.sort_unstable();
    assert_eq!(headers, [("x-gw-sub", "sub"), ("x-user", "sub")]);
    match &admin.auth {
        Auth::Jwt { issuers, policy } => {
            assert_eq!(issuers.len(), 1);
            assert_eq!(issuers[0].name, "one");
            assert_eq!(policy.scopes_all, ["admin"]);
            assert_eq!(policy.scopes_any, ["a", "b"]);
            assert_eq!(&*policy.scope_challenge, "admin a b");
            assert_eq!(policy.clients.as_deref(), Some(&["web".to_string()][..]));
            assert_eq!(policy.claims.len(), 3);
            assert_eq!(policy.max_lifetime, Some(600));
            assert_eq!(policy.max_age, Some(300));
        }
        Auth::None => panic!("admin route is jwt"),
    }
    match &rt.router.routes()[1].auth {
        Auth::Jwt { issuers, policy } => {
            assert_eq!(issuers.len(), 2, "a route trusts every issuer by default");
            assert!(policy.scopes_all.is_empty() && policy.clients.is_none());
        }
        Auth::None => panic!("api route is jwt"),
    }
    assert!(matches!(rt.router.routes()[2].auth, Auth::None));
    assert_eq!(
        rt.router.routes()[2].path,
        PathMatch::Exact("/status".into())
    );

    assert_eq!(rt.settings.threads, 2);
    assert_eq!(rt.settings.max_token_bytes, 4096);
    assert_eq!(rt.identity.prefix, "x-gw-");
    let mut identity: Vec<_> = rt.identity.names.iter().map(|h| h.as_str()).collect();
    identity.sort_unstable();
    assert_eq!(identity, ["x-gw-sub", "x-user"]);
}

#[test]
fn server_defaults_apply_without_a_server_block() {
    let env = Env::new();
    let rt = env.ok(&with_routes(&route("a", r#"path_prefix = "/""#)));
    assert_eq!(rt.settings.listen, ["0.0.0.0:8080"]);
    assert_eq!(rt.settings.admin_listen.as_deref(), Some("127.0.0.1:9090"));
    assert_eq!(rt.settings.max_token_bytes, 16 * 1024);
    assert!(rt.settings.threads >= 1);
    assert_eq!(rt.identity.prefix, "x-auth-");
}

/// The slowloris and idle-connection bounds are on by default, with the values the README and
/// `conf/tokengate.toml` state, whether `[server]` is absent or present without them.
#[test]
fn timeouts_and_head_limits_default_when_unset() {
    let env = Env::new();
    for server in ["", "[server]\nthreads = 2\n"] {
        let rt = env.ok(&format!(
            "{server}{}",
            with_routes(&route("a", r#"path_prefix = "/""#))
        ));
        let s = &rt.settings;
        assert_eq!(s.header_timeout, Duration::from_secs(10), "{server:?}");
        assert_eq!(s.keepalive_timeout, Duration::from_secs(60), "{server:?}");
        assert_eq!(s.limits.max_headers, 100, "{server:?}");
        assert_eq!(s.limits.max_total_bytes, 64 * 1024, "{server:?}");
        assert_eq!(s.limits.max_field_bytes, 32 * 1024, "{server:?}");
    }
}

#[test]
fn work_stealing_defaults_on_only_with_more_than_one_thread_and_obeys_the_file() {
    let env = Env::new();
    let routes = with_routes(&route("a", r#"path_prefix = "/""#));
    for (server, want) in [
        ("[server]\nthreads = 1\n", false),
        ("[server]\nthreads = 2\n", true),
        ("[server]\nthreads = 1\nwork_stealing = true\n", true),
        ("[server]\nthreads = 4\nwork_stealing = false\n", false),
    ] {
        let rt = env.ok(&format!("{server}{routes}"));
        assert_eq!(rt.settings.tuning.work_stealing, want, "{server:?}");
    }
}

#[test]
fn every_shipped_config_compiles() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/conf"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        seen += 1;
        if let Err(e) = load(&path, &Metrics::new().unwrap()) {
            panic!("{} does not compile:\n{e}", path.display());
        }
    }
    assert!(seen > 0, "no configs in {}", dir.display());
}

#[test]
fn relative_jwks_file_resolves_against_the_config_directory() {
    let env = Env::new();
    let text = with_routes(&route("a", r#"path_prefix = "/""#)).replace("{JWKS}", "jwks.json");
    let file = env.dir.path().join("gateway.toml");
    std::fs::write(&file, &text).unwrap();
    let rt = load(&file, &Metrics::new().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    assert!(rt.ready());
    // The same text from elsewhere cannot find the file.
    let err = load_str(
        &text,
        "test.toml",
        Path::new("/nonexistent"),
        &Metrics::new().unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert_diag(
        &err,
        line_of(&text, "jwks_file"),
        "issuer #1 'idp'",
        &["field 'jwks_file'"],
    );
}

#[test]
fn unreadable_config_file_names_the_path() {
    let err = load(
        Path::new("/nonexistent/tokengate.toml"),
        &Metrics::new().unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/tokengate.toml: cannot read"),
        "{err}"
    );
}

// ---- serde-level errors ----------------------------------------------------------------------

#[test]
fn unknown_key_is_an_error_with_its_line_block_and_name() {
    let env = Env::new();
    let cases = [
        (
            with_routes(
                &(route("a", r#"path_prefix = "/a""#)
                    + &route("b", "path = \"/b\"\ncolour = \"red\"")),
            ),
            "colour",
            "route #2",
        ),
        (
            with_issuer_lines("jwks_file = \"{JWKS}\"\nalgorithm = [\"RS256\"]"),
            "algorithm",
            "issuer #1",
        ),
        (
            format!(
                "[server]\nthread = 2\n{}",
                with_routes(&route("a", r#"path_prefix = "/""#))
            ),
            "thread",
            "server",
        ),
        (
            with_routes(&route("a", r#"path_prefix = "/""#))
                .replace("targets", "target = [\"x:1\"]\ntargets"),
            "target",
            "upstream #1",
        ),
    ];
    for (text, key, context) in cases {
        let err = env.err(&text);
        let line = line_of(&text, &format!("{key} ="));
        assert_diag(&err, line, context, &[&format!("unknown field '{key}'")]);
    }
}

#[test]
fn missing_required_field_names_the_block_header_line() {
    let env = Env::new();
    let text = with_routes(&format!(
        "{}\n[[route]]\npath = \"/b\"\nupstream = \"u\"\n",
        route("a", r#"path_prefix = "/a""#)
    ));
    let err = env.err(&text);
    let second_route = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "[[route]]")
        .nth(1)
        .unwrap()
        .0
        + 1;
    assert_diag(&err, second_route, "route #2", &["missing field 'name'"]);

    let text =
        with_routes(&route("a", r#"path_prefix = "/a""#)).replace("audiences = [\"api\"]\n", "");
    let err = env.err(&text);
    assert_diag(
        &err,
        line_of(&text, "[[issuer]]"),
        "issuer #1",
        &["missing field 'audiences'"],
    );
}

#[test]
fn bad_duration_names_the_field() {
    let env = Env::new();
    let cases = [
        (
            with_routes(&route(
                "a",
                "path_prefix = \"/\"\nmax_token_age = \"5 parsecs\"",
            )),
            "max_token_age",
            "route #1",
        ),
        (
            with_issuer_lines("jwks_file = \"{JWKS}\"\nleeway = \"5 parsecs\""),
            "leeway",
            "issuer #1",
        ),
        (
            format!(
                "[server]\ngrace_period = \"5 parsecs\"\n{}",
                with_routes(&route("a", r#"path_prefix = "/""#))
            ),
            "grace_period",
            "server",
        ),
    ];
    for (text, field, context) in cases {
        let err = env.err(&text);
        let line = line_of(&text, "5 parsecs");
        assert_diag(&err, line, context, &["invalid duration", "parsecs"]);
        assert_diag(&err, line, context, &[&format!("'{field}'")]);
    }
}

#[test]
fn wrongly_typed_value_names_the_field() {
    let env = Env::new();
    let text = format!(
        "[server]\nthreads = \"two\"\n{}",
        with_routes(&route("a", r#"path_prefix = "/""#))
    );
    let err = env.err(&text);
    assert_diag(&err, 2, "server", &["'threads'"]);
}

#[test]
fn syntax_error_is_located() {
    let env = Env::new();
    let text = with_routes(&route("a", "path_prefix = /a"));
    let err = env.err(&text);
    assert!(
        err.starts_with(&format!(
            "test.toml:{}: ",
            line_of(&text, "path_prefix = /a")
        )),
        "{err}"
    );
}

// ---- names -----------------------------------------------------------------------------------

#[test]
fn duplicate_route_name_is_an_error_on_the_second() {
    let env = Env::new();
    let text =
        with_routes(&(route("a", r#"path_prefix = "/a""#) + &route("a", r#"path_prefix = "/b""#)));
    let err = env.err(&text);
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("name = \"a\""))
        .nth(1)
        .unwrap()
        .0
        + 1;
    assert_diag(
        &err,
        line,
        "route #2 'a'",
        &["field 'name'", "duplicate route name", "route #1"],
    );
}

#[test]
fn duplicate_issuer_name_is_an_error_on_the_second() {
    let env = Env::new();
    let text = format!(
        "{ISSUER}{ISSUER}{UPSTREAM}{}",
        route("a", r#"path_prefix = "/""#)
    );
    let err = env.err(&text);
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("name = \"idp\""))
        .nth(1)
        .unwrap()
        .0
        + 1;
    assert_diag(
        &err,
        line,
        "issuer #2 'idp'",
        &["field 'name'", "duplicate issuer name", "issuer #1"],
    );
}

#[test]
fn bad_or_reserved_names_are_refused() {
    let env = Env::new();
    for name in ["-", "", "a b", "ä", &"n".repeat(65)] {
        let text = with_routes(&route(name, r#"path_prefix = "/""#));
        let err = env.err(&text);
        let line = line_of(&text, &format!("name = \"{name}\""));
        assert_diag(&err, line, &format!("route #1 '{name}'"), &["field 'name'"]);
    }
}

#[test]
fn unknown_issuer_in_a_route_is_an_error() {
    let env = Env::new();
    let text = with_routes(&route(
        "a",
        "path_prefix = \"/\"\nissuers = [\"idp\", \"nope\"]",
    ));
    let err = env.err(&text);
    assert_diag(
        &err,
        line_of(&text, "issuers ="),
        "route #1 'a'",
        &["field 'issuers'", "unknown issuer 'nope'"],
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unknown_upstream_is_an_error() {
    let env = Env::new();
    let text = with_routes(&route("a", r#"path_prefix = "/""#))
        .replace("upstream = \"u\"", "upstream = \"bank\"");
    let err = env.err(&text);
    assert_diag(
        &err,
        line_of(&text, "upstream = \"bank\""),
        "route #1 'a'",
        &["field 'upstream'", "unknown upstream 'bank'"],
    );
}

#[test]
fn jwt_route_without_any_issuer_is_an_error() {
    let env = Env::new();
    let text = format!("{UPSTREAM}{}", route("a", r#"path_prefix = "/""#));
    let err = env.err(&text);
    assert_diag(
        &err,
        line_of(&text, "name = \"a\""),
        "route #1 'a'",
        &["[[issuer]]"],
    );
}

// ---- auth = "none" ---------------------------------------------------------------------------

#[test]
fn token_rules_on_an_auth_none_route_are_errors() {
    let env = Env::new();
    let rules = [
        ("issuers", r#"["idp"]"#),
        ("scopes_all", r#"["read"]"#),
        ("scopes_any", r#"["read"]"#),
        ("clients", r#"["web"]"#),
        ("claims", r#"{ "tier" = "gold" }"#),
        ("max_token_lifetime", r#""10m""#),
        ("max_token_age", r#""10m""#),
        ("forward_claims", r#"{ "x-auth-sub" = "sub" }"#),
    ];
    for (field, value) in rules {
        let text = with_routes(&route(
            "a",
            &format!("path_prefix = \"/\"\nauth = \"none\"\n{field} = {value}"),
        ));
        let err = env.err(&text);
        assert_diag(
            &err,
            line_of(&text, &format!("{field} =")),
            "route #1 'a'",
            &[&format!("field '{field}'"), "auth = \"none\""],
        );
    }
}

#[test]
fn unknown_auth_mode_is_an_error() {
    let env = Env::new();
    let text = with_routes(&route("a", "path_prefix = \"/\"\nauth = \"basic\""));
    assert_diag(
        &env.err(&text),
        line_of(&text, "auth ="),
        "route #1 'a'",
        &["field 'auth'", "'basic'"],
    );
}

// ---- bounds ----------------------------------------------------------------------------------

#[test]
fn token_lifetime_and_age_must_be_between_a_minute_and_thirty_days() {
    let env = Env::new();
    let cases = [
        ("59s", false),
        ("59", false),
        ("0", false),
        ("60s", true),
        ("60", true),
        ("1m", true),
        ("30days", true),
        ("2592000", true),
        ("2592000s", true),
        ("2592001", false),
        ("2592001s", false),
        ("31days", false),
    ];
    for field in ["max_token_lifetime", "max_token_age"] {
        for (value, ok) in cases {
            let value = if value.bytes().all(|b| b.is_ascii_digit()) {
                value.to_string()
            } else {
                format!("\"{value}\"")
            };
            let text = with_routes(&route(
                "a",
                &format!("path_prefix = \"/\"\n{field} = {value}"),
            ));
            if ok {
                env.ok(&text);
            } else {
                let err = env.err(&text);
                assert_diag(
                    &err,
                    line_of(&text, &format!("{field} =")),
                    "route #1 'a'",
                    &[&format!("field '{field}'"), "outside"],
                );
            }
        }
    }
}

#[test]
fn server_threads_must_be_between_1_and_256() {
    let env = Env::new();
    for (threads, ok) in [(0, false), (1, true), (256, true), (257, false)] {
        let text = format!(
            "[server]\nthreads = {threads}\n{}",
            with_routes(&route("a", r#"path_prefix = "/""#))
        );
        if ok {
            assert_eq!(env.ok(&text).settings.threads, threads);
        } else {
            assert_diag(
                &env.err(&text),
                2,
                "server",
                &["field 'threads'", "between 1 and 256"],
            );
        }
    }
}

#[test]
fn server_max_token_bytes_is_bounded() {
    let env = Env::new();
    for (bytes, ok) in [
        (1023, false),
        (1024, true),
        (1_048_576, true),
        (1_048_577, false),
    ] {
        let text = format!(
            "[server]\nmax_token_bytes = {bytes}\n{}",
            with_routes(&route("a", r#"path_prefix = "/""#))
        );
        if ok {
            env.ok(&text);
        } else {
            assert_diag(&env.err(&text), 2, "server", &["field 'max_token_bytes'"]);
        }
    }
}

#[test]
fn leeway_is_at_most_five_minutes() {
    let env = Env::new();
    env.ok(&with_issuer_lines("jwks_file = \"{JWKS}\"\nleeway = 300"));
    let text = with_issuer_lines("jwks_file = \"{JWKS}\"\nleeway = 301");
    assert_diag(
        &env.err(&text),
        line_of(&text, "leeway"),
        "issuer #1 'idp'",
        &["field 'leeway'"],
    );
}

// ---- algorithms ------------------------------------------------------------------------------

#[test]
fn unsafe_or_unknown_algorithms_are_refused() {
    let env = Env::new();
    let cases = [
        (r#"["none"]"#, "'none' is never allowed"),
        (r#"["None"]"#, "'none' is never allowed"),
        (r#"["RS256", "none"]"#, "'none' is never allowed"),
        (r#"["HS256"]"#, "HS256 is not allowed"),
        (r#"["HS384"]"#, "HS384 is not allowed"),
        (r#"["HS512"]"#, "HS512 is not allowed"),
        (r#"["XS256"]"#, "unknown algorithm 'XS256'"),
        (r#"["rs256"]"#, "unknown algorithm 'rs256'"),
        (r#"["ES512"]"#, "unknown algorithm 'ES512'"),
        ("[]", "at least one algorithm"),
    ];
    for (list, want) in cases {
        let text = with_issuer_lines(&format!("jwks_file = \"{{JWKS}}\"\nalgorithms = {list}"));
        let err = env.err(&text);
        assert_diag(
            &err,
            line_of(&text, "algorithms ="),
            "issuer #1 'idp'",
            &["field 'algorithms'", want],
        );
    }
}

#[test]
fn every_supported_algorithm_is_accepted() {
    let env = Env::new();
    let list =
        r#"["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]"#;
    let rt = env.ok(&with_issuer_lines(&format!(
        "jwks_file = \"{{JWKS}}\"\nalgorithms = {list}"
    )));
    assert_eq!(rt.issuers[0].algorithms.len(), 9);
}

// ---- key sources -----------------------------------------------------------------------------

#[test]
fn both_jwks_uri_and_jwks_file_is_an_error() {
    let env = Env::new();
    let text =
        with_issuer_lines("jwks_uri = \"https://issuer.example/jwks\"\njwks_file = \"{JWKS}\"");
    let err = env.err(&text);
    assert_diag(
        &err,
        line_of(&text, "jwks_file"),
        "issuer #1 'idp'",
        &["jwks_uri", "jwks_file", "exactly one"],
    );
}

#[test]
fn neither_jwks_uri_nor_jwks_file_is_an_error() {
    let env = Env::new();
    let text = with_issuer_lines("");
    let err = env.err(&text);
    assert_diag(
        &err,
        line_of(&text, "name = \"idp\""),
        "issuer #1 'idp'",
        &["missing field 'jwks_uri'", "jwks_file"],
    );
}

#[test]
fn plain_http_jwks_uri_needs_an_explicit_opt_in() {
    let env = Env::new();
    let text = with_issuer_lines("jwks_uri = \"http://issuer.example/jwks\"");
    let err = env.err(&text);
    assert_diag(
        &err,
        line_of(&text, "jwks_uri"),
        "issuer #1 'idp'",
        &["field 'jwks_uri'", "http://", "allow_insecure_http"],
    );
    env.ok(&with_issuer_lines(
        "jwks_uri = \"http://issuer.example/jwks\"\nallow_insecure_http = true",
    ));
    env.ok(&with_issuer_lines(
        "jwks_uri = \"https://issuer.example/jwks\"",
    ));
}

#[test]
fn jwks_uri_must_be_an_http_url() {
    let env = Env::new();
    for (uri, want) in [
        ("ftp://issuer.example/jwks", "unsupported scheme 'ftp'"),
        ("not a url", "not a URL"),
    ] {
        let text = with_issuer_lines(&format!("jwks_uri = \"{uri}\""));
        assert_diag(
            &env.err(&text),
            line_of(&text, "jwks_uri"),
            "issuer #1 'idp'",
            &["field 'jwks_uri'", want],
        );
    }
}

#[test]
fn unusable_jwks_file_is_an_error() {
    let env = Env::new();
    let bad = env.dir.path().join("bad.json");
    let cases = [
        ("not json", "not a JSON object"),
        (r#"{"keys": [{"kty": "oct", "k": "AA"}]}"#, "no usable keys"),
    ];
    for (content, want) in cases {
        std::fs::write(&bad, content).unwrap();
        let text = with_issuer_lines(&format!("jwks_file = \"{}\"", bad.display()));
        assert_diag(
            &env.err(&text),
            line_of(&text, "jwks_file"),
            "issuer #1 'idp'",
            &["field 'jwks_file'", want],
        );
    }
    let text = with_issuer_lines("jwks_file = \"/nonexistent/jwks.json\"");
    assert_diag(
        &env.err(&text),
        line_of(&text, "jwks_file"),
        "issuer #1 'idp'",
        &["field 'jwks_file'", "/nonexistent/jwks.json"],
    );
}

// ---- paths -----------------------------------------------------------------------------------

#[test]
fn route_paths_must_be_in_normal_form() {
    let env = Env::new();
    let cases = [
        ("path", "/a/../b", "not in normal form"),
        ("path", "/a/./b", "not in normal form"),
        ("path", "//a", "not in normal form"),
        ("path", "/%61", "not in normal form"),
        ("path_prefix", "/a//b", "not in normal form"),
        ("path_prefix", "/a/../b", "not in normal form"),
        ("path", "a", "must start with '/'"),
        ("path", "/..", "above the root"),
        ("path_prefix", "/a;b", "forbidden character"),
    ];
    for (field, value, want) in cases {
        let text = with_routes(&route("a", &format!("{field} = \"{value}\"")));
        let err = env.err(&text);
        assert_diag(
            &err,
            line_of(&text, &format!("{field} =")),
            "route #1 'a'",
            &[&format!("field '{field}'"), want],
        );
    }
}

#[test]
fn normal_form_error_shows_how_requests_are_matched() {
    let env = Env::new();
    let text = with_routes(&route("a", "path = \"/a/../b\""));
    assert!(env.err(&text).contains("'/b'"));
}

#[test]
fn prefix_with_a_trailing_slash_is_accepted_and_trimmed() {
    let env = Env::new();
    let rt = env.ok(&with_routes(
        &(route("a", "path_prefix = \"/api/\"") + &route("b", "path_prefix = \"/\"")),
    ));
    assert_eq!(rt.router.routes()[0].path, PathMatch::Prefix("/api".into()));
    assert_eq!(rt.router.routes()[1].path, PathMatch::Prefix("/".into()));
}

#[test]
fn route_needs_exactly_one_of_path_and_path_prefix() {
    let env = Env::new();
    let text = with_routes(&route("a", "path = \"/a\"\npath_prefix = \"/a\""));
    assert_diag(
        &env.err(&text),
        line_of(&text, "path_prefix"),
        "route #1 'a'",
        &["field 'path_prefix'", "exactly one"],
    );
    let text = with_routes(&route("a", ""));
    assert_diag(
        &env.err(&text),
        line_of(&text, "name = \"a\""),
        "route #1 'a'",
        &["missing field 'path'"],
    );
}

// ---- shadowing -------------------------------------------------------------------------------

#[test]
fn shadowed_routes_are_errors() {
    let env = Env::new();
    let cases: &[(&str, &str, bool)] = &[
        ("path_prefix = \"/api\"", "path_prefix = \"/api/x\"", true),
        ("path_prefix = \"/api\"", "path = \"/api/x\"", true),
        ("path_prefix = \"/api\"", "path = \"/api\"", true),
        ("path_prefix = \"/\"", "path_prefix = \"/x\"", true),
        ("path = \"/a\"", "path = \"/a\"", true),
        (
            "path_prefix = \"/api\"",
            "path_prefix = \"/api\"\nhost = \"a.example\"",
            true,
        ),
        (
            "path_prefix = \"/api\"",
            "path_prefix = \"/api/x\"\nmethods = [\"GET\"]",
            true,
        ),
        (
            "path_prefix = \"/api\"\nmethods = [\"GET\", \"POST\"]",
            "path_prefix = \"/api/x\"\nmethods = [\"POST\"]",
            true,
        ),
        (
            "path_prefix = \"/api\"\nhost = \"a.example\"",
            "path_prefix = \"/api\"\nhost = \"A.example.\"",
            true,
        ),
        ("path_prefix = \"/api/x\"", "path_prefix = \"/api\"", false),
        ("path_prefix = \"/api\"", "path_prefix = \"/apix\"", false),
        ("path = \"/a\"", "path = \"/b\"", false),
        ("path = \"/a\"", "path_prefix = \"/a\"", false),
        (
            "path_prefix = \"/api\"\nhost = \"a.example\"",
            "path_prefix = \"/api\"\nhost = \"b.example\"",
            false,
        ),
        (
            "path_prefix = \"/api\"\nhost = \"a.example\"",
            "path_prefix = \"/api\"",
            false,
        ),
        (
            "path_prefix = \"/api\"\nmethods = [\"GET\"]",
            "path_prefix = \"/api\"",
            false,
        ),
        (
            "path_prefix = \"/api\"\nmethods = [\"GET\"]",
            "path_prefix = \"/api\"\nmethods = [\"POST\"]",
            false,
        ),
    ];
    for (first, second, shadowed) in cases {
        let text = with_routes(&(route("a", first) + &route("b", second)));
        if *shadowed {
            let err = env.err(&text);
            assert_diag(
                &err,
                line_of(&text, "name = \"b\""),
                "route #2 'b'",
                &["never used", "'a' (#1)"],
            );
        } else {
            env.ok(&text);
        }
    }
}

#[test]
fn shadowing_is_reported_against_the_first_earlier_route() {
    let env = Env::new();
    let routes = route("a", "path_prefix = \"/x\"")
        + &route("b", "path_prefix = \"/\"")
        + &route("c", "path = \"/x/y\"");
    let text = with_routes(&routes);
    let err = env.err(&text);
    assert_diag(
        &err,
        line_of(&text, "name = \"c\""),
        "route #3 'c'",
        &["'a' (#1)"],
    );
}

// ---- route fields ----------------------------------------------------------------------------

#[test]
fn forward_claims_cannot_set_reserved_headers() {
    let env = Env::new();
    for header in [
        "authorization",
        "Authorization",
        "host",
        "x-forwarded-for",
        "content-length",
        "transfer-encoding",
        // CGI-style upstreams read these as the names above.
        "x_forwarded_for",
        "X_Forwarded_Host",
        "content_length",
    ] {
        let text = with_routes(&route(
            "a",
            &format!("path_prefix = \"/\"\nforward_claims = {{ \"{header}\" = \"sub\" }}"),
        ));
        let err = env.err(&text);
        assert_diag(
            &err,
            line_of(&text, "forward_claims"),
            "route #1 'a'",
            &[
                "field 'forward_claims'",
                &format!("'{header}'"),
                "cannot carry a claim",
            ],
        );
    }
}

#[test]
fn forward_claims_names_that_are_one_header_to_the_upstream_are_an_error() {
    let env = Env::new();
    for (entry, first, second) in [
        (
            r#""x_user" = "sub", "x-user" = "email""#,
            "x-user",
            "x_user",
        ),
        (r#""X-User" = "sub", "x-user" = "sub""#, "X-User", "x-user"),
        (r#""X_USER" = "sub", "x-user" = "sub""#, "X_USER", "x-user"),
    ] {
        let want = format!("'{first}' and '{second}' name the same header");
        assert_forward_claims_error(&env, entry, &want);
    }
}

/// The names every route's client copies are stripped under are stored folded (`_` as `-`) once,
/// at compile time, whichever spelling the file uses; the header the gateway sets keeps it.
#[test]
fn forwarded_header_names_are_kept_folded_for_stripping() {
    let env = Env::new();
    let text = with_routes(&format!(
        "{}{}",
        route(
            "a",
            "path_prefix = \"/a\"\nforward_claims = { \"x_user\" = \"sub\", \"X_Org_Id\" = \"org\" }"
        ),
        route(
            "b",
            "path_prefix = \"/b\"\nforward_claims = { \"x-user\" = \"sub\" }"
        ),
    ));
    let rt = env.ok(&text);
    let mut identity: Vec<_> = rt.identity.names.iter().map(|h| h.as_str()).collect();
    identity.sort_unstable();
    assert_eq!(identity, ["x-org-id", "x-user"]);
    let set: Vec<_> = rt.router.routes()[0]
        .forward_claims
        .iter()
        .map(|f| f.header.as_str())
        .collect();
    assert_eq!(set, ["x_org_id", "x_user"]);
}

#[test]
fn forward_claims_need_a_header_name_and_a_claim() {
    let env = Env::new();
    for (entry, want) in [
        (r#""bad header" = "sub""#, "not a header name"),
        (r#""x-auth-sub" = """#, "names no claim"),
    ] {
        assert_forward_claims_error(&env, entry, want);
    }
}

/// A route with `forward_claims = { <entry> }` must be refused on that line, naming the field
/// and `want`.
fn assert_forward_claims_error(env: &Env, entry: &str, want: &str) {
    let text = with_routes(&route(
        "a",
        &format!("path_prefix = \"/\"\nforward_claims = {{ {entry} }}"),
    ));
    assert_diag(
        &env.err(&text),
        line_of(&text, "forward_claims"),
        "route #1 'a'",
        &["field 'forward_claims'", want],
    );
}

#[test]
fn route_field_values_are_validated() {
    let env = Env::new();
    let cases = [
        ("methods = [\"get\"]", "methods", "upper-case"),
        ("methods = []", "methods", "must not be empty"),
        ("host = \"api.example.com:8080\"", "host", "without port"),
        ("host = \"https://api.example.com\"", "host", "without port"),
        (
            "scopes_all = [\"read data\"]",
            "scopes_all",
            "not a valid scope",
        ),
        ("scopes_any = []", "scopes_any", "must not be empty"),
        ("clients = []", "clients", "at least one"),
        (
            "claims = { \"ratio\" = 1.5 }",
            "claims",
            "string, integer or boolean",
        ),
    ];
    for (line, field, want) in cases {
        let text = with_routes(&route("a", &format!("path_prefix = \"/\"\n{line}")));
        assert_diag(
            &env.err(&text),
            line_of(&text, line),
            "route #1 'a'",
            &[&format!("field '{field}'"), want],
        );
    }
}

// ---- reporting -------------------------------------------------------------------------------

#[test]
fn no_routes_at_all_is_an_error() {
    let env = Env::new();
    let text = format!("{ISSUER}{UPSTREAM}");
    let err = env.err(&text);
    assert!(
        err.starts_with("test.toml:1: no [[route]] defined"),
        "{err}"
    );
    assert!(env.err("").starts_with("test.toml:1: no [[route]] defined"));
}

#[test]
fn several_errors_are_all_reported_in_line_order() {
    let env = Env::new();
    let text = format!(
        r#"
[[issuer]]
name = "idp"
issuer = "https://issuer.example/"
audiences = ["api"]
jwks_file = "{{JWKS}}"
algorithms = ["HS256"]
{UPSTREAM}
[[route]]
name = "a"
path_prefix = "/"
upstream = "u"

[[route]]
name = "b"
upstream = "bank"
path = "/a/../b"
"#
    );
    let err = env.err(&text);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert_diag(
        &err,
        line_of(&text, "algorithms"),
        "issuer #1 'idp'",
        &["HS256"],
    );
    assert_diag(
        &err,
        line_of(&text, "bank"),
        "route #2 'b'",
        &["unknown upstream 'bank'"],
    );
    assert_diag(
        &err,
        line_of(&text, "/a/../b"),
        "route #2 'b'",
        &["not in normal form"],
    );
    let numbers: Vec<usize> = lines
        .iter()
        .map(|l| l.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    let mut sorted = numbers.clone();
    sorted.sort();
    assert_eq!(numbers, sorted);
}

#[test]
fn two_different_problems_give_two_lines() {
    let env = Env::new();
    let text = format!(
        "[server]\nthreads = 0\n{ISSUER}{UPSTREAM}\n[[route]]\nname = \"a\"\npath_prefix = \"/\"\nupstream = \"x\"\n"
    );
    let err = env.err(&text);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert_diag(&err, 2, "server", &["field 'threads'"]);
    assert_diag(
        &err,
        line_of(&text, "upstream = \"x\""),
        "route #1 'a'",
        &["unknown upstream 'x'"],
    );
}

#[test]
fn diagnostics_carry_line_context_and_message() {
    let env = Env::new();
    let text = with_routes(&route("a", "path_prefix = \"/\"\nscopes_all = []"));
    match env.load(&text) {
        Err(ConfigError::Invalid { file, diagnostics }) => {
            assert_eq!(file, "test.toml");
            assert_eq!(
                diagnostics,
                vec![Diagnostic {
                    line: line_of(&text, "scopes_all"),
                    context: "route #1 'a'".into(),
                    message: "field 'scopes_all': must not be empty".into(),
                }]
            );
        }
        other => panic!("{other:?}"),
    }
}
