//! The report of a finished dataset, written as `<out>/overview.json` and returned to the node:
//! totals, failure kinds, a summary per shard and the shards that exhausted their retries.
//! Built by [`super::merge`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::model::ids::{NodeId, ShardId};
use crate::model::lease_state::LeaseState;

/// A shard that exhausted its retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedShard {
    /// The shard (its number in the overview).
    pub shard: ShardId,
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
    /// The shard (its number in the overview).
    pub shard: ShardId,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::seeded_node_id;
    use crate::model::lease::ShardPhase;

    /// The overview's shard entries keep the JSON of the untyped fields they replaced: the
    /// shard as its number, the state as its lowercase name, the completer as its peer id text.
    #[test]
    fn typed_shard_summaries_write_the_json_of_the_untyped_ones() {
        let by = seeded_node_id(5);
        let names = [
            (ShardPhase::Free, "free"),
            (ShardPhase::Leased, "leased"),
            (ShardPhase::Done, "done"),
            (ShardPhase::Failed, "failed"),
        ];
        for (phase, name) in names {
            let s = ShardSummary {
                shard: ShardId(7),
                archive: "ds-00007.tar".into(),
                state: phase.into(),
                rows: 10,
                ok: 8,
                failed: 2,
                bytes: 1_234,
                done_by: Some(by),
                failures: 1,
            };
            assert_eq!(
                serde_json::to_value(&s).unwrap(),
                serde_json::json!({
                    "shard": 7, "archive": "ds-00007.tar", "state": name, "rows": 10, "ok": 8,
                    "failed": 2, "bytes": 1234, "done_by": by.to_string(), "failures": 1,
                })
            );
        }
        let failed = FailedShard {
            shard: ShardId(3),
            archive: "ds-00003.tar".into(),
            rows: 4,
            failures: 2,
            last_error: None,
        };
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            serde_json::json!({
                "shard": 3, "archive": "ds-00003.tar", "rows": 4, "failures": 2, "last_error": null,
            })
        );
        let none = serde_json::to_value(ShardSummary {
            shard: ShardId(0),
            archive: String::new(),
            state: LeaseState::Free,
            rows: 0,
            ok: 0,
            failed: 0,
            bytes: 0,
            done_by: None,
            failures: 0,
        })
        .unwrap();
        assert_eq!(none["done_by"], serde_json::Value::Null);
    }
}
