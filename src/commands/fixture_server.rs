//! `ldawt fixture-server` (hidden): runs the deterministic test HTTP server of
//! [`crate::fixture`] as a process, for multi-process tests and benchmarks. Prints the bound
//! address (`127.0.0.1:PORT`) as the first line on stdout, then serves until SIGINT/SIGTERM.
//! Two one-shot modes prepare benchmark inputs instead of serving: `--write-pool DIR` (synthetic
//! JPEG files for nginx) and `--rebase-parquet IN OUT` (a URL list with hosts rewritten).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::commands::cli::GlobalOpts;
use crate::fixture::{self, FixtureConfig, bench};
use crate::report::say;

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
    /// Instead of serving: write `DIR/pool/NNN.jpg` and `.jpeg` (1000 each, 20–250 KB, mean
    /// ≈ 80 KB) for a static web server, then exit.
    #[arg(long, value_name = "DIR")]
    pub write_pool: Option<PathBuf>,
    /// Instead of serving: copy `--rows` rows of IN (photo_url, taxon_name) to OUT with every
    /// URL's host replaced by `--base-url`, then exit.
    #[arg(long, num_args = 2, value_names = ["IN", "OUT"])]
    pub rebase_parquet: Vec<PathBuf>,
    /// Rows copied by `--rebase-parquet`.
    #[arg(long, default_value_t = 10_000)]
    pub rows: usize,
    /// The new scheme and host for `--rebase-parquet` (`http://127.0.0.1:8080`).
    #[arg(long)]
    pub base_url: Option<String>,
    /// With `--rebase-parquet`: spread the rows over this many distinct loopback hosts
    /// (`127.a.b.c` on `--base-url`'s port; serve them with a server listening on 0.0.0.0).
    #[arg(long)]
    pub hosts: Option<u32>,
    /// With `--rebase-parquet`: also write the URL paths, one per line (a wrk path list).
    #[arg(long)]
    pub paths_out: Option<PathBuf>,
}

fn prepare_bench_inputs(args: &FixtureServerArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.write_pool {
        let (files, bytes) = bench::write_pool(dir, 1000, &["jpg", "jpeg"])?;
        say!(
            "{files} files, {bytes} bytes, mean {} bytes",
            bytes / files.max(1)
        );
    }
    if let [source, out] = args.rebase_parquet.as_slice() {
        let base = args
            .base_url
            .as_deref()
            .ok_or_else(|| crate::exit::UsageError::new("--rebase-parquet needs --base-url"))?;
        let n = bench::rebase_parquet(
            source,
            out,
            args.rows,
            base.trim_end_matches('/'),
            args.hosts,
            "photo_url",
            "taxon_name",
            args.paths_out.as_deref(),
        )?;
        say!("{n} rows written to {}", out.display());
    }
    Ok(())
}

/// Runs `ldawt fixture-server`.
pub async fn run(args: FixtureServerArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    if args.write_pool.is_some() || !args.rebase_parquet.is_empty() {
        prepare_bench_inputs(&args)?;
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = FixtureConfig {
        listen: args.listen,
        min_size: args.min_size,
        max_size: args.max_size,
        first_byte_delay: Duration::from_millis(args.first_byte_delay_ms),
        robots_txt: None,
    };
    // Installed before the address is printed: whoever reads it may stop the server at once.
    let mut signals =
        crate::signals::Signals::new().context("installing the SIGINT/SIGTERM handlers")?;
    let handle = fixture::start(cfg)
        .await
        .map_err(|e| crate::exit::UsageError::new(e.to_string()))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", handle.addr()).context("writing the bound address")?;
        out.flush().context("writing the bound address")?;
    }
    signals.recv().await;
    handle.stop().await;
    Ok(ExitCode::SUCCESS)
}
