//! `ldawt monitor`: samples this machine (CPU, memory, the output filesystem, network rates),
//! the node process (open file descriptors, memory) and the node's control endpoint (peers,
//! leases, throughput), evaluates threshold alerts, and renders one JSON line (machines) or one
//! readable line (people) per sample. Sampling does I/O (`sampler`, `node`, `procfs`); the
//! sample type, alert logic and rendering are pure; `watch` is the sampling loop.

pub mod alerts;
pub mod node;
pub mod procfs;
pub mod render;
pub mod sampler;
pub mod watch;

use serde::{Deserialize, Serialize};

/// One observation of the machine and, if reachable, the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When it was taken (ms since the Unix epoch).
    pub ts_ms: u64,
    /// Whole-machine CPU use, 0–100.
    pub cpu_percent: f64,
    /// Memory in use (total − available), 0–100.
    pub mem_used_percent: f64,
    /// Available memory in bytes.
    pub mem_available_bytes: u64,
    /// Total memory in bytes.
    pub mem_total_bytes: u64,
    /// The path whose filesystem is watched.
    pub disk_path: String,
    /// The mount point holding `disk_path`.
    pub disk_mount: String,
    /// Used space of that filesystem, 0–100, as `df` counts it: used / (used + available).
    pub disk_used_percent: f64,
    /// Bytes available to users on it (root's reserve excluded, like `df`'s Avail).
    pub disk_free_bytes: u64,
    /// Its size in bytes.
    pub disk_total_bytes: u64,
    /// Received bytes per second over all non-loopback interfaces since the previous sample.
    pub net_rx_bytes_per_s: f64,
    /// Sent bytes per second, likewise.
    pub net_tx_bytes_per_s: f64,
    /// The watched process (the node), when known.
    pub pid: Option<u32>,
    /// Its open file descriptors.
    pub fds: Option<u64>,
    /// Its resident memory in bytes.
    pub rss_bytes: Option<u64>,
    /// What the node's control endpoint said (`None` when no `--node` was given).
    pub node: Option<NodeSummary>,
    /// Alerts active after this sample, e.g. `cpu 97.0% > 90%`.
    pub alerts: Vec<String>,
}

/// The part of a node's status document that the monitor reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    /// The control endpoint address.
    pub addr: String,
    /// Whether it answered this time.
    pub reachable: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    /// The node's peer id.
    pub peer_id: Option<String>,
    /// Known peers.
    pub peers: u32,
    /// Peers with an open connection.
    pub peers_connected: u32,
    /// Leases held by this node.
    pub leases_held: u32,
    /// Shards completed by this node.
    pub shards_done: u64,
    /// Download rate, MB/s.
    pub mb_per_s: f64,
    /// Download rate, images/s.
    pub images_per_s: f64,
    /// Shards done / total over every dataset it knows.
    pub dataset_shards_done: u32,
    /// Shards in total over every dataset it knows.
    pub dataset_shards_total: u32,
}
