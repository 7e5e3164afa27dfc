//! What one engine run produced, as the results file and the summaries see it: one
//! [`RowResult`] per row handled and the run's [`ShardReport`]. Defined here, below the engine,
//! so the results writer, the verifier and the coordinator use them without depending on the
//! engine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowStatus {
    /// Downloaded and stored in the archive.
    Ok,
    /// Every attempt failed; see the error kind and message.
    Failed,
    /// Not attempted (null/empty URL, or interrupted before it started).
    Skipped,
}

/// One line of the per-row results file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowResult {
    /// 0-based row index in the original dataset.
    pub index: u64,
    /// The URL as given in the input (`None` for a null cell).
    pub url: Option<String>,
    /// The class label as given.
    pub class: Option<String>,
    /// Outcome.
    pub status: RowStatus,
    /// Final HTTP status, if a response was received.
    pub http_status: Option<u16>,
    /// Short machine-readable failure kind (`http_404`, `timeout`, `too_large`, `not_image`…).
    pub error_kind: Option<String>,
    /// Human-readable failure message.
    pub error_message: Option<String>,
    /// Bytes stored.
    pub bytes: u64,
    /// Hex sha256 of the stored bytes.
    pub sha256: Option<String>,
    /// Member path inside the archive.
    pub member: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// Wall time spent on the row, in milliseconds.
    pub elapsed_ms: u64,
}

/// The summary of one engine run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardReport {
    /// Rows in the input.
    pub rows_total: u64,
    /// Rows stored (including those carried over by `--resume`).
    pub ok: u64,
    /// Rows that failed.
    pub failed: u64,
    /// Rows skipped.
    pub skipped: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// True when the run was cut short by cancellation (the outputs are valid and resumable).
    pub interrupted: bool,
    /// The archive written.
    pub archive_path: PathBuf,
    /// Its size in bytes.
    pub archive_size: u64,
    /// Its hex sha256 (`None` when the run did not hash it).
    pub archive_sha256: Option<String>,
    /// The per-row results file written.
    pub results_path: PathBuf,
    /// Failure kind → number of rows.
    pub error_breakdown: BTreeMap<String, u64>,
    /// Rows stored by a previous run and carried over by `--resume` (included in `ok`).
    #[serde(default)]
    pub carried_over: u64,
    /// The first failed rows (lowest indexes, at most [`FAILED_ROWS_LISTED`]).
    #[serde(default)]
    pub failed_rows: Vec<FailedRow>,
}

/// Failed rows kept for the summary.
pub const FAILED_ROWS_LISTED: usize = 20;

/// One failed row, as listed in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRow {
    /// 0-based row index in the input.
    pub index: u64,
    /// The URL as given in the input (`None` for a null cell).
    pub url: Option<String>,
    /// The failure kind (`http_404`, `timeout_first_byte`…).
    pub error_kind: Option<String>,
}

impl ShardReport {
    /// Rows of the input never attempted (an interrupted run): `--resume` picks them up.
    pub fn not_attempted(&self) -> u64 {
        self.rows_total
            .saturating_sub(self.ok + self.failed + self.skipped)
    }

    /// Stored rows as a percentage of the rows attempted (ok + failed; skipped rows had no URL
    /// or were never started). 0 when nothing was attempted.
    pub fn success_rate_percent(&self) -> f64 {
        let attempted = self.ok + self.failed;
        if attempted == 0 {
            0.0
        } else {
            self.ok as f64 * 100.0 / attempted as f64
        }
    }
}
