//! Operating tokengate: hot reload under load, invalid reloads, listener changes, SIGTERM drain,
//! the access log, and the systemd unit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::client::{get, get_with_token};
use support::gateway::BIN;
use support::*;

/// Two generations of one route: each sends `/api` to its own upstream and stamps the request
/// with its own claim, so a request decided by a mix of the two would show up as a mismatch.
fn generation(tag: &str, echo: &Echo, issuer: &str) -> String {
    format!(
        "{issuer}\n{}\n[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"up\"\n\
         forward_claims = {{ \"x-auth-gen\" = \"gen_{tag}\" }}\n",
        upstream_toml("up", &[echo.addr()], "")
    )
}

fn issuer_block(keys: &KeyServer) -> String {
    issuer_toml("main", ISS, &keys.url(), &["RS256"], "")
}

fn write_config(gw: &Gateway, body: &str) {
    // Keep the harness-generated [server] block; swap only what follows it.
    let server: String = gw.config().split("\n\n").next().unwrap().to_string();
    std::fs::write(gw.config_path(), format!("{server}\n\n{body}\n")).unwrap();
}

fn counter(gw: &Gateway, name: &str, label: Option<(&str, &str)>) -> f64 {
    metric_samples(&gw.metrics(), name)
        .iter()
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k).map(String::as_str) == Some(v)))
        .map(|s| s.value)
        .sum()
}

#[test]
fn reload_under_load_loses_nothing_and_never_mixes_configs() {
    let key = FixtureKey::rsa_a();
    let keys = KeyServer::start(&[&key]);
    let (echo_a, echo_b) = (Echo::start(), Echo::start());
    let issuer = issuer_block(&keys);
    let config_a = generation("a", &echo_a, &issuer);
    let config_b = generation("b", &echo_b, &issuer);
    let gw = Gateway::start(config_a.clone());
    let fetches_before = keys.fetch_count();
    let token = key.sign(Value::Null, claims(json!({"gen_a": "A", "gen_b": "B"})));

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, token, addr) = (Arc::clone(&stop), token.clone(), gw.proxy_addr());
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            // Bounded: the reload loop below sets `stop`, and the cap guards against a hang.
            while !stop.load(Ordering::Relaxed) && statuses.len() < 20_000 {
                statuses.push(get_with_token(addr, "/api/x", &token).status);
            }
            statuses
        })
    };
    let reloads = 24;
    for i in 0..reloads {
        let body = match i % 3 {
            0 => config_b.clone(),
            1 => "[[route]]\nname = \"broken\"\nupstream = \"nowhere\"\n".to_string(),
            _ => config_a.clone(),
        };
        write_config(&gw, &body);
        gw.signal("HUP");
        // One SIGHUP at a time: wait until this one is counted, success or failure.
        assert!(
            wait_until(Duration::from_secs(5), || counter(
                &gw,
                "tokengate_config_reload_total",
                None
            ) >= f64::from(i + 1)),
            "reload {i} was not processed"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let statuses = client.join().unwrap();

    assert!(
        statuses.len() > 50,
        "too few requests to mean anything: {}",
        statuses.len()
    );
    let failures: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        statuses.len(),
        failures
    );
    assert_eq!(
        echo_a.count() + echo_b.count(),
        statuses.len(),
        "every request reached exactly one upstream"
    );
    assert!(echo_b.count() > 0, "the new config never served");
    for r in echo_a.requests() {
        assert_eq!(
            r.header_all("x-auth-gen"),
            vec!["A"],
            "config A's upstream saw another config's headers"
        );
    }
    for r in echo_b.requests() {
        assert_eq!(
            r.header_all("x-auth-gen"),
            vec!["B"],
            "config B's upstream saw another config's headers"
        );
    }
    assert_eq!(
        counter(
            &gw,
            "tokengate_config_reload_total",
            Some(("result", "success"))
        ),
        16.0
    );
    assert_eq!(
        counter(
            &gw,
            "tokengate_config_reload_total",
            Some(("result", "failure"))
        ),
        8.0
    );
    assert_eq!(counter(&gw, "tokengate_config_generation", None), 17.0);
    assert!(
        keys.fetch_count() <= fetches_before + 1,
        "reloads refetched keys: {} fetches before, {} after",
        fetches_before,
        keys.fetch_count()
    );
}

#[test]
fn invalid_reload_keeps_the_old_config_and_logs_file_line_and_field() {
    let env = Env::start(
        "",
        "[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"echo\"\nauth = \"none\"\n",
    );
    env.expect_allowed("/api/1", None);
    let body = format!(
        "{}\n{}\n[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"missing\"\nauth = \"none\"\n",
        issuer_block(&env.keys),
        upstream_toml("echo", &[env.echo.addr()], "")
    );
    write_config(&env.gw, &body);
    env.gw.signal("HUP");
    assert!(wait_until(Duration::from_secs(5), || counter(
        &env.gw,
        "tokengate_config_reload_total",
        Some(("result", "failure"))
    ) == 1.0));
    env.expect_allowed("/api/2", None);
    let log = env.gw.stderr();
    let path = env.gw.config_path().display().to_string();
    let line = log
        .lines()
        .find(|l| l.contains("config reload refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(
        line.contains(&path) && line.contains("field 'upstream'") && line.contains("missing"),
        "{line}"
    );
    let want_line = line_of(
        &std::fs::read_to_string(env.gw.config_path()).unwrap(),
        "upstream = \"missing\"",
    );
    assert!(
        line.contains(&format!(":{want_line}:")),
        "line {want_line} not named: {line}"
    );
    assert_eq!(counter(&env.gw, "tokengate_config_generation", None), 1.0);
}

#[test]
fn listener_change_needs_a_restart_and_changes_nothing() {
    let env = Env::start(
        "",
        "[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"echo\"\nauth = \"none\"\n",
    );
    let text = std::fs::read_to_string(env.gw.config_path()).unwrap();
    let other = reserve_addr();
    let changed = text
        .replace(
            &format!("listen = [\"{}\"]", env.gw.proxy_addr()),
            &format!("listen = [\"{other}\"]"),
        )
        .replace("path_prefix = \"/api\"", "path_prefix = \"/new\"");
    assert_ne!(changed, text);
    std::fs::write(env.gw.config_path(), changed).unwrap();
    env.gw.signal("HUP");
    assert!(wait_until(Duration::from_secs(5), || env
        .gw
        .stderr()
        .contains("restart tokengate")));
    // Nothing of the new file applies: the old route still serves, the new one does not exist.
    env.expect_allowed("/api/still", None);
    assert_eq!(env.get("/new/x", None).status, 404);
    assert_eq!(
        counter(
            &env.gw,
            "tokengate_config_reload_total",
            Some(("result", "failure"))
        ),
        1.0
    );
}

#[test]
fn sigterm_drains_an_in_flight_slow_request() {
    let slow = Echo::start_with_delay(Duration::from_millis(1500));
    let mut gw = Gateway::builder(format!(
        "{}\n[[route]]\nname = \"slow\"\npath = \"/slow\"\nupstream = \"slow\"\nauth = \"none\"\n",
        upstream_toml("slow", &[slow.addr()], "read_timeout = \"10s\"")
    ))
    .server_extra("grace_period = \"3s\"")
    .start();
    let addr = gw.proxy_addr();
    let in_flight = std::thread::spawn(move || get(addr, "/slow"));
    assert!(
        wait_until(Duration::from_secs(5), || slow.count() == 1),
        "request never reached the upstream"
    );
    let sent = Instant::now();
    gw.signal("TERM");
    let resp = in_flight.join().unwrap();
    assert_eq!(
        resp.status,
        200,
        "the in-flight request was cut off: {}",
        resp.text()
    );
    let status = gw
        .wait_exit(Duration::from_secs(15))
        .expect("gateway did not exit after draining");
    assert!(status.success(), "exit status {status}");
    assert!(
        sent.elapsed() >= Duration::from_millis(500),
        "exited before the slow request could finish"
    );
}

fn access_lines(gw: &Gateway) -> Vec<String> {
    gw.stderr()
        .lines()
        .filter(|l| l.contains("\"target\":\"access\"") || l.contains("target=access"))
        .map(str::to_string)
        .collect()
}

#[test]
fn access_log_is_one_json_line_per_request_without_the_token() {
    let env = Env::start(
        "",
        "[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"echo\"\nscopes_all = [\"read\"]\n\
         forward_claims = { \"x-auth-sub\" = \"sub\" }\n",
    );
    let good = env.token(json!({"scope": "read", "sub": "alice", "azp": "cli-1"}));
    let bad = env.token(json!({"scope": "write"}));
    env.expect_allowed("/api/a?x=1", Some(&good));
    assert_eq!(env.get("/api/b", Some(&bad)).status, 403);
    assert_eq!(env.get("/nope", Some(&good)).status, 404);
    assert!(wait_until(Duration::from_secs(5), || access_lines(&env.gw)
        .len()
        >= 3));
    let lines = access_lines(&env.gw);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let ok = &parsed[0];
    assert_eq!(ok["route"], "api");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["decision"], "allow");
    assert_eq!(ok["reason"], "ok");
    assert_eq!(ok["sub"], "alice");
    assert_eq!(ok["client"], "cli-1");
    assert_eq!(ok["issuer"], "main");
    assert_eq!(ok["upstream"], "echo");
    assert_eq!(ok["upstream_status"], 200);
    // The query is never logged: it may carry secrets.
    assert_eq!(ok["path"], "/api/a");
    assert!(ok["duration_us"].as_u64().is_some() && ok["decide_us"].as_u64().is_some());
    assert_eq!(parsed[1]["status"], 403);
    assert_eq!(parsed[1]["reason"], "insufficient_scope");
    assert_eq!(parsed[2]["route"], "-");
    assert_eq!(parsed[2]["reason"], "no_route");
    let all = env.gw.stderr();
    for t in [&good, &bad] {
        let signature = t.rsplit('.').next().unwrap();
        assert!(!all.contains(signature), "a token reached the log");
    }
}

#[test]
fn access_log_can_be_logfmt() {
    let env = Env::start(
        "",
        "[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"echo\"\nauth = \"none\"\n\
         [log]\nformat = \"logfmt\"\n",
    );
    env.expect_allowed("/api/a", None);
    assert!(wait_until(Duration::from_secs(5), || !access_lines(
        &env.gw
    )
    .is_empty()));
    let line = access_lines(&env.gw).remove(0);
    for field in ["route=api", "status=200", "reason=ok", "method=GET"] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
}

#[test]
fn systemd_unit_passes_verify_with_low_exposure() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("skipping: systemd-analyze is not installed on this machine");
        return;
    };
    assert!(out.status.success());
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/tokengate.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStartPre=/usr/local/bin/tokengate check"));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("Type=notify"));
    // verify checks that the binary exists, so point the copy at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokengate.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/tokengate", BIN)).unwrap();
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout).to_string()
        + &String::from_utf8_lossy(&security.stderr);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for tokengate.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure figure in:\n{text}"));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0");
}
