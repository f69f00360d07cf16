//! Command-line interface: `run`, `check` and `demo`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// A reverse proxy that enforces bearer-token (JWT) access policy in front of HTTP APIs.
#[derive(Debug, Parser)]
#[command(name = "tokengate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve with the given config.
    Run {
        /// Path to the TOML config.
        #[arg(short, long, default_value = "/etc/tokengate/tokengate.toml")]
        config: PathBuf,
        /// Take over the listening sockets of a running tokengate (zero-downtime binary
        /// upgrade): start the new binary with this flag, then send SIGQUIT to the old one.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a config and exit 0 (valid) or 1 (invalid), like `nginx -t`.
    Check {
        /// Path to the TOML config.
        #[arg(short, long, default_value = "/etc/tokengate/tokengate.toml")]
        config: PathBuf,
    },
    /// Run the embedded demo: gateway, demo issuer and echo upstream on loopback, and print
    /// ready-to-paste curl commands.
    Demo,
}
