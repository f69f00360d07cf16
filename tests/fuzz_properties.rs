//! Property tests over the library entry points the cargo-fuzz targets in `fuzz/` drive, so that
//! every `make test` exercises them too (the fuzzers go much further, but only when run):
//!
//! - `claims::split` and `verify::verify` (target `token_verify`): on arbitrary input and on
//!   mutations of genuinely signed tokens, nothing panics and nothing but the unmodified genuine
//!   tokens verifies;
//! - `config::load_str` (target `config_parse`): on arbitrary text and on mutations of the seed
//!   configs, nothing panics, and every error names a line of the text;
//! - `token::extract_bearer` (target `bearer_extract`): nothing panics, and a token is only ever
//!   a non-empty `b64token` borrowed from the single `Authorization` value, within the cap;
//! - `jwks::parse` (target `jwks_parse`): nothing panics, and one unusable key added to a good set
//!   is skipped without costing any good key.
//!
//! The genuine tokens, their key set and the seed configs are the fuzzers' own (`fuzz/seeds`,
//! `fuzz/fixtures`), so both tools start from the same corpus. Case counts are bounded so that the
//! file runs in a few seconds in a debug build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::SystemTime;
use tokengate::config::{self, ConfigError};
use tokengate::metrics::Metrics;
use tokengate::runtime::Runtime;
use tokengate::token::extract_bearer;
use tokengate::{claims, jwks, verify};

/// The public keys of `tests/fixtures/{rsa_a,ec256,ec384,ed25519}.pem`, with kids.
const JWKS: &str = include_str!("../fuzz/fixtures/jwks.json");

/// A clock inside the genuine tokens' validity window (iat/nbf 1799999000, exp 1900000000).
const NOW: i64 = 1_800_000_000;

/// Tokens signed by the keys in [`JWKS`] for the issuer below: each must verify as it is.
const GENUINE: [&str; 6] = [
    include_str!("../fuzz/seeds/token_verify/rs256"),
    include_str!("../fuzz/seeds/token_verify/ps256"),
    include_str!("../fuzz/seeds/token_verify/es256"),
    include_str!("../fuzz/seeds/token_verify/es384"),
    include_str!("../fuzz/seeds/token_verify/eddsa"),
    include_str!("../fuzz/seeds/token_verify/nokid"),
];

/// The fuzzers' forgeries (`alg: none`, HS256 keyed with the public key): must never verify.
const FORGED: [&str; 2] = [
    include_str!("../fuzz/seeds/token_verify/none"),
    include_str!("../fuzz/seeds/token_verify/hs256"),
];

/// The `config_parse` seeds; `with_jwks_file.toml` reads `jwks.json` next to it.
const CONFIGS: [&str; 3] = [
    include_str!("../fuzz/seeds/config_parse/demo.toml"),
    include_str!("../fuzz/seeds/config_parse/tokengate.toml"),
    include_str!("../fuzz/seeds/config_parse/with_jwks_file.toml"),
];

/// The `token_verify` target's issuer: every algorithm the genuine tokens use, keys from
/// `jwks.json`.
const ISSUER_CONFIG: &str = include_str!("../fuzz/fixtures/token_verify.toml");

/// A temp dir holding the fuzzers' `jwks.json`, for configs that name it.
fn jwks_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwks.json"), JWKS).unwrap();
    dir
}

/// The issuer runtime, compiled once through `config::load_str` (the key file is read at load,
/// so its directory can go right after).
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let dir = jwks_dir();
        let metrics = Metrics::new().unwrap();
        config::load_str(ISSUER_CONFIG, "props.toml", dir.path(), &metrics)
            .unwrap_or_else(|e| panic!("the issuer config does not load: {e}"))
    })
}

fn verifies(token: &str) -> bool {
    verify::verify(token, &runtime().issuers, NOW).is_ok()
}

/// `split` either refuses `token` or accounts for every byte of it.
fn check_split(token: &str) -> Result<(), TestCaseError> {
    if let Ok(parts) = claims::split(token) {
        let rejoined = format!("{}.{}", parts.signing_input, parts.signature);
        prop_assert_eq!(
            rejoined.as_str(),
            token,
            "split dropped or re-encoded a part"
        );
        prop_assert!(!parts.signature.is_empty());
    }
    Ok(())
}

fn cases(n: u32) -> Config {
    Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    }
}

#[test]
fn genuine_tokens_verify_unmodified_and_forgeries_do_not() {
    for token in GENUINE {
        if let Err(e) = verify::verify(token, &runtime().issuers, NOW) {
            panic!("a genuine token does not verify: {e:?}");
        }
    }
    for token in FORGED {
        assert!(!verifies(token), "a forged seed verified: {token}");
    }
}

/// One edit to a token: the byte at a position (as a fraction of the length) replaced by, or
/// preceded by, a character from the token alphabet; removed; or the token cut there.
#[derive(Debug, Clone)]
enum Edit {
    Replace(f64, char),
    Insert(f64, char),
    Delete(f64),
    Truncate(f64),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0.0..1.0f64;
    let ch = prop::sample::select(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
            .chars()
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        4 => (at.clone(), ch.clone()).prop_map(|(a, c)| Edit::Replace(a, c)),
        2 => (at.clone(), ch).prop_map(|(a, c)| Edit::Insert(a, c)),
        2 => at.clone().prop_map(Edit::Delete),
        1 => at.prop_map(Edit::Truncate),
    ]
}

fn apply(token: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    for e in edits {
        let pos = |f: f64| ((f * chars.len() as f64) as usize).min(chars.len().saturating_sub(1));
        match *e {
            Edit::Replace(f, c) if !chars.is_empty() => {
                let i = pos(f);
                chars[i] = c;
            }
            Edit::Insert(f, c) => {
                let i = ((f * chars.len() as f64) as usize).min(chars.len());
                chars.insert(i, c);
            }
            Edit::Delete(f) if !chars.is_empty() => {
                let i = pos(f);
                chars.remove(i);
            }
            Edit::Truncate(f) => chars.truncate(pos(f)),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(cases(1000))]

    /// Anything but a genuine token byte for byte is a forgery or a malleable encoding.
    #[test]
    fn mutated_genuine_tokens_never_verify(
        which in 0..GENUINE.len(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let genuine = GENUINE[which];
        let token = apply(genuine, &edits);
        check_split(&token)?;
        if token != genuine {
            prop_assert!(!verifies(&token), "a mutated token verified: {:?}", token);
        }
    }

    #[test]
    fn arbitrary_text_never_verifies_and_split_accounts_for_every_byte(
        token in prop_oneof![any::<String>(), "[A-Za-z0-9_=.+/-]{0,600}"],
    ) {
        check_split(&token)?;
        prop_assert!(!verifies(&token), "{:?}", token);
    }
}

/// One edit to a config text. Lines holding `targets` are never edited: a mangled IP literal is a
/// host name to resolve, and DNS is not what these properties are about.
#[derive(Debug, Clone)]
enum ConfigEdit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    InsertLine(usize, &'static str),
    ReplaceChar(usize, char),
    DeleteChar(usize),
    Truncate(usize),
}

/// Lines that are valid somewhere, wrong somewhere else, or not TOML at all.
const CONFIG_LINES: &[&str] = &[
    "[server]",
    "[[route]]",
    "[[issuer]]",
    "[[upstream]]",
    "[log]",
    "name = \"api\"",
    "name = \"\"",
    "threads = 0",
    "threads = \"4\"",
    "listen = []",
    "max_request_headers = 100000",
    "max_header_field_bytes = 1",
    "header_timeout = \"0s\"",
    "keepalive_timeout = \"2h\"",
    "path = \"a\"",
    "path_prefix = \"/x/../y\"",
    "auth = \"none\"",
    "auth = \"maybe\"",
    "upstream = \"nowhere\"",
    "issuers = [\"nobody\"]",
    "algorithms = [\"none\", \"HS256\"]",
    "forward_claims = { \"x_forwarded_for\" = \"sub\" }",
    "forward_claims = { \"x_user\" = \"sub\", \"X-User\" = \"sub\" }",
    "scopes_all = [1, 2]",
    "max_token_lifetime = \"1s\"",
    "leeway = -1",
    "jwks_file = \"missing.json\"",
    "jwks_uri = \"ftp://x\"",
    "targets = [\"127.0.0.1:0\"]",
    "x = [",
    "\"unterminated",
    "= 1",
    "[[route]",
    "\u{0}",
    "é = \"é\"",
];

fn config_edit() -> impl Strategy<Value = ConfigEdit> {
    let n = 0..200usize;
    let ch = prop::sample::select(" \"'=[]{}.,#\n\\0aZ9_-é".chars().collect::<Vec<_>>());
    prop_oneof![
        3 => n.clone().prop_map(ConfigEdit::DeleteLine),
        2 => n.clone().prop_map(ConfigEdit::DuplicateLine),
        2 => (n.clone(), n.clone()).prop_map(|(a, b)| ConfigEdit::SwapLines(a, b)),
        3 => (n.clone(), prop::sample::select(CONFIG_LINES)).prop_map(|(a, l)| ConfigEdit::InsertLine(a, l)),
        4 => (0..8000usize, ch).prop_map(|(a, c)| ConfigEdit::ReplaceChar(a, c)),
        2 => (0..8000usize).prop_map(ConfigEdit::DeleteChar),
        1 => (0..8000usize).prop_map(ConfigEdit::Truncate),
    ]
}

/// Whether the character at `index` of `text` lies on a `targets` line.
fn in_targets_line(text: &str, index: usize) -> bool {
    let start = text
        .char_indices()
        .nth(index)
        .map_or(text.len(), |(b, _)| b);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    text[line_start..line_end].contains("targets")
}

fn apply_config(text: &str, edits: &[ConfigEdit]) -> String {
    let mut text = text.to_string();
    for e in edits {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let len = lines.len().max(1);
        let chars = text.chars().count().max(1);
        match *e {
            ConfigEdit::DeleteLine(i) if !lines.is_empty() => {
                if !lines[i % len].contains("targets") {
                    lines.remove(i % len);
                }
            }
            ConfigEdit::DuplicateLine(i) if !lines.is_empty() => {
                let l = lines[i % len].clone();
                lines.insert(i % len, l);
            }
            ConfigEdit::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % len, b % len),
            ConfigEdit::InsertLine(i, l) => lines.insert(i % (lines.len() + 1), l.to_string()),
            ConfigEdit::ReplaceChar(i, c) if !in_targets_line(&text, i % chars) => {
                text = text
                    .chars()
                    .enumerate()
                    .map(|(j, old)| if j == i % chars { c } else { old })
                    .collect();
                continue;
            }
            ConfigEdit::DeleteChar(i) if !in_targets_line(&text, i % chars) => {
                text = text
                    .chars()
                    .enumerate()
                    .filter(|(j, _)| *j != i % chars)
                    .map(|(_, c)| c)
                    .collect();
                continue;
            }
            ConfigEdit::Truncate(i) => {
                text = text.chars().take(i % chars).collect();
                continue;
            }
            _ => continue,
        }
        text = lines.join("\n");
    }
    text
}

/// Loads `text` and checks the outcome: never a panic; an error is a list of diagnostics, each
/// on a line the text has (1 to the number of newlines + 1), rendered as `props.toml:LINE: `.
/// Returns whether the text was refused.
fn check_load(
    text: &str,
    base: &std::path::Path,
    metrics: &Metrics,
) -> Result<bool, TestCaseError> {
    // As in the fuzz target: device files may never end, and are not what this is about.
    if text.contains("/dev") || text.contains("/proc") || text.contains("/sys") {
        return Ok(false);
    }
    match config::load_str(text, "props.toml", base, metrics) {
        Ok(_) => Ok(false),
        Err(ConfigError::Read { path, .. }) => Err(TestCaseError::fail(format!(
            "load_str reported an unreadable file: {}",
            path.display()
        ))),
        Err(e @ ConfigError::Invalid { .. }) => {
            let rendered = e.to_string();
            let ConfigError::Invalid { diagnostics, .. } = e else {
                unreachable!()
            };
            prop_assert!(!diagnostics.is_empty(), "an error without diagnostics");
            let last = text.matches('\n').count() + 1;
            for d in &diagnostics {
                prop_assert!(
                    (1..=last).contains(&d.line),
                    "line {} of a {}-line text: {:?}",
                    d.line,
                    last,
                    d
                );
                prop_assert!(!d.message.trim().is_empty(), "{:?}", d);
                let located = format!("props.toml:{}: ", d.line);
                prop_assert!(
                    rendered.contains(&located),
                    "{:?} not in {:?}",
                    located,
                    rendered
                );
            }
            Ok(true)
        }
    }
}

#[test]
fn every_seed_config_loads() {
    let dir = jwks_dir();
    let metrics = Metrics::new().unwrap();
    for text in CONFIGS {
        if let Err(e) = config::load_str(text, "props.toml", dir.path(), &metrics) {
            panic!("a seed config does not load: {e}");
        }
    }
}

#[test]
fn mutated_configs_never_panic_and_every_error_names_a_line() {
    let dir = jwks_dir();
    // One registry for every load, as across reloads.
    let metrics = Metrics::new().unwrap();
    let strategy = (
        prop::sample::select(&CONFIGS[..]),
        prop::collection::vec(config_edit(), 1..6),
    );
    let refused = std::cell::Cell::new(0usize);
    TestRunner::new(cases(500))
        .run(&strategy, |(seed, edits)| {
            let text = apply_config(seed, &edits);
            let was = check_load(&text, dir.path(), &metrics)?;
            refused.set(refused.get() + usize::from(was));
            Ok(())
        })
        .unwrap();
    // Otherwise the line property would hold vacuously.
    let refused = refused.get();
    assert!(
        refused > 100,
        "only {refused} of 500 mutated configs were refused"
    );
}

#[test]
fn arbitrary_text_never_panics_as_a_config() {
    let dir = jwks_dir();
    let metrics = Metrics::new().unwrap();
    let strategy = prop_oneof![any::<String>(), "[\\[\\]a-z_=\" \n0-9{},.]{0,300}",];
    TestRunner::new(cases(500))
        .run(&strategy, |text| {
            check_load(&text, dir.path(), &metrics).map(|_| ())
        })
        .unwrap();
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` (RFC 6750 §2.1).
fn is_b64token(t: &[u8]) -> bool {
    let end = t.len() - t.iter().rev().take_while(|&&b| b == b'=').count();
    end > 0
        && t[..end]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// `Authorization` values: arbitrary bytes, or a scheme, spaces and a token-ish tail.
fn authorization_value() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop::sample::select(
        &[
            "Bearer", "bearer", "BEARER", "BeArEr", "Basic", "Bearerx", "", " Bearer",
        ][..],
    );
    let spaces = prop::sample::select(&["", " ", "  ", "\t", " \t "][..]);
    let tail = prop_oneof![
        "[A-Za-z0-9._~+/-]{0,40}={0,3}",
        "[ -~]{0,40}",
        "[A-Za-z0-9]{0,8}[ ,;\"\\\\=][A-Za-z0-9]{0,8}",
    ];
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..64),
        4 => (scheme, spaces.clone(), tail, spaces).prop_map(|(s, a, t, b)| format!("{s}{a}{t}{b}").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(cases(2000))]

    /// A token is only returned for exactly one value, is non-empty, within the cap, a
    /// `b64token`, borrowed from that value (not a copy), and ends it after a `Bearer` scheme.
    #[test]
    fn extract_bearer_returns_only_a_b64token_borrowed_from_the_one_value(
        values in prop::collection::vec(authorization_value(), 0..3),
        cap in prop::sample::select(&[1usize, 8, 32, 1024, 16 * 1024][..]),
    ) {
        let Ok(token) = extract_bearer(values.iter().map(Vec::as_slice), cap) else {
            return Ok(());
        };
        prop_assert_eq!(values.len(), 1, "a token from several values");
        prop_assert!(!token.is_empty() && token.len() <= cap, "{:?} (cap {})", token, cap);
        prop_assert!(is_b64token(token.as_bytes()), "not a b64token: {:?}", token);
        let value = values[0].as_slice();
        let (start, end) = (value.as_ptr() as usize, value.as_ptr() as usize + value.len());
        let at = token.as_ptr() as usize;
        prop_assert!(at >= start && at + token.len() <= end, "{:?} is not borrowed from {:?}", token, value);
        let trimmed = value.trim_ascii();
        prop_assert!(trimmed.len() > 6 && trimmed[..6].eq_ignore_ascii_case(b"bearer"), "{:?}", value);
        prop_assert!(trimmed.ends_with(token.as_bytes()), "{:?} does not end {:?}", token, value);
    }

    /// And the other direction, so the property above cannot hold by refusing everything.
    #[test]
    fn a_well_formed_bearer_credential_yields_its_token(
        scheme in prop::sample::select(&["Bearer", "bearer", "BEARER", "bEaReR"][..]),
        token in "[A-Za-z0-9._~+/-]{1,64}={0,2}",
        before in prop::sample::select(&["", " ", "\t"][..]),
        after in prop::sample::select(&["", " ", "\t "][..]),
    ) {
        let value = format!("{before}{scheme} {token}{after}");
        prop_assert_eq!(extract_bearer([value.as_bytes()], 1024), Ok(token.as_str()));
    }
}

/// The fuzzers' good key set, as JSON entries.
fn good_keys() -> Vec<Value> {
    let doc: Value = serde_json::from_str(JWKS).unwrap();
    doc["keys"].as_array().unwrap().clone()
}

/// Entries `jwks::parse` must skip: HMAC keys, RSA moduli under 2048 bits or with a bad
/// exponent, EC points off their curve, keys not for verification, an `alg` that does not fit
/// the key, bad member types, and values that are not keys at all.
fn bad_key() -> impl Strategy<Value = Value> {
    let rsa = good_keys()[0].clone();
    let b64 = |n: std::ops::Range<usize>| {
        prop::collection::vec(any::<u8>(), n).prop_map(|b| {
            use base64::Engine;
            Value::String(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
        })
    };
    let with = move |members: Value| {
        let mut k = rsa.clone();
        for (name, v) in members.as_object().unwrap() {
            k[name] = v.clone();
        }
        k
    };
    let fixed = vec![
        with(json!({"e": "AQ"})),
        with(json!({"e": "Ag"})),
        with(json!({"e": ""})),
        with(json!({"n": "!!"})),
        with(json!({"use": "enc"})),
        with(json!({"key_ops": ["sign"]})),
        with(json!({"key_ops": "verify"})),
        with(json!({"alg": "ES256"})),
        with(json!({"alg": "HS256"})),
        with(json!({"alg": "none"})),
        with(json!({"alg": 7})),
        with(json!({"kid": 7})),
        with(json!({"kty": "RSA-ish"})),
        with(json!({"kty": null})),
        json!({"kty": "OKP", "crv": "X25519", "x": "AAAA"}),
        json!(null),
        json!(42),
        json!("a key"),
        json!([1, 2, 3]),
        json!({}),
    ];
    prop_oneof![
        prop::sample::select(fixed),
        b64(1..64).prop_map(|k| json!({"kty": "oct", "k": k, "kid": "hmac"})),
        b64(1..200).prop_map(|n| json!({"kty": "RSA", "n": n, "e": "AQAB", "kid": "small"})),
        (b64(32..33), b64(32..33))
            .prop_map(|(x, y)| json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": "off"})),
    ]
}

fn parse(doc: &Value) -> Result<(jwks::KeySet, Vec<String>), jwks::JwksError> {
    jwks::parse(doc.to_string().as_bytes(), SystemTime::UNIX_EPOCH)
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn jwks_parse_never_panics_on_arbitrary_bytes(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            "\\{\"keys\":\\[[\\[\\]{}\",:a-z0-9 ]{0,200}\\]\\}".prop_map(String::into_bytes),
        ],
    ) {
        if let Ok((set, _)) = jwks::parse(&body, SystemTime::UNIX_EPOCH) {
            prop_assert!(!set.keys.is_empty() && set.keys.len() <= jwks::MAX_KEYS);
        }
    }

    /// A provider publishing one key the gateway cannot use must not take the good ones down.
    #[test]
    fn one_bad_key_in_a_set_is_skipped_and_every_good_key_kept(
        bad in bad_key(),
        at in 0..=5usize,
    ) {
        let good = good_keys();
        let mut keys = good.clone();
        keys.insert(at.min(keys.len()), bad.clone());
        let (set, skipped) = parse(&json!({"keys": keys}))
            .map_err(|e| TestCaseError::fail(format!("{e} with {bad}")))?;
        prop_assert_eq!(set.keys.len(), good.len(), "{:?} with {}", skipped, bad);
        prop_assert_eq!(skipped.len(), 1, "{:?} with {}", skipped, bad);
        for k in &good {
            let kid = k["kid"].as_str().unwrap();
            prop_assert!(set.by_kid(kid).is_some(), "{} lost with {}", kid, bad);
        }
    }
}

#[test]
fn the_good_key_set_parses_whole() {
    let (set, skipped) = parse(&json!({"keys": good_keys()})).unwrap();
    assert_eq!(set.keys.len(), good_keys().len());
    assert!(skipped.is_empty(), "{skipped:?}");
}
