//! An images parquet delivered for a shard (`--format parquet`) checked against the members its
//! results vouch for: its footer is bounded before anything is decoded (rows, uncompressed
//! bytes, codecs), then it is read a few rows at a time; every row must be a stored row's
//! (`index`), once, with `image.path` the row's member and `image.bytes` of the row's size and
//! sha256; every stored row must be there.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::{Array, BinaryArray, StringArray, StructArray, UInt64Array};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

use super::Invalid;
use super::rows::{Expected, ExpectedMember};
use crate::results::check_foreign_results;

/// Rows decoded at a time (bounds memory to a few images).
const BATCH_ROWS: usize = 8;
/// Bytes per row allowed beside the image (URL, class, hash, extra cells).
const MAX_ROW_OVERHEAD: u64 = 64 << 10;

fn bad(why: impl std::fmt::Display) -> Invalid {
    Invalid::UnreadableArchive(format!("images parquet: {why}"))
}

/// Checks the images parquet at `path` against `expected`.
pub fn check_images(path: &Path, expected: &Expected) -> Result<(), Invalid> {
    let rows = expected.members.len() as u64;
    let image_bytes: u64 = expected.members.values().map(|m| m.size).sum();
    check_foreign_results(
        path,
        rows,
        image_bytes + rows.saturating_mul(MAX_ROW_OVERHEAD) + (1 << 20),
    )
    .map_err(|e| bad(super::format_error(&e.to_string(), path)))?;
    let mut by_index: HashMap<u64, (&str, &ExpectedMember)> = expected
        .members
        .iter()
        .map(|(name, m)| (m.index, (name.as_str(), m)))
        .collect();
    let file = File::open(path).map_err(|_| Invalid::NotReceived("archive"))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(bad)?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(bad)?;
    for batch in reader {
        let batch = batch.map_err(bad)?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| bad(format!("no '{name}' column")))
        };
        let index = column("index")?
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| bad("'index' is not uint64"))?
            .clone();
        let image = column("image")?
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| bad("'image' is not a struct"))?
            .clone();
        let bytes = image
            .column_by_name("bytes")
            .and_then(|c| c.as_any().downcast_ref::<BinaryArray>().cloned())
            .ok_or_else(|| bad("'image.bytes' is not binary"))?;
        let paths = image
            .column_by_name("path")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
            .ok_or_else(|| bad("'image.path' is not a string"))?;
        for i in 0..batch.num_rows() {
            if index.is_null(i) {
                return Err(bad("a row without an index"));
            }
            let row = index.value(i);
            let (name, want) = by_index.remove(&row).ok_or_else(|| {
                bad(format!(
                    "row {row} is not a stored row of this shard (or is there twice)"
                ))
            })?;
            if paths.is_null(i) || paths.value(i) != name {
                return Err(bad(format!(
                    "row {row}: image.path is not the row's member"
                )));
            }
            let data: &[u8] = if bytes.is_null(i) {
                &[]
            } else {
                bytes.value(i)
            };
            if data.len() as u64 != want.size {
                return Err(Invalid::MemberSize {
                    member: name.chars().take(200).collect(),
                    expected: want.size,
                    found: data.len() as u64,
                });
            }
            let digest: [u8; 32] = Sha256::digest(data).into();
            if digest != want.sha256 {
                return Err(Invalid::MemberHash(name.chars().take(200).collect()));
            }
        }
    }
    match by_index.values().map(|(n, _)| *n).min() {
        Some(m) => Err(Invalid::MissingMember(m.chars().take(200).collect())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, RecordBatch, new_null_array};
    use parquet::arrow::ArrowWriter;

    use super::*;
    use crate::engine::images_schema;
    use crate::verify::rows::MemberKind;

    /// An images parquet of `(index, path, bytes)` rows.
    fn write(path: &Path, rows: &[(u64, &str, &[u8])]) {
        let schema = images_schema(&[]);
        let image = StructArray::from(vec![
            (
                Arc::new(arrow_schema::Field::new(
                    "bytes",
                    arrow_schema::DataType::Binary,
                    true,
                )),
                Arc::new(BinaryArray::from_iter_values(rows.iter().map(|r| r.2))) as ArrayRef,
            ),
            (
                Arc::new(arrow_schema::Field::new(
                    "path",
                    arrow_schema::DataType::Utf8,
                    true,
                )),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef,
            ),
        ]);
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(image),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
        ];
        for f in schema.fields().iter().skip(2) {
            cols.push(match f.name().as_str() {
                "bytes" => Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.2.len() as u64),
                )),
                _ => new_null_array(f.data_type(), rows.len()),
            });
        }
        let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
        let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn expected(rows: &[(u64, &str, &[u8])]) -> Expected {
        let mut e = Expected::default();
        for (index, path, bytes) in rows {
            e.members.insert(
                path.to_string(),
                ExpectedMember {
                    index: *index,
                    size: bytes.len() as u64,
                    sha256: Sha256::digest(bytes).into(),
                    kind: MemberKind::Image,
                },
            );
        }
        e
    }

    #[test]
    fn an_images_parquet_must_hold_exactly_the_stored_rows_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.parquet");
        let honest: [(u64, &str, &[u8]); 2] = [(3, "s/c/a.jpg", b"aaa"), (5, "s/c/b.jpg", b"bb")];
        write(&p, &honest);
        check_images(&p, &expected(&honest)).unwrap();
        // Other bytes under the row's sha256.
        write(&p, &[(3, "s/c/a.jpg", b"aab"), (5, "s/c/b.jpg", b"bb")]);
        assert!(matches!(
            check_images(&p, &expected(&honest)),
            Err(Invalid::MemberHash(_))
        ));
        // A row twice, a path that is not the row's, a missing row, a row not stored.
        for rows in [
            vec![honest[0], honest[0], honest[1]],
            vec![(3, "../../etc/x", &b"aaa"[..]), honest[1]],
            vec![honest[0]],
            vec![honest[0], honest[1], (9, "s/c/z.jpg", &b"z"[..])],
        ] {
            write(&p, &rows);
            assert!(check_images(&p, &expected(&honest)).is_err(), "{rows:?}");
        }
        std::fs::write(&p, b"PAR1 not parquet PAR1").unwrap();
        assert!(matches!(
            check_images(&p, &expected(&honest)),
            Err(Invalid::UnreadableArchive(_))
        ));
    }
}
