//! Property tests for path normalisation: the path the router matches is the path the upstream
//! receives, so normalising must be idempotent, leave no dot segments or empty segments, and
//! never change which route a forwarded path would select.
#![allow(clippy::unwrap_used)]

use http::Method;
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokengate::metrics::Metrics;
use tokengate::path::{normalise, PathError};
use tokengate::route::{Auth, PathMatch, Route, Router};
use tokengate::upstream::Upstream;

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

fn route(name: &str, path: PathMatch) -> Arc<Route> {
    let upstream = Upstream::new(
        "u".into(),
        &["127.0.0.1:1".into()],
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
    .unwrap();
    Arc::new(Route {
        name: name.into(),
        host: None,
        methods: None,
        path,
        upstream: Arc::new(upstream),
        auth: Auth::None,
        forward_claims: Vec::new(),
        strip_authorization: false,
        metrics: Metrics::new().unwrap().route(name),
    })
}

/// A protected prefix first, then a public catch-all; built once.
fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        Router::new(vec![
            route("admin", PathMatch::Prefix("/admin".into())),
            route("public", PathMatch::Prefix("/".into())),
        ])
    })
}

fn chosen<'r>(router: &'r Router, path: &str) -> Option<&'r str> {
    router
        .find(None, &Method::GET, path)
        .map(|r| r.name.as_str())
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

    #[test]
    fn route_for_the_raw_path_is_the_route_for_the_forwarded_path(raw in raw_path()) {
        let router = router();
        if let Ok(forwarded) = normalise(&raw) {
            // The upstream parses the forwarded path again; it must land on the same route.
            let again = normalise(&forwarded).unwrap();
            prop_assert_eq!(chosen(router, &forwarded), chosen(router, &again), "raw {:?}", raw);
            prop_assert!(chosen(router, &forwarded).is_some());
        }
    }

    #[test]
    fn spellings_of_admin_always_reach_the_admin_route(
        prefix in prop::sample::select(&["/admin", "/%61dmin", "/%61%64%6D%69%6E", "//admin", "/./admin", "/x/../admin", "/admin/."][..]),
        rest in prop::collection::vec(piece(), 0..8),
    ) {
        let raw = format!("{prefix}/{}", rest.concat());
        if let Ok(p) = normalise(&raw) {
            // Whatever follows, a path that still lies under /admin is governed by the admin rule.
            if p == "/admin" || p.starts_with("/admin/") {
                prop_assert_eq!(chosen(router(), &p), Some("admin"), "{:?} -> {:?}", raw, p);
            } else {
                prop_assert_eq!(chosen(router(), &p), Some("public"), "{:?} -> {:?}", raw, p);
            }
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

#[test]
fn encoded_spellings_of_admin_normalise_to_admin() {
    for raw in [
        "/%61dmin/x",
        "/%61%64%6D%69%6E/x",
        "//admin//x",
        "/./admin/./x",
        "/y/../admin/x",
    ] {
        assert_eq!(normalise(raw).as_deref(), Ok("/admin/x"), "{raw}");
        assert_eq!(chosen(router(), "/admin/x"), Some("admin"));
    }
}
