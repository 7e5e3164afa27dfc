//! What `ldawt node` shows a person: the `--join` lines when ready, a progress bar or
//! periodic lines while running, and the final report of a seeder.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exit::{self};
use crate::node::{NodeOutcome, NodeReporter, Ready};
use crate::protocol::status::NodeStatus;

pub(super) use crate::report::say;
use crate::report::say_err;

/// The node's user-facing output: the `--join` lines on stdout, then progress on stderr (a
/// live line on a terminal, one plain line every 10 s otherwise).
pub(super) struct CliReporter {
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
}

/// Seconds between plain progress lines.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

impl CliReporter {
    pub(super) fn new(no_progress: bool) -> Self {
        let bar = (!no_progress && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            last_line: None,
        }
    }
}

impl NodeReporter for CliReporter {
    fn ready(&mut self, r: &Ready) {
        print_ready(r);
    }

    fn progress(&mut self, s: &NodeStatus) {
        let line = progress_line(s);
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None => {
                if self.last_line.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
                    self.last_line = Some(Instant::now());
                    say_err!("progress: {line}");
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// One line: each dataset's shards, the peers, this node's work and rate.
pub(super) fn progress_line(s: &NodeStatus) -> String {
    let mut parts: Vec<String> = s
        .datasets
        .iter()
        .map(|d| {
            format!(
                "{}: {}/{} shards done, {} leased, {} failed",
                d.name, d.shards_done, d.shards_total, d.shards_leased, d.shards_failed
            )
        })
        .collect();
    let connected = s.peers.iter().filter(|p| p.connected).count();
    parts.push(format!("{connected} peer(s)"));
    if s.roles.iter().any(|r| r == "worker") {
        parts.push(format!(
            "here: {} lease(s), {} shard(s) done, {:.1} MB/s, {:.0} img/s",
            s.local.leases_held, s.local.shards_done, s.local.mb_per_s, s.local.images_per_s
        ));
    }
    parts.join(" · ")
}

fn print_ready(r: &Ready) {
    say!("ldawt node {}", r.peer_id);
    if let Some((ds, resumed)) = &r.seeded {
        say!(
            "seeding {} (dataset {}): {} rows in {} shard{}{}",
            ds.name,
            ds.id.to_hex(),
            ds.rows_total,
            ds.shard_rows.len(),
            if ds.shard_rows.len() == 1 { "" } else { "s" },
            if *resumed { ", resumed" } else { "" }
        );
    }
    let key = &r.swarm_key;
    let join_tail = match (&key.psk, &key.file) {
        (None, _) => " --open".to_string(),
        (Some(_), Some(file)) => format!(" --swarm-key {}", file.display()),
        (Some(_), None) => String::new(),
    };
    match (&key.psk, &key.file) {
        (None, _) => say!(
            "WARNING: open swarm (--open): any host that can reach this node can join it, receive its rows and report results"
        ),
        (Some(psk), Some(file)) => say!(
            "swarm key: {} ({}, fingerprint {}): give it to every worker, keep it secret",
            file.display(),
            if key.created { "created" } else { "reused" },
            psk.fingerprint()
        ),
        (Some(psk), None) => say!(
            "swarm key: from {} (fingerprint {}): workers need the same value",
            crate::node::swarm_key::KEY_ENV,
            psk.fingerprint()
        ),
    }
    if r.join_addrs.is_empty() {
        say!("warning: no listen address is up; peers cannot join this node");
    } else {
        say!("join this swarm with:");
        for a in &r.join_addrs {
            say!("  ldawt node --join {a}{join_tail}");
        }
    }
    say!("status: http://{}/status", r.status_addr);
}

/// Prints the final report and chooses the exit code.
pub(super) fn print_outcome(o: &NodeOutcome) -> u8 {
    if o.interrupted {
        say!("interrupted: leases given back; rerun the same command to resume");
        return exit::INTERRUPTED;
    }
    if let Some(w) = &o.worker {
        say!(
            "worker: {} shards completed, {} lost, {} given back",
            w.completed,
            w.lost,
            w.abandoned
        );
    }
    let mut code = exit::OK;
    for r in &o.reports {
        say!(
            "dataset {} ({}): {} rows — {} ok, {} failed, {} skipped; {}/{} shards done, {:.1} MB",
            r.name,
            r.dataset_id,
            r.rows_total,
            r.ok,
            r.failed,
            r.skipped,
            r.shards_done,
            r.shards_total,
            r.bytes as f64 / 1e6
        );
        say!("results: {}", r.results_path.display());
        // As `ldawt download`: a run in which rows failed is not a success (LDAWT exited 0
        // even when most rows failed). Skipped rows (no URL) do not count as failures.
        if r.failed > 0 {
            code = exit::PARTIAL;
        }
        for (kind, n) in &r.error_breakdown {
            say!("  {kind}: {n} rows");
        }
        if !r.failed_shards.is_empty() {
            code = exit::PARTIAL;
            say!("failed shards (retries exhausted):");
            for f in &r.failed_shards {
                say!(
                    "  shard {} ({}, {} rows): {} attempts lost, last error: {}",
                    f.shard,
                    f.archive,
                    f.rows,
                    f.failures,
                    f.last_error.as_deref().unwrap_or("-")
                );
            }
        }
        for f in &r.unreadable_files {
            code = exit::PARTIAL;
            say!("unreadable file (its rows are listed as failed): {f}");
        }
        if !r.failed_rows_sample.is_empty() {
            say!("failed rows (first {}):", r.failed_rows_sample.len());
            for (i, url, kind) in &r.failed_rows_sample {
                say!(
                    "  row {i}: {} ({})",
                    url.as_deref().unwrap_or("<no url>"),
                    kind.as_deref().unwrap_or("failed")
                );
            }
        }
    }
    code
}
