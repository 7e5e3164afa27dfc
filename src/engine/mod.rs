//! The acquisition engine's public contract: turn one shard of `UrlRow`s into one archive
//! organised by class, a per-row results file and an overview JSON. `ldawt download` runs it on
//! a local file; a swarm worker runs it on a leased shard. The implementation lives in the
//! submodules (`run`: the pipeline, `row`: one row's retries, `writer`: the archive/results
//! thread, `resume`: carrying a previous run over); this file holds the types every caller
//! relies on.

mod filter;
mod format;
mod options;
mod parquet_sink;
mod post;
mod resize;
mod resume;
pub mod retry_failed;
mod row;
mod run;
mod verify;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::input::RowBatches;

pub use format::{SAMPLE_KEYS, classes_path, sample_key};
pub use options::{
    EncodeFormat, HashAlgorithm, HashCheck, ImageFilters, OutputFormat, PROJECT_URL, ResizeMode,
    ResizeOptions, check_user_agent_token, default_user_agent, parse_columns, resize_plan,
    user_agent_with_token,
};
pub use parquet_sink::images_schema;

// Defined below the engine (the layers it drives use them); re-exported as part of its contract.
pub use crate::archive::{Compression, archive_stem, overview_path, results_path};
pub use crate::results::{FAILED_ROWS_LISTED, FailedRow, RowResult, RowStatus, ShardReport};

/// Tuning of one engine run. `Default` gives production defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Requests in flight at once, across all hosts.
    pub concurrency: usize,
    /// Connections (requests in flight) per host.
    pub per_host: usize,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed from sending the request to the response headers.
    pub first_byte_timeout: Duration,
    /// Longest pause allowed between two body chunks.
    pub idle_timeout: Duration,
    /// Time allowed for one attempt, end to end.
    pub total_timeout: Duration,
    /// Bodies larger than this are rejected while streaming.
    pub max_file_size: u64,
    /// Attempts per row for retryable failures (1 = no retry).
    pub max_attempts: u32,
    /// Accepted `Content-Type` patterns (`image/*` style); an HTML page served with 200 fails.
    pub accept_types: Vec<String>,
    /// Archive compression; `None` means "from the output file name".
    pub compression: Option<Compression>,
    /// User-Agent header.
    pub user_agent: String,
    /// Compute the archive's sha256 while writing it (needed to ship it to a seeder; costs a
    /// full extra pass over the bytes).
    pub hash_archive: bool,
    /// Refuse to connect to internal addresses (loopback, private, CGNAT, link-local,
    /// multicast, unique-local…), checked after DNS resolution, for IP-literal URLs and for
    /// every redirect; such rows fail as `blocked_address`. Swarm workers set it for rows of a
    /// remote seeder so a rogue seeder cannot probe the worker's internal network.
    #[serde(default)]
    pub block_private_addresses: bool,
    /// Write failed rows' messages as their error kind and HTTP status only (results sent to a
    /// remote seeder: raw texts name internal hosts, addresses and ports).
    #[serde(default)]
    pub redact_error_messages: bool,
    /// `X-Robots-Tag` directives (lower-case) that stop a body from being stored: the row is
    /// skipped as `opted_out`. Empty: opt-outs are not checked.
    #[serde(default = "default_disallowed")]
    pub disallowed_header_directives: Vec<String>,
    /// The user's contact, added to the User-Agent's comment.
    #[serde(default)]
    pub user_agent_token: Option<String>,
    /// Compare each body's digest with an input column (`hash_mismatch` rows are not stored).
    #[serde(default)]
    pub verify_hash: Option<HashCheck>,
    /// Input columns carried into the results file (and the webdataset `.json`).
    #[serde(default)]
    pub extra_cols: Vec<String>,
    /// The output layout.
    #[serde(default)]
    pub format: OutputFormat,
    /// Limits on the images' dimensions (rows outside them are skipped, not stored).
    #[serde(default)]
    pub filters: ImageFilters,
    /// Resizing and re-encoding (off by default).
    #[serde(default)]
    pub resize: ResizeOptions,
    /// Webdataset caption column: each sample gets `KEY.txt` (and `caption` in its `.json`).
    #[serde(default)]
    pub caption_col: Option<String>,
    /// Fetch each origin's robots.txt once and skip the rows it disallows for `ldawt`
    /// (`robots_disallowed`) without requesting them.
    #[serde(default)]
    pub respect_robots_txt: bool,
    /// With `ShardJob::resume`: also keep the previous run's final outcomes (404, not an
    /// image, opted out, filtered…) and retry only rows that failed retryably or never ran.
    #[serde(default)]
    pub retry_failed: bool,
    /// Webdataset class table fixed ahead (id = position): a seeder computes it over the whole
    /// dataset so every worker's `.cls` agrees. Empty: ids in order of first appearance.
    #[serde(default)]
    pub class_names: Vec<String>,
}

fn default_disallowed() -> Vec<String> {
    crate::fetch::robots_tag::DEFAULT_DISALLOWED
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl EngineConfig {
    /// The input columns a run needs besides the URL and class: the extra columns, then the
    /// hash column and the caption column if they are not among them.
    /// [`crate::input::UrlRow::extra`] holds their values in this order.
    pub fn input_columns(&self) -> Vec<String> {
        let mut cols = self.extra_cols.clone();
        let more = [
            self.verify_hash.as_ref().map(|c| &c.column),
            self.caption_col.as_ref(),
        ];
        for c in more.into_iter().flatten() {
            if !cols.contains(c) {
                cols.push(c.clone());
            }
        }
        cols
    }

    /// The User-Agent header sent: [`Self::user_agent`] with the token, if any.
    pub fn effective_user_agent(&self) -> String {
        user_agent_with_token(&self.user_agent, self.user_agent_token.as_deref())
    }

    /// The settings recorded in the run's overview JSON.
    pub fn overview_settings(&self) -> crate::results::overview::OverviewSettings {
        use serde_json::json;
        let script_inputs = [
            ("concurrent_downloads", json!(self.concurrency)),
            ("per_host", json!(self.per_host)),
            ("timeout", json!(self.total_timeout.as_secs_f64())),
            ("max_file_size", json!(self.max_file_size)),
            ("max_attempts", json!(self.max_attempts)),
        ];
        crate::results::overview::OverviewSettings {
            script_inputs: script_inputs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            dataset_options: json!({
                "format": self.format,
                "user_agent": self.effective_user_agent(),
                "disallowed_header_directives": self.disallowed_header_directives,
                "verify_hash": self.verify_hash,
                "extra_cols": self.extra_cols,
                "filters": self.filters,
                "resize": self.resize,
            }),
        }
    }

    /// The fetcher's part of this configuration.
    pub fn fetch_config(&self) -> crate::fetch::FetchConfig {
        crate::fetch::FetchConfig {
            per_host: self.per_host,
            connect_timeout: self.connect_timeout,
            first_byte_timeout: self.first_byte_timeout,
            idle_timeout: self.idle_timeout,
            total_timeout: self.total_timeout,
            max_file_size: self.max_file_size,
            accept_types: self.accept_types.clone(),
            user_agent: self.effective_user_agent(),
            block_private_addresses: self.block_private_addresses,
            disallowed_header_directives: self.disallowed_header_directives.clone(),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            concurrency: 128,
            per_host: 128,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(120),
            max_file_size: 500 * 1024 * 1024,
            max_attempts: 4,
            accept_types: vec!["image/*".to_string()],
            compression: None,
            user_agent: default_user_agent(),
            hash_archive: true,
            block_private_addresses: false,
            redact_error_messages: false,
            disallowed_header_directives: default_disallowed(),
            user_agent_token: None,
            verify_hash: None,
            extra_cols: Vec::new(),
            format: OutputFormat::Classdirs,
            filters: ImageFilters::default(),
            resize: ResizeOptions::default(),
            caption_col: None,
            respect_robots_txt: false,
            retry_failed: false,
            class_names: Vec::new(),
        }
    }
}

/// One shard to acquire.
pub struct ShardJob {
    /// Where the rows come from.
    pub rows: Box<dyn RowBatches>,
    /// The final archive path (`out/shard.tar.gz`); the results and overview files are written
    /// next to it (see [`results_path`], [`overview_path`]).
    pub archive_path: PathBuf,
    /// Skip rows already recorded as ok by a previous run and keep their bytes.
    pub resume: bool,
}

/// Live counters of a running shard, shared with reporters and the swarm's throughput adverts.
#[derive(Debug, Default)]
pub struct ShardCounters {
    /// Rows finished (any status).
    pub rows_done: AtomicU64,
    /// Rows stored.
    pub ok: AtomicU64,
    /// Rows failed.
    pub failed: AtomicU64,
    /// Bytes stored.
    pub bytes: AtomicU64,
    /// Total rows, once known.
    pub rows_total: AtomicU64,
    /// 429/503 answers received (a swarm worker reports them to its seeder).
    pub throttled: AtomicU64,
}

impl ShardCounters {
    /// A fresh, shareable set of counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Reads (rows_done, ok, failed, bytes, rows_total).
    pub fn snapshot(&self) -> (u64, u64, u64, u64, u64) {
        (
            self.rows_done.load(Ordering::Relaxed),
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.rows_total.load(Ordering::Relaxed),
        )
    }
}

/// Failures that stop a whole run (a single bad URL never does).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The input could not be read.
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    /// The output could not be written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// The file concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The results file could not be read or written.
    #[error(transparent)]
    Results(#[from] crate::results::ResultsError),
    /// `--resume` found a row whose URL differs from the one the previous run stored under
    /// the same index: the input changed, so the previous outputs cannot be continued.
    #[error(
        "--resume: row {index} of the input is not the row the previous run stored (the input \
         changed); run without --resume to start over"
    )]
    ResumeMismatch {
        /// The row index.
        index: u64,
    },
    /// The HTTP client or the runtime failed (not a per-row failure).
    #[error("{0}")]
    Http(String),
}

/// Runs one shard to completion (or until `cancel` fires, in which case the archive and the
/// results written so far are still valid and `--resume` continues from them).
pub async fn run_shard(
    job: ShardJob,
    cfg: &EngineConfig,
    counters: Arc<ShardCounters>,
    cancel: CancellationToken,
) -> Result<ShardReport, EngineError> {
    run::run(job, cfg, counters, cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Swarm workers spawn shard runs on the runtime: the future must be `Send`.
    #[allow(dead_code)]
    fn run_shard_future_is_send(
        job: ShardJob,
        cfg: &EngineConfig,
        counters: Arc<ShardCounters>,
        cancel: CancellationToken,
    ) {
        fn is_send<T: Send>(_: T) {}
        is_send(run_shard(job, cfg, counters, cancel));
    }
}
