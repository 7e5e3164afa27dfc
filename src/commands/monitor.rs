//! `ldawt monitor`: command-line glue over `crate::monitor` — the sampling loop with its
//! interval, bounded `--count`, SIGINT/SIGTERM handling, readable or JSON lines on stdout, and
//! the JSON-lines log file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::cli::GlobalOpts;
use crate::exit::UsageError;
use crate::model::time::{Clock, SystemClock};
use crate::monitor::alerts::{AlertState, Thresholds, exceeded};
use crate::monitor::sampler::Sampler;
use crate::monitor::{node, procfs, render};
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

fn node_port(addr: &str) -> Option<u16> {
    addr.rsplit(':').next()?.parse().ok()
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
    let mut log = match &args.log_file {
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
    // CPU use is measured between two refreshes at least 200 ms apart.
    tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL + Duration::from_millis(50)).await;
    let mut state = AlertState::default();
    let mut taken = 0u64;
    let mut node_pid: Option<u32> = None;
    let stop_reason = loop {
        let now = SystemClock.now().0;
        // The node's pid is looked up by its port once, and again only after it went away.
        let alive = |p: &u32| std::path::Path::new(&format!("/proc/{p}")).exists();
        node_pid = node_pid.filter(alive).or_else(|| {
            args.node
                .as_deref()
                .and_then(node_port)
                .and_then(procfs::pid_listening_on)
        });
        let pid = args.pid.or(node_pid);
        let mut sample = sampler.sample(now, pid);
        if let Some(addr) = &args.node {
            sample.node = Some(node::poll(addr).await);
        }
        let events = state.update(exceeded(&sample, &thresholds));
        sample.alerts = state.active();
        {
            // Scoped: the stdout lock must not live across an await (the task may move).
            let mut stdout = std::io::stdout().lock();
            if args.json {
                writeln!(stdout, "{}", render::json_sample(&sample))?;
            } else {
                writeln!(stdout, "{}", render::human_line(&sample))?;
            }
            for e in &events {
                if args.json {
                    writeln!(stdout, "{}", render::json_event(now, e))?;
                } else {
                    writeln!(stdout, "{}", render::event_line(now, e))?;
                }
            }
            stdout.flush()?;
        }
        if let Some(file) = log.as_mut() {
            writeln!(file, "{}", render::json_sample(&sample))?;
            for e in &events {
                writeln!(file, "{}", render::json_event(now, e))?;
            }
            file.flush()?;
        }
        taken += 1;
        if args.count.is_some_and(|c| taken >= c) {
            break "count reached";
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(args.interval)) => {}
            stop = signals.recv() => break stop.name(),
        }
    };
    eprintln!("monitor stopped after {taken} samples ({stop_reason})");
    Ok(ExitCode::SUCCESS)
}
