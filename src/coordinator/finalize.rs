//! The seeder's side of a dataset's end: what the merge of each finished dataset needs,
//! copied out of the lease books and shard records ([`DatasetMerge`]); the merge itself, and
//! the merged files' schema, belong to [`crate::results::merge`]. The state asks for it as an
//! effect ([`Effect::Finalize`]), carried out off the actor.

use std::path::Path;

use super::CoordinatorError;
use super::effects::{Effect, Finalize, RequestId};
use super::state::SeederState;
use crate::layout::DataDir;
use crate::model::lease::{ShardEntry, ShardPhase};
use crate::results::{DatasetMerge, FailedShard, FinalReport, ResultsError, ShardSummary};
use crate::seed::SeededDataset;
use crate::store::ShardRecord;
use crate::verify::rows::is_safe_member;

impl SeederState {
    /// Asks for `results.parquet`, `overview.json` and `report.html` of every (finished)
    /// dataset to be written into `--out`, then the staging area cleared; answered with their
    /// reports.
    pub fn finalize(&self, to: RequestId) -> Vec<Effect> {
        let merges = self
            .datasets
            .values()
            .map(|d| {
                merge_of(
                    &self.cfg.out,
                    &self.cfg.data_dir,
                    &d.seeded,
                    d.book.shards(),
                    &d.records,
                )
            })
            .collect();
        vec![Effect::Finalize(Finalize { to, merges })]
    }
}

/// The merge of a dataset from its seeded rows (under `data_dir`), each shard's lease entry
/// and completion record, and the done shards' results files in `out`.
fn merge_of(
    out: &Path,
    data_dir: &Path,
    seeded: &SeededDataset,
    entries: &[ShardEntry],
    records: &[ShardRecord],
) -> DatasetMerge {
    let dir = DataDir::new(data_dir).dataset(seeded.id);
    let (shards, failed_shards) = summaries(seeded, entries, records);
    DatasetMerge {
        out: out.to_path_buf(),
        id: seeded.id.to_hex(),
        name: seeded.name.clone(),
        rows_total: seeded.rows_total,
        rows_files: (0..shards.len())
            .map(|i| dir.shard_rows(super::shard(i)))
            .collect(),
        shards,
        failed_shards,
        is_safe_member,
    }
}

/// Writes `<out>/results.parquet`, `overview.json` and `report.html` of a dataset (blocking):
/// what finalize does per dataset, public so the scale benchmark can drive it on a synthetic
/// finished run.
pub fn write_final_files(
    out: &Path,
    data_dir: &Path,
    seeded: &SeededDataset,
    shards: &[ShardEntry],
    records: &[ShardRecord],
) -> Result<FinalReport, CoordinatorError> {
    merge_of(out, data_dir, seeded, shards, records)
        .write()
        .map_err(finalize_error)
}

/// A merge failure as the coordinator reports it (`cannot write <file>: …`).
pub(super) fn finalize_error(e: ResultsError) -> CoordinatorError {
    match e {
        ResultsError::Io { path, source } => CoordinatorError::Io {
            path: path.display().to_string(),
            source,
        },
        ResultsError::Format { path, reason } => CoordinatorError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(reason),
        },
    }
}

/// Each shard's summary, and the shards that exhausted their retries.
fn summaries(
    seeded: &SeededDataset,
    entries: &[ShardEntry],
    records: &[ShardRecord],
) -> (Vec<ShardSummary>, Vec<FailedShard>) {
    let mut shards = Vec::new();
    let mut failed_shards = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let rec = records.get(i);
        let archive = seeded.archive_names.get(i).cloned().unwrap_or_default();
        if e.phase == ShardPhase::Failed {
            failed_shards.push(FailedShard {
                shard: super::shard(i),
                archive: archive.clone(),
                rows: e.rows,
                failures: e.failures,
                last_error: e.last_error.clone(),
            });
        }
        shards.push(ShardSummary {
            shard: super::shard(i),
            archive,
            state: e.phase.into(),
            rows: e.rows,
            ok: rec.map(|r| r.ok).unwrap_or(0),
            failed: rec.map(|r| r.failed).unwrap_or(0),
            bytes: rec.map(|r| r.bytes).unwrap_or(0),
            done_by: e.done_by,
            failures: e.failures,
        });
    }
    (shards, failed_shards)
}
