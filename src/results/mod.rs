//! The per-row results file (`<stem>.results.parquet`): one row per input row handled, with its
//! outcome, written in row groups (memory bounded), to a `.part` file renamed into place at the
//! end. Rows arrive in completion order; a reorder window of [`REORDER_WINDOW`] rows puts them
//! back in input (index) order, so the file is sorted unless a row finishes more than that many
//! rows late (it is then written where it finished). [`read_results`] streams a previous file
//! back for `--resume`; [`overview`] writes the LDAWT-compatible summary JSON; [`report_html`]
//! the run's page.

mod dataset_report;
mod foreign;
pub mod merge;
pub mod overview;
pub mod report_html;
mod row;
mod sanitize;

pub use dataset_report::{FailedShard, FinalReport, ShardSummary};
pub use foreign::check_foreign_results;
pub use merge::{DatasetMerge, FINAL_ROW_GROUP_ROWS};
pub use row::{FAILED_ROWS_LISTED, FailedRow, RowResult, RowStatus, ShardReport};
pub use sanitize::sanitized_error;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt16Builder, UInt32Builder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;

use crate::archive::part_path;

/// Rows buffered before they are encoded.
const BATCH_ROWS: usize = 8192;
/// Rows held back to restore input order (a few MB at most).
pub const REORDER_WINDOW: usize = 16_384;
/// Rows per parquet row group (bounds the writer's memory).
const ROW_GROUP_ROWS: usize = 16_384;

/// Failures reading or writing a results file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultsError {
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Parquet/arrow encoding or decoding.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The image-size columns written when a run reads images' dimensions (filters, resize,
/// webdataset): as stored, then as downloaded.
pub const DIMS_COLUMNS: [&str; 4] = ["width", "height", "original_width", "original_height"];

/// What a results row may carry beyond [`RowResult`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowExtras {
    /// Cells of the extra input columns, in the writer's order (missing cells are null).
    pub cells: Vec<Option<String>>,
    /// `[width, height, original_width, original_height]`, when known.
    pub dims: Option<[u32; 4]>,
}

/// The layout of a results file beyond the fixed columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultsLayout {
    /// Write the [`DIMS_COLUMNS`].
    pub dims: bool,
    /// Extra input columns, after everything else.
    pub extra: Vec<String>,
}

/// The results file schema.
pub fn schema() -> SchemaRef {
    schema_with(&ResultsLayout::default())
}

/// The results file schema of `layout`: the fixed columns, the image-size columns if asked,
/// then the extra input columns (nullable strings).
pub fn schema_with(layout: &ResultsLayout) -> SchemaRef {
    let mut fields = vec![
        Field::new("index", DataType::UInt64, false),
        Field::new("url", DataType::Utf8, true),
        Field::new("class", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("http_status", DataType::UInt16, true),
        Field::new("error_kind", DataType::Utf8, true),
        Field::new("error_message", DataType::Utf8, true),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("sha256", DataType::Utf8, true),
        Field::new("member", DataType::Utf8, true),
        Field::new("attempts", DataType::UInt32, false),
        Field::new("elapsed_ms", DataType::UInt64, false),
    ];
    if layout.dims {
        fields.extend(DIMS_COLUMNS.map(|c| Field::new(c, DataType::UInt32, true)));
    }
    fields.extend(
        layout
            .extra
            .iter()
            .map(|c| Field::new(c, DataType::Utf8, true)),
    );
    Arc::new(Schema::new(fields))
}

/// The text stored in the `status` column.
pub fn status_text(status: RowStatus) -> &'static str {
    match status {
        RowStatus::Ok => "ok",
        RowStatus::Failed => "failed",
        RowStatus::Skipped => "skipped",
    }
}

fn parse_status(text: &str) -> Option<RowStatus> {
    match text {
        "ok" => Some(RowStatus::Ok),
        "failed" => Some(RowStatus::Failed),
        "skipped" => Some(RowStatus::Skipped),
        _ => None,
    }
}

/// Writes a results file (blocking; owned by the writer thread).
pub struct ResultsWriter {
    writer: ArrowWriter<File>,
    /// Rows waiting for the rows before them, by index, with what they carry beyond.
    pending: std::collections::BTreeMap<u64, (RowResult, RowExtras)>,
    buffer: Vec<(RowResult, RowExtras)>,
    layout: ResultsLayout,
    part: PathBuf,
    path: PathBuf,
    redact: bool,
}

impl ResultsWriter {
    /// Creates `<path>.part`.
    pub fn create(path: &Path) -> Result<Self, ResultsError> {
        Self::create_with(path, ResultsLayout::default())
    }

    /// Creates `<path>.part` with the columns of `layout` after the fixed ones (see
    /// [`ResultsWriter::push_with`]).
    pub fn create_with(path: &Path, layout: ResultsLayout) -> Result<Self, ResultsError> {
        let part = part_path(path);
        let file = File::create(&part).map_err(|source| ResultsError::Io {
            path: part.clone(),
            source,
        })?;
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let writer =
            ArrowWriter::try_new(file, schema_with(&layout), Some(props)).map_err(|e| {
                ResultsError::Format {
                    path: part.clone(),
                    reason: e.to_string(),
                }
            })?;
        Ok(Self {
            writer,
            pending: std::collections::BTreeMap::new(),
            buffer: Vec::with_capacity(BATCH_ROWS),
            layout,
            part,
            path: path.to_path_buf(),
            redact: false,
        })
    }

    /// From now on, write each failed row's message as its kind and HTTP status only
    /// ([`sanitized_error`]): results bound for a remote seeder.
    pub fn redact_error_messages(&mut self, on: bool) {
        self.redact = on;
    }

    /// Adds one row's result (its extra cells null).
    pub fn push(&mut self, result: RowResult) -> Result<(), ResultsError> {
        self.push_with(result, RowExtras::default())
    }

    /// Adds one row's result with what the layout given to [`ResultsWriter::create_with`]
    /// records beyond it (held in the reorder window until it is the lowest index).
    pub fn push_with(&mut self, result: RowResult, extra: RowExtras) -> Result<(), ResultsError> {
        if self.pending.len() >= REORDER_WINDOW
            && let Some((_, first)) = self.pending.pop_first()
        {
            self.emit(first)?;
        }
        if let Some(same) = self.pending.insert(result.index, (result, extra)) {
            // Two results for one index never happen in a run; keep both rather than lose one.
            self.emit(same)?;
        }
        Ok(())
    }

    fn emit(&mut self, (mut result, extra): (RowResult, RowExtras)) -> Result<(), ResultsError> {
        if self.redact && result.error_message.is_some() {
            result.error_message = sanitized_error(&result);
        }
        self.buffer.push((result, extra));
        if self.buffer.len() >= BATCH_ROWS {
            self.flush_buffer()?;
        }
        Ok(())
    }

    fn flush_buffer(&mut self) -> Result<(), ResultsError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch =
            to_batch(&self.buffer, &self.layout).map_err(|reason| ResultsError::Format {
                path: self.part.clone(),
                reason,
            })?;
        self.buffer.clear();
        self.writer.write(&batch).map_err(|e| ResultsError::Format {
            path: self.part.clone(),
            reason: e.to_string(),
        })
    }

    /// Writes what is buffered, closes, fsyncs and renames into place.
    pub fn finish(mut self) -> Result<(), ResultsError> {
        while let Some((_, r)) = self.pending.pop_first() {
            self.emit(r)?;
        }
        self.flush_buffer()?;
        let file = self.writer.into_inner().map_err(|e| ResultsError::Format {
            path: self.part.clone(),
            reason: e.to_string(),
        })?;
        let io = |source| ResultsError::Io {
            path: self.path.clone(),
            source,
        };
        drop(file);
        crate::layout::persist(&self.part, &self.path).map_err(io)
    }

    /// Drops the partial file.
    pub fn abort(self) {
        let part = self.part.clone();
        drop(self);
        let _ = std::fs::remove_file(part);
    }
}

fn to_batch(
    rows: &[(RowResult, RowExtras)],
    layout: &ResultsLayout,
) -> Result<RecordBatch, String> {
    let n = rows.len();
    let mut index = UInt64Builder::with_capacity(n);
    let mut url = StringBuilder::new();
    let mut class = StringBuilder::new();
    let mut status = StringBuilder::new();
    let mut http = UInt16Builder::with_capacity(n);
    let mut kind = StringBuilder::new();
    let mut message = StringBuilder::new();
    let mut bytes = UInt64Builder::with_capacity(n);
    let mut sha = StringBuilder::new();
    let mut member = StringBuilder::new();
    let mut attempts = UInt32Builder::with_capacity(n);
    let mut elapsed = UInt64Builder::with_capacity(n);
    let mut extra: Vec<StringBuilder> = layout.extra.iter().map(|_| StringBuilder::new()).collect();
    let mut dims: Vec<UInt32Builder> = (0..4).map(|_| UInt32Builder::with_capacity(n)).collect();
    for (r, more) in rows {
        for (i, b) in extra.iter_mut().enumerate() {
            b.append_option(more.cells.get(i).and_then(Option::as_deref));
        }
        for (i, b) in dims.iter_mut().enumerate() {
            b.append_option(more.dims.map(|d| d[i]));
        }
        index.append_value(r.index);
        url.append_option(r.url.as_deref());
        class.append_option(r.class.as_deref());
        status.append_value(status_text(r.status));
        http.append_option(r.http_status);
        kind.append_option(r.error_kind.as_deref());
        message.append_option(r.error_message.as_deref());
        bytes.append_value(r.bytes);
        sha.append_option(r.sha256.as_deref());
        member.append_option(r.member.as_deref());
        attempts.append_value(r.attempts);
        elapsed.append_value(r.elapsed_ms);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(index.finish()),
        Arc::new(url.finish()),
        Arc::new(class.finish()),
        Arc::new(status.finish()),
        Arc::new(http.finish()),
        Arc::new(kind.finish()),
        Arc::new(message.finish()),
        Arc::new(bytes.finish()),
        Arc::new(sha.finish()),
        Arc::new(member.finish()),
        Arc::new(attempts.finish()),
        Arc::new(elapsed.finish()),
    ];
    if layout.dims {
        columns.extend(dims.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    }
    columns.extend(extra.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    RecordBatch::try_new(schema_with(layout), columns).map_err(|e| e.to_string())
}

/// Streams every result of a results file to `each`.
pub fn read_results(path: &Path, mut each: impl FnMut(RowResult)) -> Result<(), ResultsError> {
    read_results_with(path, &[], |r, _| each(r))
}

/// Like [`read_results`], also handing out each row's cells of the `extra` columns (null when
/// the file has no such column) and its image-size columns, if the file has them.
pub fn read_results_with(
    path: &Path,
    extra: &[String],
    mut each: impl FnMut(RowResult, RowExtras),
) -> Result<(), ResultsError> {
    let fmt = |reason: String| ResultsError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let reader = open_parquet(path)?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| fmt(e.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|e| fmt(e.to_string()))?;
        from_batch(&batch, extra, &mut each).map_err(fmt)?;
    }
    Ok(())
}

/// Opens the parquet file at `path` for reading; a missing file or one that is not parquet
/// is an error naming it.
pub(crate) fn open_parquet(
    path: &Path,
) -> Result<ParquetRecordBatchReaderBuilder<File>, ResultsError> {
    let file = File::open(path).map_err(|source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| ResultsError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn from_batch(
    batch: &RecordBatch,
    extra: &[String],
    each: &mut impl FnMut(RowResult, RowExtras),
) -> Result<(), String> {
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("not a results file: no column '{name}'"))
    };
    let bad = |name: &str| format!("column '{name}' has the wrong type");
    let strings = |name: &str| -> Result<Vec<Option<String>>, String> {
        let c = col(name)?;
        let a = c.as_string_opt::<i32>().ok_or_else(|| bad(name))?;
        Ok((0..a.len())
            .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
            .collect())
    };
    let index = col("index")?
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| bad("index"))?
        .clone();
    let http = col("http_status")?
        .as_primitive_opt::<UInt16Type>()
        .ok_or_else(|| bad("http_status"))?
        .clone();
    let bytes = col("bytes")?
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| bad("bytes"))?
        .clone();
    let attempts = col("attempts")?
        .as_primitive_opt::<UInt32Type>()
        .ok_or_else(|| bad("attempts"))?
        .clone();
    let elapsed = col("elapsed_ms")?
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| bad("elapsed_ms"))?
        .clone();
    let url = strings("url")?;
    let class = strings("class")?;
    let status = strings("status")?;
    let kind = strings("error_kind")?;
    let message = strings("error_message")?;
    let sha = strings("sha256")?;
    let member = strings("member")?;
    let mut cells: Vec<std::vec::IntoIter<Option<String>>> = Vec::with_capacity(extra.len());
    for c in extra {
        let values = if batch.column_by_name(c).is_some() {
            strings(c)?
        } else {
            vec![None; batch.num_rows()]
        };
        cells.push(values.into_iter());
    }
    let dims: Option<Vec<_>> = DIMS_COLUMNS
        .iter()
        .map(|c| {
            batch
                .column_by_name(c)
                .and_then(|a| a.as_primitive_opt::<UInt32Type>().cloned())
        })
        .collect();
    let dims_of = |i: usize| {
        let cols = dims.as_ref()?;
        let mut out = [0u32; 4];
        for (k, c) in cols.iter().enumerate() {
            if c.is_null(i) {
                return None;
            }
            out[k] = c.value(i);
        }
        Some(out)
    };
    let parts = url
        .into_iter()
        .zip(class)
        .zip(status)
        .zip(kind)
        .zip(message)
        .zip(sha)
        .zip(member)
        .enumerate();
    for (i, ((((((url, class), status), kind), message), sha), member)) in parts {
        let status = status
            .as_deref()
            .and_then(parse_status)
            .ok_or_else(|| format!("row {i}: unknown status"))?;
        let more = RowExtras {
            cells: cells.iter_mut().map(|c| c.next().flatten()).collect(),
            dims: dims_of(i),
        };
        each(
            RowResult {
                index: index.value(i),
                url,
                class,
                status,
                http_status: (!http.is_null(i)).then(|| http.value(i)),
                error_kind: kind,
                error_message: message,
                bytes: bytes.value(i),
                sha256: sha,
                member,
                attempts: attempts.value(i),
                elapsed_ms: elapsed.value(i),
            },
            more,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
