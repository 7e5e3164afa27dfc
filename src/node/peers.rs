//! What this node knows about other peers (connections, identify, heartbeats) and about the
//! datasets announced in the swarm; turned into the status document's `peers` and `datasets`.
//!
//! Both tables are bounded ([`MAX_PEERS`], [`MAX_DATASETS`]; the stalest entry goes first), and
//! a dataset id stays bound to the seeder that announced it first: another announcer of the
//! same id is ignored until the seeder has been silent for [`BINDING_TTL_MS`].
//!
//! Liveness: every message from a peer (heartbeat, bid, renewal, transfer) refreshes its
//! `last_seen`. A peer not heard from for the table's stall limit (a few heartbeat periods,
//! see [`stall_after`]) while its connection is still open is `stalled`: a frozen process or a
//! frozen link keeps the TCP connection up, so "connected" alone says nothing about it.

use std::collections::{BTreeMap, HashMap};

use libp2p::{Multiaddr, PeerId};

use crate::model::ids::DatasetId;
use crate::model::node_stats::NodeStats;
use crate::model::time::UnixMillis;
use crate::protocol::gossip::Gossip;
use crate::protocol::status::{DatasetProgress, PeerStatus};

#[derive(Default)]
struct Peer {
    addrs: Vec<Multiaddr>,
    stats: Option<NodeStats>,
    last_seen: UnixMillis,
    connected: bool,
    /// Reported as stalled (logged once per stall).
    stalled: bool,
}

/// A dataset announced by a seeder.
#[derive(Debug, Clone, PartialEq)]
pub struct Announced {
    /// The peer that published the announcement: where bids go.
    pub seeder: PeerId,
    /// Its progress as announced.
    pub progress: DatasetProgress,
    /// Shards open to a bid.
    pub open: u32,
    /// When the announcement arrived.
    pub seen: UnixMillis,
}

/// A dataset not announced again for this long is no longer offered to the worker (its
/// seeder is gone or finished).
pub const ANNOUNCEMENT_TTL_MS: u64 = 30_000;

/// A dataset whose seeder has not announced it for this long may be claimed by another peer.
pub const BINDING_TTL_MS: u64 = 600_000;

/// Most peers remembered.
pub const MAX_PEERS: usize = 4096;

/// Most datasets remembered.
pub const MAX_DATASETS: usize = 256;

/// Addresses remembered per peer.
const MAX_ADDRS: usize = 16;

/// Heartbeat periods a connected peer may miss before it counts as stalled.
pub const STALL_HEARTBEATS: u32 = 3;

/// The shortest stall limit, whatever the heartbeat (scheduling noise on a busy machine).
pub const MIN_STALL_MS: u64 = 3_000;

/// How long a connected peer may stay silent before it is marked stalled, for a node whose
/// heartbeat period is `heartbeat` (peers of one swarm run the same period).
pub fn stall_after(heartbeat: std::time::Duration) -> u64 {
    let ms = u64::try_from(heartbeat.as_millis()).unwrap_or(u64::MAX);
    ms.saturating_mul(u64::from(STALL_HEARTBEATS))
        .max(MIN_STALL_MS)
}

/// The peer and dataset tables.
pub struct PeerTable {
    peers: HashMap<PeerId, Peer>,
    datasets: BTreeMap<DatasetId, Announced>,
    stall_after_ms: u64,
}

impl Default for PeerTable {
    fn default() -> Self {
        Self::new(stall_after(std::time::Duration::from_secs(2)))
    }
}

/// A change in a peer's liveness, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Connected but silent for `silent_ms`.
    Stalled {
        peer: PeerId,
        /// How long it has been silent.
        silent_ms: u64,
    },
    /// Heard from again after a stall.
    Recovered { peer: PeerId },
}

impl PeerTable {
    /// Empty tables; a connected peer silent for `stall_after_ms` is stalled.
    pub fn new(stall_after_ms: u64) -> Self {
        Self {
            peers: HashMap::new(),
            datasets: BTreeMap::new(),
            stall_after_ms,
        }
    }

    /// Whether `p` is stalled at `now`.
    fn is_stalled(&self, p: &Peer, now: UnixMillis) -> bool {
        p.connected && now.0.saturating_sub(p.last_seen.0) >= self.stall_after_ms
    }

    /// Any message from `peer` (a control request, a transfer): it is alive.
    pub fn heard(&mut self, peer: PeerId, now: UnixMillis) {
        self.peer(peer).last_seen = now;
    }

    /// Marks peers that became stalled or recovered since the last call, and returns the
    /// changes (each stall is reported once).
    pub fn check_liveness(&mut self, now: UnixMillis) -> Vec<Liveness> {
        let limit = self.stall_after_ms;
        let mut changes = Vec::new();
        for (id, p) in &mut self.peers {
            let silent_ms = now.0.saturating_sub(p.last_seen.0);
            let stalled = p.connected && silent_ms >= limit;
            if stalled && !p.stalled {
                changes.push(Liveness::Stalled {
                    peer: *id,
                    silent_ms,
                });
            } else if !stalled && p.stalled && p.connected {
                changes.push(Liveness::Recovered { peer: *id });
            }
            p.stalled = stalled;
        }
        changes
    }

    /// The entry of `peer`, making room for it first when the table is full.
    fn peer(&mut self, peer: PeerId) -> &mut Peer {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            // The disconnected peer seen longest ago goes first, then the stalest one.
            if let Some(victim) = self
                .peers
                .iter()
                .min_by_key(|(_, p)| (p.connected, p.last_seen.0))
                .map(|(id, _)| *id)
            {
                self.peers.remove(&victim);
            }
        }
        self.peers.entry(peer).or_default()
    }

    /// A connection opened.
    pub fn connected(&mut self, peer: PeerId, addr: Multiaddr, now: UnixMillis) {
        let p = self.peer(peer);
        p.connected = true;
        p.last_seen = now;
        if !p.addrs.contains(&addr) && p.addrs.len() < MAX_ADDRS {
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
    pub fn identified(&mut self, peer: PeerId, mut addrs: Vec<Multiaddr>, now: UnixMillis) {
        let p = self.peer(peer);
        p.last_seen = now;
        if !addrs.is_empty() {
            addrs.truncate(MAX_ADDRS);
            p.addrs = addrs;
        }
    }

    /// A peer's stats arrived directly (in a bid).
    pub fn stats(&mut self, peer: PeerId, stats: &NodeStats, now: UnixMillis) {
        let p = self.peer(peer);
        p.last_seen = now;
        p.stats = Some(stats.clone());
    }

    /// A gossip message arrived.
    pub fn gossip(&mut self, from: PeerId, msg: &Gossip, now: UnixMillis) {
        let p = self.peer(from);
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
                if let Some(known) = self.datasets.get(dataset)
                    && known.seeder != from
                    && now.0.saturating_sub(known.seen.0) < BINDING_TTL_MS
                {
                    tracing::debug!(%dataset, seeder = %known.seeder, announcer = %from, "announcement of another seeder's dataset ignored");
                    return;
                }
                if !self.datasets.contains_key(dataset)
                    && self.datasets.len() >= MAX_DATASETS
                    && let Some(stalest) = self
                        .datasets
                        .iter()
                        .min_by_key(|(_, a)| a.seen.0)
                        .map(|(id, _)| *id)
                {
                    self.datasets.remove(&stalest);
                }
                self.datasets.insert(
                    *dataset,
                    Announced {
                        seeder: from,
                        open: *shards_open,
                        seen: now,
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

    /// Datasets recently announced by others that still have shards to hand out.
    pub fn open_datasets(&self, now: UnixMillis) -> Vec<(DatasetId, PeerId)> {
        self.announced(now)
            .into_iter()
            .filter(|(_, _, open)| *open)
            .map(|(id, seeder, _)| (id, seeder))
            .collect()
    }

    /// Datasets recently announced by others, with their seeder and whether shards are open
    /// (a worker delivers a kept shard to a seeder whose shards are all leased, too).
    pub fn announced(&self, now: UnixMillis) -> Vec<(DatasetId, PeerId, bool)> {
        self.datasets
            .iter()
            .filter(|(_, a)| now.0.saturating_sub(a.seen.0) < ANNOUNCEMENT_TTL_MS)
            .map(|(id, a)| (*id, a.seeder, a.open > 0))
            .collect()
    }

    /// Datasets announced by others.
    pub fn datasets(&self) -> Vec<DatasetProgress> {
        self.datasets.values().map(|a| a.progress.clone()).collect()
    }

    /// Every known peer at `now`, for the status document.
    pub fn statuses(&self, now: UnixMillis) -> Vec<PeerStatus> {
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
                s.stalled = self.is_stalled(p, now);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn announce(open: u32) -> Gossip {
        Gossip::Dataset {
            dataset: DatasetId([1; 16]),
            name: "d".into(),
            shards_total: 4,
            shards_done: 1,
            shards_open: open,
            shards_failed: 0,
            rows_total: 40,
            sent_at: UnixMillis(0),
        }
    }

    #[test]
    fn datasets_are_offered_while_open_and_freshly_announced() {
        let seeder = PeerId::random();
        let mut t = PeerTable::default();
        t.gossip(seeder, &announce(2), UnixMillis(1_000));
        assert_eq!(
            t.open_datasets(UnixMillis(2_000)),
            vec![(DatasetId([1; 16]), seeder)]
        );
        assert!(
            t.open_datasets(UnixMillis(1_000 + ANNOUNCEMENT_TTL_MS))
                .is_empty()
        );
        t.gossip(seeder, &announce(0), UnixMillis(3_000));
        assert!(t.open_datasets(UnixMillis(3_001)).is_empty());
        let d = &t.datasets()[0];
        assert_eq!((d.shards_total, d.shards_done, d.shards_leased), (4, 1, 3));
        let mut stats = NodeStats {
            cores: 8,
            works: true,
            ..Default::default()
        };
        stats.bytes_per_s = 2e6;
        t.stats(seeder, &stats, UnixMillis(3_002));
        t.connected(
            seeder,
            "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            UnixMillis(3_003),
        );
        let p = &t.statuses(UnixMillis(3_003))[0];
        assert_eq!(
            (p.cores, p.role.as_str(), p.mb_per_s, p.connected),
            (8, "worker", 2.0, true)
        );
        t.disconnected(seeder);
        assert!(!t.statuses(UnixMillis(3_004))[0].connected);
    }

    #[test]
    fn a_connected_peer_that_falls_silent_is_stalled_until_heard_again() {
        let peer = PeerId::random();
        let mut t = PeerTable::new(3_000);
        t.connected(
            peer,
            "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            UnixMillis(1_000),
        );
        assert!(t.check_liveness(UnixMillis(3_999)).is_empty());
        assert!(!t.statuses(UnixMillis(3_999))[0].stalled);
        // Silent for the limit: stalled, reported once.
        assert_eq!(
            t.check_liveness(UnixMillis(4_000)),
            vec![Liveness::Stalled {
                peer,
                silent_ms: 3_000
            }]
        );
        assert!(t.check_liveness(UnixMillis(9_000)).is_empty());
        let s = &t.statuses(UnixMillis(9_000))[0];
        assert!(s.connected && s.stalled);
        // A renewal (any request) brings it back.
        t.heard(peer, UnixMillis(9_100));
        assert!(!t.statuses(UnixMillis(9_200))[0].stalled);
        assert_eq!(
            t.check_liveness(UnixMillis(9_200)),
            vec![Liveness::Recovered { peer }]
        );
        // A disconnected peer is disconnected, not stalled.
        t.disconnected(peer);
        assert!(t.check_liveness(UnixMillis(60_000)).is_empty());
        assert!(!t.statuses(UnixMillis(60_000))[0].stalled);
        assert_eq!(
            stall_after(std::time::Duration::from_millis(300)),
            MIN_STALL_MS
        );
        assert_eq!(stall_after(std::time::Duration::from_secs(2)), 6_000);
    }

    #[test]
    fn a_later_announcer_cannot_take_a_dataset_over() {
        let (seeder, rogue) = (PeerId::random(), PeerId::random());
        let mut t = PeerTable::default();
        t.gossip(seeder, &announce(2), UnixMillis(1_000));
        t.gossip(rogue, &announce(5), UnixMillis(1_500));
        assert_eq!(
            t.open_datasets(UnixMillis(2_000)),
            vec![(DatasetId([1; 16]), seeder)]
        );
        // Once the seeder has been silent for the binding's lifetime, the id is free again.
        let later = UnixMillis(1_000 + BINDING_TTL_MS);
        t.gossip(rogue, &announce(5), later);
        assert_eq!(t.open_datasets(later), vec![(DatasetId([1; 16]), rogue)]);
    }

    #[test]
    fn the_tables_are_bounded_and_evict_the_stalest_first() {
        let mut t = PeerTable::default();
        let first = PeerId::random();
        t.connected(
            first,
            "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            UnixMillis(0),
        );
        for i in 0..(MAX_PEERS as u64 + 5) {
            t.stats(PeerId::random(), &NodeStats::default(), UnixMillis(10 + i));
        }
        assert_eq!(t.peers.len(), MAX_PEERS);
        assert!(
            t.peers.contains_key(&first),
            "a connected peer outlives idle ones"
        );
        for i in 0..(MAX_DATASETS as u64 + 5) {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&i.to_le_bytes());
            let g = crate::protocol::gossip::sample_dataset_advert(DatasetId(id), "d");
            t.gossip(PeerId::random(), &g, UnixMillis(100 + i));
        }
        assert_eq!(t.datasets.len(), MAX_DATASETS);
        let mut oldest = [0u8; 16];
        oldest[..8].copy_from_slice(&0u64.to_le_bytes());
        assert!(!t.datasets.contains_key(&DatasetId(oldest)));
    }
}
