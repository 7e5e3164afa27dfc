//! The end of a dataset: `<out>/results.parquet` with one row per input row exactly once (URL,
//! class, status, archive, member, error kind), built from the seeded shard rows and the
//! shards' results files, plus `<out>/overview.json` merging every shard, and the report of
//! failed shards. Rows of a shard that exhausted its retries are listed as failed with
//! `error_kind = "shard_failed"`.
//!
//! One bad file never stops it: a shard results file in `--out` that cannot be read (garbage,
//! truncated, deleted) is named in the report and the log, and its rows are listed as failed
//! with `error_kind = "results_unreadable"`; a member name that is not a safe
//! `<shard>/<folder>/<file>` path is never copied (the row is failed as `unverified`). So a
//! rerun always finishes.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use serde::Serialize;

use parquet::file::properties::WriterProperties;

use super::{Coordinator, CoordinatorError};
use crate::engine::{archive_stem, results_path};
use crate::input::UrlRow;
use crate::model::ids::ShardId;
use crate::model::lease::{ShardEntry, ShardPhase};
use crate::results::report_html::RunFigures;
use crate::results::{read_results, status_text};
use crate::seed::{SeededDataset, dataset_dir, rowfile, shard_path};
use crate::store::ShardRecord;

/// Rows per row group of `results.parquet` (bounds the writer's buffered pages).
pub const FINAL_ROW_GROUP_ROWS: usize = 65_536;
use crate::verify::rows::is_safe_member;

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
    /// `done` or `failed`.
    pub state: String,
    /// Input rows assigned to the shard.
    pub rows: u64,
    /// Rows stored.
    pub ok: u64,
    /// Rows failed.
    pub failed: u64,
    /// Image bytes stored in its archive.
    pub bytes: u64,
    /// Peer that completed it.
    pub done_by: Option<String>,
    /// Leases lost before it finished or failed.
    pub failures: u32,
}

struct Outcome {
    status: &'static str,
    member: Option<String>,
    error_kind: Option<String>,
    /// The archive holding the member when it is not the shard's own (a retry round's).
    archive: Option<String>,
}

impl Coordinator {
    /// Writes `results.parquet` and `overview.json` for every (finished) dataset into `--out`
    /// and returns their reports.
    pub async fn finalize(&self) -> Result<Vec<FinalReport>, CoordinatorError> {
        let mut reports = Vec::new();
        for d in self.datasets.values() {
            let out = self.cfg.out.clone();
            let dir = dataset_dir(&self.cfg.data_dir, d.seeded.id);
            let plan = Plan::of(&d.seeded, d.book.shards(), &d.records);
            let report = tokio::task::spawn_blocking(move || plan.write(&out, &dir))
                .await
                .map_err(|e| CoordinatorError::Io {
                    path: "results.parquet".into(),
                    source: std::io::Error::other(e),
                })??;
            reports.push(report);
        }
        super::files::clear_incoming(&self.cfg.out);
        Ok(reports)
    }
}

/// Everything the blocking writer needs, copied out of the coordinator.
struct Plan {
    id: String,
    name: String,
    rows_total: u64,
    shards: Vec<ShardSummary>,
    failed_shards: Vec<FailedShard>,
}

/// Writes `<out>/results.parquet`, `overview.json` and `report.html` of a dataset from its
/// seeded rows (under `data_dir`), each shard's lease entry and completion record, and the
/// done shards' results files in `out` (blocking). This is what [`Coordinator::finalize`] does
/// per dataset; it is public so the scale benchmark can drive it on a synthetic finished run.
pub fn write_final_files(
    out: &Path,
    data_dir: &Path,
    seeded: &SeededDataset,
    shards: &[ShardEntry],
    records: &[ShardRecord],
) -> Result<FinalReport, CoordinatorError> {
    Plan::of(seeded, shards, records).write(out, &dataset_dir(data_dir, seeded.id))
}

impl Plan {
    fn of(seeded: &SeededDataset, entries: &[ShardEntry], records: &[ShardRecord]) -> Self {
        let mut shards = Vec::new();
        let mut failed_shards = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let rec = records.get(i);
            let archive = seeded.archive_names.get(i).cloned().unwrap_or_default();
            if e.phase == ShardPhase::Failed {
                failed_shards.push(FailedShard {
                    shard: i as u32,
                    archive: archive.clone(),
                    rows: e.rows,
                    failures: e.failures,
                    last_error: e.last_error.clone(),
                });
            }
            shards.push(ShardSummary {
                shard: i as u32,
                archive,
                state: match e.phase {
                    ShardPhase::Done => "done",
                    ShardPhase::Failed => "failed",
                    ShardPhase::Leased => "leased",
                    ShardPhase::Free => "free",
                }
                .into(),
                rows: e.rows,
                ok: rec.map(|r| r.ok).unwrap_or(0),
                failed: rec.map(|r| r.failed).unwrap_or(0),
                bytes: rec.map(|r| r.bytes).unwrap_or(0),
                done_by: e.done_by.clone(),
                failures: e.failures,
            });
        }
        Self {
            id: seeded.id.to_hex(),
            name: seeded.name.clone(),
            rows_total: seeded.rows_total,
            shards,
            failed_shards,
        }
    }

    fn write(self, out: &Path, dir: &Path) -> Result<FinalReport, CoordinatorError> {
        let results = out.join("results.parquet");
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source: std::io::Error| CoordinatorError::Io { path, source }
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
            shards_done: self.shards.iter().filter(|s| s.state == "done").count() as u32,
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
        std::thread::scope(|scope| -> Result<(), CoordinatorError> {
            let (tx, rx) = std::sync::mpsc::sync_channel(LOAD_AHEAD);
            let shards = &self.shards;
            scope.spawn(move || {
                for s in shards {
                    if tx.send(load_shard(out, dir, s)).is_err() {
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
        std::fs::rename(&tmp, &results).map_err(io(&results))?;
        let overview = out.join("overview.json");
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| io(&overview)(std::io::Error::other(e)))?;
        let overview_tmp = overview.with_extension("json.tmp");
        std::fs::write(&overview_tmp, text).map_err(io(&overview_tmp))?;
        std::fs::rename(&overview_tmp, &overview).map_err(io(&overview))?;
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
fn load_shard(out: &Path, dir: &Path, s: &ShardSummary) -> LoadedShard {
    let rows_file = shard_path(dir, ShardId(s.shard));
    let rows = rowfile::read_rows(&rows_file).map_err(|e| {
        let what = format!("{}: {e}", rows_file.display());
        tracing::error!("cannot read the rows of shard {}: {what}", s.shard);
        what
    });
    let mut loaded = LoadedShard {
        rows,
        outcomes: Outcomes::Read(HashMap::new()),
        unreadable: None,
        figures: None,
    };
    // A shard reopened for a retry round that did not finish still has its results.
    if loaded.rows.is_err() || (s.state != "done" && !results_path(&out.join(&s.archive)).exists())
    {
        return loaded;
    }
    let archive = out.join(&s.archive);
    let file = results_path(&archive);
    let mut figures = RunFigures::default();
    match read_outcomes(&file, &archive_stem(&archive), &mut figures) {
        Ok(mut o) => {
            loaded.unreadable = overlay_retry_rounds(out, &s.archive, &mut o);
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
                "shard {}: unreadable results file, its rows are listed as failed: {what}",
                s.shard
            );
            loaded.outcomes = Outcomes::Unreadable;
            loaded.unreadable = Some(what);
        }
    }
    loaded
}

/// Lays the outcomes of each stored retry round of the shard whose archive is `base` over
/// `outcomes`, oldest first (see [`super::retry_rounds`]). An unreadable round is left out
/// (the earlier outcome stands) and named in the returned text.
fn overlay_retry_rounds(
    out: &Path,
    base: &str,
    outcomes: &mut HashMap<u64, Outcome>,
) -> Option<String> {
    let mut unreadable = Vec::new();
    for name in super::retry_rounds::stored_rounds(out, base) {
        let archive = out.join(&name);
        let file = results_path(&archive);
        let mut scratch = RunFigures::default();
        match read_outcomes(&file, &archive_stem(&archive), &mut scratch) {
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
    use crate::results::report_html::{render, report_path, write_report};
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
    let path = report_path(&out.join("overview.json"));
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
        let (st, mem, k) = match (s.state.as_str(), found) {
            (_, Some(Some(o))) => {
                held_in = o.archive;
                (o.status, o.member, o.error_kind)
            }
            (_, Some(None)) => ("failed", None, Some("results_unreadable".to_string())),
            ("done", None) => ("failed", None, Some("missing_result".to_string())),
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
