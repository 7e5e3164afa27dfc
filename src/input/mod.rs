//! Input rows: the `UrlRow` every other layer consumes, the `RowBatches` streaming source
//! trait, and `InputError`. Readers for parquet and CSV files live in submodules; they stream by
//! row group / record chunk so a 10M-row file is never held in memory whole.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod csv;
pub mod parquet;

/// Rows per batch handed out by the file readers.
pub const BATCH_ROWS: usize = 8192;

/// Opens a `.parquet` or `.csv` URL list, validating its columns before any row is read.
/// `class_col` is optional (no class folders then).
pub fn open(
    path: &Path,
    url_col: &str,
    class_col: Option<&str>,
) -> Result<Box<dyn RowBatches>, InputError> {
    open_with(path, url_col, class_col, &[])
}

/// Like [`open`], also reading the `extra` columns (string or integer) into
/// [`UrlRow::extra`], in that order.
pub fn open_with(
    path: &Path,
    url_col: &str,
    class_col: Option<&str>,
    extra: &[String],
) -> Result<Box<dyn RowBatches>, InputError> {
    let shown = path.display().to_string();
    if !path.exists() {
        return Err(InputError::NotFound { path: shown });
    }
    if path.is_dir() {
        return Err(InputError::Unreadable {
            path: shown,
            reason: "is a directory, expected a .parquet or .csv file".to_string(),
        });
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "parquet" | "pq" => Ok(Box::new(parquet::open_with(
            path, url_col, class_col, extra, BATCH_ROWS,
        )?)),
        "csv" => Ok(Box::new(
            csv::open(path, url_col, class_col, BATCH_ROWS)?.with_extra(extra)?,
        )),
        _ => Err(InputError::UnsupportedFormat { path: shown }),
    }
}

/// The input files named by `path`: the file itself, or every `.parquet`/`.csv` file directly
/// inside a directory, sorted by name.
pub fn list_inputs(path: &Path) -> Result<Vec<PathBuf>, InputError> {
    let shown = path.display().to_string();
    if !path.exists() {
        return Err(InputError::NotFound { path: shown });
    }
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| InputError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| {
                    matches!(
                        e.to_string_lossy().to_ascii_lowercase().as_str(),
                        "parquet" | "pq" | "csv"
                    )
                })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(InputError::Unreadable {
            path: shown,
            reason: "the folder holds no .parquet, .pq or .csv file".to_string(),
        });
    }
    Ok(files)
}

/// Maps a failed `File::open` to `NotFound` or `Unreadable`.
pub(crate) fn open_error(path: &str, err: std::io::Error) -> InputError {
    if err.kind() == std::io::ErrorKind::NotFound {
        InputError::NotFound {
            path: path.to_string(),
        }
    } else {
        InputError::Unreadable {
            path: path.to_string(),
            reason: err.to_string(),
        }
    }
}

/// One input row: its 0-based index in the source file (stable across reruns, used as the key of
/// every result), its URL and its class label. Missing or null values are `None`, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlRow {
    /// 0-based row index in the original dataset.
    pub index: u64,
    /// The URL cell (`None` when null).
    pub url: Option<String>,
    /// The class cell (`None` when null or when no class column was given).
    pub class: Option<String>,
    /// The cells of the extra columns asked for (see [`open_with`]), in that order; empty when
    /// none were asked for.
    #[serde(default)]
    pub extra: Vec<Option<String>>,
}

/// A streaming source of rows, read batch by batch. Implementations are blocking (file I/O);
/// async callers drive them from `spawn_blocking` or a dedicated thread.
pub trait RowBatches: Send {
    /// The total number of rows if known up front (parquet metadata knows it; CSV does not).
    fn total_rows(&self) -> Option<u64>;
    /// The next batch, `None` at the end. A returned error ends the stream.
    fn next_batch(&mut self) -> Option<Result<Vec<UrlRow>, InputError>>;
}

/// Rows already in memory (a shard received from a seeder), handed out in batches.
#[derive(Debug)]
pub struct VecRows {
    rows: std::vec::IntoIter<UrlRow>,
    total: u64,
    batch: usize,
}

impl VecRows {
    /// Wraps `rows`; batches hold up to 4,096 rows.
    pub fn new(rows: Vec<UrlRow>) -> Self {
        let total = rows.len() as u64;
        Self {
            rows: rows.into_iter(),
            total,
            batch: 4096,
        }
    }
}

impl RowBatches for VecRows {
    fn total_rows(&self) -> Option<u64> {
        Some(self.total)
    }

    fn next_batch(&mut self) -> Option<Result<Vec<UrlRow>, InputError>> {
        let batch: Vec<UrlRow> = self.rows.by_ref().take(self.batch).collect();
        if batch.is_empty() {
            None
        } else {
            Some(Ok(batch))
        }
    }
}

/// Problems with an input file. Every variant names the file (and column or row) concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file (or directory) does not exist.
    #[error("input file {path} not found")]
    NotFound {
        /// The path given.
        path: String,
    },
    /// The file could not be read or parsed.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The path given.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A required column is missing.
    #[error("{path}: no column named '{column}'; available columns: {available}")]
    MissingColumn {
        /// The file.
        path: String,
        /// The column asked for.
        column: String,
        /// The columns that exist, comma separated.
        available: String,
    },
    /// A column has a type that cannot hold URLs or labels.
    #[error("{path}: column '{column}' has type {found}, expected {expected}")]
    WrongColumnType {
        /// The file.
        path: String,
        /// The column's name in the file.
        column: String,
        /// Its type.
        found: String,
        /// What was expected.
        expected: String,
    },
    /// The file has no rows.
    #[error("{path}: the input has no rows")]
    Empty {
        /// The file.
        path: String,
    },
    /// The file's extension is not one we read.
    #[error("{path}: unsupported input format (expected .parquet or .csv)")]
    UnsupportedFormat {
        /// The file.
        path: String,
    },
}

impl InputError {
    /// True for problems with what the user gave us (exit code 2), as opposed to I/O failures
    /// in the middle of a run.
    pub fn is_bad_input(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_rows_hands_out_everything_once() {
        let rows: Vec<UrlRow> = (0..10_000)
            .map(|i| UrlRow {
                index: i,
                url: Some(format!("http://h/{i}.jpg")),
                class: None,
                extra: Vec::new(),
            })
            .collect();
        let mut src = VecRows::new(rows);
        assert_eq!(src.total_rows(), Some(10_000));
        let mut seen = 0u64;
        while let Some(batch) = src.next_batch() {
            let batch = batch.unwrap();
            assert!(batch.len() <= 4096);
            for r in batch {
                assert_eq!(r.index, seen);
                seen += 1;
            }
        }
        assert_eq!(seen, 10_000);
    }
}
