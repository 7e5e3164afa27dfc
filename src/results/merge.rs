//! The end of a dataset: `<out>/results.parquet` with one row per input row exactly once (URL,
//! class, status, archive, member, error kind), built from the seeded shard rows and the
//! shards' results files, plus `<out>/overview.json` merging every shard ([`FinalReport`]) and
//! `report.html`. Rows of a shard that exhausted its retries are listed as failed with
//! `error_kind = "shard_failed"`. The seeder asks for it ([`DatasetMerge`]) once every shard
//! is done or failed; this module owns the merged file's schema.
//!
//! One bad file never stops it: a shard results file in `--out` that cannot be read (garbage,
//! truncated, deleted) is named in the report and the log, and its rows are listed as failed
//! with `error_kind = "results_unreadable"`; a member name that is not a safe
//! `<shard>/<folder>/<file>` path is never copied (the row is failed as `unverified`). So a
//! rerun always finishes.
//!
//! A retry round of a shard (see [`crate::coordinator::retry_rounds`]) is stored beside it as
//! `<stem>-r<N>.<ext>`; its outcomes are laid over the earlier ones, newest last.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::dataset_report::{FailedShard, FinalReport, ShardSummary};
use super::report_html::RunFigures;
use super::{ResultsError, read_results, status_text};
use crate::archive::{archive_stem, results_path};
use crate::input::UrlRow;
use crate::layout::OutDir;
use crate::model::lease_state::LeaseState;
use crate::seed::rowfile;

/// Rows per row group of `results.parquet` (bounds the writer's buffered pages).
pub const FINAL_ROW_GROUP_ROWS: usize = 65_536;

/// Most retry rounds looked for per shard.
const MAX_ROUNDS: u32 = 1000;

/// The archive name of round `round` of the shard whose archive is `base`.
pub fn round_archive(base: &str, round: u32) -> String {
    let stem = archive_stem(Path::new(base));
    let ext = &base[stem.len().min(base.len())..];
    format!("{stem}-r{round}{ext}")
}

/// The archive names of the rounds of `base` stored in `out`, oldest first.
pub fn stored_rounds(out: &Path, base: &str) -> Vec<String> {
    (1..=MAX_ROUNDS)
        .map(|r| round_archive(base, r))
        .take_while(|name| results_path(&OutDir::new(out).archive(name)).exists())
        .collect()
}

struct Outcome {
    status: &'static str,
    member: Option<String>,
    error_kind: Option<String>,
    /// The archive holding the member when it is not the shard's own (a retry round's).
    archive: Option<String>,
}

/// Everything the merge of one finished dataset needs, copied out of the seeder.
#[derive(Debug, Clone)]
pub struct DatasetMerge {
    /// The `--out` directory holding the shards' results files.
    pub out: PathBuf,
    /// Dataset id (hex).
    pub id: String,
    /// Dataset name.
    pub name: String,
    /// Rows in the input.
    pub rows_total: u64,
    /// Every shard, in order.
    pub shards: Vec<ShardSummary>,
    /// The shards that exhausted their retries.
    pub failed_shards: Vec<FailedShard>,
    /// Each shard's seeded rows file, in shard order.
    pub rows_files: Vec<PathBuf>,
    /// Whether a member name is a safe path under the archive's top folder (the delivery
    /// rules of [`crate::verify`]; an unsafe one is never listed).
    pub is_safe_member: fn(&str, &str) -> bool,
}

impl DatasetMerge {
    /// Writes `<out>/results.parquet`, `overview.json` and `report.html` (blocking).
    pub fn write(self) -> Result<FinalReport, ResultsError> {
        let out = self.out.as_path();
        let results = OutDir::new(out).results();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source: std::io::Error| ResultsError::Io { path, source }
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("index", DataType::UInt64, false),
            Field::new("url", DataType::Utf8, true),
            Field::new("class", DataType::Utf8, true),
            Field::new("status", DataType::Utf8, false),
            Field::new("archive", DataType::Utf8, true),
            Field::new("member", DataType::Utf8, true),
            Field::new("error_kind", DataType::Utf8, true),
        ]));
        let tmp = results.with_extension("parquet.tmp");
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(FINAL_ROW_GROUP_ROWS))
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| io(&tmp)(std::io::Error::other(e)))?;
        let mut report = FinalReport {
            dataset_id: self.id.clone(),
            name: self.name.clone(),
            rows_total: self.rows_total,
            ok: 0,
            failed: 0,
            skipped: 0,
            bytes: self.shards.iter().map(|s| s.bytes).sum(),
            shards_total: self.shards.len() as u32,
            shards_done: self
                .shards
                .iter()
                .filter(|s| s.state == LeaseState::Done)
                .count() as u32,
            failed_shards: self.failed_shards.clone(),
            error_breakdown: BTreeMap::new(),
            shards: self.shards.clone(),
            results_path: results.clone(),
            failed_rows_sample: Vec::new(),
            unreadable_files: Vec::new(),
        };
        // The report page's figures, gathered in the same pass (each results file read once).
        let mut figures = RunFigures::default();
        // A reader thread loads the next shards (rows and results files) while this one
        // encodes the current one; at most `LOAD_AHEAD` shards wait in between.
        std::thread::scope(|scope| -> Result<(), ResultsError> {
            let (tx, rx) = std::sync::mpsc::sync_channel(LOAD_AHEAD);
            let shards = &self.shards;
            let rows_files = &self.rows_files;
            let safe = self.is_safe_member;
            scope.spawn(move || {
                for (s, rows_file) in shards.iter().zip(rows_files) {
                    if tx.send(load_shard(out, rows_file, s, safe)).is_err() {
                        break;
                    }
                }
            });
            for (s, loaded) in self.shards.iter().zip(rx) {
                let rows = match loaded.rows {
                    Ok(rows) => rows,
                    Err(what) => {
                        report.unreadable_files.push(what);
                        continue;
                    }
                };
                if let Some(what) = loaded.unreadable {
                    report.unreadable_files.push(what);
                }
                if let Some(f) = loaded.figures {
                    add_figures(&mut figures, f);
                }
                let mut outcomes = loaded.outcomes;
                let batch = shard_batch(&schema, s, &rows, &mut outcomes, &mut report)
                    .map_err(|e| io(&tmp)(std::io::Error::other(e)))?;
                writer
                    .write(&batch)
                    .map_err(|e| io(&tmp)(std::io::Error::other(e)))?;
            }
            Ok(())
        })?;
        writer
            .close()
            .map_err(|e| io(&tmp)(std::io::Error::other(e)))?;
        crate::layout::persist(&tmp, &results).map_err(io(&results))?;
        let overview = OutDir::new(out).overview();
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| io(&overview)(std::io::Error::other(e)))?;
        crate::layout::write_atomic(&overview, text.as_bytes()).map_err(io(&overview))?;
        write_report_page(out, &report, figures);
        Ok(report)
    }
}

/// Shards loaded ahead of the one being encoded.
const LOAD_AHEAD: usize = 2;

/// One shard as read for the merge.
struct LoadedShard {
    /// Its seeded rows, or what made them unreadable.
    rows: Result<Vec<UrlRow>, String>,
    /// Its outcomes by row index.
    outcomes: Outcomes,
    /// Its results file, when unreadable, with the reason.
    unreadable: Option<String>,
    /// The report page's figures of its (readable) results file.
    figures: Option<RunFigures>,
}

/// Reads one shard's rows and, when done, its results file (logging what cannot be read).
fn load_shard(
    out: &Path,
    rows_file: &Path,
    s: &ShardSummary,
    safe: fn(&str, &str) -> bool,
) -> LoadedShard {
    let rows = rowfile::read_rows(rows_file).map_err(|e| {
        let what = format!("{}: {e}", rows_file.display());
        tracing::error!("cannot read the rows of {}: {what}", s.shard);
        what
    });
    let mut loaded = LoadedShard {
        rows,
        outcomes: Outcomes::Read(HashMap::new()),
        unreadable: None,
        figures: None,
    };
    // A shard reopened for a retry round that did not finish still has its results.
    if loaded.rows.is_err()
        || (s.state != LeaseState::Done
            && !results_path(&OutDir::new(out).archive(&s.archive)).exists())
    {
        return loaded;
    }
    let archive = OutDir::new(out).archive(&s.archive);
    let file = results_path(&archive);
    let mut figures = RunFigures::default();
    match read_outcomes(&file, &archive_stem(&archive), &mut figures, safe) {
        Ok(mut o) => {
            loaded.unreadable = overlay_retry_rounds(out, &s.archive, &mut o, safe);
            loaded.outcomes = Outcomes::Read(o);
            loaded.figures = Some(figures);
        }
        Err(e) => {
            let name = file.display().to_string();
            let what = if e.contains(&name) {
                e
            } else {
                format!("{name}: {e}")
            };
            tracing::warn!(
                "{}: unreadable results file, its rows are listed as failed: {what}",
                s.shard
            );
            loaded.outcomes = Outcomes::Unreadable;
            loaded.unreadable = Some(what);
        }
    }
    loaded
}

/// Lays the outcomes of each stored retry round of the shard whose archive is `base` over
/// `outcomes`, oldest first (see [`crate::coordinator::retry_rounds`]). An unreadable round is left out
/// (the earlier outcome stands) and named in the returned text.
fn overlay_retry_rounds(
    out: &Path,
    base: &str,
    outcomes: &mut HashMap<u64, Outcome>,
    safe: fn(&str, &str) -> bool,
) -> Option<String> {
    let mut unreadable = Vec::new();
    for name in stored_rounds(out, base) {
        let archive = OutDir::new(out).archive(&name);
        let file = results_path(&archive);
        let mut scratch = RunFigures::default();
        match read_outcomes(&file, &archive_stem(&archive), &mut scratch, safe) {
            Ok(round) => {
                for (index, mut o) in round {
                    o.archive = Some(name.clone());
                    outcomes.insert(index, o);
                }
            }
            Err(e) => unreadable.push(format!("{}: {e}", file.display())),
        }
    }
    (!unreadable.is_empty()).then(|| unreadable.join("; "))
}

/// Adds one shard's figures to the dataset's.
fn add_figures(total: &mut RunFigures, shard: RunFigures) {
    total.rows += shard.rows;
    total.ok += shard.ok;
    total.failed += shard.failed;
    total.skipped += shard.skipped;
    total.bytes += shard.bytes;
    for (kind, n) in shard.errors {
        *total.errors.entry(kind).or_default() += n;
    }
    for (class, (n, bytes)) in shard.classes {
        let e = total.classes.entry(class).or_default();
        e.0 += n;
        e.1 += bytes;
    }
    for (t, n) in total.latency.iter_mut().zip(shard.latency) {
        *t += n;
    }
}

/// `<out>/report.html`: the dataset's page, from the figures of the done shards' readable
/// results files (rows of failed shards and unreadable files counted as failed). A page that
/// cannot be written is logged, never fatal.
fn write_report_page(out: &Path, report: &FinalReport, mut figures: RunFigures) {
    use super::report_html::{render, report_path, write_report};
    for what in &report.unreadable_files {
        tracing::warn!("report.html leaves out {what}");
    }
    let unaccounted = report.rows_total.saturating_sub(figures.rows);
    if unaccounted > 0 {
        figures.rows += unaccounted;
        figures.failed += unaccounted;
        *figures.errors.entry("shard_failed".into()).or_default() += unaccounted;
    }
    let html = render(&report.name, &figures, None);
    let path = report_path(&OutDir::new(out).overview());
    if let Err(e) = write_report(&path, &html) {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}

/// A done shard's results, or the fact that its file could not be read.
enum Outcomes {
    Read(HashMap<u64, Outcome>),
    Unreadable,
}

fn shard_batch(
    schema: &Arc<Schema>,
    s: &ShardSummary,
    rows: &[UrlRow],
    outcomes: &mut Outcomes,
    report: &mut FinalReport,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut index = Vec::with_capacity(rows.len());
    let mut status = Vec::with_capacity(rows.len());
    let mut archive = Vec::with_capacity(rows.len());
    let mut member = Vec::with_capacity(rows.len());
    let mut kind = Vec::with_capacity(rows.len());
    for r in rows {
        index.push(r.index);
        let found = match outcomes {
            Outcomes::Read(map) => map.remove(&r.index).map(Some),
            Outcomes::Unreadable => Some(None),
        };
        let mut held_in = None;
        let (st, mem, k) = match (s.state, found) {
            (_, Some(Some(o))) => {
                held_in = o.archive;
                (o.status, o.member, o.error_kind)
            }
            (_, Some(None)) => ("failed", None, Some("results_unreadable".to_string())),
            (LeaseState::Done, None) => ("failed", None, Some("missing_result".to_string())),
            _ => ("failed", None, Some("shard_failed".to_string())),
        };
        match st {
            "ok" => report.ok += 1,
            "skipped" => report.skipped += 1,
            _ => {
                report.failed += 1;
                if report.failed_rows_sample.len() < 20 {
                    report
                        .failed_rows_sample
                        .push((r.index, r.url.clone(), k.clone()));
                }
            }
        }
        if let Some(k) = &k {
            *report.error_breakdown.entry(k.clone()).or_default() += 1;
        }
        archive.push(
            mem.as_ref()
                .map(|_| held_in.unwrap_or_else(|| s.archive.clone())),
        );
        status.push(st);
        member.push(mem);
        kind.push(k);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(index)),
        Arc::new(
            rows.iter()
                .map(|r| r.url.as_deref())
                .collect::<StringArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.class.as_deref())
                .collect::<StringArray>(),
        ),
        Arc::new(StringArray::from(status)),
        Arc::new(StringArray::from(archive)),
        Arc::new(StringArray::from(member)),
        Arc::new(StringArray::from(kind)),
    ];
    RecordBatch::try_new(schema.clone(), cols)
}

/// Reads a shard's results file: index → (status, member, error kind). A member that is not
/// a safe path under the archive's `top` folder is dropped and its row failed as `unverified`.
/// A panic of the parquet reader on a corrupt file is an error like any other.
fn read_outcomes(
    path: &Path,
    top: &str,
    figures: &mut RunFigures,
    is_safe_member: fn(&str, &str) -> bool,
) -> Result<HashMap<u64, Outcome>, String> {
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut map = HashMap::new();
        read_results(path, |r| {
            figures.add(&r);
            let safe = r.member.as_deref().is_none_or(|m| is_safe_member(top, m));
            let outcome = if safe {
                Outcome {
                    status: status_text(r.status),
                    member: r.member,
                    error_kind: r.error_kind,
                    archive: None,
                }
            } else {
                Outcome {
                    status: "failed",
                    member: None,
                    error_kind: Some("unverified".into()),
                    archive: None,
                }
            };
            map.insert(r.index, outcome);
        })
        .map(|()| map)
        .map_err(|e| e.to_string())
    }));
    read.unwrap_or_else(|_| Err("the parquet reader failed on this file".into()))
}
