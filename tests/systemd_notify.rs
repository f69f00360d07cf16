//! `Type=notify`: READY=1 reaches systemd's notification socket only once every issuer has keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use support::*;

fn received(sock: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    // Bounded: the socket is non-blocking, so this ends when the queue is empty.
    for _ in 0..100 {
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).to_string()),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn ready_is_notified_only_after_the_first_key_sets_load() {
    let key = FixtureKey::rsa_a();
    let keys = KeyServer::start(&[&key]);
    keys.set_mode(Mode::Status(503));
    let echo = Echo::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let gw = Gateway::builder(format!(
        "{}\n{}\n[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"echo\"\n",
        issuer_toml("main", ISS, &keys.url(), &["RS256"], ""),
        upstream_toml("echo", &[echo.addr()], "")
    ))
    .env("NOTIFY_SOCKET", path.to_str().unwrap())
    .wait_healthy()
    .start();
    // Up and serving (503 for want of keys), but not ready: nothing may have been sent.
    assert_eq!(gw.readyz(), 503);
    let early = received(&sock);
    assert!(
        !early.iter().any(|m| m.contains("READY=1")),
        "READY=1 before keys: {early:?}"
    );

    keys.set_mode(Mode::Normal);
    let mut messages = Vec::new();
    assert!(
        wait_until(Duration::from_secs(15), || {
            messages.extend(received(&sock));
            messages.iter().any(|m| m.contains("READY=1"))
        }),
        "READY=1 never sent after keys loaded; got {messages:?}"
    );
    assert_eq!(gw.readyz(), 200);
}
