//! Streaming parquet reader: validates the file and its columns up front (so a bad input is
//! refused before anything is written), then hands out `UrlRow` batches decoded one record
//! batch at a time — a 10M-row file is never loaded whole.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int16Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::{InputError, RowBatches, UrlRow};

/// Rows of a parquet file, decoded batch by batch.
pub struct ParquetRows {
    reader: ParquetRecordBatchReader,
    path: String,
    url_col: String,
    class_col: Option<String>,
    extra_cols: Vec<String>,
    next_index: u64,
    total: u64,
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Opens `path`, checking that `url_col` is a string column and `class_col` (if any) a string
/// or integer column, and that the file has rows.
pub fn open(
    path: &Path,
    url_col: &str,
    class_col: Option<&str>,
    batch_rows: usize,
) -> Result<ParquetRows, InputError> {
    open_with(path, url_col, class_col, &[], batch_rows)
}

/// Like [`open`], also reading the `extra` columns (string or integer) into
/// [`UrlRow::extra`].
pub fn open_with(
    path: &Path,
    url_col: &str,
    class_col: Option<&str>,
    extra: &[String],
    batch_rows: usize,
) -> Result<ParquetRows, InputError> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| super::open_error(&shown, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| InputError::Unreadable {
            path: shown.clone(),
            reason: format!("not a readable parquet file ({e})"),
        })?;
    let schema = Arc::clone(builder.schema());
    let available = || {
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let field = |name: &str| {
        schema
            .field_with_name(name)
            .map_err(|_| InputError::MissingColumn {
                path: shown.clone(),
                column: name.to_string(),
                available: available(),
            })
    };
    let url_field = field(url_col)?;
    if !is_string(url_field.data_type()) {
        return Err(InputError::WrongColumnType {
            path: shown,
            column: url_col.to_string(),
            found: url_field.data_type().to_string(),
            expected: "a string column".to_string(),
        });
    }
    let mut wanted = vec![url_col];
    for name in class_col
        .into_iter()
        .chain(extra.iter().map(String::as_str))
    {
        let t = field(name)?.data_type();
        if !is_string(t) && !is_integer(t) {
            return Err(InputError::WrongColumnType {
                path: shown,
                column: name.to_string(),
                found: t.to_string(),
                expected: "a string or integer column".to_string(),
            });
        }
        if !wanted.contains(&name) {
            wanted.push(name);
        }
    }
    let total = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    if total == 0 {
        return Err(InputError::Empty { path: shown });
    }
    let mask = ProjectionMask::columns(builder.parquet_schema(), wanted);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(|e| InputError::Unreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    Ok(ParquetRows {
        reader,
        path: shown,
        url_col: url_col.to_string(),
        class_col: class_col.map(str::to_string),
        extra_cols: extra.to_vec(),
        next_index: 0,
        total,
    })
}

/// The values of a string or integer column as optional strings.
fn column_strings(batch: &RecordBatch, name: &str) -> Option<Vec<Option<String>>> {
    let col = batch.column_by_name(name)?;
    let n = col.len();
    let strings = |get: &dyn Fn(usize) -> String| -> Vec<Option<String>> {
        (0..n).map(|i| (!col.is_null(i)).then(|| get(i))).collect()
    };
    macro_rules! ints {
        ($($t:ty),*) => {
            $(if let Some(a) = col.as_primitive_opt::<$t>() {
                return Some(strings(&|i| a.value(i).to_string()));
            })*
        };
    }
    if let Some(a) = col.as_string_opt::<i32>() {
        return Some(strings(&|i| a.value(i).to_string()));
    }
    if let Some(a) = col.as_string_opt::<i64>() {
        return Some(strings(&|i| a.value(i).to_string()));
    }
    if let Some(a) = col.as_string_view_opt() {
        return Some(strings(&|i| a.value(i).to_string()));
    }
    ints!(
        Int8Type, Int16Type, Int32Type, Int64Type, UInt32Type, UInt64Type
    );
    None
}

impl RowBatches for ParquetRows {
    fn total_rows(&self) -> Option<u64> {
        Some(self.total)
    }

    fn next_batch(&mut self) -> Option<Result<Vec<UrlRow>, InputError>> {
        let batch = match self.reader.next()? {
            Ok(b) => b,
            Err(e) => {
                return Some(Err(InputError::Unreadable {
                    path: self.path.clone(),
                    reason: format!("row {}: {e}", self.next_index),
                }));
            }
        };
        let Some(urls) = column_strings(&batch, &self.url_col) else {
            return Some(Err(InputError::Unreadable {
                path: self.path.clone(),
                reason: format!("column '{}' could not be decoded", self.url_col),
            }));
        };
        let classes = match &self.class_col {
            Some(c) => match column_strings(&batch, c) {
                Some(v) => Some(v),
                None => {
                    return Some(Err(InputError::Unreadable {
                        path: self.path.clone(),
                        reason: format!("column '{c}' could not be decoded"),
                    }));
                }
            },
            None => None,
        };
        let mut classes = classes.map(Vec::into_iter);
        let mut extras = Vec::with_capacity(self.extra_cols.len());
        for c in &self.extra_cols {
            match column_strings(&batch, c) {
                Some(v) => extras.push(v.into_iter()),
                None => {
                    return Some(Err(InputError::Unreadable {
                        path: self.path.clone(),
                        reason: format!("column '{c}' could not be decoded"),
                    }));
                }
            }
        }
        let rows = urls
            .into_iter()
            .map(|url| {
                let row = UrlRow {
                    index: self.next_index,
                    url,
                    class: classes.as_mut().and_then(Iterator::next).flatten(),
                    extra: extras.iter_mut().map(|e| e.next().flatten()).collect(),
                };
                self.next_index += 1;
                row
            })
            .collect();
        Some(Ok(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use parquet::arrow::ArrowWriter;

    #[test]
    fn rows_stream_in_batches_with_nulls_and_integer_classes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let n = 20_000usize;
        let schema = Arc::new(Schema::new(vec![
            Field::new("u", DataType::Utf8, true),
            Field::new("taxon_id", DataType::Int64, true),
            Field::new("other", DataType::Utf8, true),
        ]));
        let urls: Vec<Option<String>> = (0..n)
            .map(|i| (i % 7 != 0).then(|| format!("http://h/{i}.jpg")))
            .collect();
        let ids: Vec<Option<i64>> = (0..n).map(|i| (i % 5 != 0).then_some(i as i64)).collect();
        let other: Vec<Option<&str>> = (0..n).map(|_| Some("x")).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(urls.clone())),
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from(other)),
            ],
        )
        .unwrap();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();

        let mut rows = open(&path, "u", Some("taxon_id"), 4096).unwrap();
        assert_eq!(rows.total_rows(), Some(n as u64));
        let mut seen = 0usize;
        while let Some(batch) = rows.next_batch() {
            let batch = batch.unwrap();
            assert!(batch.len() <= 4096);
            for r in batch {
                assert_eq!(r.index as usize, seen);
                assert_eq!(r.url, urls[seen]);
                assert_eq!(r.class, ids[seen].map(|v| v.to_string()));
                seen += 1;
            }
        }
        assert_eq!(seen, n);
        assert!(matches!(
            open(&path, "taxon_id", None, 10),
            Err(InputError::WrongColumnType { .. })
        ));
        assert!(matches!(
            open(&path, "u", Some("nope"), 10),
            Err(InputError::MissingColumn { .. })
        ));
    }
}
