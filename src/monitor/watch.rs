//! The sampling loop of `ldawt monitor`: one sample every interval (machine, watched process,
//! node endpoint), alert transitions, one line per sample and per alert on stdout (JSON or
//! readable) and in the optional log file, until the sample count is reached or a stop
//! signal arrives.

use std::fs::File;
use std::io::{self, Write};
use std::time::Duration;

use super::alerts::{AlertState, Thresholds, exceeded};
use super::sampler::Sampler;
use super::{node, procfs, render};
use crate::model::time::{Clock, SystemClock};
use crate::signals::Signals;

/// What to watch and how to report it.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Time between samples.
    pub interval: Duration,
    /// A node's control endpoint (`host:port`) to poll.
    pub node: Option<String>,
    /// The process to watch (default: the one listening on the node's port).
    pub pid: Option<u32>,
    /// Alert thresholds.
    pub thresholds: Thresholds,
    /// Stop after this many samples (`None`: until a stop signal).
    pub count: Option<u64>,
    /// JSON lines on stdout instead of readable lines.
    pub json: bool,
}

/// The port of a `host:port` endpoint.
pub fn node_port(addr: &str) -> Option<u16> {
    addr.rsplit(':').next()?.parse().ok()
}

/// Samples until done; returns the number of samples taken and why it stopped (`count
/// reached`, `SIGINT`, `SIGTERM`). Write errors (a closed stdout, a full log disk) end it.
pub async fn watch(
    sampler: &mut Sampler,
    opts: &WatchOptions,
    mut log: Option<File>,
    signals: &mut Signals,
) -> io::Result<(u64, &'static str)> {
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
            opts.node
                .as_deref()
                .and_then(node_port)
                .and_then(procfs::pid_listening_on)
        });
        let pid = opts.pid.or(node_pid);
        let mut sample = sampler.sample(now, pid);
        if let Some(addr) = &opts.node {
            sample.node = Some(node::poll(addr).await);
        }
        let events = state.update(exceeded(&sample, &opts.thresholds));
        sample.alerts = state.active();
        {
            // Scoped: the stdout lock must not live across an await (the task may move).
            let mut stdout = io::stdout().lock();
            if opts.json {
                writeln!(stdout, "{}", render::json_sample(&sample))?;
            } else {
                writeln!(stdout, "{}", render::human_line(&sample))?;
            }
            for e in &events {
                if opts.json {
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
        if opts.count.is_some_and(|c| taken >= c) {
            break "count reached";
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.interval) => {}
            stop = signals.recv() => break stop.name(),
        }
    };
    Ok((taken, stop_reason))
}
