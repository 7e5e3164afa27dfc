//! The finalize case of the scale benchmark, on a dataset seeded by `ldawt node --seed …
//! --no-work` (one dataset under `DATA_DIR/datasets/`):
//!
//! - `scale_finalize prepare DATA_DIR OUT` writes a synthetic results file per shard into OUT
//!   as a worker would deliver it (`<stem>.results.parquet`: 19 rows in 20 `ok` with a member,
//!   every 20th `failed` `http_404`), from the seeded shard rows;
//! - `scale_finalize run DATA_DIR OUT` marks every shard done and runs the seeder's real
//!   finalize ([`ldawt::coordinator::write_final_files`]: `results.parquet`, `overview.json`,
//!   `report.html`), then checks the merged file's row count and outcomes.
//!
//! Run each under `/usr/bin/time -v` to see its peak RSS; `run` prints its own time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ldawt::coordinator::write_final_files;
use ldawt::engine::{RowResult, RowStatus, archive_stem, results_path};
use ldawt::layout::{DataDir, SeedDir};
use ldawt::model::ids::{Epoch, ShardId, seeded_node_id};
use ldawt::model::lease::{ShardEntry, ShardPhase};
use ldawt::results::ResultsWriter;
use ldawt::seed::{SeededDataset, rowfile};
use ldawt::store::ShardRecord;
use parquet::file::reader::{FileReader, SerializedFileReader};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: scale_finalize prepare|run DATA_DIR OUT";
    let mode = args.get(1).context(usage)?;
    let data = PathBuf::from(args.get(2).context(usage)?);
    let out = PathBuf::from(args.get(3).context(usage)?);
    let seeded = find_dataset(&data)?;
    match mode.as_str() {
        "prepare" => prepare(&data, &out, &seeded),
        "run" => run(&data, &out, &seeded),
        _ => bail!("{usage}"),
    }
}

fn find_dataset(data: &Path) -> Result<SeededDataset> {
    let root = data.join("datasets");
    for e in std::fs::read_dir(&root).with_context(|| root.display().to_string())? {
        let manifest = e?.path().join("manifest.json");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            return Ok(serde_json::from_str(&text)?);
        }
    }
    bail!("no seeded dataset (manifest.json) under {}", root.display())
}

fn fails(index: u64) -> bool {
    index.is_multiple_of(20)
}

fn prepare(data: &Path, out: &Path, seeded: &SeededDataset) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(out)?;
    let dir = DataDir::new(data).dataset(seeded.id);
    let n = seeded.shard_rows.len();
    std::thread::scope(|s| -> Result<()> {
        let jobs: Vec<_> = (0..2)
            .map(|k| {
                let dir = &dir;
                s.spawn(move || -> Result<()> {
                    for i in (k..n).step_by(2) {
                        write_shard_results(dir, out, seeded, i)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for j in jobs {
            j.join()
                .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
        }
        Ok(())
    })?;
    println!(
        "prepared {n} shard results files in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_shard_results(dir: &SeedDir, out: &Path, seeded: &SeededDataset, i: usize) -> Result<()> {
    let rows = rowfile::read_rows(&dir.shard_rows(ShardId(i as u32)))?;
    let archive = out.join(&seeded.archive_names[i]);
    let stem = archive_stem(&archive);
    let mut w = ResultsWriter::create(&results_path(&archive))?;
    for r in rows {
        let failed = fails(r.index);
        let member = (!failed).then(|| {
            let folder = r.class.clone().unwrap_or_else(|| "unlabeled".into());
            format!("{stem}/{folder}/{}.jpg", r.index)
        });
        w.push(RowResult {
            index: r.index,
            url: r.url,
            class: r.class,
            status: if failed {
                RowStatus::Failed
            } else {
                RowStatus::Ok
            },
            http_status: Some(if failed { 404 } else { 200 }),
            error_kind: failed.then(|| "http_404".to_string()),
            error_message: failed.then(|| "HTTP 404".to_string()),
            bytes: if failed { 0 } else { 12_345 },
            sha256: None,
            member,
            attempts: 1,
            elapsed_ms: 3,
        })?;
    }
    w.finish()?;
    Ok(())
}

fn run(data: &Path, out: &Path, seeded: &SeededDataset) -> Result<()> {
    let mut entries = Vec::with_capacity(seeded.shard_rows.len());
    let mut records = Vec::with_capacity(seeded.shard_rows.len());
    let mut first = 0u64;
    for (i, rows) in seeded.shard_rows.iter().enumerate() {
        let mut e = ShardEntry::new(*rows);
        e.phase = ShardPhase::Done;
        e.done_epoch = Some(Epoch(i as u64 + 1));
        e.done_by = Some(seeded_node_id(1));
        let failed = (first..first + rows).filter(|i| fails(*i)).count() as u64;
        first += rows;
        records.push(ShardRecord {
            entry: e.clone(),
            ok: rows - failed,
            failed,
            bytes: (rows - failed) * 12_345,
        });
        entries.push(e);
    }
    let started = Instant::now();
    let report = write_final_files(out, data, seeded, &entries, &records)?;
    let secs = started.elapsed().as_secs_f64();
    let expected_failed = (0..seeded.rows_total).filter(|i| fails(*i)).count() as u64;
    let merged = SerializedFileReader::new(std::fs::File::open(&report.results_path)?)?;
    let merged_rows = merged.metadata().file_metadata().num_rows() as u64;
    println!(
        "finalize: {} rows in {} shards merged in {secs:.1} s ({:.0} rows/s); ok {} failed {}; {} rows in results.parquet",
        seeded.rows_total,
        entries.len(),
        seeded.rows_total as f64 / secs.max(1e-9),
        report.ok,
        report.failed,
        merged_rows
    );
    println!("FINALIZE_SECS {secs:.1}");
    if merged_rows != seeded.rows_total
        || report.failed != expected_failed
        || report.ok != seeded.rows_total - expected_failed
        || !report.unreadable_files.is_empty()
    {
        bail!(
            "wrong merge: {merged_rows} rows, ok {}, failed {} (expected {}), unreadable {:?}",
            report.ok,
            report.failed,
            expected_failed,
            report.unreadable_files
        );
    }
    Ok(())
}
