//! Zero-downtime binary upgrade: a new process started with `--upgrade` takes over the listening
//! sockets when the old one receives SIGQUIT, and no request is refused in between.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::client::try_send_within;
use support::gateway::BIN;
use support::*;

#[test]
fn sigquit_hands_listeners_to_the_upgraded_process_without_refusing_requests() {
    let echo = Echo::start();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let mut old = Gateway::builder(format!(
        "{}\n[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"echo\"\nauth = \"none\"\n",
        upstream_toml("echo", &[echo.addr()], "")
    ))
    .server_extra(&format!("grace_period = \"1s\"\nupgrade_sock = \"{}\"", sock.display()))
    .start();
    let addr = old.proxy_addr();

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let raw = client::build_request(addr, "GET", "/api/x", &[]);
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) && statuses.len() < 100_000 {
                let status =
                    try_send_within(addr, &raw, Duration::from_secs(5)).map_or(0, |r| r.status);
                statuses.push(status);
            }
            statuses
        })
    };

    let stderr = std::fs::File::create(dir.path().join("new.log")).unwrap();
    let mut new = Command::new(BIN)
        .args(["run", "--upgrade", "--config"])
        .arg(old.config_path())
        .stdin(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    // The new process waits on the upgrade socket; the old one hands over on SIGQUIT. Retry the
    // signal until the hand-over happens (the new process may not be listening on the socket yet).
    let handed_over = wait_until(Duration::from_secs(15), || {
        if sock.exists() || old.is_running() {
            old.signal("QUIT");
        }
        old.wait_exit(Duration::from_millis(500)).is_some()
    });
    stop.store(true, Ordering::Relaxed);
    let statuses = client.join().unwrap();
    let log = std::fs::read_to_string(dir.path().join("new.log")).unwrap_or_default();
    let new_running = new.try_wait().unwrap().is_none();
    let served_after = try_send_within(
        addr,
        &client::build_request(addr, "GET", "/api/after", &[]),
        Duration::from_secs(5),
    )
    .map(|r| r.status);
    let _ = new.kill();
    let _ = new.wait();
    assert!(
        handed_over,
        "the old process never exited after SIGQUIT\nnew process log:\n{log}"
    );
    assert!(new_running, "the upgraded process died\n{log}");
    assert_eq!(
        served_after.ok(),
        Some(200),
        "the upgraded process does not serve\n{log}"
    );
    assert!(statuses.len() > 20, "too few requests: {}", statuses.len());
    let failed = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during the upgrade",
        statuses.len()
    );
}
