//! Gossip: the adverts every node publishes on one gossipsub topic (who exists, which datasets
//! have work, who holds which lease). Informational only: every decision goes over a direct
//! control stream to the seeder (see [`super::control`]).

use serde::{Deserialize, Serialize};

use crate::model::ids::{DatasetId, ShardId};
use crate::model::node_stats::NodeStats;
use crate::model::time::UnixMillis;

/// The gossipsub topic every node subscribes to.
pub const GOSSIP_TOPIC: &str = "ldawt/announce/1";
/// Largest encoded gossip message (gossipsub's own default cap is 64 KiB).
pub const MAX_GOSSIP_BYTES: usize = 60 << 10;

/// A gossip announcement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Gossip {
    /// "I exist": periodic, carries a nonce so identical repeats are not deduplicated away.
    Heartbeat {
        /// The sender's stats.
        stats: NodeStats,
        /// Random per message.
        nonce: u64,
        /// Sender's clock.
        sent_at: UnixMillis,
    },
    /// A seeder's dataset and its progress.
    Dataset {
        /// The dataset.
        dataset: DatasetId,
        /// Human name (seed file name).
        name: String,
        /// Shards in total.
        shards_total: u32,
        /// Shards verified and stored.
        shards_done: u32,
        /// Shards waiting for a worker (free, or eligible for a speculative copy).
        shards_open: u32,
        /// Shards that exhausted their retries.
        shards_failed: u32,
        /// Rows in total.
        rows_total: u64,
        /// Sender's clock.
        sent_at: UnixMillis,
    },
    /// A lease changed hands or state (informational: the seeder's redb is the authority).
    Lease {
        /// The dataset.
        dataset: DatasetId,
        /// The shard.
        shard: ShardId,
        /// Holder's peer id (base58), empty when released.
        holder: String,
        /// Fencing epoch.
        epoch: u64,
        /// Expiry.
        expires_at: UnixMillis,
        /// `leased`, `done`, `free`, `failed`.
        state: String,
    },
}
