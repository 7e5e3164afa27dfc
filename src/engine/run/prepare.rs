//! A row read from the input, made ready in input order: compared with the run being resumed,
//! its side data (extra cells, class id, caption) and member name fixed, its URL parsed and
//! registered with its host. What the fetch needs is queued; the rest is recorded at once.
//!
//! Everything that depends on input order (class ids by first appearance, member names of
//! clashing stems) happens here, so the fetches may run in another order.

use std::collections::HashMap;
use std::path::PathBuf;

use super::super::format::{ClassIds, RowSide};
use super::super::post::Expected;
use super::super::resume::url_key;
use super::super::row::RowJob;
use super::super::writer::WriterMsg;
use super::super::{EngineConfig, HashAlgorithm, OutputFormat, RowResult, RowStatus, sample_key};
use crate::fetch::hosts::{HostGates, host_key};
use crate::input::UrlRow;
use crate::model::naming::{ClassFolders, NameSet, url_stem};

/// A row ready to fetch.
pub(crate) struct Queued {
    pub(crate) job: RowJob,
    /// `--verify-hash`: the digest the row's body must have.
    pub(crate) expected: Option<Expected>,
}

/// What to do with a row read.
pub(crate) enum Then {
    /// Stored by the run being resumed: nothing.
    Carried,
    /// The run being resumed stored another URL at this index.
    Mismatch(u64),
    /// Not fetchable (empty or invalid URL): this result.
    Record(WriterMsg),
    /// Queue its fetch.
    Fetch(Queued),
}

/// A prepared row: its side data for the writer (sent first) and what follows.
pub(crate) struct Prep {
    pub(crate) side: Option<WriterMsg>,
    pub(crate) then: Then,
}

/// Input-order state of a run's row preparation.
pub(crate) struct Preparer {
    done: HashMap<u64, u64>,
    names: NameSet,
    folders: ClassFolders,
    pub(crate) class_ids: ClassIds,
    top: String,
    spill_dir: PathBuf,
    spill_prefix: String,
    webdataset: bool,
    needs_side: bool,
    extra_cols: usize,
    caption_pos: Option<usize>,
    /// `--verify-hash`: where the expected digest sits in each row's extra cells.
    hash_check: Option<(usize, HashAlgorithm, String)>,
}

fn record(row: &UrlRow, status: RowStatus, kind: &str, message: String) -> WriterMsg {
    WriterMsg::Record(RowResult {
        index: row.index,
        url: row.url.clone(),
        class: row.class.clone(),
        status,
        http_status: None,
        error_kind: Some(kind.to_string()),
        error_message: Some(message),
        bytes: 0,
        sha256: None,
        member: None,
        attempts: 0,
        elapsed_ms: 0,
    })
}

/// Parses a row's URL; only absolute http(s) URLs with a host are fetchable.
fn parse_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported URL scheme '{}'", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("URL without a host".to_string());
    }
    Ok(url)
}

impl Preparer {
    /// The preparation state of a run writing under `top` (spill files in `spill_dir`).
    pub(crate) fn new(
        cfg: &EngineConfig,
        (done, names, folders): (HashMap<u64, u64>, NameSet, ClassFolders),
        top: String,
        (spill_dir, spill_prefix): (PathBuf, String),
    ) -> Self {
        let webdataset = cfg.format == OutputFormat::Webdataset;
        let columns = cfg.input_columns();
        Self {
            done,
            names,
            folders,
            class_ids: ClassIds::with_names(&cfg.class_names),
            top,
            spill_dir,
            spill_prefix,
            webdataset,
            needs_side: webdataset || !cfg.extra_cols.is_empty(),
            extra_cols: cfg.extra_cols.len(),
            caption_pos: cfg
                .caption_col
                .as_ref()
                .and_then(|c| columns.iter().position(|x| x == c)),
            hash_check: cfg.verify_hash.as_ref().and_then(|c| {
                let pos = columns.iter().position(|x| *x == c.column)?;
                Some((pos, c.algorithm, c.column.clone()))
            }),
        }
    }

    /// Prepares one row, in input order; a fetchable row is registered with its host.
    pub(crate) fn row(&mut self, row: UrlRow, gates: &HostGates) -> Prep {
        if let Some(key) = self.done.get(&row.index) {
            let then = if *key == url_key(row.url.as_deref()) {
                // A carried-over row still takes its class id, so the table (first
                // appearance in input order) is the one a clean run writes.
                if self.webdataset {
                    self.class_ids.id(row.class.as_deref());
                }
                Then::Carried
            } else {
                Then::Mismatch(row.index)
            };
            return Prep { side: None, then };
        }
        let side = self.needs_side.then(|| {
            let caption = self
                .caption_pos
                .and_then(|p| row.extra.get(p).cloned().flatten());
            let mut extra = row.extra.clone();
            extra.truncate(self.extra_cols);
            let class_id = if self.webdataset {
                self.class_ids.id(row.class.as_deref())
            } else {
                None
            };
            WriterMsg::Side {
                index: row.index,
                side: RowSide {
                    extra,
                    class_id,
                    dims: None,
                    caption,
                },
            }
        });
        let text = row.url.as_deref().map(str::trim).unwrap_or("");
        if text.is_empty() {
            let msg = record(
                &row,
                RowStatus::Skipped,
                "empty_url",
                "the URL cell is empty".into(),
            );
            return Prep {
                side,
                then: Then::Record(msg),
            };
        }
        let url = match parse_url(text) {
            Ok(url) => url,
            Err(message) => {
                let msg = record(&row, RowStatus::Failed, "invalid_url", message);
                return Prep {
                    side,
                    then: Then::Record(msg),
                };
            }
        };
        let member_base = if self.webdataset {
            sample_key(row.index)
        } else {
            let folder = self.folders.folder(row.class.as_deref()).to_string();
            let stem = self.names.claim(&folder, &url_stem(text), row.index);
            format!("{}/{folder}/{stem}", self.top)
        };
        let expected = self
            .hash_check
            .as_ref()
            .and_then(|(pos, algorithm, column)| {
                let cell = row.extra.get(*pos)?.as_deref()?.trim();
                (!cell.is_empty()).then(|| (*algorithm, column.clone(), cell.to_string()))
            });
        let job = RowJob {
            index: row.index,
            url_text: text.to_string(),
            host: gates.enqueue(&host_key(&url)),
            url,
            class: row.class,
            member_base,
            spill: self
                .spill_dir
                .join(format!("{}-{}", self.spill_prefix, row.index)),
        };
        Prep {
            side,
            then: Then::Fetch(Queued { job, expected }),
        }
    }
}
