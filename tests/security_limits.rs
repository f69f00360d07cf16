//! Security class: request-head size limits.
//!
//! Before anything parses a request further, its head is bounded: at most `max_request_headers`
//! fields (default 100), no field (name + value) over `max_header_field_bytes` (default 32 KiB,
//! never below `max_token_bytes + 32`), and at most `max_request_header_bytes` in total (default
//! 64 KiB). Over a limit is 431 with a JSON `invalid_request` body, checked before routing, on
//! every route, and never forwarded. A bearer token over `max_token_bytes` is 400. Some heads are
//! so large that pingora refuses them itself (over 256 fields, over 1 MiB): 400 or 431 is fine
//! there, but never a 2xx and never a forwarded request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use std::process::Command;
use support::gateway::BIN;
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

/// `GET target` with `Host: localhost`, `extra` fields (name `X-Hnnn`, value `size` bytes), the
/// given `Authorization` if any, and `Connection: close`. Field count: `extra + 2` (+1 with auth).
fn head(target: &str, extra: usize, size: usize, auth: Option<&str>) -> Vec<u8> {
    let mut raw = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n");
    if let Some(a) = auth {
        raw.push_str(&format!("Authorization: {a}\r\n"));
    }
    for i in 0..extra {
        raw.push_str(&format!("X-H{i:03}: {}\r\n", "v".repeat(size)));
    }
    raw.push_str("Connection: close\r\n\r\n");
    raw.into_bytes()
}

/// One field `X-Pad` whose name plus value is exactly `field` bytes.
fn one_field(target: &str, field: usize) -> Vec<u8> {
    let value = "p".repeat(field - "X-Pad".len());
    format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nX-Pad: {value}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// 431 from tokengate: JSON `invalid_request`, no challenge, nothing forwarded.
fn expect_431(env: &Env, raw: &[u8], label: &str) {
    eprintln!("case: {label}");
    let before = env.echo.count();
    let resp = env.send(raw);
    assert_rejection(&resp, 431, Some("invalid_request"), None);
    assert!(
        resp.header("www-authenticate").is_none(),
        "{label}: a size rejection carries no challenge"
    );
    assert_eq!(env.echo.count(), before, "{label}: forwarded");
}

fn expect_relayed(env: &Env, raw: &[u8], label: &str) {
    eprintln!("case: {label}");
    let before = env.echo.count();
    let resp = env.send(raw);
    env.assert_allowed(&resp);
    assert_eq!(env.echo.count(), before + 1, "{label}");
}

#[test]
fn too_many_header_fields_is_431_before_routing_and_never_forwarded() {
    let env = Env::start("", ROUTES);
    let token = env.token(json!({}));
    let auth = format!("Bearer {token}");
    expect_431(
        &env,
        &head("/open/x", 150, 1, None),
        "150 fields, public route",
    );
    expect_431(
        &env,
        &head("/api/x", 150, 1, Some(&auth)),
        "150 fields, valid token",
    );
    expect_431(
        &env,
        &head("/nowhere", 150, 1, None),
        "150 fields, no route",
    );
    // The boundary: 101 fields in all (Host and Connection included) are refused. (The exact
    // boundary is checked with configured limits below: the echo upstream, hyper, itself refuses
    // more than 100 fields, and the gateway adds X-Forwarded-For and X-Forwarded-Proto.)
    expect_relayed(&env, &head("/open/x", 90, 1, None), "92 fields");
    expect_431(&env, &head("/open/x", 99, 1, None), "101 fields");
    // Repeats of one name count one by one.
    let mut raw = b"GET /open/x HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for _ in 0..120 {
        raw.extend_from_slice(b"X-Same: 1\r\n");
    }
    raw.extend_from_slice(b"Connection: close\r\n\r\n");
    expect_431(&env, &raw, "120 copies of one field");
}

#[test]
fn one_header_field_over_32_kib_is_431() {
    let env = Env::start("", ROUTES);
    expect_431(
        &env,
        &head("/open/x", 1, 40 * 1024, None),
        "one 40 KiB field",
    );
    expect_relayed(
        &env,
        &one_field("/open/x", 32 * 1024),
        "field of exactly 32 KiB",
    );
    expect_431(
        &env,
        &one_field("/open/x", 32 * 1024 + 1),
        "field of 32 KiB + 1",
    );
    // A huge Authorization field is a size problem before it is a token problem.
    let auth = format!("Bearer {}", "A".repeat(40 * 1024));
    expect_431(
        &env,
        &head("/api/x", 0, 1, Some(&auth)),
        "40 KiB Authorization field",
    );
}

#[test]
fn head_over_64_kib_in_total_is_431() {
    let env = Env::start("", ROUTES);
    expect_431(
        &env,
        &head("/open/x", 5, 14 * 1024, None),
        "5 fields of 14 KiB",
    );
    expect_relayed(
        &env,
        &head("/open/x", 4, 14 * 1024, None),
        "4 fields of 14 KiB",
    );
    // A long target counts too.
    let target = format!("/open/{}", "t".repeat(40 * 1024));
    expect_431(
        &env,
        &head(&target, 2, 14 * 1024, None),
        "40 KiB target plus 28 KiB of fields",
    );
    let query = format!("/open/x?q={}", "q".repeat(60 * 1024));
    expect_431(
        &env,
        &head(&query, 1, 8 * 1024, None),
        "60 KiB query plus 8 KiB",
    );
}

#[test]
fn heads_pingora_refuses_itself_are_never_forwarded_and_the_gateway_keeps_serving() {
    let mut env = Env::start("", ROUTES);
    for (label, raw) in [
        ("300 fields", head("/open/x", 300, 1, None)),
        ("1.2 MiB head", head("/open/x", 40, 30 * 1024, None)),
        ("3 MiB head", head("/open/x", 100, 30 * 1024, None)),
    ] {
        eprintln!("case: {label}");
        let before = env.echo.count();
        match client::try_send_within(env.gw.proxy_addr(), &raw, std::time::Duration::from_secs(5))
        {
            Ok(resp) => {
                assert!(
                    resp.status == 400 || resp.status == 431,
                    "{label}: expected 400 or 431, got {} {}",
                    resp.status,
                    resp.text()
                );
                if !resp.body.is_empty() {
                    assert_rejection(&resp, resp.status, Some("invalid_request"), None);
                }
            }
            // Closing the connection on an absurd head is also a refusal.
            Err(e) => eprintln!("  connection ended without a response: {e}"),
        }
        assert_eq!(env.echo.count(), before, "{label}: forwarded");
    }
    assert!(env.gw.is_running(), "the gateway died");
    expect_relayed(
        &env,
        &head("/open/x", 1, 1, None),
        "normal request afterwards",
    );
}

/// A gateway with small configured limits: 20 fields, 2 KiB per field, 8 KiB in all, 1 KiB tokens.
fn small_limits() -> Env {
    let key = FixtureKey::rsa_a();
    let keys = KeyServer::start(&[&key]);
    let echo = Echo::start();
    let body = format!(
        "{}\n{}\n{ROUTES}",
        issuer_toml("main", ISS, &keys.url(), &["RS256"], ""),
        upstream_toml("echo", &[echo.addr()], "")
    );
    let gw = Gateway::builder(body)
        .server_extra(
            "max_token_bytes = 1024\nmax_request_headers = 20\n\
             max_header_field_bytes = 2048\nmax_request_header_bytes = 8192",
        )
        .start();
    Env {
        key,
        keys,
        echo,
        gw,
    }
}

#[test]
fn configured_header_count_and_size_limits_are_enforced() {
    let env = small_limits();
    expect_relayed(&env, &head("/open/x", 18, 1, None), "exactly 20 fields");
    expect_431(&env, &head("/open/x", 19, 1, None), "21 fields");
    expect_relayed(
        &env,
        &one_field("/open/x", 2048),
        "field of exactly 2048 bytes",
    );
    expect_431(&env, &one_field("/open/x", 2049), "field of 2049 bytes");
    expect_relayed(
        &env,
        &head("/open/x", 3, 1500, None),
        "about 4.6 KiB in all",
    );
    expect_431(
        &env,
        &head("/open/x", 5, 1800, None),
        "about 9.1 KiB in all",
    );
}

#[test]
fn configured_max_token_bytes_is_enforced_below_the_field_limit() {
    let env = small_limits();
    let token = env.token(json!({}));
    assert!(
        token.len() <= 1024,
        "fixture token is {} bytes",
        token.len()
    );
    env.expect_allowed("/api/x", Some(&token));

    let shaped = |len: usize| {
        let mut t = format!("{}.{}.", "A".repeat(300), "B".repeat(300));
        t.push_str(&"C".repeat(len - t.len()));
        t
    };
    // At the limit the token is read and verified (401), not cut off by the field limit (431).
    let resp = env.expect_rejected("/api/x", Some(&shaped(1024)), 401, Some("invalid_token"));
    assert_challenge_error(&resp, "invalid_token");
    let resp = env.expect_rejected("/api/x", Some(&shaped(1025)), 400, Some("invalid_request"));
    assert_challenge_error(&resp, "invalid_request");
    let resp = env.expect_rejected("/api/x", Some(&shaped(2000)), 400, Some("invalid_request"));
    assert_challenge_error(&resp, "invalid_request");
}

/// `tokengate check` on a `[server]` block with `lines`: (exit success, stderr).
fn check(lines: &str) -> (bool, String) {
    let echo = Echo::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.toml");
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{lines}\n\n{}\n\
         [[route]]\nname = \"open\"\npath_prefix = \"/open\"\nupstream = \"echo\"\nauth = \"none\"\n",
        upstream_toml("echo", &[echo.addr()], "")
    );
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run tokengate check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn header_limits_that_cannot_hold_a_maximal_token_are_config_errors() {
    let (ok, err) = check("max_token_bytes = 4096\nmax_header_field_bytes = 4100");
    assert!(
        !ok,
        "a field limit below max_token_bytes + 32 must be refused"
    );
    assert!(err.contains("max_header_field_bytes"), "{err}");
    assert!(
        err.contains("limits.toml:"),
        "error must name file and line: {err}"
    );

    let (ok, err) = check("max_header_field_bytes = 40000\nmax_request_header_bytes = 20000");
    assert!(!ok, "a total limit below the field limit must be refused");
    assert!(err.contains("max_request_header_bytes"), "{err}");

    let (ok, err) = check("max_request_headers = 2");
    assert!(
        !ok,
        "a field count too small for any request must be refused"
    );
    assert!(err.contains("max_request_headers"), "{err}");

    let (ok, err) = check("max_token_bytes = 4096\nmax_header_field_bytes = 4128");
    assert!(ok, "exactly max_token_bytes + 32 is allowed: {err}");
}

/// An idle keep-alive connection is closed after `keepalive_timeout`, whatever the client's
/// `Keep-Alive` header asks for, so idle or stalled clients cannot hold connections forever.
#[test]
fn idle_keepalive_connections_are_closed_after_keepalive_timeout() {
    use std::io::{Read, Write};
    let echo = Echo::start();
    let gw = Gateway::builder(format!(
        "{}\n[[route]]\nname = \"open\"\npath_prefix = \"/\"\nupstream = \"echo\"\nauth = \"none\"\n",
        upstream_toml("echo", &[echo.addr()], "")
    ))
    .server_extra("keepalive_timeout = \"1s\"")
    .start();
    let mut conn = std::net::TcpStream::connect(gw.proxy_addr()).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET /x HTTP/1.1\r\nHost: {}\r\nKeep-Alive: timeout=3600\r\n\r\n",
        gw.proxy_addr()
    );
    conn.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "first request failed"
    );
    // Now idle: the gateway must close the connection after about a second, long before the
    // client's 10 s read timeout.
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = conn.read_to_end(&mut rest).is_ok();
    let waited = started.elapsed();
    assert!(closed, "the connection was not closed by the gateway");
    assert!(
        waited < std::time::Duration::from_secs(5),
        "idle connection kept open for {waited:?}"
    );
}

/// A gateway with one open route to `echo` and the given `[server]` lines.
fn open_gateway(echo: &Echo, server: &str) -> Gateway {
    Gateway::builder(format!(
        "{}\n[[route]]\nname = \"open\"\npath_prefix = \"/\"\nupstream = \"echo\"\nauth = \"none\"\n",
        upstream_toml("echo", &[echo.addr()], "")
    ))
    .server_extra(server)
    .start()
}

/// Reads until the gateway closes the connection or `limit` passes; returns what arrived and
/// whether the gateway closed it.
fn read_until_closed(conn: &mut std::net::TcpStream, limit: std::time::Duration) -> (String, bool) {
    use std::io::Read;
    conn.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let closed = conn.read_to_end(&mut got).is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// Slowloris: a client that sends its head a byte at a time, each byte well inside any per-read
/// timeout, is cut when the whole head has taken `header_timeout`, gets a JSON 408, and is never
/// forwarded. The gateway keeps serving others, and counts the cut.
#[test]
fn a_head_dripped_byte_by_byte_is_cut_at_header_timeout() {
    use std::io::Write;
    let echo = Echo::start();
    let gw = open_gateway(&echo, "header_timeout = \"1s\"");
    let mut conn = std::net::TcpStream::connect(gw.proxy_addr()).unwrap();
    let started = std::time::Instant::now();
    let head = b"GET /slow HTTP/1.1\r\nHost: localhost\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    // 200 ms a byte: the head would take over 20 s to arrive.
    for b in head {
        if conn.write_all(&[*b]).is_err() || started.elapsed() > std::time::Duration::from_secs(5) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut probe = [0u8; 1];
        conn.set_nonblocking(true).unwrap();
        let peeked = conn.peek(&mut probe);
        conn.set_nonblocking(false).unwrap();
        if peeked.is_ok() {
            break; // the gateway answered (or closed)
        }
    }
    let (text, closed) = read_until_closed(&mut conn, std::time::Duration::from_secs(10));
    let waited = started.elapsed();
    assert!(closed, "the gateway did not close the connection: {text:?}");
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(text.contains("\"invalid_request\""), "{text:?}");
    assert!(
        waited < std::time::Duration::from_secs(4),
        "cut after {waited:?}, not about header_timeout (1 s)"
    );
    assert_eq!(echo.count(), 0, "a partial head was forwarded");
    assert!(
        gw.metrics()
            .contains("reason=\"header_timeout\",route=\"-\"} 1"),
        "the cut is not counted:\n{}",
        gw.metrics()
    );
    let ok = client::get(gw.proxy_addr(), "/after");
    assert_eq!(ok.status, 200, "{}", ok.text());
}

/// A connection that never sends a byte is closed after `header_timeout`.
#[test]
fn a_silent_connection_is_closed_at_header_timeout() {
    let echo = Echo::start();
    let gw = open_gateway(&echo, "header_timeout = \"1s\"");
    let mut conn = std::net::TcpStream::connect(gw.proxy_addr()).unwrap();
    let started = std::time::Instant::now();
    let (text, closed) = read_until_closed(&mut conn, std::time::Duration::from_secs(10));
    assert!(closed, "a silent connection was kept: {text:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "kept for {:?}",
        started.elapsed()
    );
}

/// Waiting between requests on a kept-alive connection is `keepalive_timeout`'s business:
/// a pause longer than `header_timeout` before the next head does not cut it, and the next
/// request is served on the same connection.
#[test]
fn idle_time_between_requests_does_not_count_against_header_timeout() {
    use std::io::{Read, Write};
    let echo = Echo::start();
    let gw = open_gateway(
        &echo,
        "header_timeout = \"1s\"\nkeepalive_timeout = \"10s\"",
    );
    let mut conn = std::net::TcpStream::connect(gw.proxy_addr()).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let request = b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for round in 0..2 {
        conn.write_all(request).unwrap();
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "round {round}: {text:?}");
        if round == 0 {
            std::thread::sleep(std::time::Duration::from_millis(2000));
        }
    }
    assert_eq!(echo.count(), 2);
}

/// A head that keeps coming without ending is refused with 431 once it passes
/// `max_request_header_bytes`, before it is parsed and without waiting for the rest.
#[test]
fn an_endless_head_is_refused_at_the_byte_limit() {
    use std::io::Write;
    let echo = Echo::start();
    let gw = open_gateway(
        &echo,
        "max_request_header_bytes = 20000\nmax_header_field_bytes = 16416\nheader_timeout = \"30s\"",
    );
    let mut conn = std::net::TcpStream::connect(gw.proxy_addr()).unwrap();
    let mut raw = b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..300 {
        raw.extend_from_slice(format!("X-{i}: {}\r\n", "a".repeat(100)).as_bytes());
    }
    // No blank line: without the limit the gateway would wait for the rest.
    let _ = conn.write_all(&raw);
    let started = std::time::Instant::now();
    let (text, closed) = read_until_closed(&mut conn, std::time::Duration::from_secs(10));
    assert!(closed, "{text:?}");
    assert!(text.starts_with("HTTP/1.1 431 "), "{text:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(echo.count(), 0);
}

/// Blank lines before the request line (which HTTP/1.1 parsers skip) do not count as the end of
/// the head: a client opening with them and then stalling is still cut at `header_timeout`.
#[test]
fn leading_blank_lines_do_not_lift_the_header_deadline() {
    use std::io::Write;
    let echo = Echo::start();
    let gw = open_gateway(&echo, "header_timeout = \"1s\"");
    let mut conn = std::net::TcpStream::connect(gw.proxy_addr()).unwrap();
    conn.write_all(b"\r\n\r\nGET /slow HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let (text, closed) = read_until_closed(&mut conn, std::time::Duration::from_secs(10));
    assert!(closed, "{text:?}");
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    assert_eq!(echo.count(), 0);
}
