//! Security class: survival under a battery of hostile input.
//!
//! One gateway receives everything the other security tests send, and worse, in one run: path
//! confusion, header spoofing, forged and malformed tokens, oversized heads, raw garbage bytes,
//! a request line with NUL, truncated requests, request-smuggling framings, pipelining, and
//! slowloris connections that send a partial head and then nothing (held open the whole time).
//! Every complete request gets a response, of the status its class calls for (400, 401, 405, 431,
//! or 200 from the public route), never none. Afterwards a valid request still gets 200 while the
//! slow connections are still open, the process is still running and has logged no panic, and
//! `/metrics` still answers. Over the whole run the upstream never
//! received an `/admin` request, a spoofed identity header, or a client-chosen X-Forwarded-For.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::keys::b64url;
use support::*;

const ROUTES: &str = r#"
[[route]]
name = "admin"
path_prefix = "/admin"
upstream = "echo"
auth = "jwt"
forward_claims = { "x-auth-sub" = "sub" }

[[route]]
name = "public"
path_prefix = "/"
upstream = "echo"
auth = "none"
"#;

/// How many times the whole battery is sent.
const ROUNDS: usize = 3;

/// How long one hostile exchange may take before the client gives up on it.
const EXCHANGE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Sends `raw` and reads one response; `None` when the gateway closed the connection without one
/// (a legitimate answer to garbage) or did not answer within [`EXCHANGE_TIMEOUT`].
fn exchange(addr: SocketAddr, raw: &[u8]) -> Option<Response> {
    client::try_send_within(addr, raw, EXCHANGE_TIMEOUT).ok()
}

/// Sends `raw`, half-closes the connection (so an incomplete request can never complete) and
/// reads whatever comes back until EOF or a short deadline.
fn fire_and_close(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.write_all(raw);
    let _ = s.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    out
}

/// Opens a connection that sends the start of a request head and then nothing.
fn slowloris(addr: SocketAddr, i: usize) -> Option<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    let partial = format!("GET /admin/{i} HTTP/1.1\r\nHost: localhost\r\nX-Slow-{i}: a");
    s.write_all(partial.as_bytes()).ok()?;
    Some(s)
}

fn request(target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut raw = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("Connection: close\r\n\r\n");
    raw.into_bytes()
}

fn with_token(target: &str, token: &str) -> Vec<u8> {
    request(target, &[("Authorization", &format!("Bearer {token}"))])
}

/// Tokens that must all be refused: every class from the token tests, compactly.
fn hostile_tokens(env: &Env) -> Vec<String> {
    let good = env.token(json!({"sub": "victim"}));
    let (input, sig) = good.rsplit_once('.').unwrap();
    let (h, p) = input.split_once('.').unwrap();
    let payload = claims(json!({"sub": "attacker", "scope": "admin"}));
    let rsa_b = FixtureKey::load("rsa_b.pem", Algorithm::RS256);
    let none = json!({"alg": "none", "kid": env.key.kid});
    let mut out = vec![
        raw_token(&none, &payload, b""),
        raw_token(&json!({"alg": "NONE"}), &payload, b""),
        hmac_token(
            env.key.rsa_public_pem().as_bytes(),
            &json!({"alg": "HS256", "kid": env.key.kid}),
            &payload,
        ),
        hmac_token(
            env.key.jwk().to_string().as_bytes(),
            &json!({"alg": "HS256"}),
            &payload,
        ),
        rsa_b.sign(json!({"kid": env.key.kid}), payload.clone()),
        rsa_b.sign(json!({"kid": "../../etc/passwd"}), payload.clone()),
        rsa_b.sign(json!({"kid": "k".repeat(10_000)}), payload.clone()),
        rsa_b.sign(json!({"kid": 7}), payload.clone()),
        rsa_b.sign(
            json!({"jwk": rsa_b.jwk(), "jku": "http://127.0.0.1:1/"}),
            payload.clone(),
        ),
        env.key.sign(json!({"crit": ["exp"]}), claims(json!({}))),
        format!("{input}."),
        input.to_string(),
        good[..good.len() - 4].to_string(),
        tamper_signature(&good),
        format!("{h}.{}.{sig}", b64url(payload.to_string().as_bytes())),
        format!("{h}.{p}.{sig}.{sig}.{sig}"),
        format!("{h}.{p}.{sig}="),
        format!("{h}.{p}.{}", sig.replace('-', "+").replace('_', "/")),
        format!(".{good}"),
        format!("{good}."),
        "..".to_string(),
        format!("{}.{p}.{sig}", b64url(b"[1,2,3]")),
        format!("{h}.{}.{sig}", b64url(b"null")),
        format!(
            "{h}.{}.{sig}",
            b64url(br#"{"sub":"a","sub":"b","exp":99999999999}"#)
        ),
        format!(
            "{h}.{}.{sig}",
            b64url(format!("{{\"x\":{}1{}}}", "[".repeat(5000), "]".repeat(5000)).as_bytes())
        ),
        env.token(json!({"exp": 1e300})),
        env.token(json!({"exp": -1})),
        env.token(json!({"exp": "tomorrow"})),
        env.token(json!({"nbf": true})),
        env.token(json!({"iat": null, "exp": null})),
        "A".repeat(16 * 1024 + 1),
    ];
    // A signature with trailing bits set.
    let bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let mut odd = b64url(&bytes);
    let last = odd.pop().unwrap();
    odd.push(if last == 'A' { 'B' } else { 'A' });
    out.push(format!("{input}.{odd}"));
    out
}

/// Raw byte sequences that are not (complete, valid) HTTP requests, or that try to smuggle one.
fn garbage(token: &str) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(0x70_6b_67_61_74_65);
    let mut out: Vec<Vec<u8>> = (0..12)
        .map(|i| (0..64 + i * 97).map(|_| rng.u8(..)).collect())
        .collect();
    out.extend(
        [
            &b"\x00\x00\x00\x00\x00\x00\x00\x00\r\n\r\n"[..],
            b"GET /adm\x00in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            b"GET /admin\x00 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            b"GET /admin HTTP/1.1\r\nHost: local\x00host\r\nConnection: close\r\n\r\n",
            b"GET /admin HTTP/1.1\r\nX-Auth\x00-Sub: evil\r\nHost: localhost\r\n\r\n",
            b"GET /admin\r\n\r\n",
            b"GET /admin HTTP/9.9\r\nHost: localhost\r\n\r\n",
            b"GET /admin HTTP/1.1\nHost: localhost\nConnection: close\n\n",
            b"GET /public HTTP/1.1\r\nHost: localhost\r\nX-Auth-Sub: a\r\n evil\r\nConnection: close\r\n\r\n",
            b"GET /public HTTP/1.1\r\nHost: localhost\r\nX-Auth-Sub : evil\r\nConnection: close\r\n\r\n",
            b"GET /public HTTP/1.1\r\nHost: localhost\r\n: evil\r\nConnection: close\r\n\r\n",
            b"\r\n\r\n\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
            b"GET /admin HTTP/1.1\r\nHost: localhost\r\n",
            b"GET /admin HTTP/1.1\r\nHost: localh",
            b"GET /adm",
            b"POST /public HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nshort",
            b"POST /public HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST /public HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
            b"POST /public HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            b"POST /public HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST /public HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]
        .iter()
        .map(|b| b.to_vec()),
    );
    out.push(
        format!(
            "{} /admin HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "A".repeat(10_000)
        )
        .into_bytes(),
    );
    // CL.TE and TE.CL smuggling of an /admin request behind a public one.
    for framing in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 4",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
        "Transfer-Encoding : chunked",
        "Transfer-Encoding: xchunked",
    ] {
        out.push(
            format!(
                "POST /public HTTP/1.1\r\nHost: localhost\r\n{framing}\r\n\r\n0\r\n\r\n\
                 GET /admin HTTP/1.1\r\nHost: localhost\r\nX-Auth-Sub: evil\r\n\r\n"
            )
            .into_bytes(),
        );
    }
    // Pipelined: a public request, then an /admin request without a token, then one with a
    // forged token, all on one connection.
    out.push(
        format!(
            "GET /public/1 HTTP/1.1\r\nHost: localhost\r\n\r\n\
             GET /admin/2 HTTP/1.1\r\nHost: localhost\r\n\r\n\
             GET /admin/3 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}x\r\n\
             Connection: close\r\n\r\n"
        )
        .into_bytes(),
    );
    // Expect: 100-continue with a body, to the protected route, without a token.
    out.push(
        b"POST /admin HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\
          Connection: close\r\n\r\nhello"
            .to_vec(),
    );
    out
}

fn is_admin(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or(target);
    path == "/admin" || path.starts_with("/admin/")
}

/// A response from the hostile battery: a rejection has a JSON body (or, from pingora's own
/// parser, an empty one); a 2xx came from the echo and was not for `/admin` (unless the request
/// carried the valid token); no rejection echoes back a token.
fn check_response(resp: &Response, label: &str, secrets: &[&str], authorized: bool) {
    if (200..300).contains(&resp.status) && !authorized {
        let body = resp.json();
        let path = body["path"].as_str().unwrap_or_else(|| {
            panic!(
                "{label}: a 2xx that did not come from the echo: {}",
                resp.text()
            )
        });
        assert!(!is_admin(path), "{label}: /admin relayed: {}", resp.text());
    } else if !resp.body.is_empty() && resp.status >= 400 {
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or_else(|e| {
            panic!(
                "{label}: {} with a non-JSON body ({e}): {:?}",
                resp.status,
                resp.text()
            )
        });
        assert!(body["error"].is_string(), "{label}: {}", resp.text());
    }
    for s in secrets {
        if (200..300).contains(&resp.status) {
            continue; // the echo reflects what it received, by design
        }
        assert!(
            !resp.mentions(s),
            "{label}: response leaks a secret: {resp:?}"
        );
    }
}

#[test]
fn gateway_survives_a_battery_of_hostile_requests_and_still_serves() {
    let started = Instant::now();
    let mut env = Env::start("", ROUTES);
    let addr = env.gw.proxy_addr();
    let valid = env.token(json!({"sub": "alice"}));

    let slow: Vec<TcpStream> = (0..16).filter_map(|i| slowloris(addr, i)).collect();
    assert_eq!(slow.len(), 16, "could not open the slow connections");

    let mut sent = 0usize;
    let mut half_closed = 0usize;
    // Every request below is a complete HTTP/1.1 request that deserves an answer: one that gets
    // none (a reset, a hang, a task that died) is a failure, counted and reported at the end.
    let mut unanswered: Vec<String> = Vec::new();
    let mut run =
        |label: String, raw: Vec<u8>, want: &[u16], secrets: &[&str], authorized: bool| {
            sent += 1;
            let Some(resp) = exchange(addr, &raw) else {
                unanswered.push(label);
                return;
            };
            assert!(
                want.contains(&resp.status),
                "{label}: expected {want:?}, got {} {}",
                resp.status,
                resp.text()
            );
            check_response(&resp, &label, secrets, authorized);
        };

    for round in 0..ROUNDS {
        eprintln!("round {round}");
        // Path confusion: spellings of /admin reach the admin route (401 without a token),
        // unsafe ones are refused (400), other paths go to the public route (200).
        for (target, status) in [
            ("/%61dmin", 401),
            ("/public/../admin", 401),
            ("/public/%2e%2e/admin", 401),
            ("/public/%2E%2E/admin", 401),
            ("/./admin", 401),
            ("//admin", 401),
            ("/admin/", 401),
            ("/admin/.", 401),
            ("/admin;x", 400),
            ("/admin%3Bx", 400),
            ("/%2fadmin", 400),
            ("/%5cadmin", 400),
            ("/admin%00", 400),
            ("/admin%2500", 200),
            ("/%252e%252e/admin", 200),
            ("/public/%c0%ae%c0%ae/admin", 400),
            ("/\\admin", 400),
            ("/..", 400),
            ("/../admin", 400),
            ("http://localhost/admin", 401),
            ("*", 400),
            ("/ADMIN", 200),
            ("/admin.", 200),
            ("/admin%", 400),
        ] {
            run(
                format!("path {target}"),
                request(target, &[]),
                &[status],
                &[],
                false,
            );
        }
        run(
            "OPTIONS *".into(),
            b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
            &[400],
            &[],
            false,
        );
        run(
            "CONNECT".into(),
            b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n".to_vec(),
            &[405],
            &[],
            false,
        );

        // Header spoofing, on the public route and on /admin with and without a valid token.
        let spoofed: &[(&str, &str)] = &[
            ("X-Auth-Sub", "evil-1"),
            ("x-auth-SUB", "evil-2"),
            ("X-AUTH-SUB", "evil-3"),
            ("x-auth-anything", "evil-4"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Host", "api.test"),
        ];
        let auth = format!("Bearer {valid}");
        for (target, without_token) in [("/public/x", 200), ("/admin/x", 401)] {
            run(
                format!("spoof {target}"),
                request(target, spoofed),
                &[without_token],
                &[],
                false,
            );
            let mut with_auth = spoofed.to_vec();
            with_auth.push(("Authorization", &auth));
            run(
                format!("spoof {target} + token"),
                request(target, &with_auth),
                &[200],
                &[],
                true,
            );
        }
        run(
            "two Host headers".into(),
            b"GET /public HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n".to_vec(),
            &[400],
            &[],
            false,
        );

        // Forged and malformed tokens.
        for (i, token) in hostile_tokens(&env).iter().enumerate() {
            let sig = token.rsplit('.').next().unwrap_or("");
            let secrets: Vec<&str> = [token.as_str(), sig]
                .into_iter()
                .filter(|s| s.len() >= 16)
                .collect();
            // Over max_token_bytes is a malformed request (400); anything shorter is a token
            // that does not verify (401).
            let status = if token.len() > 16 * 1024 { 400 } else { 401 };
            run(
                format!("token #{i}"),
                with_token("/admin/x", token),
                &[status],
                &secrets,
                false,
            );
        }
        for value in [
            "Basic YTpi",
            "Bearer",
            "Bearer  ",
            "Bearer a b",
            "bearer \u{7f}",
        ] {
            run(
                format!("Authorization {value:?}"),
                request("/admin/x", &[("Authorization", value)]),
                &[400],
                &[],
                false,
            );
        }

        // Oversized heads.
        let big = |n: usize, size: usize| {
            let mut raw = String::from("GET /public HTTP/1.1\r\nHost: localhost\r\n");
            for i in 0..n {
                raw.push_str(&format!("X-H{i}: {}\r\n", "v".repeat(size)));
            }
            raw.push_str("Connection: close\r\n\r\n");
            raw.into_bytes()
        };
        for (label, raw, want) in [
            ("150 fields", big(150, 1), &[431][..]),
            // More than pingora's 256 parsed fields: pingora's own empty 400.
            ("300 fields", big(300, 1), &[400]),
            ("40 KiB field", big(1, 40 * 1024), &[431]),
            ("5 x 14 KiB", big(5, 14 * 1024), &[431]),
            ("1.2 MiB head", big(40, 30 * 1024), &[431]),
        ] {
            run(label.into(), raw, want, &[], false);
        }

        // Garbage, truncation, smuggling: half-closed, whatever comes back is checked.
        for (i, raw) in garbage(&valid).into_iter().enumerate() {
            half_closed += 1;
            let bytes = fire_and_close(addr, &raw);
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines().filter(|l| l.starts_with("HTTP/1.")) {
                // Pipelined public requests may legitimately be answered 200; the upstream-side
                // invariants below catch anything relayed that should not have been.
                let status: u16 = line
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(|| panic!("garbage #{i}: unreadable status line {line:?}"));
                assert!(status < 500, "garbage #{i}: server error: {line}");
            }
        }
    }

    eprintln!(
        "battery: {sent} hostile requests ({} unanswered) and {half_closed} garbage or truncated \
         connections in {:?}",
        unanswered.len(),
        started.elapsed()
    );
    assert!(
        unanswered.is_empty(),
        "{} of {sent} complete requests got no response at all: {unanswered:?}",
        unanswered.len()
    );

    // Still serving, with the slow connections still open. (Half-closed garbage connections
    // may still be relaying a pipelined public request, so find ours by its target.)
    let resp = env.get("/admin/ok", Some(&valid));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["path"], "/admin/ok");
    let rec = env
        .echo
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.target == "/admin/ok")
        .expect("the valid request reached the upstream");
    assert_eq!(rec.header_all("x-auth-sub"), ["alice"]);
    assert!(env.gw.is_running(), "the gateway process died");
    env.gw.assert_no_panics();
    let metrics = env.gw.metrics();
    assert!(
        metrics.contains("tokengate_requests_total"),
        "/metrics lacks the request counter"
    );
    assert_eq!(env.gw.admin_get("/healthz").status, 200);
    drop(slow);

    // What reached the upstream over the whole run.
    let received = env.echo.requests();
    assert!(!received.is_empty(), "nothing at all was relayed");
    for rec in &received {
        if rec.header("x-auth-sub") == Some("alice") {
            continue; // the requests with the valid token
        }
        assert!(
            !is_admin(&rec.target),
            "an /admin request reached the upstream without a valid token: {rec:?}"
        );
    }
    for rec in &received {
        for (name, value) in &rec.headers {
            assert!(
                !value.contains("evil"),
                "spoofed header reached the upstream: {name}: {value} in {rec:?}"
            );
        }
        assert_eq!(
            rec.header_all("x-forwarded-for"),
            ["127.0.0.1"],
            "client-chosen X-Forwarded-For reached the upstream: {rec:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the battery took {:?}",
        started.elapsed()
    );
}

/// Many slowloris connections at once must not starve normal clients, and must not keep the
/// process from answering its admin endpoint.
#[test]
fn slowloris_connections_do_not_block_other_clients() {
    let mut env = Env::start("", ROUTES);
    let addr = env.gw.proxy_addr();
    let slow: Vec<TcpStream> = (0..200).filter_map(|i| slowloris(addr, i)).collect();
    assert!(
        slow.len() >= 150,
        "opened only {} slow connections",
        slow.len()
    );
    let started = Instant::now();
    for i in 0..5 {
        let resp = env.get(&format!("/public/{i}"), None);
        env.assert_allowed(&resp);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "normal requests took {:?} next to slow connections",
        started.elapsed()
    );
    assert_eq!(env.gw.admin_get("/healthz").status, 200);
    assert!(env.gw.is_running());
    env.gw.assert_no_panics();
    drop(slow);
}
