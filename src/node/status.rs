//! The node's status document (`GET /status`), its Prometheus metrics (`GET /metrics`), and
//! [`Own`]: what the node's tasks know about the node itself.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use super::peers::{Liveness, peer_status};
use crate::coordinator::CoordinatorHandle;
use crate::model::ids::NodeId;
use crate::model::node_stats::NodeStats;
use crate::model::time::UnixMillis;
use crate::net::Client;
use crate::protocol::status::{DatasetProgress, NodeStatus, PeerStatus, STATUS_VERSION};
use crate::worker::activity::Activity;
use crate::worker::stats::{Probe, free_disk};
use crate::worker::{WorkerConfig, current_stats};

/// What this node is, as its tasks need it to describe itself (heartbeats, `/status`).
#[derive(Clone)]
pub(super) struct Own {
    /// Its peer id.
    pub me: NodeId,
    /// Whether it downloads shards.
    pub work: bool,
    /// Its coordinator, when it seeds.
    pub coord: Option<CoordinatorHandle>,
    pub probe: Arc<Probe>,
    pub activity: Arc<Activity>,
    pub worker_cfg: WorkerConfig,
    /// Whose free space a node that does not work reports: a seeder's `--out`, else its data
    /// dir.
    pub disk_dir: PathBuf,
}

impl Own {
    /// This node's stats as advertised (heartbeats) and shown (`local`): the worker's
    /// measurements, except that a node that does not work reports the free space of
    /// `disk_dir` (where delivered archives land), not of a work dir it never uses.
    pub fn stats(&self) -> NodeStats {
        let mut stats = current_stats(&self.probe, &self.activity, &self.worker_cfg);
        stats.works = self.work;
        stats.seeds = self.coord.is_some();
        if !self.work {
            stats.disk_free = free_disk(&self.disk_dir);
            stats.free_slots = 0;
        }
        stats
    }
}

/// Logs each peer that stalls (WARN, once) or recovers.
pub(super) fn log_liveness(changes: &[Liveness]) {
    for c in changes {
        match c {
            Liveness::Stalled { peer, silent_ms } => tracing::warn!(
                %peer,
                "peer stalled: connected but silent for {:.1} s (no heartbeat, bid or renewal)",
                *silent_ms as f64 / 1000.0
            ),
            Liveness::Recovered { peer } => tracing::info!(%peer, "peer heard from again"),
        }
    }
}

/// What the status document is built from besides [`Own`].
pub(super) struct Inputs<'a> {
    pub join_addrs: &'a [String],
    pub started: UnixMillis,
    pub now: UnixMillis,
    /// Other peers, from the peer table.
    pub peers: Vec<PeerStatus>,
    /// Datasets announced by others, from the peer table.
    pub datasets: Vec<DatasetProgress>,
}

/// Builds the document.
pub(super) async fn build(own: &Own, i: Inputs<'_>) -> NodeStatus {
    let mut local = peer_status(&own.stats());
    local.peer_id = own.me.to_string();
    local.addrs = i.join_addrs.to_vec();
    local.last_seen_ms = i.now.0;
    local.connected = true;
    let mut datasets = i.datasets;
    if let Some(c) = &own.coord
        && let Ok(snap) = c.snapshot(own.me).await
    {
        datasets.retain(|d| !snap.progress.iter().any(|p| p.dataset_id == d.dataset_id));
        datasets.extend(snap.progress);
    }
    let mut roles = Vec::new();
    if own.coord.is_some() {
        roles.push("seeder".to_string());
    }
    if own.work {
        roles.push("worker".to_string());
    }
    NodeStatus {
        version: STATUS_VERSION,
        peer_id: own.me.to_string(),
        listen_addrs: i.join_addrs.to_vec(),
        roles,
        started_at_ms: i.started.0,
        now_ms: i.now.0,
        local,
        peers: i.peers,
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
