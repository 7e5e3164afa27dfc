//! Gossip: the adverts every node publishes on one gossipsub topic (who exists, which datasets
//! have work, who holds which lease). Informational only: every decision goes over a direct
//! control stream to the seeder (see [`super::control`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::ids::{DatasetId, Epoch, NodeId, ShardId, node_id_or_empty};
use crate::model::lease::ShardPhase;
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

/// A lease's state as gossip announces it. On the wire: its name (`leased`, `done`, `free`,
/// `failed`), as the untyped string of earlier builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Granted to the holder.
    Leased,
    /// Completed and stored.
    Done,
    /// Released or expired: open to a bid.
    Free,
    /// Out of retries.
    Failed,
}

impl LeaseState {
    /// Every state.
    pub const ALL: [LeaseState; 4] = [
        LeaseState::Leased,
        LeaseState::Done,
        LeaseState::Free,
        LeaseState::Failed,
    ];

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Leased => "leased",
            LeaseState::Done => "done",
            LeaseState::Free => "free",
            LeaseState::Failed => "failed",
        }
    }
}

impl From<ShardPhase> for LeaseState {
    /// A shard's phase as the state of its lease (the same four names).
    fn from(phase: ShardPhase) -> Self {
        match phase {
            ShardPhase::Free => LeaseState::Free,
            ShardPhase::Leased => LeaseState::Leased,
            ShardPhase::Done => LeaseState::Done,
            ShardPhase::Failed => LeaseState::Failed,
        }
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for LeaseState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LeaseState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        LeaseState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                serde::de::Error::unknown_variant(&text, &["leased", "done", "free", "failed"])
            })
    }
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
