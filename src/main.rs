//! The `tokengate` binary: parse the command line, load the config, hand over to the server.

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use tokengate::cli::{Cli, Command};
use tokengate::metrics::Metrics;
use tokengate::{app, config, demo, logging};

/// mimalloc instead of glibc malloc: a proxied request allocates and frees dozens of small
/// buffers, and under load glibc spent a sixth of the gateway's CPU in malloc, free and
/// consolidation (perf, `make bench-load`); the README's BENCHMARKS section has the A/B figures.
/// The `override` feature makes C code (aws-lc's bignum buffers, one set per RSA verification)
/// allocate from mimalloc too: glibc's malloc and free were 0.4 µs of an uncached request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Run { config, .. } => logging::init_structured(&logging::peek(config)),
        Command::Check { .. } | Command::Demo => logging::init_text(),
    }
    let metrics = match Metrics::new() {
        Ok(m) => Arc::new(m),
        Err(e) => {
            eprintln!("tokengate: cannot create metrics: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Check { config } => match config::load(&config, &metrics) {
            Ok(rt) => {
                println!(
                    "{}: ok ({} routes, {} issuers)",
                    config.display(),
                    rt.router.routes().len(),
                    rt.issuers.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("{}: configuration is invalid", config.display());
                ExitCode::FAILURE
            }
        },
        Command::Run { config, upgrade } => match config::load(&config, &metrics) {
            Ok(rt) => app::build(rt, Some(config), upgrade, metrics, Vec::new())
                .server
                .run_forever(),
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Demo => match demo::prepare(metrics) {
            Ok(app) => app.server.run_forever(),
            Err(e) => {
                eprintln!("tokengate demo: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
