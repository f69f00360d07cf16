//! Property tests for path normalisation and routing: the path the router matches is the path the
//! upstream receives, so normalising must be idempotent and leave no dot or empty segments, and
//! the real decision (`decision::decide` on a compiled config) must pick the same route for the
//! forwarded path as for the raw one, and the admin route exactly for what a lenient upstream
//! would read as `/admin`, unless it refuses the request.
#![allow(clippy::unwrap_used)]

use http::Method;
use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;
use tokengate::decision::{self, Decision};
use tokengate::metrics::Metrics;
use tokengate::path::{normalise, PathError};
use tokengate::runtime::Runtime;

/// Pieces a normalisable path is made of: separators, dots (raw and encoded), escapes of
/// unreserved and reserved bytes, and plain characters.
const GOOD: &[&str] = &[
    "/", "/", "/", ".", "..", "//", "a", "A", "~", "%2e", "%2E", "%41", "%61", "%7e", "%7E", "%25",
    "%20", "%c3%a9", "0", "9", "f", "F", "admin", "%61dmin", "-", "_",
];

/// Pieces the normaliser must refuse: a lone `%`, `;`, `\`, encoded separators, NUL, overlong
/// UTF-8.
const BAD: &[&str] = &["%", ";", "\\", "%2f", "%2F", "%5c", "%00", "%C0%AE"];

/// Mostly normalisable pieces, so that most generated paths exercise the `Ok` properties.
fn piece() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        30 => prop::sample::select(GOOD),
        1 => prop::sample::select(BAD),
    ]
}

/// Strings over the path alphabet, usually (but not always) starting with `/`.
fn raw_path() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.95),
        prop::collection::vec(piece(), 0..24),
    )
        .prop_map(|(slash, pieces)| {
            let body: String = pieces.concat();
            if slash {
                format!("/{body}")
            } else {
                body
            }
        })
}

/// A protected `/admin` prefix first, then an exact path, a second prefix and a public catch-all,
/// all `auth = "none"` so that every routed request is permitted and its forwarded path can be
/// examined. Compiled through the real config loader.
const ROUTES: &str = r#"
[server]
token_cache_capacity = 0

[[upstream]]
name = "u"
targets = ["127.0.0.1:9"]

[[route]]
name = "admin"
path_prefix = "/admin"
upstream = "u"
auth = "none"

[[route]]
name = "items"
path = "/api/v1/items"
upstream = "u"
auth = "none"

[[route]]
name = "files"
path_prefix = "/files"
upstream = "u"
auth = "none"

[[route]]
name = "public"
path_prefix = "/"
upstream = "u"
auth = "none"
"#;

/// The compiled runtime; built once.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let metrics = Metrics::new().unwrap();
        tokengate::config::load_str(ROUTES, "props.toml", Path::new("."), &metrics)
            .unwrap_or_else(|e| panic!("the property config does not load: {e}"))
    })
}

/// `decision::decide` on `GET <target>` with `Host: localhost`, or `None` when `target` is not a
/// request target the `http` crate parses: pingora parses it with the same crate and refuses it
/// before the gateway decides anything.
fn decide(target: &str) -> Option<Decision> {
    let req = http::Request::builder()
        .method(Method::GET)
        .uri(target)
        .header(http::header::HOST, "localhost")
        .body(())
        .ok()?;
    Some(decision::decide(runtime(), &req.into_parts().0, 0))
}

/// The name of the route that decided, if any.
fn route_of(d: &Decision) -> Option<&str> {
    d.route.as_ref().map(|r| r.name.as_str())
}

/// An oracle independent of `path::normalise`, reading the path as the most lenient upstream
/// would: every escape decoded once (`%2F` and `%5C` too), `\` taken as `/`, servlet path
/// parameters (`;...`) dropped from each segment, empty segments merged away and dot segments
/// removed with `..` clamped at the root (RFC 3986 §5.2.4). Returns whether the result lies
/// under `/admin`.
fn oracle_under_admin(path: &str) -> bool {
    let raw = path.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let escape = raw.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (raw[i], escape) {
            (b'%', Some(b)) => {
                decoded.push(b);
                i += 3;
            }
            (b, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|&b| b == b'/' || b == b'\\') {
        let seg = seg.split(|&b| b == b';').next().unwrap_or(seg);
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments.first() == Some(&&b"admin"[..])
}

/// How raw request paths start: spellings of `/admin` (escaped in either case, dot segments
/// raw and encoded, doubled slashes, other cases, a trailing dot) and of the other routes.
const PATH_HEADS: &[&str] = &[
    "/admin",
    "/admin",
    "/%61dmin",
    "/ad%6Din",
    "/ad%6din",
    "/%61%64%6D%69%6E",
    "//admin",
    "/./admin",
    "/x/../admin",
    "/x/%2e%2E/admin",
    "/x/.%2e/admin",
    "/ADMIN",
    "/Admin",
    "/%41dmin",
    "/admin.",
    "/files",
    "/api/v1/items",
    "/api",
    "/",
    "/x",
];

/// Pieces that follow: segments and separators the normaliser resolves, mostly.
const PATH_PIECES: &[&str] = &[
    "/",
    "/",
    "/",
    "//",
    ".",
    "..",
    "%2e",
    "%2E",
    ".%2e",
    "admin",
    "ADMIN",
    "%61dmin",
    "a",
    "x",
    "files",
    "api",
    "v1",
    "items",
    "%2561",
    "%20",
    "?q=/admin",
    "~",
    "-",
    "%c3%a9",
];

/// Pieces the normaliser refuses: encoded separators in both cases, `\`, `;` raw and encoded,
/// NUL, a lone `%`, overlong UTF-8.
const HOSTILE_PIECES: &[&str] = &[
    "%2f", "%2F", "%5c", "%5C", "\\", ";", ";x=1", "%3B", "%3b", "%00", "%", "%C0%AE",
];

/// Raw paths: a head, then up to 8 pieces, now and then a hostile one.
fn admin_ish_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        12 => prop::sample::select(PATH_PIECES),
        1 => prop::sample::select(HOSTILE_PIECES),
    ];
    (
        prop::sample::select(PATH_HEADS),
        prop::collection::vec(piece, 0..8),
    )
        .prop_map(|(head, pieces)| format!("{head}{}", pieces.concat()))
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn normalise_is_idempotent(raw in raw_path()) {
        if let Ok(once) = normalise(&raw) {
            prop_assert_eq!(normalise(&once), Ok(once.clone()), "raw {:?}", raw);
        }
    }

    #[test]
    fn normalised_path_has_no_dot_or_empty_segments(raw in raw_path()) {
        if let Ok(p) = normalise(&raw) {
            prop_assert!(p.starts_with('/'), "{:?} -> {:?}", raw, p);
            prop_assert!(!p.contains("//"), "{:?} -> {:?}", raw, p);
            // Every segment but a final empty one (trailing slash) is a real name.
            let segments: Vec<&str> = p[1..].split('/').collect();
            for (i, seg) in segments.iter().enumerate() {
                prop_assert!(*seg != "." && *seg != "..", "{:?} -> {:?}", raw, p);
                prop_assert!(!seg.is_empty() || i == segments.len() - 1, "{:?} -> {:?}", raw, p);
            }
        }
    }

    #[test]
    fn normalised_path_has_no_forbidden_bytes_or_encoded_dots(raw in raw_path()) {
        if let Ok(p) = normalise(&raw) {
            prop_assert!(!p.contains('\\') && !p.contains(';'), "{:?} -> {:?}", raw, p);
            prop_assert!(p.bytes().all(|b| b > 0x20 && b < 0x7f), "{:?} -> {:?}", raw, p);
            let upper = p.to_ascii_uppercase();
            for escape in ["%2E", "%2F", "%5C", "%00", "%41", "%7E"] {
                prop_assert!(!upper.contains(escape), "{:?} -> {:?}", raw, p);
            }
        }
    }

    #[test]
    fn relative_input_is_always_refused(raw in raw_path()) {
        if !raw.starts_with('/') {
            prop_assert_eq!(normalise(&raw), Err(PathError::NotAbsolute));
        }
    }

    #[test]
    fn normalise_never_panics(raw in any::<String>()) {
        let _ = normalise(&raw);
    }

    #[test]
    fn normalise_never_panics_on_slash_prefixed_noise(raw in "/[\\x00-\\x7f%./a-f0-9]{0,64}") {
        let _ = normalise(&raw);
    }

    /// The route that decided is the route for the path the upstream receives: deciding again on
    /// the forwarded target picks the same route and forwards it unchanged. And the decision
    /// agrees with a lenient reading of the raw path: under `/admin` to the oracle means decided
    /// by the admin route or refused, and decided by the admin route means under `/admin`.
    #[test]
    fn route_for_the_raw_path_is_the_route_for_the_forwarded_path(raw in admin_ish_path()) {
        let Some(first) = decide(&raw) else {
            return Ok(());
        };
        let under_admin = oracle_under_admin(raw.split('?').next().unwrap_or(&raw));
        match &first.outcome {
            Ok(permit) => {
                let again = decide(&permit.path_and_query)
                    .unwrap_or_else(|| panic!("forwarded {:?} is not a URI", permit.path_and_query));
                prop_assert_eq!(route_of(&again), route_of(&first), "raw {:?} -> {:?}", raw, permit.path_and_query);
                let again = again.outcome.as_ref().map(|p| p.path_and_query.as_str());
                prop_assert_eq!(again, Ok(permit.path_and_query.as_str()), "raw {:?}", raw);
                prop_assert_eq!(
                    route_of(&first) == Some("admin"),
                    under_admin,
                    "raw {:?} -> {:?} by {:?}",
                    raw,
                    permit.path_and_query,
                    route_of(&first)
                );
            }
            // Refused, which is safe whatever the oracle says; every route here permits, so a
            // refusal comes before any route was chosen.
            Err(rejection) => prop_assert!(first.route.is_none(), "raw {:?}: {:?}", raw, rejection),
        }
    }

    #[test]
    fn spellings_of_admin_always_reach_the_admin_route(
        prefix in prop::sample::select(&["/admin", "/%61dmin", "/%61%64%6D%69%6E", "//admin", "/./admin", "/x/../admin", "/admin/."][..]),
        rest in prop::collection::vec(piece(), 0..8),
    ) {
        let raw = format!("{prefix}/{}", rest.concat());
        if let (Ok(p), Some(d)) = (normalise(&raw), decide(&raw)) {
            // Whatever follows, a path that still lies under /admin is governed by the admin rule.
            let want = if p == "/admin" || p.starts_with("/admin/") { "admin" } else { "public" };
            prop_assert_eq!(route_of(&d), Some(want), "{:?} -> {:?}", raw, p);
        }
    }
}

#[test]
fn generated_paths_are_mostly_normalisable_and_sometimes_refused() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = raw_path();
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..2000 {
        let raw = strategy.new_tree(&mut runner).unwrap().current();
        match normalise(&raw) {
            Ok(_) => ok += 1,
            Err(_) => refused += 1,
        }
    }
    // Otherwise the properties above would hold vacuously.
    assert!(ok > 600, "only {ok} of 2000 generated paths normalise");
    assert!(
        refused > 200,
        "only {refused} of 2000 generated paths are refused"
    );
}

/// The route property above is only worth something if the generated paths reach every outcome
/// often: decided by admin, by the other routes, and refused; and if the oracle and the path
/// rules disagree often enough (refused although under `/admin` to the oracle) to be tested.
#[test]
fn generated_raw_paths_reach_every_route_and_are_often_refused() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = admin_ish_path();
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..2000 {
        let raw = strategy.new_tree(&mut runner).unwrap().current();
        let outcome = match decide(&raw) {
            None => "not a URI".to_string(),
            Some(d) if d.outcome.is_err() && oracle_under_admin(&raw) => {
                "refused, under /admin".to_string()
            }
            Some(d) if d.outcome.is_err() => "refused".to_string(),
            Some(d) => route_of(&d)
                .unwrap_or("permitted without a route")
                .to_string(),
        };
        *counts.entry(outcome).or_insert(0) += 1;
    }
    eprintln!("outcomes of 2000 generated paths: {counts:?}");
    for (outcome, at_least) in [
        ("admin", 150),
        ("public", 500),
        ("files", 10),
        ("items", 5),
        ("refused", 150),
        ("refused, under /admin", 30),
    ] {
        let got = counts.get(outcome).copied().unwrap_or(0usize);
        assert!(got >= at_least, "{outcome}: {got} of 2000; all: {counts:?}");
    }
}

#[test]
fn encoded_spellings_of_admin_are_decided_by_the_admin_route_and_forwarded_normalised() {
    for raw in [
        "/%61dmin/x",
        "/%61%64%6D%69%6E/x",
        "//admin//x",
        "/./admin/./x",
        "/y/../admin/x",
        "/y/%2e%2E/admin/x",
    ] {
        assert_eq!(normalise(raw).as_deref(), Ok("/admin/x"), "{raw}");
        let d = decide(raw).unwrap();
        assert_eq!(route_of(&d), Some("admin"), "{raw}");
        assert_eq!(
            d.outcome.as_ref().map(|p| p.path_and_query.as_str()).ok(),
            Some("/admin/x"),
            "{raw}"
        );
    }
}

/// The oracle itself, on the readings it exists for.
#[test]
fn the_oracle_reads_paths_leniently() {
    for (path, under) in [
        ("/admin", true),
        ("/admin/", true),
        ("/%61dmin/x", true),
        ("/%2fadmin", true),
        ("/public%5c..%5cadmin", true),
        ("/admin;jsessionid=1", true),
        ("/x/../../admin", true),
        ("//admin", true),
        ("/admin.", false),
        ("/ADMIN", false),
        ("/adminx", false),
        ("/%2561dmin", false),
        ("/admin/..", false),
    ] {
        assert_eq!(oracle_under_admin(path), under, "{path}");
    }
}
