//! A node's measured resources and activity (cores, memory, disk, rates, leases): what a node
//! advertises in heartbeats and bids, and what the bidding logic in [`super::bid`] reads. It lives
//! in `model` so the pure logic does not depend on the wire types; `protocol` re-exports it.

use serde::{Deserialize, Serialize};

/// A node's measured resources and activity, advertised in heartbeats and bids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Usable CPU cores.
    pub cores: u32,
    /// Total memory, bytes.
    pub mem_total: u64,
    /// Available memory, bytes.
    pub mem_free: u64,
    /// Free disk on the output filesystem, bytes.
    pub disk_free: u64,
    /// One-minute load average.
    pub load1: f64,
    /// Recent download rate, bytes/s.
    pub bytes_per_s: f64,
    /// Recent download rate, images/s.
    pub images_per_s: f64,
    /// Leases held now.
    pub leases_held: u32,
    /// Shards completed since start.
    pub shards_done: u64,
    /// How many more shards it could take now.
    pub free_slots: u32,
    /// Whether it takes work at all (`--no-work` seeders do not).
    pub works: bool,
    /// Whether it seeds at least one dataset.
    pub seeds: bool,
}
