//! Unit tests for `route`: path matching, first-match routing with host and method filters, and
//! shadowed-route detection.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::metrics::Metrics;
use std::time::Duration;

fn upstream() -> Arc<Upstream> {
    Arc::new(
        Upstream::new(
            "u".into(),
            &["127.0.0.1:1".into()],
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap(),
    )
}

fn route(name: &str, host: Option<&str>, methods: Option<&[Method]>, path: PathMatch) -> Route {
    Route {
        name: name.into(),
        host: host.map(str::to_string),
        methods: methods.map(<[Method]>::to_vec),
        path,
        upstream: upstream(),
        auth: Auth::None,
        forward_claims: Vec::new(),
        strip_authorization: false,
        metrics: Metrics::new().unwrap().route(name),
    }
}

fn exact(p: &str) -> PathMatch {
    PathMatch::Exact(p.into())
}

fn prefix(p: &str) -> PathMatch {
    PathMatch::Prefix(p.into())
}

#[test]
fn exact_path_matches_itself_and_one_trailing_slash() {
    let cases: &[(&str, &str, bool)] = &[
        ("/api", "/api", true),
        ("/api", "/api/", true),
        ("/api", "/api//", false),
        ("/api", "/api/x", false),
        ("/api", "/apix", false),
        ("/api", "/ap", false),
        ("/api", "/", false),
        ("/api", "/API", false),
        ("/api", "/api.", false),
        ("/api/", "/api/", true),
        ("/api/", "/api", false),
        ("/", "/", true),
        ("/", "//", false),
        ("/", "/x", false),
        ("/a/b", "/a/b/", true),
        ("/a/b", "/a/bb", false),
        ("/a/b", "/a", false),
    ];
    for (rule, path, want) in cases {
        assert_eq!(exact(rule).matches(path), *want, "exact {rule} vs {path}");
    }
}

#[test]
fn prefix_path_is_segment_aware() {
    let cases: &[(&str, &str, bool)] = &[
        ("/api", "/api", true),
        ("/api", "/api/", true),
        ("/api", "/api/x", true),
        ("/api", "/api/x/y/", true),
        ("/api", "/apix", false),
        ("/api", "/api-v2", false),
        ("/api", "/api.json", false),
        ("/api", "/ap", false),
        ("/api", "/", false),
        ("/api", "/x/api", false),
        ("/api", "/API/x", false),
        ("/api/v1", "/api/v1/users", true),
        ("/api/v1", "/api/v10", false),
        ("/api/v1", "/api", false),
        ("/", "/", true),
        ("/", "/anything", true),
        ("/", "/a/b/c/", true),
    ];
    for (rule, path, want) in cases {
        assert_eq!(prefix(rule).matches(path), *want, "prefix {rule} vs {path}");
    }
}

#[test]
fn router_returns_the_first_matching_route_in_file_order() {
    let router = Router::new(vec![
        Arc::new(route("admin", None, None, prefix("/api/admin"))),
        Arc::new(route("api", None, None, prefix("/api"))),
        Arc::new(route("never", None, None, prefix("/api/admin/x"))),
        Arc::new(route("root", None, None, exact("/"))),
    ]);
    let get = Method::GET;
    let cases: &[(&str, Option<&str>)] = &[
        ("/api/admin", Some("admin")),
        ("/api/admin/x", Some("admin")),
        ("/api/adminx", Some("api")),
        ("/api", Some("api")),
        ("/api/users", Some("api")),
        ("/", Some("root")),
        ("/other", None),
        ("/apix", None),
    ];
    for (path, want) in cases {
        let got = router.find(None, &get, path).map(|r| r.name.as_str());
        assert_eq!(got, *want, "{path}");
    }
    assert_eq!(router.routes().len(), 4);
}

#[test]
fn empty_router_matches_nothing() {
    assert!(Router::default().find(None, &Method::GET, "/").is_none());
}

#[test]
fn host_filter_needs_the_exact_host() {
    let router = Router::new(vec![
        Arc::new(route("a", Some("a.example"), None, prefix("/"))),
        Arc::new(route("any", None, None, prefix("/x"))),
    ]);
    let get = Method::GET;
    let cases: &[(Option<&str>, &str, Option<&str>)] = &[
        (Some("a.example"), "/", Some("a")),
        (Some("a.example"), "/x", Some("a")),
        (Some("b.example"), "/x", Some("any")),
        (Some("b.example"), "/", None),
        (Some("sub.a.example"), "/", None),
        (Some("a.example.evil"), "/", None),
        (None, "/", None),
        (None, "/x", Some("any")),
    ];
    for (host, path, want) in cases {
        let got = router.find(*host, &get, path).map(|r| r.name.as_str());
        assert_eq!(got, *want, "{host:?} {path}");
    }
}

#[test]
fn method_filter_needs_a_listed_method() {
    let router = Router::new(vec![
        Arc::new(route(
            "write",
            None,
            Some(&[Method::POST, Method::PUT]),
            prefix("/x"),
        )),
        Arc::new(route("read", None, Some(&[Method::GET]), prefix("/x"))),
    ]);
    let cases = [
        (Method::POST, Some("write")),
        (Method::PUT, Some("write")),
        (Method::GET, Some("read")),
        // HEAD is GET without a body everywhere, so a GET rule governs it.
        (Method::HEAD, Some("read")),
        (Method::DELETE, None),
        (Method::from_bytes(b"PATCH").unwrap(), None),
    ];
    for (method, want) in cases {
        let got = router.find(None, &method, "/x/1").map(|r| r.name.as_str());
        assert_eq!(got, want, "{method}");
    }
}

#[test]
fn route_matches_only_when_host_method_and_path_all_match() {
    let r = route("r", Some("h"), Some(&[Method::GET]), exact("/p"));
    assert!(r.matches(Some("h"), &Method::GET, "/p"));
    assert!(!r.matches(Some("x"), &Method::GET, "/p"));
    assert!(!r.matches(Some("h"), &Method::POST, "/p"));
    assert!(!r.matches(Some("h"), &Method::GET, "/q"));
    assert!(!r.matches(None, &Method::GET, "/p"));
}

type Filter<'a> = (Option<&'a str>, Option<&'a [Method]>, PathMatch);

#[test]
fn shadows_table() {
    let get: &[Method] = &[Method::GET];
    let get_post: &[Method] = &[Method::GET, Method::POST];
    let post: &[Method] = &[Method::POST];
    let cases: Vec<(Filter, Filter, bool)> = vec![
        // Paths.
        (
            (None, None, prefix("/api")),
            (None, None, prefix("/api/x")),
            true,
        ),
        (
            (None, None, prefix("/api")),
            (None, None, prefix("/api")),
            true,
        ),
        (
            (None, None, prefix("/api")),
            (None, None, exact("/api")),
            true,
        ),
        (
            (None, None, prefix("/api")),
            (None, None, exact("/api/x/y")),
            true,
        ),
        (
            (None, None, prefix("/")),
            (None, None, prefix("/anything")),
            true,
        ),
        ((None, None, prefix("/")), (None, None, exact("/")), true),
        (
            (None, None, prefix("/api/x")),
            (None, None, prefix("/api")),
            false,
        ),
        (
            (None, None, prefix("/api")),
            (None, None, prefix("/apix")),
            false,
        ),
        (
            (None, None, prefix("/api")),
            (None, None, exact("/apix")),
            false,
        ),
        (
            (None, None, prefix("/api")),
            (None, None, prefix("/")),
            false,
        ),
        ((None, None, exact("/a")), (None, None, exact("/a")), true),
        ((None, None, exact("/a")), (None, None, exact("/b")), false),
        ((None, None, exact("/a")), (None, None, prefix("/a")), false),
        ((None, None, exact("/a/")), (None, None, exact("/a")), false),
        // Hosts.
        (
            (None, None, prefix("/")),
            (Some("h"), None, prefix("/x")),
            true,
        ),
        (
            (Some("h"), None, prefix("/")),
            (Some("h"), None, prefix("/x")),
            true,
        ),
        (
            (Some("h"), None, prefix("/")),
            (Some("g"), None, prefix("/x")),
            false,
        ),
        (
            (Some("h"), None, prefix("/")),
            (None, None, prefix("/x")),
            false,
        ),
        // Methods.
        (
            (None, None, prefix("/")),
            (None, Some(get), prefix("/x")),
            true,
        ),
        (
            (None, Some(get_post), prefix("/")),
            (None, Some(get), prefix("/x")),
            true,
        ),
        (
            (None, Some(get_post), prefix("/")),
            (None, Some(get_post), prefix("/x")),
            true,
        ),
        (
            (None, Some(get), prefix("/")),
            (None, Some(get_post), prefix("/x")),
            false,
        ),
        (
            (None, Some(get), prefix("/")),
            (None, Some(post), prefix("/x")),
            false,
        ),
        (
            (None, Some(get), prefix("/")),
            (None, None, prefix("/x")),
            false,
        ),
        // All three together.
        (
            (Some("h"), Some(get_post), prefix("/a")),
            (Some("h"), Some(post), exact("/a/b")),
            true,
        ),
        (
            (Some("h"), Some(get_post), prefix("/a")),
            (Some("h"), Some(post), exact("/b")),
            false,
        ),
    ];
    for ((h1, m1, p1), (h2, m2, p2), want) in cases {
        let earlier = route("earlier", h1, m1, p1.clone());
        let later = route("later", h2, m2, p2.clone());
        assert_eq!(
            earlier.shadows(&later),
            want,
            "{h1:?} {m1:?} {p1:?} shadows {h2:?} {m2:?} {p2:?}"
        );
    }
}

#[test]
fn exact_path_shadows_the_same_path_with_a_trailing_slash() {
    // Router only sees normalised paths, so the only request `/a/` matches is `/a/`, which exact
    // `/a` already takes: the later route can never be used.
    let earlier = route("earlier", None, None, exact("/a"));
    let later = route("later", None, None, exact("/a/"));
    assert!(exact("/a").matches("/a/"));
    assert!(
        earlier.shadows(&later),
        "exact '/a' takes every request exact '/a/' matches, but is not reported as shadowing it"
    );
}
