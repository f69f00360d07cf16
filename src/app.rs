//! Assembling the pingora server: proxy listeners, admin listener and the key refresh service.
//!
//! Nothing is spawned here: pingora starts every service after `run_forever`, which may fork.

use crate::admin::Admin;
use crate::head::HeadDeadline;
use crate::jwks::refresh::Refresher;
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::reload::{self, Reloader};
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use pingora::services::ServiceWithDependents;
use std::path::PathBuf;
use std::sync::Arc;

/// A server ready to run, plus the handle to its live runtime.
pub struct App {
    pub server: Server,
    pub runtime: Arc<ArcSwap<Runtime>>,
}

/// Builds the server for `runtime`. With `config_path`, `SIGHUP` reloads that file. `extra`
/// services (the demo's issuer and echo) run beside it.
pub fn build(
    runtime: Runtime,
    config_path: Option<PathBuf>,
    upgrade: bool,
    metrics: Arc<Metrics>,
    extra: Vec<Box<dyn ServiceWithDependents>>,
) -> App {
    let settings = runtime.settings.clone();
    let conf = ServerConf {
        threads: settings.threads,
        grace_period_seconds: Some(settings.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(settings.graceful_shutdown_timeout.as_secs()),
        upgrade_sock: settings.upgrade_sock.display().to_string(),
        work_stealing: settings.tuning.work_stealing,
        upstream_keepalive_pool_size: settings.tuning.upstream_keepalive_pool_size,
        listener_tasks_per_fd: settings.tuning.listener_tasks_per_fd,
        ..ServerConf::default()
    };
    // pingora hands listening sockets from the old process to the new one over `upgrade_sock`
    // when the new one starts with `upgrade` and the old one receives SIGQUIT.
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();
    let shared = Arc::new(ArcSwap::from_pointee(runtime));

    let gateway = pingora::proxy::http_proxy(
        &server.configuration,
        Gateway::new(Arc::clone(&shared), Arc::clone(&metrics)),
    );
    let mut proxy = Service::new(
        "proxy".to_string(),
        HeadDeadline::new(gateway, Arc::clone(&shared)),
    );
    for addr in &settings.listen {
        proxy.add_tcp(addr);
    }
    server.add_service(proxy);

    if let Some(addr) = &settings.admin_listen {
        let mut admin = Service::new(
            "admin".to_string(),
            Admin::new(Arc::clone(&shared), Arc::clone(&metrics)),
        );
        admin.add_tcp(addr);
        server.add_service(admin);
    }
    reload::record_live(&metrics, 1, shared.load().hash);
    let (generation, reloaded) = tokio::sync::watch::channel(1u64);
    server.add_service(background_service(
        "jwks refresh",
        Refresher::new(Arc::clone(&shared), reloaded),
    ));
    if let Some(path) = config_path {
        let reloader = Reloader::new(path, Arc::clone(&shared), Arc::clone(&metrics), generation);
        server.add_service(background_service("config reload", reloader));
    }
    for service in extra {
        server.add_boxed_service(service);
    }
    App {
        server,
        runtime: shared,
    }
}
