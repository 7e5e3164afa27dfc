//! `--format parquet`: one parquet file per shard holding the images themselves, one row per
//! stored image: `image` as the Hugging Face `{bytes, path}` struct (so `datasets` and
//! `ldawt reconstruct` read it back), then the row's index, url, class, sha256, HTTP status,
//! byte count, dimensions when known, and the `--extra-cols` cells. Row groups are closed every
//! [`GROUP_BYTES`] of image data, which bounds the memory the buffered images take. Written to
//! `<path>.part`, fsynced and renamed at the end like the tar. `--resume` rewrites: the rows
//! of the previous parquet that its results vouch for are copied into the new file
//! ([`ParquetSink::copy_from`]), then the new images follow.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, StringBuilder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StructArray, UInt64Array};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;

use super::RowResult;
use super::format::RowSide;
use crate::archive::{ArchiveSummary, part_path};

/// Image bytes buffered before a row group is written.
pub const GROUP_BYTES: usize = 64 * 1024 * 1024;
/// Rows buffered before a row group is written, whatever their size.
const GROUP_ROWS: usize = 4096;

fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ])
}

/// The schema of an images parquet with `extra` columns.
pub fn images_schema(extra: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new("image", DataType::Struct(image_fields()), false),
        Field::new("index", DataType::UInt64, false),
        Field::new("url", DataType::Utf8, true),
        Field::new("class", DataType::Utf8, true),
        Field::new("sha256", DataType::Utf8, true),
        Field::new("http_status", DataType::UInt16, true),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("width", DataType::UInt32, true),
        Field::new("height", DataType::UInt32, true),
        Field::new("original_width", DataType::UInt32, true),
        Field::new("original_height", DataType::UInt32, true),
    ];
    fields.extend(extra.iter().map(|c| Field::new(c, DataType::Utf8, true)));
    Arc::new(Schema::new(fields))
}

/// One buffered row.
struct Row {
    bytes: Vec<u8>,
    result: RowResult,
    side: RowSide,
}

/// Writes the images parquet (blocking; owned by the writer thread).
pub struct ParquetSink {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    extra: Vec<String>,
    rows: Vec<Row>,
    buffered: usize,
    part: PathBuf,
    path: PathBuf,
}

fn to_io(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl ParquetSink {
    /// Creates `<path>.part`.
    pub fn create(path: &Path, extra: &[String]) -> io::Result<Self> {
        let part = part_path(path);
        let file = File::create(&part)?;
        let schema = images_schema(extra);
        let props = WriterProperties::builder()
            .set_compression(parquet::basic::Compression::UNCOMPRESSED)
            .set_max_row_group_row_count(Some(GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).map_err(to_io)?;
        Ok(Self {
            writer,
            schema,
            extra: extra.to_vec(),
            rows: Vec::new(),
            buffered: 0,
            part,
            path: path.to_path_buf(),
        })
    }

    /// Copies the rows of the previous images parquet `old` whose `index` `keep` accepts (asked
    /// once per row) into this file, in their order; returns how many. A missing file copies
    /// nothing; a file with other columns (changed `--extra-cols`) is an error naming both
    /// lists; a damaged one stops at the damage (the rest is downloaded again).
    pub fn copy_from(&mut self, old: &Path, mut keep: impl FnMut(u64) -> bool) -> io::Result<u64> {
        let Ok(file) = File::open(old) else {
            return Ok(0);
        };
        let damaged = |e: &dyn std::fmt::Display| {
            tracing::warn!(parquet = %old.display(), error = %e,
                "previous images parquet is damaged; the rest is downloaded again");
        };
        let reader = match ParquetRecordBatchReaderBuilder::try_new(file) {
            Ok(b) => b,
            Err(e) => {
                damaged(&e);
                return Ok(0);
            }
        };
        let names =
            |s: &Schema| -> Vec<String> { s.fields().iter().map(|f| f.name().clone()).collect() };
        let (had, want) = (names(reader.schema()), names(&self.schema));
        if had != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: the previous parquet has the columns {had:?}, this run writes {want:?} \
                     (--extra-cols or the resize options changed?); run without --resume",
                    old.display()
                ),
            ));
        }
        let reader = reader.with_batch_size(256).build().map_err(to_io)?;
        let mut copied = 0;
        for batch in reader {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    damaged(&e);
                    break;
                }
            };
            let Some(index) = batch
                .column_by_name("index")
                .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
            else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: column index is not UInt64", old.display()),
                ));
            };
            let mask: BooleanArray = index
                .iter()
                .map(|i| Some(i.is_some_and(&mut keep)))
                .collect();
            let kept = arrow_select::filter::filter_record_batch(&batch, &mask).map_err(to_io)?;
            if kept.num_rows() == 0 {
                continue;
            }
            copied += kept.num_rows() as u64;
            let kept = RecordBatch::try_new(Arc::clone(&self.schema), kept.columns().to_vec())
                .map_err(to_io)?;
            self.writer.write(&kept).map_err(to_io)?;
            if self.writer.in_progress_size() >= GROUP_BYTES {
                self.writer.flush().map_err(to_io)?;
            }
        }
        Ok(copied)
    }

    /// Adds one stored image.
    pub(crate) fn push(
        &mut self,
        bytes: Vec<u8>,
        result: &RowResult,
        side: &RowSide,
    ) -> io::Result<()> {
        self.buffered += bytes.len();
        self.rows.push(Row {
            bytes,
            result: result.clone(),
            side: side.clone(),
        });
        if self.buffered >= GROUP_BYTES || self.rows.len() >= GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let batch = self.batch().map_err(to_io)?;
        self.rows.clear();
        self.buffered = 0;
        self.writer.write(&batch).map_err(to_io)?;
        self.writer.flush().map_err(to_io)
    }

    fn batch(&self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let n = self.rows.len();
        let mut image = BinaryBuilder::new();
        let mut path = StringBuilder::new();
        let mut index = UInt64Builder::with_capacity(n);
        let mut url = StringBuilder::new();
        let mut class = StringBuilder::new();
        let mut sha = StringBuilder::new();
        let mut http = UInt16Builder::with_capacity(n);
        let mut bytes = UInt64Builder::with_capacity(n);
        let mut dims: Vec<UInt32Builder> =
            (0..4).map(|_| UInt32Builder::with_capacity(n)).collect();
        let mut extra: Vec<StringBuilder> =
            self.extra.iter().map(|_| StringBuilder::new()).collect();
        for row in &self.rows {
            let r = &row.result;
            image.append_value(&row.bytes);
            path.append_option(r.member.as_deref());
            index.append_value(r.index);
            url.append_option(r.url.as_deref());
            class.append_option(r.class.as_deref());
            sha.append_option(r.sha256.as_deref());
            http.append_option(r.http_status);
            bytes.append_value(r.bytes);
            let d = row
                .side
                .dims
                .map(|d| [d.stored.0, d.stored.1, d.original.0, d.original.1]);
            for (k, b) in dims.iter_mut().enumerate() {
                b.append_option(d.map(|d| d[k]));
            }
            for (k, b) in extra.iter_mut().enumerate() {
                b.append_option(row.side.extra.get(k).and_then(Option::as_deref));
            }
        }
        let image = StructArray::try_new(
            image_fields(),
            vec![
                Arc::new(image.finish()) as ArrayRef,
                Arc::new(path.finish()) as ArrayRef,
            ],
            None,
        )?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(image),
            Arc::new(index.finish()),
            Arc::new(url.finish()),
            Arc::new(class.finish()),
            Arc::new(sha.finish()),
            Arc::new(http.finish()),
            Arc::new(bytes.finish()),
        ];
        columns.extend(dims.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        columns.extend(extra.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
    }

    /// Writes what is buffered, closes, fsyncs and renames into place.
    pub fn finish(mut self) -> io::Result<ArchiveSummary> {
        self.flush()?;
        let file = self.writer.into_inner().map_err(to_io)?;
        let size = file.metadata()?.len();
        drop(file);
        crate::layout::persist(&self.part, &self.path)?;
        Ok(ArchiveSummary { size, sha256: None })
    }

    /// Drops the partial file.
    pub fn abort(self) {
        let part = self.part.clone();
        drop(self);
        let _ = std::fs::remove_file(part);
    }
}
