//! The report of a finished dataset, written as `<out>/overview.json` and returned to the node:
//! totals, failure kinds, a summary per shard and the shards that exhausted their retries.
//! Built by [`super::merge`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::model::ids::NodeId;
use crate::protocol::gossip::LeaseState;

/// A shard that exhausted its retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedShard {
    /// Shard number, from 0.
    pub shard: u32,
    /// Its archive name (never written).
    pub archive: String,
    /// Rows it holds.
    pub rows: u64,
    /// Leases lost.
    pub failures: u32,
    /// The last reason.
    pub last_error: Option<String>,
}

/// The outcome of a finished dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinalReport {
    /// Dataset id (hex).
    pub dataset_id: String,
    /// Dataset name.
    pub name: String,
    /// Rows in the input.
    pub rows_total: u64,
    /// Rows stored.
    pub ok: u64,
    /// Rows failed (including those of failed shards).
    pub failed: u64,
    /// Rows skipped (null URL, interrupted).
    pub skipped: u64,
    /// Bytes stored (sum over done shards).
    pub bytes: u64,
    /// Shards in total.
    pub shards_total: u32,
    /// Shards whose archive and results were stored.
    pub shards_done: u32,
    /// Shards that exhausted their retries.
    pub failed_shards: Vec<FailedShard>,
    /// Failure kind → rows.
    pub error_breakdown: BTreeMap<String, u64>,
    /// Per shard: archive, status, rows, ok, failed, who did it.
    pub shards: Vec<ShardSummary>,
    /// `<out>/results.parquet`.
    pub results_path: PathBuf,
    /// Up to 20 failed rows (index, URL, error kind) for the report.
    pub failed_rows_sample: Vec<(u64, Option<String>, Option<String>)>,
    /// Files that could not be read (each with the reason); their rows are listed as failed.
    pub unreadable_files: Vec<String>,
}

/// One shard in the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardSummary {
    /// Shard number.
    pub shard: u32,
    /// Archive name.
    pub archive: String,
    /// Where it stands (`done` or `failed` once the dataset is finished), written as its name.
    pub state: LeaseState,
    /// Input rows assigned to the shard.
    pub rows: u64,
    /// Rows stored.
    pub ok: u64,
    /// Rows failed.
    pub failed: u64,
    /// Image bytes stored in its archive.
    pub bytes: u64,
    /// Peer that completed it (its base58 text in the overview).
    pub done_by: Option<NodeId>,
    /// Leases lost before it finished or failed.
    pub failures: u32,
}
