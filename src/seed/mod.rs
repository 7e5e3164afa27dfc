//! Seeding a dataset: list the input files, compute the dataset id (sha256 of the content and
//! the sharding parameters, so reseeding the same input resumes), plan the shards and write
//! each shard's rows into the seeder's data dir (`<data>/datasets/<id>/shard-NNNNN.rows`).
//! A `manifest.json` written last marks a complete seeding; a rerun finds it and skips the work.
//!
//! Blocking (file I/O): call from `spawn_blocking`.

pub mod hosts;
pub mod read;
pub mod rowfile;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::input::InputError;
use crate::layout::{DataDir, SeedDir};
use crate::model::ids::{DatasetId, ShardId};
use crate::model::shard::{ShardSizing, archive_name, plan_contiguous, plan_grouped};
use crate::model::split_plan::ClassWeight;
pub use read::Columns;
use rowfile::RowFileWriter;

/// Shard files written per pass over the input in `--group-col` mode (bounds open files).
const FILES_PER_PASS: usize = 256;

/// What to seed and how to cut it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSpec {
    /// A parquet/CSV file, or a directory of pre-split parquet files (one shard per file).
    pub path: PathBuf,
    /// Columns to read.
    pub columns: Columns,
    /// Shard sizing (ignored for a directory).
    pub sizing: ShardSizing,
}

/// A seeded dataset as found in its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededDataset {
    /// Derived from the seed's content and sharding parameters (see [`DatasetId`]).
    pub id: DatasetId,
    /// Human name: the seed's file or directory stem.
    pub name: String,
    /// The seed path.
    pub source: String,
    /// Rows in total.
    pub rows_total: u64,
    /// Rows per shard.
    pub shard_rows: Vec<u64>,
    /// Archive name per shard.
    pub archive_names: Vec<String>,
}

/// Seeding failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// The input is unusable (missing, wrong columns, empty…).
    #[error(transparent)]
    Input(#[from] InputError),
    /// The data dir could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SeedError + '_ {
    move |source| SeedError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The files a seed path stands for: the file itself, or the directory's `.parquet` / `.csv`
/// files in name order (one shard each).
pub fn seed_files(path: &Path) -> Result<Vec<PathBuf>, InputError> {
    crate::input::list_inputs(path)
}

/// Checks that every seed file exists and has the asked-for columns, before anything is
/// written anywhere.
pub fn validate(spec: &SeedSpec) -> Result<(), InputError> {
    let c = &spec.columns;
    for f in seed_files(&spec.path)? {
        crate::input::open_with(&f, &c.url, c.class.as_deref(), &c.extra)?;
        if let Some(g) = &c.group {
            crate::input::open(&f, &c.url, Some(g))?;
        }
    }
    Ok(())
}

/// sha256 over every file's name, size and content, then the sharding parameters.
pub fn dataset_id(files: &[PathBuf], spec: &SeedSpec) -> Result<DatasetId, InputError> {
    let mut h = Sha256::new();
    h.update(b"ldawt-dataset-1\0");
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        let unreadable = |e: std::io::Error| InputError::Unreadable {
            path: f.display().to_string(),
            reason: e.to_string(),
        };
        let mut file = File::open(f).map_err(unreadable)?;
        h.update(
            f.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        h.update(b"\0");
        loop {
            let n = file.read(&mut buf).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        h.update(b"\0file-end\0");
    }
    let c = &spec.columns;
    let params = format!(
        "url={}\0class={:?}\0group={:?}\0sizing={:?}\0dir={}",
        c.url,
        c.class,
        c.group,
        spec.sizing,
        spec.path.is_dir()
    );
    h.update(params.as_bytes());
    // Rows carrying other columns are other shard files (absent: the id is unchanged).
    if !c.extra.is_empty() {
        h.update(format!("\0extra={:?}", c.extra).as_bytes());
    }
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    Ok(DatasetId(id))
}

/// Seeds `spec` under `data_dir` (or finds it already seeded) and returns its description.
pub fn seed(spec: &SeedSpec, data_dir: &Path) -> Result<SeededDataset, SeedError> {
    let files = seed_files(&spec.path)?;
    let id = dataset_id(&files, spec)?;
    let seed_dir = DataDir::new(data_dir).dataset(id);
    let (dir, manifest) = (seed_dir.path().to_path_buf(), seed_dir.manifest());
    if let Ok(text) = std::fs::read_to_string(&manifest)
        && let Ok(found) = serde_json::from_str::<SeededDataset>(&text)
        && found.id == id
    {
        tracing::info!(dataset = %id, "dataset already seeded; resuming");
        return Ok(found);
    }
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let result = write_dataset(spec, &files, id, &dir, &manifest);
    if result.is_err() {
        // No partial output: a failed seeding leaves nothing behind.
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn write_dataset(
    spec: &SeedSpec,
    files: &[PathBuf],
    id: DatasetId,
    dir: &Path,
    manifest: &Path,
) -> Result<SeededDataset, SeedError> {
    let name = spec
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    let shard_rows = if spec.path.is_dir() {
        write_per_file(files, &spec.columns, dir)?
    } else if spec.columns.group.is_some() {
        write_grouped(&files[0], spec, dir)?
    } else {
        write_contiguous(&files[0], spec, dir)?
    };
    let rows_total: u64 = shard_rows.iter().sum();
    if rows_total == 0 {
        return Err(InputError::Empty {
            path: spec.path.display().to_string(),
        }
        .into());
    }
    let seeded = SeededDataset {
        id,
        archive_names: (0..shard_rows.len())
            .map(|i| archive_name(&name, u32::try_from(i).unwrap_or(u32::MAX)))
            .collect(),
        name,
        source: spec.path.display().to_string(),
        rows_total,
        shard_rows,
    };
    let text = serde_json::to_string_pretty(&seeded).map_err(|e| SeedError::Io {
        path: manifest.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    crate::layout::write_atomic(manifest, text.as_bytes()).map_err(io_err(manifest))?;
    Ok(seeded)
}

fn write_per_file(files: &[PathBuf], cols: &Columns, dir: &Path) -> Result<Vec<u64>, SeedError> {
    let mut counts = Vec::new();
    let mut next_index = 0u64;
    for (i, f) in files.iter().enumerate() {
        let path = SeedDir::new(dir).shard_rows(ShardId(u32::try_from(i).unwrap_or(u32::MAX)));
        let mut w = RowFileWriter::create(&path).map_err(io_err(&path))?;
        let n = read::for_each_row(f, cols, next_index, |(row, _)| {
            w.push(&row).map_err(|e| unwritable(&path, e))
        })?;
        w.finish().map_err(io_err(&path))?;
        next_index += n;
        counts.push(n);
    }
    Ok(counts)
}

fn unwritable(path: &Path, e: std::io::Error) -> InputError {
    InputError::Unreadable {
        path: path.display().to_string(),
        reason: format!("cannot write shard rows: {e}"),
    }
}

fn write_contiguous(file: &Path, spec: &SeedSpec, dir: &Path) -> Result<Vec<u64>, SeedError> {
    let total = read::count_rows(file, &spec.columns)?;
    let ranges = plan_contiguous(total, spec.sizing);
    let mut counts = Vec::with_capacity(ranges.len());
    // One shard file open at a time: each is finished as soon as the rows move past it, so
    // memory and descriptors stay O(1) whatever the row count (only `counts` grows, per shard).
    let mut current: Option<(usize, RowFileWriter)> = None;
    read::for_each_row(file, &spec.columns, 0, |(row, _)| {
        let shard = ranges.partition_point(|r| r.end <= row.index);
        if current.as_ref().is_none_or(|(s, _)| *s != shard) {
            if let Some((_, done)) = current.take() {
                counts.push(done.finish().map_err(|e| unwritable(dir, e))?);
            }
            let path =
                SeedDir::new(dir).shard_rows(ShardId(u32::try_from(shard).unwrap_or(u32::MAX)));
            let w = RowFileWriter::create(&path).map_err(|e| unwritable(&path, e))?;
            current = Some((shard, w));
        }
        if let Some((_, w)) = current.as_mut() {
            w.push(&row).map_err(|e| unwritable(dir, e))?;
        }
        Ok(())
    })?;
    if let Some((_, done)) = current.take() {
        counts.push(done.finish().map_err(io_err(dir))?);
    }
    Ok(counts)
}

fn write_grouped(file: &Path, spec: &SeedSpec, dir: &Path) -> Result<Vec<u64>, SeedError> {
    let mut weights: BTreeMap<Option<String>, u64> = BTreeMap::new();
    read::for_each_row(file, &spec.columns, 0, |(_, key)| {
        *weights.entry(key).or_default() += 1;
        Ok(())
    })?;
    let classes: Vec<ClassWeight> = weights
        .into_iter()
        .map(|(class, weight)| ClassWeight { class, weight })
        .collect();
    let plan = plan_grouped(&classes, spec.sizing);
    // Renumber non-empty groups densely: shard i = i-th non-empty group.
    let mut shard_of_group = vec![usize::MAX; plan.loads.len()];
    let mut shards = 0usize;
    for (g, load) in plan.loads.iter().enumerate() {
        if *load > 0 {
            shard_of_group[g] = shards;
            shards += 1;
        }
    }
    let mut counts = vec![0u64; shards];
    for first in (0..shards).step_by(FILES_PER_PASS) {
        let last = (first + FILES_PER_PASS).min(shards);
        let mut writers = Vec::with_capacity(last - first);
        for s in first..last {
            let path = SeedDir::new(dir).shard_rows(ShardId(u32::try_from(s).unwrap_or(u32::MAX)));
            writers.push(RowFileWriter::create(&path).map_err(io_err(&path))?);
        }
        read::for_each_row(file, &spec.columns, 0, |(row, key)| {
            let shard = plan
                .assignment
                .get(&key)
                .map(|g| shard_of_group[*g])
                .unwrap_or(usize::MAX);
            if (first..last).contains(&shard) {
                writers[shard - first]
                    .push(&row)
                    .map_err(|e| unwritable(dir, e))?;
            }
            Ok(())
        })?;
        for (i, w) in writers.into_iter().enumerate() {
            counts[first + i] = w.finish().map_err(io_err(dir))?;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests;
