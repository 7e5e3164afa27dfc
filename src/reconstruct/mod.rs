//! `ldawt reconstruct`: rebuilds class folders from image bytes stored inside a parquet (a
//! binary column or the Hugging Face `{bytes, path}` struct) as an archive
//! `<stem>/<class folder>/<row>.<ext>`, class folders named by the rule every command shares
//! (`crate::model::naming::ClassFolders`: `Abaeis mexicana` → `Abaeis_mexicana`, null →
//! `unlabeled`). Streams record batches; each batch's images are sniffed or
//! re-encoded on several threads, then appended in row order (the archive is deterministic).
//! A bad row is reported with its index and skipped; the rest is written.

mod archive;
mod columns;
mod image;

use std::path::{Path, PathBuf};

use parquet::arrow::ProjectionMask;

use crate::input::InputError;
use crate::model::naming::ClassFolders;
use crate::split::{class_keys, column_index, open_parquet};

pub use self::archive::stem_and_gzip;
pub use self::image::{OutputFormat, reencode, sniff_extension};

/// Rows per record batch (image cells can be large).
const BATCH_ROWS: usize = 256;

/// What to reconstruct.
#[derive(Debug, Clone)]
pub struct ReconstructRequest {
    /// The parquet holding the images.
    pub input: PathBuf,
    /// The archive to write (`.tar`, `.tar.gz` or `.tgz`).
    pub output: PathBuf,
    /// The image column (binary or `{bytes, path}` struct).
    pub image_col: String,
    /// The label column (string, integer or boolean).
    pub label_col: String,
    /// Re-encode to this format; `None` keeps the original bytes.
    pub format: Option<OutputFormat>,
    /// Worker threads for sniffing / re-encoding.
    pub threads: usize,
    /// Replace an existing output.
    pub overwrite: bool,
}

/// One row that could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 0-based row index in the input.
    pub index: u64,
    /// Why.
    pub reason: String,
}

/// The outcome of a reconstruction.
#[derive(Debug, Clone, Default)]
pub struct ReconstructReport {
    /// Rows in the input.
    pub rows: u64,
    /// Images written.
    pub written: u64,
    /// Distinct label folders.
    pub labels: usize,
    /// Rows skipped, in row order.
    pub bad_rows: Vec<BadRow>,
}

/// Problems that stop a reconstruction.
#[derive(Debug, thiserror::Error)]
pub enum ReconstructError {
    /// Missing input, missing column, wrong column type, empty input.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The output name or location is unusable.
    #[error("cannot write output {path}: {reason}")]
    Output {
        /// The output path.
        path: String,
        /// Why.
        reason: String,
    },
    /// Reading or writing failed mid-run (the partial archive is removed).
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl ReconstructError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, ReconstructError::Io { .. })
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> ReconstructError {
    ReconstructError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A message on one line: decoder errors can carry newlines (and trailing blank lines), which
/// would break the `row N: reason` listing.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

type Converted = Result<(Vec<u8>, &'static str), String>;

fn convert(bytes: Option<&[u8]>, format: Option<OutputFormat>) -> Converted {
    let bytes = bytes.ok_or_else(|| "image bytes are null".to_string())?;
    match format {
        None => sniff_extension(bytes).map(|ext| (bytes.to_vec(), ext)),
        Some(f) => reencode(bytes, f),
    }
}

/// Converts `cells` on up to `threads` threads, keeping their order.
fn convert_all(
    cells: &[Option<&[u8]>],
    format: Option<OutputFormat>,
    threads: usize,
) -> Vec<Converted> {
    let chunk = cells.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = cells
            .chunks(chunk)
            .map(|part| {
                let len = part.len();
                (
                    len,
                    scope.spawn(move || {
                        part.iter().map(|c| convert(*c, format)).collect::<Vec<_>>()
                    }),
                )
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(len, h)| {
                h.join()
                    .unwrap_or_else(|_| vec![Err("worker thread panicked".into()); len])
            })
            .collect()
    })
}

/// Runs a reconstruction (see the module doc).
pub fn reconstruct(req: &ReconstructRequest) -> Result<ReconstructReport, ReconstructError> {
    let out_err = |reason: String| ReconstructError::Output {
        path: req.output.display().to_string(),
        reason,
    };
    let (stem, _) = stem_and_gzip(&req.output)
        .ok_or_else(|| out_err("the name must end in .tar, .tar.gz or .tgz".into()))?;
    if req.output.exists() && !req.overwrite {
        return Err(out_err(
            "it already exists (pass --force to replace it)".into(),
        ));
    }
    let path = req.input.as_path();
    let builder = open_parquet(path)?;
    let image_idx = column_index(&builder, path, &req.image_col)?;
    let label_idx = column_index(&builder, path, &req.label_col)?;
    columns::check_image_type(
        builder.schema().field(image_idx).data_type(),
        path,
        &req.image_col,
    )?;
    let label_type = builder.schema().field(label_idx).data_type();
    if !crate::split::is_class_type(label_type) {
        let expected = "a string, integer or boolean label";
        return Err(crate::split::wrong_type(path, &req.label_col, label_type, expected).into());
    }
    let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    if rows == 0 {
        return Err(InputError::Empty {
            path: path.display().to_string(),
        }
        .into());
    }
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mask = ProjectionMask::roots(builder.parquet_schema(), [image_idx, label_idx]);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| io_err(path, e))?;
    // Only once the input is known good: a refused run leaves nothing behind.
    if let Some(parent) = req.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            out_err(format!(
                "cannot create the output folder {}: {e}",
                parent.display()
            ))
        })?;
    }
    let mut out = archive::PendingArchive::create(&req.output, &stem, mtime)
        .map_err(|e| out_err(e.to_string()))?;
    let mut report = ReconstructReport {
        rows,
        ..Default::default()
    };
    let mut labels = std::collections::BTreeSet::new();
    let mut folders = ClassFolders::new();
    let mut next_index = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| io_err(path, e))?;
        let images = batch
            .column_by_name(&req.image_col)
            .ok_or_else(|| io_err(path, "image column vanished"))?;
        let label_array = batch
            .column_by_name(&req.label_col)
            .ok_or_else(|| io_err(path, "label column vanished"))?;
        let keys = class_keys(label_array.as_ref()).map_err(|e| io_err(path, e))?;
        let cells = columns::image_values(images.as_ref());
        for (i, converted) in convert_all(&cells, req.format, req.threads)
            .into_iter()
            .enumerate()
        {
            let index = next_index + i as u64;
            match converted {
                Ok((bytes, ext)) => {
                    let dir = folders.folder(keys[i].as_deref()).to_string();
                    out.add_file(&dir, &format!("{index}.{ext}"), &bytes)
                        .map_err(|e| io_err(&req.output, e))?;
                    labels.insert(dir);
                    report.written += 1;
                }
                Err(reason) => report.bad_rows.push(BadRow {
                    index,
                    reason: one_line(&reason),
                }),
            }
        }
        next_index += batch.num_rows() as u64;
    }
    out.finish().map_err(|e| io_err(&req.output, e))?;
    report.labels = labels.len();
    Ok(report)
}
