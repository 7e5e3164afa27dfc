//! The node's control-endpoint document (`GET /status` on `--status-addr`, HTTP + JSON). It is
//! served by a running `ldawt node`, read by `ldawt peers` and `ldawt monitor`. Field names are
//! part of the public interface: add fields, never rename them; bump [`STATUS_VERSION`] on a
//! breaking change.

use serde::{Deserialize, Serialize};

/// Version of the [`NodeStatus`] document.
pub const STATUS_VERSION: u32 = 1;

/// Default control endpoint address.
pub const DEFAULT_STATUS_ADDR: &str = "127.0.0.1:9124";

/// Everything a node knows about itself, its peers and the datasets in the swarm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// [`STATUS_VERSION`].
    pub version: u32,
    /// This node's libp2p peer id.
    pub peer_id: String,
    /// This node's listen addresses, each with `/p2p/<peer id>` appended.
    pub listen_addrs: Vec<String>,
    /// `seeder` and/or `worker`.
    pub roles: Vec<String>,
    /// When the node started (ms since the Unix epoch).
    pub started_at_ms: u64,
    /// When this document was produced (ms since the Unix epoch).
    pub now_ms: u64,
    /// This node's own resources and activity, in the same shape as a peer's.
    pub local: PeerStatus,
    /// Every other known peer.
    pub peers: Vec<PeerStatus>,
    /// Progress of every dataset this node knows of (its own seeds and others' announcements).
    pub datasets: Vec<DatasetProgress>,
}

/// One node as seen from here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// libp2p peer id.
    pub peer_id: String,
    /// Known addresses.
    pub addrs: Vec<String>,
    /// `seeder`, `worker`, `seeder+worker` or `unknown`.
    pub role: String,
    /// Usable CPU cores.
    pub cores: u32,
    /// Total memory in bytes.
    pub mem_total_bytes: u64,
    /// Available memory in bytes.
    pub mem_free_bytes: u64,
    /// Free disk on the output filesystem in bytes.
    pub disk_free_bytes: u64,
    /// One-minute load average.
    pub load1: f64,
    /// Leases currently held.
    pub leases_held: u32,
    /// Shards completed by this node since it started.
    pub shards_done: u64,
    /// Current download rate in MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// Current download rate in images/s.
    pub images_per_s: f64,
    /// When we last heard from it (ms since the Unix epoch).
    pub last_seen_ms: u64,
    /// Whether a connection to it is open now.
    pub connected: bool,
    /// Connected but silent (no heartbeat, bid or renewal) for several heartbeat periods: a
    /// frozen process or a frozen link. Absent from older nodes' documents (read as false).
    #[serde(default)]
    pub stalled: bool,
}

/// Progress of one dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetProgress {
    /// Dataset id (hex).
    pub dataset_id: String,
    /// The seeder's peer id.
    pub seeder: String,
    /// A human name (the seed file's name).
    pub name: String,
    /// Shards in total.
    pub shards_total: u32,
    /// Shards verified and stored by the seeder.
    pub shards_done: u32,
    /// Shards under lease now.
    pub shards_leased: u32,
    /// Shards that exhausted their retries.
    pub shards_failed: u32,
    /// Rows in total.
    pub rows_total: u64,
    /// Rows stored so far (from completed shards).
    pub rows_ok: u64,
    /// Rows failed so far (from completed shards).
    pub rows_failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_json() {
        let s = NodeStatus {
            version: STATUS_VERSION,
            peer_id: "12D3KooW".into(),
            peers: vec![PeerStatus {
                peer_id: "x".into(),
                cores: 2,
                ..Default::default()
            }],
            datasets: vec![DatasetProgress {
                shards_total: 5,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<NodeStatus>(&text).unwrap(), s);
    }
}
