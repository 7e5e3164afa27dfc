//! The values kept in the lease database (postcard-encoded).

use serde::{Deserialize, Serialize};

use crate::model::ids::DatasetId;
use crate::model::lease::{LeaseConfig, ShardEntry};
use crate::model::time::UnixMillis;

/// A seeded dataset: where it came from, how it was cut, and its lease policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// Its id.
    pub id: DatasetId,
    /// Human name (seed file or directory stem).
    pub name: String,
    /// The seed path as given.
    pub source: String,
    /// Rows in total.
    pub rows_total: u64,
    /// Rows per shard, by shard number.
    pub shard_rows: Vec<u64>,
    /// Archive file name per shard.
    pub archive_names: Vec<String>,
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
