//! `Gateway`: runs the real `tokengate` binary against a generated config.
//!
//! The test supplies the config body (issuers, upstreams, routes) as TOML; the harness prepends a
//! `[server]` block with freshly reserved ports, writes the file into a tempdir, starts
//! `tokengate run --config FILE` with stderr captured to a file, and waits (bounded) until the
//! admin endpoint says the process is ready. If the process exits during startup (most likely a
//! port taken between reservation and bind) it retries on new ports, up to three attempts.
//! Dropping the `Gateway` kills the process; if the test is panicking, the config and the
//! captured stderr are printed so the failure can be diagnosed.

use super::client::{self, Response};
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tokengate binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

/// How long startup may take before the test fails.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(20);

/// Interval between polls.
pub const POLL: Duration = Duration::from_millis(20);

/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

const ATTEMPTS: usize = 3;

/// What "started" means for a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// `/readyz` answers 200: every issuer has keys.
    Ready,
    /// `/healthz` answers 200: the process is up (keys may be missing).
    Healthy,
}

/// Reserves a free port on 127.0.0.1 by binding port 0 and releasing it.
pub fn reserve_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address")
}

/// Configures and starts a [`Gateway`].
#[derive(Debug, Clone)]
pub struct GatewayBuilder {
    body: String,
    threads: usize,
    wait: WaitFor,
    server_extra: String,
    env: Vec<(String, String)>,
}

impl GatewayBuilder {
    /// Worker threads (`[server] threads`), default 1.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Wait only for `/healthz` (use when issuers are expected to have no keys).
    pub fn wait_healthy(mut self) -> Self {
        self.wait = WaitFor::Healthy;
        self
    }

    /// An environment variable for the gateway process.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Extra lines for the `[server]` block.
    pub fn server_extra(mut self, lines: &str) -> Self {
        self.server_extra = lines.to_string();
        self
    }

    /// Writes the config, spawns the binary and waits until it is up; panics with the captured
    /// stderr if it never comes up.
    pub fn start(self) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("tokengate-test-")
            .tempdir()
            .expect("create tempdir");
        let config_path = dir.path().join("tokengate.toml");
        let mut failures = String::new();
        for attempt in 1..=ATTEMPTS {
            let proxy = reserve_addr();
            let mut admin = reserve_addr();
            while admin == proxy {
                admin = reserve_addr();
            }
            let config = self.render(proxy, admin);
            std::fs::write(&config_path, &config).expect("write config");
            let stderr_path = dir.path().join(format!("stderr-{attempt}.log"));
            let stdout_path = dir.path().join(format!("stdout-{attempt}.log"));
            let child = Command::new(BIN)
                .arg("run")
                .arg("--config")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(File::create(&stdout_path).expect("create stdout log"))
                .stderr(File::create(&stderr_path).expect("create stderr log"))
                .env("RUST_BACKTRACE", "1")
                .env("NO_COLOR", "1")
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {BIN}: {e}"));
            let mut gw = Gateway {
                child: Some(child),
                proxy,
                admin,
                config_path: config_path.clone(),
                stderr_path,
                stdout_path,
                config,
                dir: None,
            };
            match gw.wait_started(self.wait) {
                Ok(()) => {
                    gw.dir = Some(dir);
                    return gw;
                }
                Err(Startup::Exited(status)) => {
                    failures.push_str(&format!(
                        "--- attempt {attempt}: exited early with {status}\n{}\n",
                        gw.stderr()
                    ));
                    gw.kill();
                }
                Err(Startup::PortTaken) => {
                    failures.push_str(&format!(
                        "--- attempt {attempt}: a reserved port was taken\n"
                    ));
                    gw.kill();
                }
                Err(Startup::TimedOut(what)) => {
                    // Dropping `gw` while panicking prints the config and the stderr log.
                    panic!(
                        "tokengate did not become {what} within {STARTUP_DEADLINE:?} \
                         (proxy {proxy}, admin {admin})"
                    );
                }
            }
        }
        panic!(
            "tokengate exited during startup {ATTEMPTS} times\n--- config\n{}\n{failures}",
            std::fs::read_to_string(&config_path).unwrap_or_default()
        );
    }

    fn render(&self, proxy: SocketAddr, admin: SocketAddr) -> String {
        format!(
            "[server]\nlisten = [\"{proxy}\"]\nadmin_listen = \"{admin}\"\nthreads = {}\n{}\n\n{}\n",
            self.threads,
            self.server_extra,
            self.body.trim()
        )
    }
}

enum Startup {
    Exited(std::process::ExitStatus),
    /// Another process holds one of the reserved ports (it was taken between reserving and
    /// binding): retry on new ports.
    PortTaken,
    TimedOut(&'static str),
}

/// The fingerprint tokengate exports as `tokengate_config_hash` for a config text (the same std
/// hasher with fixed keys, so the test and the gateway agree).
fn config_hash(text: &str) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish() as u32
}

/// A running `tokengate run` process; dropping it kills the process.
pub struct Gateway {
    child: Option<Child>,
    proxy: SocketAddr,
    admin: SocketAddr,
    config_path: PathBuf,
    stderr_path: PathBuf,
    stdout_path: PathBuf,
    config: String,
    dir: Option<tempfile::TempDir>,
}

impl Gateway {
    /// A builder for a gateway whose config is `[server]` (generated) followed by `body`.
    pub fn builder(body: impl Into<String>) -> GatewayBuilder {
        GatewayBuilder {
            body: body.into(),
            threads: 1,
            wait: WaitFor::Ready,
            server_extra: String::new(),
            env: Vec::new(),
        }
    }

    /// Starts with `body` and waits for `/readyz` 200.
    pub fn start(body: impl Into<String>) -> Gateway {
        Self::builder(body).start()
    }

    fn wait_started(&mut self, wait: WaitFor) -> Result<(), Startup> {
        let (path, what) = match wait {
            WaitFor::Ready => ("/readyz", "ready"),
            WaitFor::Healthy => ("/healthz", "healthy"),
        };
        let deadline = Instant::now() + STARTUP_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.exit_status() {
                return Err(Startup::Exited(status));
            }
            let admin_ok = client::try_send_within(
                self.admin,
                &client::build_request(self.admin, "GET", path, &[]),
                PROBE_TIMEOUT,
            )
            .map(|r| r.status == 200)
            .unwrap_or(false);
            if admin_ok
                && TcpStream::connect_timeout(&self.proxy, Duration::from_millis(200)).is_ok()
            {
                // Answering ports prove nothing if they belong to another process: make sure
                // ours is still alive, bound its ports, and is the one answering on admin.
                if let Some(status) = self.exit_status() {
                    return Err(Startup::Exited(status));
                }
                if self.stderr().contains("is in use") {
                    return Err(Startup::PortTaken);
                }
                let want = format!("tokengate_config_hash {}", config_hash(&self.config));
                let ours = client::try_send_within(
                    self.admin,
                    &client::build_request(self.admin, "GET", "/metrics", &[]),
                    PROBE_TIMEOUT,
                )
                .is_ok_and(|r| r.text().lines().any(|l| l == want));
                if !ours {
                    return Err(Startup::PortTaken);
                }
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        Err(Startup::TimedOut(what))
    }

    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id, for sending signals.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `deadline` for the process to exit; returns its status if it did.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            std::thread::sleep(POLL);
        }
        None
    }

    /// The proxy listener.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy
    }

    /// The admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The config file the process was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The full config text.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Everything the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Panics if the process reported a panic on stderr or stdout. pingora catches a panic in a
    /// request task and drops the connection, so a panic leaves the process running and would
    /// otherwise go unnoticed.
    pub fn assert_no_panics(&self) {
        for (stream, text) in [("stderr", self.stderr()), ("stdout", self.stdout())] {
            let hits: Vec<&str> = text.lines().filter(|l| l.contains("panicked")).collect();
            assert!(
                hits.is_empty(),
                "tokengate panicked ({stream}):\n{}",
                hits.join("\n")
            );
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exit_status().is_none()
    }

    /// `GET` on the admin listener.
    pub fn admin_get(&self, path: &str) -> Response {
        client::get(self.admin, path)
    }

    /// The `/metrics` text; panics unless it is served with 200.
    pub fn metrics(&self) -> String {
        let r = self.admin_get("/metrics");
        assert_eq!(r.status, 200, "/metrics: {}", r.text());
        r.text()
    }

    /// The `/readyz` status code.
    pub fn readyz(&self) -> u16 {
        self.admin_get("/readyz").status
    }

    /// Polls `/readyz` until it answers `status` or `deadline` passes; returns whether it did.
    pub fn wait_readyz(&self, status: u16, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        loop {
            let got = client::try_send_within(
                self.admin,
                &client::build_request(self.admin, "GET", "/readyz", &[]),
                PROBE_TIMEOUT,
            )
            .map(|r| r.status)
            .ok();
            if got == Some(status) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- tokengate config ({})\n{}\n--- tokengate stderr\n{}",
                self.config_path.display(),
                self.config,
                self.stderr()
            );
        }
    }
}
