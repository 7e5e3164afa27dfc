//! `ldawt monitor`: command-line glue over `crate::monitor`: checks the flags, opens the
//! JSON-lines log file and runs the sampling loop (`monitor::watch`) until `--count` or
//! SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::commands::cli::GlobalOpts;
use crate::exit::UsageError;
use crate::monitor::alerts::Thresholds;
use crate::monitor::sampler::Sampler;
use crate::monitor::watch::{WatchOptions, node_port, watch};
use crate::signals::Signals;

/// Arguments of `ldawt monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Seconds between samples.
    #[arg(long, default_value_t = 10.0)]
    pub interval: f64,
    /// Append one JSON object per sample and per alert to this file.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// A path on the filesystem to watch (the node's output directory).
    #[arg(long, default_value = ".")]
    pub disk_path: PathBuf,
    /// A node's control endpoint (host:port) to read peers, leases and throughput from.
    #[arg(long)]
    pub node: Option<String>,
    /// The process whose file descriptors and memory are watched (default: the process
    /// listening on the `--node` port).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Alert when CPU use exceeds this percentage.
    #[arg(long)]
    pub alert_cpu: Option<f64>,
    /// Alert when memory use exceeds this percentage.
    #[arg(long, default_value_t = 90.0)]
    pub alert_mem: f64,
    /// Alert when the watched filesystem's use exceeds this percentage.
    #[arg(long, default_value_t = 90.0)]
    pub alert_disk: f64,
    /// Alert when the watched process has more open file descriptors than this.
    #[arg(long, default_value_t = 1000)]
    pub alert_fds: u64,
    /// Stop after this many samples (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub count: Option<u64>,
    /// Print JSON lines on stdout instead of readable lines.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ldawt monitor`.
pub async fn run(args: MonitorArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(UsageError::new(format!(
            "--interval must be a positive number of seconds, not {}",
            args.interval
        ))
        .into());
    }
    if args.count == Some(0) {
        return Err(UsageError::new("--count must be at least 1").into());
    }
    if let Some(addr) = &args.node
        && node_port(addr).is_none()
    {
        return Err(UsageError::new(format!("--node {addr}: expected host:port")).into());
    }
    let mut sampler = Sampler::new(&args.disk_path).map_err(|e| UsageError::new(e.to_string()))?;
    let log = match &args.log_file {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    UsageError::new(format!("cannot open --log-file {}: {e}", path.display()))
                })?,
        ),
        None => None,
    };
    let thresholds = Thresholds {
        cpu_percent: args.alert_cpu,
        mem_percent: Some(args.alert_mem),
        disk_percent: Some(args.alert_disk),
        fds: Some(args.alert_fds),
        node_down: args.node.is_some(),
    };
    let mut signals = Signals::new()?;
    eprintln!(
        "monitoring every {}s: disk {}{}{}",
        args.interval,
        args.disk_path.display(),
        args.node
            .as_ref()
            .map(|n| format!(", node {n}"))
            .unwrap_or_default(),
        args.log_file
            .as_ref()
            .map(|l| format!(", log {}", l.display()))
            .unwrap_or_default()
    );
    let opts = WatchOptions {
        interval: Duration::from_secs_f64(args.interval),
        node: args.node.clone(),
        pid: args.pid,
        thresholds,
        count: args.count,
        json: args.json,
    };
    let (taken, stop_reason) = watch(&mut sampler, &opts, log, &mut signals).await?;
    eprintln!("monitor stopped after {taken} samples ({stop_reason})");
    Ok(ExitCode::SUCCESS)
}
