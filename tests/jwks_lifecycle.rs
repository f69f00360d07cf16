//! The key-set lifecycle of remote issuers, end to end on real sockets: key rotation without a
//! restart, unknown-`kid` refetches and their cooldown, refresh timing from `Cache-Control`
//! within the `jwks_min_ttl`/`jwks_max_ttl` clamps, provider outages (serving the last good set,
//! failing closed after `jwks_max_stale`), the persisted set after a restart, OpenID Connect
//! discovery, and isolation between issuers.
//!
//! Every test has its own key servers, echo upstream and gateway process, so the tests run in
//! parallel. Waits are bounded polls; "at most" assertions use short, bounded observation
//! windows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::*;

const ROUTES: &str = r#"
[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
auth = "jwt"
"#;

/// Quick scheduled refreshes: every 0.8-0.95 s.
const FAST_REFRESH: &str = "jwks_min_ttl = \"1s\"\njwks_refresh = \"1s\"";

/// `rsa_a` under kid `a`.
fn key_a() -> FixtureKey {
    FixtureKey::rsa_a().with_kid("a")
}

/// `rsa_b` under kid `b`.
fn key_b() -> FixtureKey {
    FixtureKey::load("rsa_b.pem", Algorithm::RS256).with_kid("b")
}

/// A token for the `main` issuer ([`std_claims`]) signed by `key`.
fn token(key: &FixtureKey) -> String {
    key.sign(Value::Null, std_claims())
}

/// The config body: issuer `main` fetching `jwks_url` (with `issuer_extra`), upstream `echo`, and
/// the `/api` jwt route.
fn body(jwks_url: &str, echo: &Echo, issuer_extra: &str) -> String {
    format!(
        "{}\n{}\n{ROUTES}",
        issuer_toml("main", ISS, jwks_url, &["RS256"], issuer_extra),
        upstream_toml("echo", &[echo.addr()], "")
    )
}

/// Starts a gateway on `body` (which must define upstream `echo`) with `server_extra` in its
/// `[server]` block, waiting for `/readyz` 200 if `ready`, else only for `/healthz`.
///
/// The harness reserves ports by binding port 0 and releasing them, and pingora retries a bind
/// that fails with "address in use" instead of exiting. So when two gateways started at the same
/// moment (e.g. by two test binaries running at once) are handed the same port, the loser keeps
/// running without it and the harness, seeing the port answer, accepts it: the test would then
/// talk to someone else's gateway. To rule that out, each gateway gets a route with a unique
/// name; both its listeners must prove they belong to this process (the proxy knows the route,
/// the admin endpoint exports its metrics), otherwise it is restarted on new ports.
fn launch(body: &str, server_extra: &str, ready: bool) -> Gateway {
    for attempt in 1..=3 {
        let probe = format!("probe-{:016x}", fastrand::u64(..));
        let full = format!(
            "{body}\n[[route]]\nname = {probe:?}\npath_prefix = \"/{probe}\"\n\
             upstream = \"echo\"\nauth = \"jwt\"\n"
        );
        let builder = Gateway::builder(full).server_extra(server_extra);
        let gw = if ready {
            builder.start()
        } else {
            builder.wait_healthy().start()
        };
        let timeout = Duration::from_secs(5);
        let proxy = gw.proxy_addr();
        let proxy_ok = client::try_send_within(
            proxy,
            &client::build_request(proxy, "GET", &format!("/{probe}"), &[]),
            timeout,
        )
        .is_ok_and(|r| r.status == 401);
        let admin = gw.admin_addr();
        let admin_ok = client::try_send_within(
            admin,
            &client::build_request(admin, "GET", "/metrics", &[]),
            timeout,
        )
        .is_ok_and(|r| r.status == 200 && r.text().contains(&format!("route=\"{probe}\"")));
        if proxy_ok && admin_ok {
            return gw;
        }
        eprintln!(
            "gateway attempt {attempt}: its ports are answered by another process \
             (proxy ok: {proxy_ok}, admin ok: {admin_ok}); restarting on new ports"
        );
    }
    panic!("could not start a gateway that owns its ports");
}

/// A key server serving `served`, an echo, and a ready gateway for issuer `main` with
/// `issuer_extra`; `signer` becomes `env.key`.
fn start(signer: FixtureKey, served: &[&FixtureKey], issuer_extra: &str) -> Env {
    let keys = KeyServer::start(served);
    let echo = Echo::start();
    let gw = launch(&body(&keys.url(), &echo, issuer_extra), "", true);
    Env {
        key: signer,
        keys,
        echo,
        gw,
    }
}

/// The sum of the samples of metric `name` whose labels include all of `labels`.
fn metric(gw: &Gateway, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_samples(&gw.metrics(), name)
        .iter()
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// `tokengate_jwks_refresh_total{issuer, result}`.
fn refreshes(gw: &Gateway, issuer: &str, result: &str) -> f64 {
    metric(
        gw,
        "tokengate_jwks_refresh_total",
        &[("issuer", issuer), ("result", result)],
    )
}

/// Every failed refresh of `issuer`, whatever the result label.
fn refresh_failures(gw: &Gateway, issuer: &str) -> f64 {
    metric_samples(&gw.metrics(), "tokengate_jwks_refresh_total")
        .iter()
        .filter(|s| {
            s.labels.get("issuer").map(String::as_str) == Some(issuer)
                && s.labels.get("result").map(String::as_str) != Some("ok")
        })
        .map(|s| s.value)
        .sum()
}

/// `GET /api/x` with `token` must be 503 `temporarily_unavailable` with Retry-After, and not
/// forwarded.
fn expect_keys_unavailable(env: &Env, token: &str) {
    let resp = env.expect_rejected("/api/x", Some(token), 503, Some("temporarily_unavailable"));
    assert_retry_after(&resp);
}

/// Polls `GET /api/x` with `token` until it answers `status`, for at most `deadline`. Every
/// answer must be either `status` or `meanwhile`; a request answered with anything but 200 must
/// not have reached the upstream. Returns the answer with `status`.
fn poll_until_status(
    env: &Env,
    token: &str,
    status: u16,
    meanwhile: u16,
    deadline: Duration,
) -> Response {
    let end = Instant::now() + deadline;
    loop {
        let before = env.echo.count();
        let resp = env.get("/api/x", Some(token));
        let forwarded = env.echo.count() - before;
        assert!(
            resp.status == status || resp.status == meanwhile,
            "expected {status} (or {meanwhile} meanwhile), got {}: {}",
            resp.status,
            resp.text()
        );
        if resp.status == 200 {
            assert_eq!(
                forwarded, 1,
                "a 200 must come from exactly one upstream request"
            );
        } else {
            assert_eq!(forwarded, 0, "a {} reached the upstream", resp.status);
        }
        if resp.status == status {
            return resp;
        }
        assert!(
            Instant::now() < end,
            "GET /api/x did not turn {status} within {deadline:?} (still {meanwhile}); \
             key server saw {} fetches",
            env.keys.fetch_count()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends a valid token every 50 ms for `window`, asserting each is relayed (200), and that
/// `/readyz` stays 200.
fn keep_serving_for(env: &Env, token: &str, window: Duration) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        env.expect_allowed("/api/x", Some(token));
        assert_eq!(
            env.gw.readyz(),
            200,
            "/readyz must stay 200 while keys are held"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Seconds between consecutive fetch timestamps. Callers pass the fetches from the last one made
/// before [`launch`] returned: earlier ones may come from a discarded gateway attempt.
fn intervals(times: &[Instant]) -> Vec<f64> {
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

mod rotation {
    use super::*;

    #[test]
    fn key_added_by_provider_is_accepted_without_restart_via_unknown_kid_refetch() {
        let (a, b) = (key_a(), key_b());
        let env = start(a.clone(), &[&a], "");
        env.expect_allowed("/api/x", Some(&token(&a)));
        let warm = env.keys.fetch_count();

        env.keys.set_keys(&[&a, &b]);
        let started = Instant::now();
        // The very first request with kid "b" triggers the refetch and is decided on the new set.
        env.expect_allowed("/api/x", Some(&token(&b)));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the new key took {:?}",
            started.elapsed()
        );
        assert_eq!(
            env.keys.fetch_count(),
            warm + 1,
            "exactly one refetch brought the new key"
        );
        assert_eq!(
            metric(
                &env.gw,
                "tokengate_jwks_unknown_kid_total",
                &[("issuer", "main")]
            ),
            1.0
        );
        // Both keys now verify, with no further fetch.
        env.expect_allowed("/api/x", Some(&token(&a)));
        env.expect_allowed("/api/x", Some(&token(&b)));
        assert_eq!(env.keys.fetch_count(), warm + 1);
        assert_eq!(
            metric(&env.gw, "tokengate_jwks_keys", &[("issuer", "main")]),
            2.0
        );
    }

    #[test]
    fn concurrent_requests_with_a_new_kid_share_one_refetch_and_all_succeed() {
        let (a, b) = (key_a(), key_b());
        let env = start(a.clone(), &[&a], "");
        env.expect_allowed("/api/x", Some(&token(&a)));
        env.keys.set_keys(&[&a, &b]);
        let fetches = env.keys.fetch_count();
        let forwarded = env.echo.count();

        const N: usize = 16;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(N));
        let addr = env.gw.proxy_addr();
        let handles: Vec<_> = (0..N)
            .map(|_| {
                let (barrier, t) = (barrier.clone(), token(&b));
                std::thread::spawn(move || {
                    barrier.wait();
                    client::get_with_token(addr, "/api/x", &t)
                })
            })
            .collect();
        for h in handles {
            let resp = h.join().expect("request thread panicked");
            assert_eq!(
                resp.status,
                200,
                "a request with the new kid was not allowed: {}",
                resp.text()
            );
        }
        assert_eq!(env.echo.count(), forwarded + N);
        assert_eq!(
            env.keys.fetch_count() - fetches,
            1,
            "{N} concurrent misses of one kid must share a single refetch"
        );
    }

    #[test]
    fn key_removed_by_provider_is_rejected_after_scheduled_refresh() {
        let (a, b) = (key_a(), key_b());
        let env = start(a.clone(), &[&a, &b], FAST_REFRESH);
        let (ta, tb) = (token(&a), token(&b));
        env.expect_allowed("/api/x", Some(&ta));
        env.expect_allowed("/api/x", Some(&tb));

        env.keys.set_keys(&[&b]);
        let fetches = env.keys.fetch_count();
        let resp = poll_until_status(&env, &ta, 401, 200, Duration::from_secs(10));
        assert_rejection(&resp, 401, Some("invalid_token"), Some(&ta));
        assert_challenge_error(&resp, "invalid_token");
        assert!(
            env.keys.fetch_count() > fetches,
            "the removal can only be learned from a new fetch"
        );
        // It stays rejected, and the remaining key keeps working.
        env.expect_invalid_token("/api/x", &ta);
        env.expect_allowed("/api/x", Some(&tb));
        assert_eq!(
            metric(&env.gw, "tokengate_jwks_keys", &[("issuer", "main")]),
            1.0
        );
    }

    #[test]
    fn key_material_replaced_under_the_same_kid_is_rejected_after_scheduled_refresh() {
        // The provider replaces the key behind kid "k" (e.g. after a compromise). Tokens signed
        // with the old material must stop verifying once the new set is fetched, including a
        // token the gateway has already accepted (and may have cached).
        let old = FixtureKey::rsa_a().with_kid("k");
        let new = FixtureKey::load("rsa_b.pem", Algorithm::RS256).with_kid("k");
        let env = start(old.clone(), &[&old], FAST_REFRESH);
        let t_old = token(&old);
        env.expect_allowed("/api/x", Some(&t_old));
        env.expect_allowed("/api/x", Some(&t_old));

        env.keys.set_keys(&[&new]);
        let fetches = env.keys.fetch_count();
        assert!(
            wait_until(Duration::from_secs(5), || env.keys.fetch_count()
                >= fetches + 2),
            "no scheduled refresh after the key was replaced"
        );
        // The new material verifies, so the new set is in use...
        env.expect_allowed("/api/x", Some(&token(&new)));
        // ...and the old token, signed by material no longer published, is refused.
        let resp = env.expect_rejected("/api/x", Some(&t_old), 401, Some("invalid_token"));
        assert_challenge_error(&resp, "invalid_token");
        // A fresh token signed with the old material is refused too.
        let fresh_old = old.sign(Value::Null, claims(json!({"sub": "user-2"})));
        env.expect_invalid_token("/api/x", &fresh_old);
    }
}

mod unknown_kid {
    use super::*;

    /// Sends one token per kid from `threads` threads at once; returns each response with its
    /// token.
    fn flood(env: &Env, kids: Vec<String>, threads: usize) -> Vec<(String, Response)> {
        let addr = env.gw.proxy_addr();
        let signer = env.key.clone();
        let chunk = kids.len().div_ceil(threads);
        let handles: Vec<_> = kids
            .chunks(chunk)
            .map(|kids| {
                let kids = kids.to_vec();
                let signer = signer.clone();
                std::thread::spawn(move || {
                    kids.iter()
                        .map(|kid| {
                            let t = signer.sign(json!({ "kid": kid }), std_claims());
                            let r = client::get_with_token(addr, "/api/x", &t);
                            (t, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("flood thread panicked"))
            .collect()
    }

    #[test]
    fn flood_of_unknown_kids_causes_at_most_one_refetch_and_is_rejected() {
        let a = key_a();
        // jwks_refresh 1h (default min_ttl 5m): no scheduled refresh during the test.
        let env = start(a.clone(), &[&a], "jwks_refresh = \"1h\"");
        env.expect_allowed("/api/x", Some(&token(&a)));
        let fetches = env.keys.fetch_count();
        let forwarded = env.echo.count();

        let kids: Vec<String> = (0..300)
            .map(|i| format!("forged-{i}-{:016x}", fastrand::u64(..)))
            .collect();
        let results = flood(&env, kids, 8);
        assert_eq!(results.len(), 300);
        for (t, resp) in &results {
            assert_rejection(resp, 401, Some("invalid_token"), Some(t));
            assert_challenge_error(resp, "invalid_token");
        }
        assert_eq!(
            env.echo.count(),
            forwarded,
            "a token with an unknown kid reached the upstream"
        );
        let refetches = env.keys.fetch_count() - fetches;
        assert!(
            refetches <= 1,
            "300 unknown kids caused {refetches} refetches; at most one per cooldown is allowed"
        );
        let unknown = metric(
            &env.gw,
            "tokengate_jwks_unknown_kid_total",
            &[("issuer", "main")],
        );
        assert!(unknown >= 300.0, "unknown_kid_total = {unknown}");
        let suppressed = metric(
            &env.gw,
            "tokengate_jwks_refetch_suppressed_total",
            &[("issuer", "main")],
        );
        assert!(
            suppressed >= 299.0,
            "refetch_suppressed_total = {suppressed}; every flood token but the one refetch \
             must be suppressed"
        );
        // The real key is unaffected.
        env.expect_allowed("/api/x", Some(&token(&a)));
        assert_eq!(env.keys.fetch_count() - fetches, refetches);
    }

    #[test]
    fn key_published_during_cooldown_is_accepted_once_cooldown_passes() {
        const COOLDOWN: Duration = Duration::from_secs(2);
        let a = key_a();
        let c = FixtureKey::load("rsa_b.pem", Algorithm::RS256).with_kid("c");
        let env = start(a.clone(), &[&a], "jwks_refetch_cooldown = \"2s\"");
        env.expect_allowed("/api/x", Some(&token(&a)));
        let warm = env.keys.fetch_count();

        // An unknown kid uses up this cooldown's refetch.
        let claimed = Instant::now();
        let forged = a.sign(json!({"kid": "not-published"}), std_claims());
        env.expect_invalid_token("/api/x", &forged);
        assert_eq!(
            env.keys.fetch_count(),
            warm + 1,
            "the first unknown kid refetches"
        );

        // The provider now publishes kid "c"; inside the cooldown it cannot be learned.
        env.keys.set_keys(&[&a, &c]);
        let tc = token(&c);
        let forwarded = env.echo.count();
        let resp = env.get("/api/x", Some(&tc));
        if claimed.elapsed() < COOLDOWN - Duration::from_millis(300) {
            assert_rejection(&resp, 401, Some("invalid_token"), Some(&tc));
            assert_eq!(env.echo.count(), forwarded, "a 401 reached the upstream");
            assert_eq!(
                env.keys.fetch_count(),
                warm + 1,
                "refetch inside the cooldown"
            );
        }

        // Within one cooldown (plus slack) it is accepted.
        poll_until_status(&env, &tc, 200, 401, COOLDOWN + Duration::from_secs(5));
        let took = claimed.elapsed();
        assert!(
            took >= COOLDOWN - Duration::from_millis(100),
            "kid \"c\" was learned after {took:?}, inside the {COOLDOWN:?} cooldown"
        );
        assert_eq!(
            env.keys.fetch_count(),
            warm + 2,
            "one refetch per cooldown: the first unknown kid, then kid \"c\""
        );
        env.expect_allowed("/api/x", Some(&token(&a)));
    }
}

mod cache_control {
    use super::*;

    #[test]
    fn short_max_age_drives_refreshes_instead_of_jwks_refresh() {
        let a = key_a();
        let keys = KeyServer::start(&[&a]);
        keys.set_cache_control(Some("public, max-age=1"));
        let echo = Echo::start();
        // jwks_refresh stays at its 1h default.
        let gw = launch(&body(&keys.url(), &echo, "jwks_min_ttl = \"1s\""), "", true);
        let first = keys.fetch_count() - 1;
        assert!(
            wait_until(Duration::from_secs(6), || keys.fetch_count() >= first + 3),
            "max-age=1 should refresh about every second; fetch intervals: {:?}",
            intervals(&keys.fetch_times()[first..])
        );
        // Refreshes happen at 80-95% of the 1 s lifetime, never faster.
        for gap in intervals(&keys.fetch_times()[first..]) {
            assert!(
                (0.7..=2.5).contains(&gap),
                "refresh interval {gap:.2}s for a 1 s lifetime"
            );
        }
        // The key server counts a fetch when it arrives; the gateway counts it once installed.
        assert!(
            wait_until(Duration::from_secs(2), || refreshes(&gw, "main", "ok")
                >= 3.0),
            "the refreshes did not all succeed"
        );
        assert_eq!(refresh_failures(&gw, "main"), 0.0);
    }

    #[test]
    fn long_max_age_is_clamped_down_to_jwks_max_ttl() {
        let a = key_a();
        let keys = KeyServer::start(&[&a]);
        keys.set_cache_control(Some("max-age=3600"));
        let echo = Echo::start();
        let extra = "jwks_min_ttl = \"1s\"\njwks_max_ttl = \"2s\"";
        let _gw = launch(&body(&keys.url(), &echo, extra), "", true);
        let first = keys.fetch_count() - 1;
        assert!(
            wait_until(Duration::from_secs(6), || keys.fetch_count() >= first + 2),
            "max-age=3600 clamped to 2 s should refresh within ~2 s; fetches: {}",
            keys.fetch_count()
        );
        // 80-95% of 2 s: driven by jwks_max_ttl, not by jwks_min_ttl (1 s) or max-age.
        let gaps = intervals(&keys.fetch_times()[first..]);
        assert!(
            (1.4..=2.5).contains(&gaps[0]),
            "first refresh after {:.2}s for a lifetime clamped to 2 s",
            gaps[0]
        );
    }

    #[test]
    fn set_served_past_its_max_age_during_an_outage_is_reported_stale() {
        let a = key_a();
        let keys = KeyServer::start(&[&a]);
        keys.set_cache_control(Some("max-age=1"));
        let echo = Echo::start();
        // The set's lifetime is 1 s (max-age within the clamps); jwks_refresh stays 1h.
        let gw = launch(&body(&keys.url(), &echo, "jwks_min_ttl = \"1s\""), "", true);
        let env = Env {
            key: a.clone(),
            keys,
            echo,
            gw,
        };
        let stale = || metric(&env.gw, "tokengate_jwks_stale", &[("issuer", "main")]);
        assert_eq!(stale(), 0.0);
        env.keys.set_mode(Mode::Status(500));
        let fetches = env.keys.fetch_count();
        assert!(
            wait_until(Duration::from_secs(5), || stale() == 1.0),
            "the set is served past its 1 s lifetime but tokengate_jwks_stale stays {} \
             (failed refreshes: {}, fetches since the outage: {})",
            stale(),
            refresh_failures(&env.gw, "main"),
            env.keys.fetch_count() - fetches
        );
        env.expect_allowed("/api/x", Some(&token(&a)));
    }

    #[test]
    fn short_max_age_is_clamped_up_to_jwks_min_ttl() {
        let a = key_a();
        let keys = KeyServer::start(&[&a]);
        keys.set_cache_control(Some("max-age=1"));
        let echo = Echo::start();
        let _gw = launch(
            &body(&keys.url(), &echo, "jwks_min_ttl = \"30s\""),
            "",
            true,
        );
        let fetches = keys.fetch_count();
        // A bounded observation window: with the lifetime clamped to 30 s, no refresh in 3 s.
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            keys.fetch_count(),
            fetches,
            "max-age=1 must be clamped up to jwks_min_ttl = 30s"
        );
    }
}

mod outage {
    use super::*;

    #[test]
    fn provider_outage_after_warm_up_keeps_serving_the_last_good_set() {
        let a = key_a();
        let env = start(
            a.clone(),
            &[&a],
            &format!("{FAST_REFRESH}\njwks_fetch_timeout = \"1s\""),
        );
        let t = token(&a);
        env.expect_allowed("/api/x", Some(&t));

        for (mode, result) in [
            (Mode::Status(500), "http_error"),
            (Mode::Garbage, "invalid"),
            (Mode::Hang, "timeout"),
        ] {
            let before = refreshes(&env.gw, "main", result);
            env.keys.set_mode(mode);
            let end = Instant::now() + Duration::from_secs(8);
            while refreshes(&env.gw, "main", result) <= before {
                assert!(
                    Instant::now() < end,
                    "no refresh failed with result={result} in {mode:?}"
                );
                keep_serving_for(&env, &t, Duration::from_millis(200));
            }
            keep_serving_for(&env, &t, Duration::from_millis(300));
        }
        assert!(refresh_failures(&env.gw, "main") >= 3.0);
        assert_eq!(
            metric(&env.gw, "tokengate_jwks_keys", &[("issuer", "main")]),
            1.0
        );
        assert_eq!(
            metric(&env.gw, "tokengate_jwks_stale", &[("issuer", "main")]),
            1.0,
            "the set is served past its 1 s lifetime"
        );
    }

    #[test]
    fn outage_longer_than_max_stale_fails_closed_then_recovers() {
        let a = key_a();
        let env = start(
            a.clone(),
            &[&a],
            &format!("{FAST_REFRESH}\njwks_max_stale = \"3s\""),
        );
        let t = token(&a);
        env.expect_allowed("/api/x", Some(&t));

        env.keys.set_mode(Mode::Status(500));
        let down = Instant::now();
        env.expect_allowed("/api/x", Some(&t));
        let resp = poll_until_status(&env, &t, 503, 200, Duration::from_secs(15));
        let after = down.elapsed();
        assert_rejection(&resp, 503, Some("temporarily_unavailable"), Some(&t));
        assert_retry_after(&resp);
        // The set in use was fetched at most ~1 s before the outage began.
        assert!(
            after >= Duration::from_millis(1500),
            "failed closed {after:?} into the outage, well before jwks_max_stale = 3s"
        );
        assert_eq!(env.gw.readyz(), 503, "no keys: not ready");
        let readyz = env.gw.admin_get("/readyz");
        assert!(readyz.text().contains("main"), "{}", readyz.text());
        expect_keys_unavailable(&env, &t);
        // The gauge is updated just after the set is dropped.
        assert!(
            wait_until(Duration::from_secs(1), || metric(
                &env.gw,
                "tokengate_jwks_keys",
                &[("issuer", "main")]
            ) == 0.0),
            "tokengate_jwks_keys still counts the dropped set"
        );
        assert!(refreshes(&env.gw, "main", "http_error") >= 2.0);

        env.keys.set_mode(Mode::Normal);
        poll_until_status(&env, &t, 200, 503, Duration::from_secs(15));
        assert!(env.gw.wait_readyz(200, Duration::from_secs(2)));
        assert_eq!(
            metric(&env.gw, "tokengate_jwks_stale", &[("issuer", "main")]),
            0.0,
            "a freshly fetched set is not stale"
        );
    }

    #[test]
    fn hanging_provider_does_not_delay_failing_closed_past_max_stale() {
        let a = key_a();
        // A fetch may hang for 10 s; the set must still be dropped once it is 3 s old.
        let env = start(
            a.clone(),
            &[&a],
            &format!("{FAST_REFRESH}\njwks_max_stale = \"3s\"\njwks_fetch_timeout = \"10s\""),
        );
        let t = token(&a);
        env.expect_allowed("/api/x", Some(&t));

        env.keys.set_mode(Mode::Hang);
        let down = Instant::now();
        // The set in use was fetched before the provider started hanging, so it is past
        // jwks_max_stale 3 s from now at the latest; allow 2 s more for promptness.
        let resp = poll_until_status(&env, &t, 503, 200, Duration::from_secs(5));
        assert_rejection(&resp, 503, Some("temporarily_unavailable"), Some(&t));
        assert_retry_after(&resp);
        assert!(
            down.elapsed() >= Duration::from_millis(1500),
            "failed closed {:?} into the outage, well before jwks_max_stale = 3s",
            down.elapsed()
        );
        assert_eq!(env.gw.readyz(), 503);

        // The hanging fetch is answered as soon as the provider recovers.
        env.keys.set_mode(Mode::Normal);
        poll_until_status(&env, &t, 200, 503, Duration::from_secs(15));
    }
}

mod persistence {
    use super::*;

    /// `[server]` lines putting the state directory at `dir`.
    fn state_dir(dir: &Path) -> String {
        format!("state_dir = {:?}", dir.display().to_string())
    }

    /// The `fetched_at` recorded in a persisted set, after checking its shape.
    fn persisted_fetched_at(file: &Path) -> u64 {
        let doc: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        assert!(
            doc["jwks"]["keys"]
                .as_array()
                .is_some_and(|k| !k.is_empty()),
            "persisted file holds no key set: {doc}"
        );
        doc["fetched_at"].as_u64().expect("fetched_at")
    }

    /// Starts gateway 1, waits for it to persist its set, stops it; returns the state file.
    fn warm_and_stop(keys: &KeyServer, echo: &Echo, dir: &Path, issuer_extra: &str) -> String {
        let a = key_a();
        let gw = launch(
            &body(&keys.url(), echo, issuer_extra),
            &state_dir(dir),
            true,
        );
        let before = echo.count();
        let resp = client::get_with_token(gw.proxy_addr(), "/api/x", &token(&a));
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(echo.count(), before + 1);
        let file = dir.join("jwks-main.json");
        assert!(
            wait_until(Duration::from_secs(5), || file.exists()),
            "the key set was not persisted to {}",
            file.display()
        );
        drop(gw);
        file.display().to_string()
    }

    #[test]
    fn restart_during_outage_serves_the_persisted_set_and_reports_it_stale() {
        let a = key_a();
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyServer::start(&[&a]);
        let echo = Echo::start();
        let file = warm_and_stop(&keys, &echo, dir.path(), "");
        let fetched_at = persisted_fetched_at(Path::new(&file));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            leftovers,
            ["jwks-main.json"],
            "an atomic write leaves no temporary files"
        );

        keys.set_mode(Mode::Status(500));
        let fetches = keys.fetch_count();
        // Waits for /readyz 200.
        let gw = launch(&body(&keys.url(), &echo, ""), &state_dir(dir.path()), true);
        let env = Env {
            key: a.clone(),
            keys,
            echo,
            gw,
        };
        assert!(
            env.keys.fetch_count() > fetches,
            "gateway 2 tried the provider"
        );
        assert!(refreshes(&env.gw, "main", "http_error") >= 1.0);
        env.expect_allowed("/api/x", Some(&token(&a)));
        assert_eq!(
            metric(
                &env.gw,
                "tokengate_jwks_last_success_timestamp_seconds",
                &[("issuer", "main")]
            ),
            fetched_at as f64,
            "the persisted set keeps its original fetch time"
        );

        // While the provider stays down the persisted set is served and flagged stale, including
        // after the first failed retries (about 1 s and 3 s after start).
        let end = Instant::now() + Duration::from_millis(2500);
        loop {
            let stale = metric(&env.gw, "tokengate_jwks_stale", &[("issuer", "main")]);
            assert_eq!(
                stale,
                1.0,
                "serving the persisted set during an outage must be reported stale \
                 (failed refreshes so far: {})",
                refresh_failures(&env.gw, "main")
            );
            env.expect_allowed("/api/x", Some(&token(&a)));
            if Instant::now() >= end {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(refresh_failures(&env.gw, "main") >= 2.0);
    }

    #[test]
    fn persisted_set_older_than_max_stale_is_not_used_after_restart() {
        let a = key_a();
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyServer::start(&[&a]);
        let echo = Echo::start();
        let extra = "jwks_max_stale = \"1s\"";
        let file = warm_and_stop(&keys, &echo, dir.path(), extra);
        keys.set_mode(Mode::Status(500));
        // Let the persisted set age past jwks_max_stale (fetched_at has whole-second precision).
        let fetched_at = UNIX_EPOCH + Duration::from_secs(persisted_fetched_at(Path::new(&file)));
        assert!(
            wait_until(Duration::from_secs(4), || {
                SystemTime::now() >= fetched_at + Duration::from_secs(2)
            }),
            "clock did not advance"
        );

        let gw = launch(
            &body(&keys.url(), &echo, extra),
            &state_dir(dir.path()),
            false,
        );
        let env = Env {
            key: a.clone(),
            keys,
            echo,
            gw,
        };
        assert!(
            wait_until(Duration::from_secs(5), || refresh_failures(&env.gw, "main")
                >= 1.0),
            "gateway 2 never tried the provider"
        );
        assert!(
            !env.gw.wait_readyz(200, Duration::from_millis(1500)),
            "gateway 2 became ready on a persisted set older than jwks_max_stale"
        );
        let forwarded = env.echo.count();
        expect_keys_unavailable(&env, &token(&a));
        assert_eq!(env.echo.count(), forwarded);
        assert_eq!(
            metric(&env.gw, "tokengate_jwks_keys", &[("issuer", "main")]),
            0.0
        );
    }
}

mod discovery {
    use super::*;

    /// An issuer block using discovery; `discovery_uri` if given.
    fn discovery_issuer(iss: &str, discovery_uri: Option<&str>) -> String {
        let uri = discovery_uri
            .map(|u| format!("discovery_uri = {u:?}\n"))
            .unwrap_or_default();
        format!(
            "[[issuer]]\nname = \"main\"\nissuer = {iss:?}\naudiences = [{AUD:?}]\n\
             discovery = true\n{uri}allow_insecure_http = true\nalgorithms = [\"RS256\"]\n"
        )
    }

    fn start_discovery(keys: KeyServer, iss: &str, uri: Option<&str>, ready: bool) -> Env {
        let echo = Echo::start();
        let body = format!(
            "{}\n{}\n{ROUTES}",
            discovery_issuer(iss, uri),
            upstream_toml("echo", &[echo.addr()], "")
        );
        let gw = launch(&body, "", ready);
        Env {
            key: key_a(),
            keys,
            echo,
            gw,
        }
    }

    #[test]
    fn discovery_uri_with_matching_issuer_supplies_the_keys() {
        let keys = KeyServer::start(&[&key_a()]);
        let uri = keys.discovery_url();
        let env = start_discovery(keys, ISS, Some(&uri), true);
        env.expect_allowed("/api/x", Some(&token(&env.key)));
        assert!(env.keys.discovery_count() >= 1);
        assert!(env.keys.fetch_count() >= 1);
        assert!(refreshes(&env.gw, "main", "ok") >= 1.0);
    }

    #[test]
    fn discovery_without_uri_reads_well_known_under_the_issuer() {
        let keys = KeyServer::start(&[&key_a()]);
        let iss = format!("http://{}/", keys.addr());
        keys.set_issuer(&iss);
        let env = start_discovery(keys, &iss, None, true);
        let t = env
            .key
            .sign(Value::Null, claims(json!({ "iss": iss.as_str() })));
        env.expect_allowed("/api/x", Some(&t));
        assert!(env.keys.discovery_count() >= 1);
    }

    #[test]
    fn discovery_document_for_another_issuer_is_refused() {
        let keys = KeyServer::start(&[&key_a()]);
        keys.set_issuer("https://evil.example/");
        let uri = keys.discovery_url();
        let env = start_discovery(keys, ISS, Some(&uri), false);
        assert!(
            wait_until(Duration::from_secs(5), || refreshes(
                &env.gw,
                "main",
                "discovery_error"
            ) > 0.0),
            "no discovery_error refresh recorded"
        );
        assert_eq!(env.gw.readyz(), 503);
        expect_keys_unavailable(&env, &token(&env.key));
        // Still refused after a retry of the discovery document.
        let seen = env.keys.discovery_count();
        assert!(
            wait_until(Duration::from_secs(5), || env.keys.discovery_count() > seen),
            "discovery was not retried"
        );
        assert_eq!(env.gw.readyz(), 503);
        assert_eq!(
            env.keys.fetch_count(),
            0,
            "the jwks_uri of a document naming another issuer must never be fetched"
        );
        assert_eq!(refreshes(&env.gw, "main", "ok"), 0.0);
    }
}

mod isolation {
    use super::*;

    const ISS2: &str = "https://second.test/";

    #[test]
    fn failing_issuer_does_not_affect_another_and_recovers_on_its_own() {
        let a = key_a();
        let b = key_b();
        let ks1 = KeyServer::start(&[&a]);
        let ks2 = KeyServer::start(&[&b]);
        ks2.set_mode(Mode::Hang);
        let echo = Echo::start();
        let body = format!(
            "{}\n{}\n{}\n{}",
            issuer_toml("main", ISS, &ks1.url(), &["RS256"], ""),
            issuer_toml(
                "second",
                ISS2,
                &ks2.url(),
                &["RS256"],
                "jwks_fetch_timeout = \"1s\""
            ),
            upstream_toml("echo", &[echo.addr()], ""),
            r#"
[[route]]
name = "one"
path_prefix = "/one"
upstream = "echo"
auth = "jwt"
issuers = ["main"]

[[route]]
name = "two"
path_prefix = "/two"
upstream = "echo"
auth = "jwt"
issuers = ["second"]
"#
        );
        let gw = launch(&body, "", false);
        let t1 = token(&a);
        let t2 = b.sign(Value::Null, claims(json!({ "iss": ISS2 })));
        let get = |path: &str, t: &str| client::get_with_token(gw.proxy_addr(), path, t);

        assert!(
            wait_until(Duration::from_secs(10), || get("/one/x", &t1).status == 200),
            "issuer main never served while issuer second's provider hangs"
        );
        assert_eq!(echo.count(), 1, "only the one 200 was forwarded");
        assert!(
            wait_until(Duration::from_secs(5), || refreshes(
                &gw, "second", "timeout"
            ) >= 1.0),
            "no timed-out refresh recorded for issuer second"
        );

        let before = echo.count();
        let resp = get("/two/x", &t2);
        assert_rejection(&resp, 503, Some("temporarily_unavailable"), Some(&t2));
        assert_retry_after(&resp);
        assert_eq!(echo.count(), before, "a 503 reached the upstream");
        let readyz = gw.admin_get("/readyz");
        assert_eq!(readyz.status, 503);
        assert!(
            readyz.text().contains("second") && !readyz.text().contains("main"),
            "/readyz must name only the issuer without keys: {}",
            readyz.text()
        );
        assert_eq!(
            refresh_failures(&gw, "main"),
            0.0,
            "issuer main's refreshes must not fail because of issuer second"
        );
        assert!(refreshes(&gw, "main", "ok") >= 1.0);
        let resp = get("/one/x", &t1);
        assert_eq!(resp.status, 200, "{}", resp.text());

        ks2.set_mode(Mode::Normal);
        assert!(
            wait_until(Duration::from_secs(15), || get("/two/x", &t2).status == 200),
            "issuer second did not recover after its provider did"
        );
        assert!(gw.wait_readyz(200, Duration::from_secs(2)));
        let resp = get("/one/x", &t1);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(refresh_failures(&gw, "main"), 0.0);
    }
}
