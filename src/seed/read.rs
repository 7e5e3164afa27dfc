//! Streaming reads of a seed file's URL, class and grouping columns (parquet by row group,
//! CSV by record), yielding `(UrlRow, group key)` without holding the file in memory.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::input::{InputError, UrlRow};

/// Which columns to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// URL column (required).
    pub url: String,
    /// Class column (optional).
    pub class: Option<String>,
    /// Grouping column for `--group-col` (optional).
    pub group: Option<String>,
}

/// One row as read: the row, and its grouping value when a grouping column was asked for.
pub type ReadRow = (UrlRow, Option<String>);

fn unreadable(path: &Path, reason: impl ToString) -> InputError {
    InputError::Unreadable {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Rows in the file (parquet: from its metadata; CSV: by counting records).
pub fn count_rows(path: &Path) -> Result<u64, InputError> {
    match extension(path)?.as_str() {
        "parquet" => {
            let file = open(path)?;
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(path, e))?;
            Ok(u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0))
        }
        _ => {
            let mut reader = csv::Reader::from_reader(open(path)?);
            let mut n = 0u64;
            for rec in reader.byte_records() {
                rec.map_err(|e| unreadable(path, e))?;
                n += 1;
            }
            Ok(n)
        }
    }
}

/// Calls `each` on every row of `path` in order; row indices start at `first_index`.
pub fn for_each_row(
    path: &Path,
    cols: &Columns,
    first_index: u64,
    mut each: impl FnMut(ReadRow) -> Result<(), InputError>,
) -> Result<u64, InputError> {
    match extension(path)?.as_str() {
        "parquet" => read_parquet(path, cols, first_index, &mut each),
        _ => read_csv(path, cols, first_index, &mut each),
    }
}

fn extension(path: &Path) -> Result<String, InputError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "parquet" | "csv" => Ok(ext),
        _ => Err(InputError::UnsupportedFormat {
            path: path.display().to_string(),
        }),
    }
}

fn open(path: &Path) -> Result<File, InputError> {
    File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => InputError::NotFound {
            path: path.display().to_string(),
        },
        _ => unreadable(path, e),
    })
}

fn read_parquet(
    path: &Path,
    cols: &Columns,
    first_index: u64,
    each: &mut dyn FnMut(ReadRow) -> Result<(), InputError>,
) -> Result<u64, InputError> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(open(path)?).map_err(|e| unreadable(path, e))?;
    let schema = builder.schema().clone();
    let available = || {
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut wanted = Vec::new();
    for name in [Some(&cols.url), cols.class.as_ref(), cols.group.as_ref()]
        .into_iter()
        .flatten()
    {
        let (idx, field) =
            schema
                .column_with_name(name)
                .ok_or_else(|| InputError::MissingColumn {
                    path: path.display().to_string(),
                    column: name.clone(),
                    available: available(),
                })?;
        if !readable_type(field.data_type()) {
            return Err(InputError::WrongColumnType {
                path: path.display().to_string(),
                column: name.clone(),
                found: field.data_type().to_string(),
                expected: "a string or integer column".into(),
            });
        }
        wanted.push(idx);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()
        .map_err(|e| unreadable(path, e))?;
    let mut index = first_index;
    for batch in reader {
        let batch = batch.map_err(|e| unreadable(path, e))?;
        let url = column(&batch, &cols.url, path)?;
        let class = cols
            .class
            .as_ref()
            .map(|c| column(&batch, c, path))
            .transpose()?;
        let group = cols
            .group
            .as_ref()
            .map(|c| column(&batch, c, path))
            .transpose()?;
        for i in 0..batch.num_rows() {
            let row = UrlRow {
                index,
                url: cell(&url, i),
                class: class.as_ref().and_then(|c| cell(c, i)),
            };
            each((row, group.as_ref().and_then(|g| cell(g, i))))?;
            index += 1;
        }
    }
    Ok(index - first_index)
}

fn readable_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt32
            | DataType::UInt64
    )
}

fn column(batch: &RecordBatch, name: &str, path: &Path) -> Result<ArrayRef, InputError> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| unreadable(path, format!("column '{name}' vanished from a row group")))
}

/// The cell as text; `None` when null or of an unsupported type.
pub(crate) fn cell(a: &ArrayRef, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Some(a.as_string_view().value(i).to_string()),
        DataType::Int32 => Some(a.as_primitive::<Int32Type>().value(i).to_string()),
        DataType::Int64 => Some(a.as_primitive::<Int64Type>().value(i).to_string()),
        DataType::UInt32 => Some(a.as_primitive::<UInt32Type>().value(i).to_string()),
        DataType::UInt64 => Some(a.as_primitive::<UInt64Type>().value(i).to_string()),
        _ => None,
    }
}

fn read_csv(
    path: &Path,
    cols: &Columns,
    first_index: u64,
    each: &mut dyn FnMut(ReadRow) -> Result<(), InputError>,
) -> Result<u64, InputError> {
    let mut reader = csv::Reader::from_reader(open(path)?);
    let headers = reader.headers().map_err(|e| unreadable(path, e))?.clone();
    let find = |name: &String| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| InputError::MissingColumn {
                path: path.display().to_string(),
                column: name.clone(),
                available: headers.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let url = find(&cols.url)?;
    let class = cols.class.as_ref().map(find).transpose()?;
    let group = cols.group.as_ref().map(find).transpose()?;
    let non_empty = |s: Option<&str>| s.filter(|v| !v.is_empty()).map(str::to_string);
    let mut index = first_index;
    for rec in reader.records() {
        let rec = rec.map_err(|e| unreadable(path, e))?;
        let row = UrlRow {
            index,
            url: non_empty(rec.get(url)),
            class: class.and_then(|c| non_empty(rec.get(c))),
        };
        each((row, group.and_then(|g| non_empty(rec.get(g)))))?;
        index += 1;
    }
    Ok(index - first_index)
}
