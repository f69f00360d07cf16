//! `tokengate check`: every class of config error is reported with exit code 1, on stderr, as
//! `FILE:LINE: <context>: <reason>` naming the right line and field; valid files (including every
//! file shipped in `conf/`) exit 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use support::gateway::BIN;
use support::{line_of, reserve_addr};

/// The result of one `tokengate check` run.
struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    path: String,
}

impl Checked {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn check_path(path: &Path) -> Checked {
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        path: path.display().to_string(),
    }
}

/// Writes `text` to `t.toml` in a fresh tempdir and checks it.
fn check(text: &str) -> Checked {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.toml");
    std::fs::write(&path, text).expect("write config");
    check_path(&path)
}

/// Whether a stderr line names every word (case-insensitive); a word may list alternatives
/// separated by `|`.
fn names_all(line: &str, words: &[&str]) -> bool {
    let line = line.to_lowercase();
    words
        .iter()
        .all(|w| w.split('|').any(|alt| line.contains(&alt.to_lowercase())))
}

/// Asserts `check` fails (exit 1) with a stderr line of the form `FILE:LINE: ...` that names
/// every word in `words` (case-insensitive, `|` separates alternatives).
fn assert_error_at(text: &str, line: usize, words: &[&str]) {
    let c = check(text);
    assert_eq!(
        c.code,
        Some(1),
        "expected exit 1\n{}\n--- config\n{text}",
        c.describe()
    );
    let location = format!("{}:{line}:", c.path);
    let found = c
        .stderr
        .lines()
        .any(|l| l.contains(&location) && names_all(l, words));
    assert!(
        found,
        "no stderr line contains {location:?} and all of {words:?}\n{}\n--- config (numbered)\n{}",
        c.describe(),
        numbered(text)
    );
}

/// Like [`assert_error_at`] but any of `lines` is acceptable.
fn assert_error_at_one_of(text: &str, lines: &[usize], words: &[&str]) {
    let c = check(text);
    assert_eq!(c.code, Some(1), "expected exit 1\n{}", c.describe());
    let found = c.stderr.lines().any(|l| {
        lines
            .iter()
            .any(|n| l.contains(&format!("{}:{n}:", c.path)))
            && names_all(l, words)
    });
    assert!(
        found,
        "no stderr line names {}:{lines:?} and all of {words:?}\n{}\n--- config (numbered)\n{}",
        c.path,
        c.describe(),
        numbered(text)
    );
}

fn numbered(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| format!("{:>3} {l}\n", i + 1))
        .collect()
}

/// `[server]` with reserved (never bound) ports.
fn server() -> String {
    format!(
        "[server]\nlisten = [\"{}\"]\nadmin_listen = \"{}\"\nthreads = 1\n\n",
        reserve_addr(),
        reserve_addr()
    )
}

/// An `[[issuer]]` named `main`; `extra` lines are appended inside the block.
fn issuer(extra: &str) -> String {
    format!(
        "[[issuer]]\nname = \"main\"\nissuer = \"https://issuer.test/\"\naudiences = [\"https://api.test\"]\n\
         {extra}\n\n"
    )
}

/// The usual key source: an http JWKS URI with insecure http allowed.
fn jwks_uri() -> String {
    format!(
        "jwks_uri = \"http://{}/jwks.json\"\nallow_insecure_http = true\nalgorithms = [\"RS256\"]",
        reserve_addr()
    )
}

/// An `[[upstream]]` named `echo`.
fn upstream() -> String {
    format!(
        "[[upstream]]\nname = \"echo\"\ntargets = [\"{}\"]\n\n",
        reserve_addr()
    )
}

/// `[server]`, issuer `main`, upstream `echo`, then `routes`.
fn config(routes: &str) -> String {
    format!("{}{}{}{routes}", server(), issuer(&jwks_uri()), upstream())
}

const GOOD_ROUTES: &str = r#"[[route]]
name = "open"
path_prefix = "/open"
upstream = "echo"
auth = "none"

[[route]]
name = "transfers"
path_prefix = "/transfers"
methods = ["POST"]
upstream = "echo"
auth = "jwt"
issuers = ["main"]
scopes_all = ["transfer:write"]
max_token_lifetime = "10m"
max_token_age = 300
forward_claims = { "x-auth-sub" = "sub" }
"#;

#[test]
fn valid_config_exits_0() {
    let c = check(&config(GOOD_ROUTES));
    assert_eq!(c.code, Some(0), "{}", c.describe());
}

#[test]
fn unknown_key_is_reported_at_its_line() {
    let text = config(
        r#"[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
scope_all = ["read"]
"#,
    );
    assert_error_at(
        &text,
        line_of(&text, "scope_all"),
        &["scope_all", "unknown"],
    );
}

#[test]
fn unknown_key_in_server_is_reported_at_its_line() {
    let text = config(GOOD_ROUTES).replacen("threads = 1", "threads = 1\nlisten_port = 8080", 1);
    assert_error_at(&text, line_of(&text, "listen_port"), &["listen_port"]);
}

/// Head limits have upper bounds as well as lower ones: an absurd value (a typo, or a limit pingora
/// never lets a head reach) is refused at its line, naming `server`, the field and the range. The
/// bounds themselves are accepted.
#[test]
fn absurd_request_head_limits_are_reported_at_their_line() {
    for (setting, range) in [
        ("max_request_headers = 257", "between 8 and 256"),
        ("max_request_headers = 1000000", "between 8 and 256"),
        (
            "max_request_header_bytes = 2097153",
            "between 4096 and 2097152",
        ),
        (
            "max_request_header_bytes = 9223372036854775807",
            "between 4096 and 2097152",
        ),
        (
            "max_header_field_bytes = 2097153\nmax_request_header_bytes = 2097152",
            "between 16416 and 2097152",
        ),
    ] {
        eprintln!("case: {setting}");
        let text =
            config(GOOD_ROUTES).replacen("threads = 1", &format!("threads = 1\n{setting}"), 1);
        let field = setting.split(" =").next().unwrap_or(setting);
        assert_error_at(
            &text,
            line_of(&text, &format!("{field} =")),
            &["server", &format!("field '{field}'"), range],
        );
    }
    let bounds = "max_request_headers = 256\nmax_request_header_bytes = 2097152\n\
                  max_header_field_bytes = 2097152";
    let text = config(GOOD_ROUTES).replacen("threads = 1", &format!("threads = 1\n{bounds}"), 1);
    let c = check(&text);
    assert_eq!(c.code, Some(0), "{}", c.describe());
}

#[test]
fn missing_required_field_is_reported_at_its_block() {
    let text = config(
        r#"[[route]]
name = "open"
path_prefix = "/open"
upstream = "echo"
auth = "none"

[[route]] # the incomplete one
name = "api"
path_prefix = "/api"
auth = "none"
"#,
    );
    assert_error_at(
        &text,
        line_of(&text, "# the incomplete one"),
        &["upstream", "missing"],
    );
}

#[test]
fn duplicate_route_name_is_reported_at_the_second() {
    let text = config(
        r#"[[route]]
name = "dup"
path_prefix = "/a"
upstream = "echo"
auth = "none"

[[route]]
name = "dup" # again
path_prefix = "/b"
upstream = "echo"
auth = "none"
"#,
    );
    assert_error_at(
        &text,
        line_of(&text, "# again"),
        &["name", "dup", "duplicate"],
    );
}

#[test]
fn unknown_issuer_reference_is_reported() {
    let text = config(
        r#"[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
issuers = ["nope"]
"#,
    );
    assert_error_at(&text, line_of(&text, "issuers = "), &["issuers", "nope"]);
}

#[test]
fn unknown_upstream_reference_is_reported() {
    let text = config(
        r#"[[route]]
name = "open"
path_prefix = "/open"
upstream = "echo"
auth = "none"

[[route]]
name = "transfers"
path_prefix = "/transfers"
upstream = "bank"
"#,
    );
    assert_error_at(
        &text,
        line_of(&text, "upstream = \"bank\""),
        &["upstream", "bank", "transfers"],
    );
}

#[test]
fn auth_none_with_scopes_all_is_reported() {
    let text = config(
        r#"[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
auth = "none"
scopes_all = ["read"]
"#,
    );
    assert_error_at(&text, line_of(&text, "scopes_all"), &["scopes_all"]);
}

#[test]
fn token_lifetime_under_60s_is_reported() {
    let text = config(
        r#"[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
max_token_lifetime = "30s"
"#,
    );
    assert_error_at(
        &text,
        line_of(&text, "max_token_lifetime"),
        &["max_token_lifetime"],
    );
}

#[test]
fn token_lifetime_over_30_days_is_reported() {
    let text = config(
        r#"[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
max_token_lifetime = 2592001
"#,
    );
    assert_error_at(
        &text,
        line_of(&text, "max_token_lifetime"),
        &["max_token_lifetime"],
    );
}

#[test]
fn token_lifetime_bounds_are_inclusive() {
    for value in ["60", "2592000", "\"1m\"", "\"30d\""] {
        let text = config(&format!(
            "[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"echo\"\nmax_token_lifetime = {value}\nmax_token_age = {value}\n"
        ));
        let c = check(&text);
        assert_eq!(c.code, Some(0), "{value}: {}", c.describe());
    }
}

#[test]
fn token_age_under_60s_is_reported() {
    let text = config(
        r#"[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
max_token_age = 59
"#,
    );
    assert_error_at(&text, line_of(&text, "max_token_age"), &["max_token_age"]);
}

#[test]
fn algorithm_none_is_reported() {
    let text = format!(
        "{}{}{}",
        server(),
        issuer(&format!(
            "jwks_uri = \"http://{}/jwks.json\"\nallow_insecure_http = true\nalgorithms = [\"RS256\", \"none\"]",
            reserve_addr()
        )),
        upstream()
    );
    assert_error_at(&text, line_of(&text, "algorithms"), &["algorithms", "none"]);
}

#[test]
fn unknown_algorithm_is_reported() {
    let text = format!(
        "{}{}{}",
        server(),
        issuer(&format!(
            "jwks_uri = \"http://{}/jwks.json\"\nallow_insecure_http = true\nalgorithms = [\"XS256\"]",
            reserve_addr()
        )),
        upstream()
    );
    assert_error_at(
        &text,
        line_of(&text, "algorithms"),
        &["algorithms", "XS256"],
    );
}

/// Shadowing is a property of the whole route, not of one field: any line of the shadowed
/// route's header, `name` or path is accepted, and the message must say why (shadowed / never
/// used / unreachable) and name the earlier route.
const SHADOW_WORDS: &[&str] = &["shadow|never used|unreachable|never match", "'api'"];

#[test]
fn route_shadowed_by_an_earlier_prefix_is_reported() {
    let text = config(
        r#"[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
auth = "none"

[[route]] # shadowed
name = "admin"
path_prefix = "/api/x"
upstream = "echo"
auth = "none"
"#,
    );
    assert_error_at_one_of(
        &text,
        &[
            line_of(&text, "# shadowed"),
            line_of(&text, "\"admin\""),
            line_of(&text, "\"/api/x\""),
        ],
        SHADOW_WORDS,
    );
}

#[test]
fn exact_path_shadowed_by_an_earlier_prefix_is_reported() {
    let text = config(
        r#"[[route]]
name = "api"
path_prefix = "/api"
methods = ["GET", "POST"]
upstream = "echo"
auth = "none"

[[route]] # shadowed
name = "status"
path = "/api/status"
methods = ["GET"]
upstream = "echo"
auth = "none"
"#,
    );
    assert_error_at_one_of(
        &text,
        &[
            line_of(&text, "# shadowed"),
            line_of(&text, "\"status\""),
            line_of(&text, "\"/api/status\""),
        ],
        SHADOW_WORDS,
    );
}

#[test]
fn overlapping_routes_that_are_not_shadowed_are_accepted() {
    for routes in [
        // More specific first.
        "[[route]]\nname = \"x\"\npath_prefix = \"/api/x\"\nupstream = \"echo\"\nauth = \"none\"\n\n\
         [[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"echo\"\nauth = \"none\"\n",
        // Earlier route only takes GET.
        "[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nmethods = [\"GET\"]\nupstream = \"echo\"\nauth = \"none\"\n\n\
         [[route]]\nname = \"x\"\npath_prefix = \"/api/x\"\nupstream = \"echo\"\nauth = \"none\"\n",
        // Earlier route only for one host.
        "[[route]]\nname = \"api\"\nhost = \"a.example.com\"\npath_prefix = \"/api\"\nupstream = \"echo\"\nauth = \"none\"\n\n\
         [[route]]\nname = \"x\"\npath_prefix = \"/api/x\"\nupstream = \"echo\"\nauth = \"none\"\n",
        // Prefix that only looks like a parent.
        "[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"echo\"\nauth = \"none\"\n\n\
         [[route]]\nname = \"apix\"\npath_prefix = \"/apix\"\nupstream = \"echo\"\nauth = \"none\"\n",
    ] {
        let c = check(&config(routes));
        assert_eq!(c.code, Some(0), "{}\n--- routes\n{routes}", c.describe());
    }
}

#[test]
fn both_jwks_uri_and_jwks_file_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, r#"{"keys": []}"#).expect("write jwks");
    let text = format!(
        "{}{}{}",
        server(),
        issuer(&format!(
            "jwks_uri = \"http://{}/jwks.json\"\nallow_insecure_http = true\njwks_file = {:?}\nalgorithms = [\"RS256\"]",
            reserve_addr(),
            jwks_path.display().to_string()
        )),
        upstream()
    );
    assert_error_at_one_of(
        &text,
        &[
            line_of(&text, "jwks_uri"),
            line_of(&text, "jwks_file"),
            line_of(&text, "[[issuer]]"),
        ],
        &["jwks_uri", "jwks_file"],
    );
}

#[test]
fn http_jwks_uri_without_allow_insecure_http_is_reported() {
    let text = format!(
        "{}{}{}",
        server(),
        issuer(&format!(
            "jwks_uri = \"http://{}/jwks.json\"\nalgorithms = [\"RS256\"]",
            reserve_addr()
        )),
        upstream()
    );
    assert_error_at(&text, line_of(&text, "jwks_uri"), &["jwks_uri", "http"]);
}

#[test]
fn every_error_is_reported_on_its_own_line() {
    let text = config(
        r#"[[route]]
name = "first"
path_prefix = "/first"
upstream = "bank"

[[route]]
name = "second"
path_prefix = "/second"
upstream = "echo"
issuers = ["nope"]
"#,
    );
    assert_error_at(&text, line_of(&text, "\"bank\""), &["upstream", "bank"]);
    assert_error_at(&text, line_of(&text, "\"nope\""), &["issuers", "nope"]);
}

#[test]
fn missing_config_file_exits_1_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("does-not-exist.toml");
    let c = check_path(&path);
    assert_eq!(c.code, Some(1), "{}", c.describe());
    assert!(c.stderr.contains(&c.path), "{}", c.describe());
}

#[test]
fn every_shipped_config_in_conf_passes_check() {
    let conf = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/conf"));
    let Ok(entries) = std::fs::read_dir(conf) else {
        eprintln!(
            "note: {} does not exist yet; nothing to check",
            conf.display()
        );
        return;
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        eprintln!("note: no .toml files in {}", conf.display());
    }
    for file in files {
        let c = check_path(&file);
        assert_eq!(c.code, Some(0), "{}: {}", file.display(), c.describe());
    }
}
