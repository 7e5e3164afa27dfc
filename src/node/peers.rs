//! What this node knows about other peers (connections, identify, heartbeats) and about the
//! datasets announced in the swarm; turned into the status document's `peers` and `datasets`.

use std::collections::{BTreeMap, HashMap};

use libp2p::{Multiaddr, PeerId};

use crate::model::ids::DatasetId;
use crate::model::time::UnixMillis;
use crate::protocol::status::{DatasetProgress, PeerStatus};
use crate::protocol::swarm::{Gossip, NodeStats};

#[derive(Default)]
struct Peer {
    addrs: Vec<Multiaddr>,
    stats: Option<NodeStats>,
    last_seen: UnixMillis,
    connected: bool,
}

/// A dataset announced by a seeder.
#[derive(Debug, Clone, PartialEq)]
pub struct Announced {
    /// Its seeder.
    pub seeder: PeerId,
    /// Its progress as announced.
    pub progress: DatasetProgress,
    /// Shards open to a bid.
    pub open: u32,
}

/// The peer and dataset tables.
#[derive(Default)]
pub struct PeerTable {
    peers: HashMap<PeerId, Peer>,
    datasets: BTreeMap<DatasetId, Announced>,
}

impl PeerTable {
    /// A connection opened.
    pub fn connected(&mut self, peer: PeerId, addr: Multiaddr, now: UnixMillis) {
        let p = self.peers.entry(peer).or_default();
        p.connected = true;
        p.last_seen = now;
        if !p.addrs.contains(&addr) {
            p.addrs.push(addr);
        }
    }

    /// The last connection closed.
    pub fn disconnected(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.connected = false;
        }
    }

    /// Identify told us its listen addresses.
    pub fn identified(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, now: UnixMillis) {
        let p = self.peers.entry(peer).or_default();
        p.last_seen = now;
        if !addrs.is_empty() {
            p.addrs = addrs;
        }
    }

    /// A gossip message arrived.
    pub fn gossip(&mut self, from: PeerId, msg: &Gossip, now: UnixMillis) {
        let p = self.peers.entry(from).or_default();
        p.last_seen = now;
        match msg {
            Gossip::Heartbeat { stats, .. } => p.stats = Some(stats.clone()),
            Gossip::Dataset {
                dataset,
                name,
                shards_total,
                shards_done,
                shards_open,
                shards_failed,
                rows_total,
                ..
            } => {
                self.datasets.insert(
                    *dataset,
                    Announced {
                        seeder: from,
                        open: *shards_open,
                        progress: DatasetProgress {
                            dataset_id: dataset.to_hex(),
                            seeder: from.to_string(),
                            name: name.clone(),
                            shards_total: *shards_total,
                            shards_done: *shards_done,
                            shards_leased: shards_total
                                .saturating_sub(*shards_done + *shards_failed + *shards_open),
                            shards_failed: *shards_failed,
                            rows_total: *rows_total,
                            ..Default::default()
                        },
                    },
                );
            }
            Gossip::Lease { .. } => {}
        }
    }

    /// Datasets announced by others that still have shards to hand out.
    pub fn open_datasets(&self) -> Vec<(DatasetId, PeerId)> {
        self.datasets
            .iter()
            .filter(|(_, a)| a.open > 0)
            .map(|(id, a)| (*id, a.seeder))
            .collect()
    }

    /// Datasets announced by others.
    pub fn datasets(&self) -> Vec<DatasetProgress> {
        self.datasets.values().map(|a| a.progress.clone()).collect()
    }

    /// Every known peer, for the status document.
    pub fn statuses(&self) -> Vec<PeerStatus> {
        let mut out: Vec<PeerStatus> = self
            .peers
            .iter()
            .map(|(id, p)| {
                let mut s = p
                    .stats
                    .as_ref()
                    .map(peer_status)
                    .unwrap_or_else(|| PeerStatus {
                        role: "unknown".into(),
                        ..Default::default()
                    });
                s.peer_id = id.to_string();
                s.addrs = p.addrs.iter().map(|a| a.to_string()).collect();
                s.last_seen_ms = p.last_seen.0;
                s.connected = p.connected;
                s
            })
            .collect();
        out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        out
    }
}

/// A node's stats in the status document's shape.
pub fn peer_status(s: &NodeStats) -> PeerStatus {
    PeerStatus {
        role: role(s),
        cores: s.cores,
        mem_total_bytes: s.mem_total,
        mem_free_bytes: s.mem_free,
        disk_free_bytes: s.disk_free,
        load1: s.load1,
        leases_held: s.leases_held,
        shards_done: s.shards_done,
        mb_per_s: s.bytes_per_s / 1e6,
        images_per_s: s.images_per_s,
        ..Default::default()
    }
}

/// `seeder`, `worker`, `seeder+worker` or `idle`.
pub fn role(s: &NodeStats) -> String {
    match (s.seeds, s.works) {
        (true, true) => "seeder+worker",
        (true, false) => "seeder",
        (false, true) => "worker",
        (false, false) => "idle",
    }
    .to_string()
}
