//! The values kept in the lease database (postcard-encoded).

use serde::{Deserialize, Serialize};

use crate::model::lease::{LeaseConfig, ShardEntry};
use crate::model::time::UnixMillis;
use crate::seed::SeededDataset;

/// A seeded dataset (as in its manifest) with its lease policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// Id, name, source, rows and shards.
    pub seeded: SeededDataset,
    /// Lease policy.
    pub lease: LeaseConfig,
    /// When it was first seeded.
    pub created_at: UnixMillis,
}

/// A shard's lease entry plus the outcome its completion reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// Lease state.
    pub entry: ShardEntry,
    /// Rows stored (once done).
    pub ok: u64,
    /// Rows failed (once done).
    pub failed: u64,
    /// Bytes stored (once done).
    pub bytes: u64,
}

impl ShardRecord {
    /// A record with no outcome yet.
    pub fn new(entry: ShardEntry) -> Self {
        Self {
            entry,
            ok: 0,
            failed: 0,
            bytes: 0,
        }
    }
}
