//! The reference the performance targets are stated against: a bare pingora 0.9 passthrough with
//! pingora's default settings and the system allocator, no authentication, no header changes.
//! `benches/load.sh` runs it beside tokengate on the same core, upstream and requests (scenario
//! B), so "JWT enforcement at the cost of a bare proxy" is measured, not assumed.
//!
//! Usage: `bare_pingora LISTEN_ADDR UPSTREAM_ADDR`, e.g. `bare_pingora 127.0.0.1:18083 127.0.0.1:18081`.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;

struct Passthrough {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_pingora LISTEN_ADDR UPSTREAM_ADDR";
    let listen = args.next().ok_or(usage)?;
    let upstream: SocketAddr = args.next().ok_or(usage)?.parse()?;
    // pingora's defaults, except the upgrade socket: the default path is shared by every pingora
    // process on the machine, and the benchmark runs two.
    let conf = ServerConf {
        upgrade_sock: std::env::temp_dir()
            .join(format!("bare-pingora-{}.sock", std::process::id()))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy =
        pingora::proxy::http_proxy_service(&server.configuration, Passthrough { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever()
}
