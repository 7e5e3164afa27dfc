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

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::input::RowBatches;

pub use format::{SAMPLE_KEYS, classes_path, sample_key};
pub use options::{
    EncodeFormat, HashAlgorithm, HashCheck, ImageFilters, OutputFormat, ResizeMode, ResizeOptions,
    parse_columns, resize_plan,
};
pub use parquet_sink::images_schema;

// Defined below the engine (the layers it drives use them); re-exported as part of its contract.
pub use crate::archive::{Compression, archive_stem, overview_path, results_path};
pub use crate::fetch::{
    FetchConfig, PROJECT_URL, check_user_agent_token, default_user_agent, user_agent_with_token,
};
pub use crate::results::{FAILED_ROWS_LISTED, FailedRow, RowResult, RowStatus, ShardReport};

/// Tuning of one engine run. `Default` gives production defaults.
///
/// Serialized as one flat JSON object: the fetcher's fields ([`FetchConfig`]) sit beside the
/// engine's own, as they did before the fetcher's part had a type of its own (not for postcard:
/// the wire carries [`crate::protocol::settings::DatasetSettings`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// What the fetcher needs: per-host cap, timeouts, largest file, accepted types,
    /// User-Agent and token, address guard, opt-out directives.
    #[serde(flatten)]
    pub fetch: FetchConfig,
    /// Requests in flight at once, across all hosts.
    pub concurrency: usize,
    /// Attempts per row for retryable failures (1 = no retry).
    pub max_attempts: u32,
    /// Archive compression; `None` means "from the output file name".
    pub compression: Option<Compression>,
    /// Compute the archive's sha256 while writing it (needed to ship it to a seeder; costs a
    /// full extra pass over the bytes).
    pub hash_archive: bool,
    /// Write failed rows' messages as their error kind and HTTP status only (results sent to a
    /// remote seeder: raw texts name internal hosts, addresses and ports).
    #[serde(default)]
    pub redact_error_messages: bool,
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

    /// The settings recorded in the run's overview JSON.
    pub fn overview_settings(&self) -> crate::results::overview::OverviewSettings {
        use serde_json::json;
        let script_inputs = [
            ("concurrent_downloads", json!(self.concurrency)),
            ("per_host", json!(self.fetch.per_host)),
            ("timeout", json!(self.fetch.total_timeout.as_secs_f64())),
            ("max_file_size", json!(self.fetch.max_file_size)),
            ("max_attempts", json!(self.max_attempts)),
        ];
        crate::results::overview::OverviewSettings {
            script_inputs: script_inputs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            dataset_options: json!({
                "format": self.format,
                "user_agent": self.fetch.user_agent_header(),
                "disallowed_header_directives": self.fetch.disallowed_header_directives,
                "verify_hash": self.verify_hash,
                "extra_cols": self.extra_cols,
                "filters": self.filters,
                "resize": self.resize,
            }),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            fetch: FetchConfig::default(),
            concurrency: 128,
            max_attempts: 4,
            compression: None,
            hash_archive: true,
            redact_error_messages: false,
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

    /// An engine configuration as JSON written before the fetcher's part was a type of its
    /// own (`EngineConfig::default()` with a token and the address guard, captured then).
    const FLAT_JSON: &str = r#"{"concurrency":128,"per_host":128,"connect_timeout":{"secs":10,"nanos":0},"first_byte_timeout":{"secs":30,"nanos":0},"idle_timeout":{"secs":30,"nanos":0},"total_timeout":{"secs":120,"nanos":0},"max_file_size":524288000,"max_attempts":4,"accept_types":["image/*"],"compression":null,"user_agent":"ldawt/0.1.0 (+https://github.com/ldawt/ldawt)","hash_archive":true,"block_private_addresses":true,"redact_error_messages":false,"disallowed_header_directives":["noai","noimageai","noindex","noimageindex"],"user_agent_token":"me@example.org","verify_hash":null,"extra_cols":[],"format":"Classdirs","filters":{"min_image_size":null,"max_image_area":null,"max_aspect_ratio":null},"resize":{"mode":"No","image_size":256,"only_if_bigger":false,"encode_format":"Jpg","encode_quality":95},"caption_col":null,"respect_robots_txt":false,"retry_failed":false,"class_names":[]}"#;

    #[test]
    fn the_json_of_an_engine_configuration_keeps_its_flat_shape() {
        let read: EngineConfig = serde_json::from_str(FLAT_JSON).unwrap();
        let mut want = EngineConfig::default();
        want.fetch.user_agent = "ldawt/0.1.0 (+https://github.com/ldawt/ldawt)".into();
        want.fetch.user_agent_token = Some("me@example.org".into());
        want.fetch.block_private_addresses = true;
        assert_eq!(read, want);
        assert_eq!(
            read.fetch.user_agent_header(),
            "ldawt/0.1.0 (+https://github.com/ldawt/ldawt; me@example.org)"
        );
        // Written back: the same keys and values (no nested `fetch` object).
        let flat: serde_json::Value = serde_json::from_str(FLAT_JSON).unwrap();
        assert_eq!(serde_json::to_value(&read).unwrap(), flat);
        // Fields added later still default when absent.
        let mut older = flat.clone();
        let fields = older.as_object_mut().unwrap();
        for k in [
            "block_private_addresses",
            "disallowed_header_directives",
            "user_agent_token",
        ] {
            fields.remove(k);
        }
        let read: EngineConfig = serde_json::from_value(older).unwrap();
        assert!(!read.fetch.block_private_addresses && read.fetch.user_agent_token.is_none());
        assert_eq!(
            read.fetch.disallowed_header_directives,
            EngineConfig::default().fetch.disallowed_header_directives
        );
    }
}
