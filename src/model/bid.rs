//! Resource-aware bidding: how much work a node may hold at once and how good a bid is,
//! derived from the `NodeStats` it advertises. Pure functions, documented formulas.
//!
//! **Capacity** has two numbers. *Downloads* (engine runs at once) is the minimum of
//! - disk: `disk_free / (expected_shard_bytes × 1.25)` — never take more than the disk holds
//!   with a 25 % margin;
//! - memory: `mem_free / 512 MiB` — one engine run (128 requests in flight, tar writer,
//!   shard rows) stays well under that;
//! - speed: `max(2, cores / 2) + floor(bytes_per_s / 25 MB/s)` — two cores per engine run but
//!   at least two runs (downloads wait on the network: a second shard fills the first one's
//!   tail), plus one slot per 25 MB/s of measured throughput, so faster peers get more leases;
//! - a hard cap of [`MAX_LEASES_PER_NODE`].
//!
//! *Leases* (held at once) is `min(disk bound, 2 × downloads)`: a finished shard still being
//! pushed back to its seeder holds its lease but no download slot, so a worker keeps
//! downloading while it uploads (one upload in flight per download slot). A node that does
//! not work (`works == false`) has capacity 0.
//!
//! **Score** (used to rank bids and to decide who may copy a slow shard at the tail) is the
//! expected throughput in bytes/s: the measured rate, or a prior of 2 MB/s per core before
//! any measurement, divided by `1 + overload` where `overload = max(0, load1 / cores − 1)`.

use crate::model::node_stats::NodeStats;

/// Memory budgeted per concurrent lease.
pub const MEM_PER_LEASE: u64 = 512 << 20;
/// Measured throughput that earns one extra lease slot, bytes/s.
pub const BYTES_PER_S_PER_SLOT: f64 = 25e6;
/// Prior throughput per core before anything was measured, bytes/s.
pub const PRIOR_BYTES_PER_S_PER_CORE: f64 = 2e6;
/// Upper bound on concurrent leases per node.
pub const MAX_LEASES_PER_NODE: u32 = 16;
/// Expected bytes per image before any shard completed (iNaturalist "medium" photos).
pub const DEFAULT_BYTES_PER_ROW: u64 = 200_000;

/// Disk margin over the expected shard size (archive + temp + results).
const DISK_MARGIN: f64 = 1.25;

/// What a node may take on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capacity {
    /// Shards downloading at once.
    pub downloads: u32,
    /// Leases held at once (downloading or being returned).
    pub leases: u32,
}

/// The capacity of a node with `stats` for shards of about `expected_shard_bytes`.
pub fn capacity(stats: &NodeStats, expected_shard_bytes: u64) -> Capacity {
    if !stats.works {
        return Capacity::default();
    }
    let need = (expected_shard_bytes.max(1) as f64) * DISK_MARGIN;
    let by_disk = whole(stats.disk_free as f64 / need);
    let by_mem = whole((stats.mem_free / MEM_PER_LEASE) as f64);
    let by_speed = whole(
        (stats.cores / 2).max(2) as f64 + (stats.bytes_per_s.max(0.0) / BYTES_PER_S_PER_SLOT),
    );
    let downloads = by_disk.min(by_mem).min(by_speed).min(MAX_LEASES_PER_NODE);
    Capacity {
        downloads,
        leases: by_disk.min(downloads.saturating_mul(2)),
    }
}

/// `x` rounded down to a whole number of slots (0 for anything not finite or negative).
fn whole(x: f64) -> u32 {
    if x.is_finite() && x > 0.0 {
        x.floor().min(u32::MAX as f64) as u32
    } else {
        0
    }
}

/// Expected throughput of a bidder in bytes/s (higher is better).
pub fn score(stats: &NodeStats) -> f64 {
    let cores = stats.cores.max(1) as f64;
    let rate = if stats.bytes_per_s > 0.0 {
        stats.bytes_per_s
    } else {
        cores * PRIOR_BYTES_PER_S_PER_CORE
    };
    let overload = (stats.load1 / cores - 1.0).max(0.0);
    rate / (1.0 + overload)
}

/// Expected bytes of a shard of `rows` rows given the average seen so far.
pub fn expected_shard_bytes(rows: u64, bytes_per_row: u64) -> u64 {
    rows.saturating_mul(bytes_per_row.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(cores: u32, mem_gib: u64, disk_gib: u64, bps: f64, load1: f64) -> NodeStats {
        NodeStats {
            cores,
            mem_total: mem_gib << 30,
            mem_free: mem_gib << 30,
            disk_free: disk_gib << 30,
            load1,
            bytes_per_s: bps,
            works: true,
            ..Default::default()
        }
    }

    #[test]
    fn capacity_never_exceeds_disk_or_memory() {
        let shard = 2u64 << 30; // 2 GiB shards
        let cap = |s: NodeStats| capacity(&s, shard);
        // Plenty of cores and speed, 5 GiB of disk: 5 / 2.5 = 2 shards, downloading or not.
        assert_eq!(
            cap(node(32, 64, 5, 1e9, 0.0)),
            Capacity {
                downloads: 2,
                leases: 2
            }
        );
        // 1 GiB free memory: 2 downloads of 512 MiB, and 2 more shards may be uploading.
        assert_eq!(
            cap(node(32, 1, 1000, 1e9, 0.0)),
            Capacity {
                downloads: 2,
                leases: 4
            }
        );
        // Not enough disk for one shard: nothing.
        assert_eq!(cap(node(32, 64, 2, 1e9, 0.0)), Capacity::default());
        // A non-worker takes nothing.
        let mut s = node(8, 8, 100, 0.0, 0.0);
        s.works = false;
        assert_eq!(capacity(&s, 1), Capacity::default());
    }

    #[test]
    fn faster_peers_get_more_leases() {
        let shard = 100 << 20;
        let slow = capacity(&node(4, 64, 1000, 5e6, 0.0), shard);
        let fast = capacity(&node(4, 64, 1000, 100e6, 0.0), shard);
        assert_eq!((slow.downloads, slow.leases), (2, 4));
        assert_eq!((fast.downloads, fast.leases), (6, 12));
        let huge = capacity(&node(256, 1024, 100_000, 1e12, 0.0), shard);
        assert_eq!(huge.downloads, MAX_LEASES_PER_NODE);
    }

    #[test]
    fn score_prefers_measured_speed_and_penalises_overload() {
        assert_eq!(score(&node(4, 8, 10, 0.0, 0.0)), 8e6);
        assert_eq!(score(&node(4, 8, 10, 30e6, 2.0)), 30e6);
        // Load 8 on 4 cores: overload 1 → half the rate.
        assert_eq!(score(&node(4, 8, 10, 30e6, 8.0)), 15e6);
        assert!(score(&node(2, 8, 10, 50e6, 0.0)) > score(&node(16, 8, 10, 10e6, 0.0)));
    }

    #[test]
    fn expected_bytes_scale_with_rows() {
        assert_eq!(
            expected_shard_bytes(10_000, DEFAULT_BYTES_PER_ROW),
            2_000_000_000
        );
        assert_eq!(expected_shard_bytes(10, 0), 10);
    }
}
