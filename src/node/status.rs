//! The node's status document (`GET /status`) and its Prometheus metrics (`GET /metrics`).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::peers::{Liveness, PeerTable, peer_status};
use crate::coordinator::CoordinatorHandle;
use crate::model::node_stats::NodeStats;
use crate::model::time::UnixMillis;
use crate::net::Client;
use crate::protocol::status::{NodeStatus, STATUS_VERSION};
use crate::worker::activity::Activity;
use crate::worker::stats::{Probe, free_disk};
use crate::worker::{WorkerConfig, current_stats};

/// This node's stats as advertised (heartbeats) and shown (`local`): the worker's measurements,
/// except that a node that does not work reports the free space of `disk_dir` (a seeder's
/// `--out`, where delivered archives land), not of a work dir it never uses.
pub(super) fn own_stats(
    probe: &Probe,
    activity: &Activity,
    worker_cfg: &WorkerConfig,
    work: bool,
    seeds: bool,
    disk_dir: &Path,
) -> NodeStats {
    let mut stats = current_stats(probe, activity, worker_cfg);
    stats.works = work;
    stats.seeds = seeds;
    if !work {
        stats.disk_free = free_disk(disk_dir);
        stats.free_slots = 0;
    }
    stats
}

/// Logs each peer that stalls (WARN, once) or recovers, and returns nothing: the document
/// reads the stall from the table itself.
pub(super) fn log_liveness(peers: &Mutex<PeerTable>, now: UnixMillis) {
    let changes = match peers.lock() {
        Ok(mut p) => p.check_liveness(now),
        Err(_) => return,
    };
    for c in changes {
        match c {
            Liveness::Stalled { peer, silent_ms } => tracing::warn!(
                %peer,
                "peer stalled: connected but silent for {:.1} s (no heartbeat, bid or renewal)",
                silent_ms as f64 / 1000.0
            ),
            Liveness::Recovered { peer } => tracing::info!(%peer, "peer heard from again"),
        }
    }
}

/// What the status document is built from.
pub(super) struct Inputs<'a> {
    pub me: &'a str,
    pub join_addrs: &'a [String],
    pub started: UnixMillis,
    pub now: UnixMillis,
    pub work: bool,
    pub coord: Option<&'a CoordinatorHandle>,
    pub peers: &'a Mutex<PeerTable>,
    pub probe: &'a Probe,
    pub activity: &'a Activity,
    pub worker_cfg: &'a WorkerConfig,
    /// Whose free space a non-working node reports (see [`own_stats`]).
    pub disk_dir: &'a Path,
}

/// Builds the document.
pub(super) async fn build(i: &Inputs<'_>) -> NodeStatus {
    let stats = own_stats(
        i.probe,
        i.activity,
        i.worker_cfg,
        i.work,
        i.coord.is_some(),
        i.disk_dir,
    );
    let mut local = peer_status(&stats);
    local.peer_id = i.me.to_string();
    local.addrs = i.join_addrs.to_vec();
    local.last_seen_ms = i.now.0;
    local.connected = true;
    let (peers, mut datasets) = match i.peers.lock() {
        Ok(p) => (p.statuses(i.now), p.datasets()),
        Err(_) => (Vec::new(), Vec::new()),
    };
    if let Some(c) = i.coord
        && let Ok(snap) = c.snapshot(i.me).await
    {
        datasets.retain(|d| !snap.progress.iter().any(|p| p.dataset_id == d.dataset_id));
        datasets.extend(snap.progress);
    }
    let mut roles = Vec::new();
    if i.coord.is_some() {
        roles.push("seeder".to_string());
    }
    if i.work {
        roles.push("worker".to_string());
    }
    NodeStatus {
        version: STATUS_VERSION,
        peer_id: i.me.to_string(),
        listen_addrs: i.join_addrs.to_vec(),
        roles,
        started_at_ms: i.started.0,
        now_ms: i.now.0,
        local,
        peers,
        datasets,
    }
}

/// The `/metrics` renderer: transport counters, worker activity and dataset progress.
pub(super) fn metrics_renderer(
    client: Client,
    activity: Arc<Activity>,
    status: watch::Receiver<NodeStatus>,
) -> impl Fn() -> String + Send + Sync + 'static {
    move || {
        let mut out = String::new();
        client.metrics().render_prometheus(&mut out);
        let (bytes, images) = activity.totals();
        let s = status.borrow();
        let _ = writeln!(out, "# TYPE ldawt_worker_bytes_total counter");
        let _ = writeln!(out, "ldawt_worker_bytes_total {bytes}");
        let _ = writeln!(out, "# TYPE ldawt_worker_images_total counter");
        let _ = writeln!(out, "ldawt_worker_images_total {images}");
        let _ = writeln!(out, "# TYPE ldawt_worker_leases_held gauge");
        let _ = writeln!(out, "ldawt_worker_leases_held {}", s.local.leases_held);
        let _ = writeln!(out, "# TYPE ldawt_peers_known gauge");
        let _ = writeln!(out, "ldawt_peers_known {}", s.peers.len());
        let _ = writeln!(out, "# TYPE ldawt_dataset_shards gauge");
        for d in &s.datasets {
            for (state, n) in [
                ("total", d.shards_total),
                ("done", d.shards_done),
                ("leased", d.shards_leased),
                ("failed", d.shards_failed),
            ] {
                let _ = writeln!(
                    out,
                    "ldawt_dataset_shards{{dataset=\"{}\",state=\"{state}\"}} {n}",
                    d.dataset_id
                );
            }
        }
        out
    }
}
