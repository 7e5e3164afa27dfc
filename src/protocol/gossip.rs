//! Gossip: the adverts every node publishes on one gossipsub topic (who exists, which datasets
//! have work, who holds which lease). Informational only: every decision goes over a direct
//! control stream to the seeder (see [`super::control`]).

use serde::{Deserialize, Serialize};

use crate::model::ids::{DatasetId, Epoch, NodeId, ShardId, node_id_or_empty};
pub use crate::model::lease_state::LeaseState;
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
        /// Id of the announced dataset: what a worker names in its `Bid`.
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
        /// The dataset the lease belongs to.
        dataset: DatasetId,
        /// The shard whose lease changed.
        shard: ShardId,
        /// The holder (empty on the wire when there is none).
        #[serde(with = "node_id_or_empty")]
        holder: Option<NodeId>,
        /// Fencing epoch.
        epoch: Epoch,
        /// Expiry.
        expires_at: UnixMillis,
        /// What happened to the lease.
        state: LeaseState,
    },
}

/// A one-shard, one-row dataset advert sent at time 0: the sample the unit tests of the
/// gossip checks and the peer table feed in.
#[cfg(test)]
pub(crate) fn sample_dataset_advert(dataset: DatasetId, name: &str) -> Gossip {
    Gossip::Dataset {
        dataset,
        name: name.into(),
        shards_total: 1,
        shards_done: 0,
        shards_open: 1,
        shards_failed: 0,
        rows_total: 1,
        sent_at: UnixMillis(0),
    }
}
