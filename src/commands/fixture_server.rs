//! `ldawt fixture-server` (hidden): runs the deterministic test HTTP server of
//! [`crate::fixture`] as a process, for multi-process tests and benchmarks. Prints the bound
//! address (`127.0.0.1:PORT`) as the first line on stdout, then serves until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::cli::GlobalOpts;
use crate::fixture::{self, FixtureConfig};

/// Arguments of `ldawt fixture-server`.
#[derive(Debug, Args)]
pub struct FixtureServerArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Delay before the first byte of every response, in milliseconds (WAN-like latency).
    #[arg(long, default_value_t = 0)]
    pub first_byte_delay_ms: u64,
    /// Smallest generated body in bytes.
    #[arg(long, default_value_t = 20_000)]
    pub min_size: u64,
    /// Largest generated body in bytes.
    #[arg(long, default_value_t = 250_000)]
    pub max_size: u64,
}

/// Runs `ldawt fixture-server`.
pub async fn run(args: FixtureServerArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let cfg = FixtureConfig {
        listen: args.listen,
        min_size: args.min_size,
        max_size: args.max_size,
        first_byte_delay: Duration::from_millis(args.first_byte_delay_ms),
    };
    let handle = fixture::start(cfg)
        .await
        .map_err(|e| crate::exit::UsageError::new(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", handle.addr()).context("writing the bound address")?;
    out.flush().context("writing the bound address")?;
    drop(out);
    wait_for_signal().await;
    handle.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
