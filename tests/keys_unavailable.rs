//! Starting without keys: the JWKS server hangs, errors, sends garbage or is not running at all.
//! The gateway must still start, report not-ready, answer jwt routes 503 with Retry-After (and
//! never forward them), serve `auth = "none"` routes, and become ready once keys can be fetched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;

const ROUTES: &str = r#"
[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
auth = "jwt"

[[route]]
name = "open"
path_prefix = "/open"
upstream = "echo"
auth = "none"
"#;

/// The gateway retries with backoff starting around 1 s; recovery must happen within this.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(15);

/// The behaviour while no issuer has keys: up, not ready, 503 + Retry-After on jwt routes with
/// nothing forwarded, `auth = "none"` still served.
fn assert_degraded(gw: &Gateway, echo: &Echo, token: &str) {
    assert_eq!(gw.admin_get("/healthz").status, 200, "process is up");
    assert_eq!(gw.readyz(), 503, "no keys yet: not ready");

    let resp = client::get_with_token(gw.proxy_addr(), "/api/x", token);
    assert_rejection(&resp, 503, None, Some(token));
    assert_retry_after(&resp);
    assert_eq!(echo.count(), 0, "a jwt request was forwarded without keys");

    let resp = client::get(gw.proxy_addr(), "/open/x");
    assert_eq!(resp.status, 200, "auth = none route: {}", resp.text());
    assert_eq!(echo.count(), 1);
}

/// Readiness turns 200 within the deadline and the jwt route then works.
fn assert_recovers(gw: &Gateway, echo: &Echo, token: &str) {
    assert!(
        gw.wait_readyz(200, RECOVERY_DEADLINE),
        "/readyz did not turn 200 within {RECOVERY_DEADLINE:?} after keys became available"
    );
    let before = echo.count();
    let resp = client::get_with_token(gw.proxy_addr(), "/api/x", token);
    assert_eq!(resp.status, 200, "{:?} {}", resp.headers, resp.text());
    assert_eq!(echo.count(), before + 1);
}

fn degraded_then_recovered(mode: Mode) {
    let env = Env::start_with_mode(mode, "", ROUTES);
    let token = env.token(json!({}));
    assert_degraded(&env.gw, &env.echo, &token);
    env.keys.set_mode(Mode::Normal);
    assert_recovers(&env.gw, &env.echo, &token);
}

#[test]
fn hanging_jwks_server_leaves_gateway_unready_until_keys_arrive() {
    degraded_then_recovered(Mode::Hang);
}

#[test]
fn jwks_server_error_status_leaves_gateway_unready_until_keys_arrive() {
    degraded_then_recovered(Mode::Status(500));
}

#[test]
fn garbage_jwks_leaves_gateway_unready_until_keys_arrive() {
    degraded_then_recovered(Mode::Garbage);
}

#[test]
fn jwks_fetch_is_retried_after_failure() {
    let env = Env::start_with_mode(Mode::Status(503), "", ROUTES);
    assert!(
        wait_until(Duration::from_secs(10), || env.keys.fetch_count() >= 2),
        "the gateway did not retry the JWKS fetch (fetches: {})",
        env.keys.fetch_count()
    );
    assert_eq!(env.gw.readyz(), 503);
}

#[test]
fn jwks_server_not_running_at_start_then_started() {
    let key = FixtureKey::rsa_a();
    let jwks_addr = reserve_addr();
    let echo = Echo::start();
    let body = format!(
        "{}\n{}\n{ROUTES}",
        issuer_toml(
            "main",
            ISS,
            &format!("http://{jwks_addr}/jwks.json"),
            &["RS256"],
            ""
        ),
        upstream_toml("echo", &[echo.addr()], "")
    );
    let gw = Gateway::builder(body).wait_healthy().start();
    let token = key.sign(serde_json::Value::Null, claims(json!({})));
    assert_degraded(&gw, &echo, &token);

    let keys = KeyServer::start_on(jwks_addr, &[&key]);
    assert_recovers(&gw, &echo, &token);
    assert!(keys.fetch_count() >= 1);
}
