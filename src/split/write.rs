//! Pass 2 of `ldawt split`: reads every column batch by batch, routes each row to the writer of
//! its class's group, and publishes the files by renaming temp files only once all succeeded.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::BooleanArray;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{SplitError, SplitRequest, class_keys, io_err, open_parquet};
use crate::model::split_plan::SplitPlan;

/// Rows per output row group at most.
const ROW_GROUP_ROWS: usize = 1_048_576;
/// Encoded bytes all open writers may buffer together before flushing row groups; each of the
/// N writers gets an equal share (at least [`MIN_ROW_GROUP_BYTES`]). This bounds memory
/// whatever the input size.
const WRITE_BUDGET_BYTES: usize = 32 << 20;
/// Smallest row group a writer flushes, so many groups do not make tiny row groups.
const MIN_ROW_GROUP_BYTES: usize = 1 << 20;

/// Temp files that are deleted unless `publish` renames them into place.
struct PendingFiles {
    temps: Vec<PathBuf>,
    published: bool,
}

impl PendingFiles {
    fn publish(&mut self, finals: &[PathBuf]) -> Result<(), SplitError> {
        for (temp, fin) in self.temps.iter().zip(finals) {
            crate::layout::persist(temp, fin).map_err(|e| io_err(fin, e))?;
        }
        self.published = true;
        Ok(())
    }
}

impl Drop for PendingFiles {
    fn drop(&mut self) {
        if !self.published {
            for t in &self.temps {
                let _ = std::fs::remove_file(t);
            }
        }
    }
}

fn temp_name(fin: &Path) -> PathBuf {
    let name = fin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    fin.with_file_name(format!(".{name}.partial"))
}

/// Writes every row of the input to `files[group]` following `plan`; returns rows per group.
pub fn write_groups(
    req: &SplitRequest,
    plan: &SplitPlan,
    files: &[PathBuf],
    batch_rows: usize,
) -> Result<Vec<u64>, SplitError> {
    let path = req.input.as_path();
    let builder = open_parquet(path)?;
    let schema = builder.schema().clone();
    let reader = builder
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| io_err(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(
            (WRITE_BUDGET_BYTES / files.len().max(1)).max(MIN_ROW_GROUP_BYTES),
        ))
        .build();
    let mut pending = PendingFiles {
        temps: files.iter().map(|f| temp_name(f)).collect(),
        published: false,
    };
    let mut writers = Vec::with_capacity(files.len());
    for temp in &pending.temps {
        let file = File::create(temp).map_err(|e| SplitError::Unwritable {
            path: temp.display().to_string(),
            reason: e.to_string(),
        })?;
        writers.push(
            ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))
                .map_err(|e| io_err(temp, e))?,
        );
    }
    let lookup: HashMap<&Option<String>, usize> =
        plan.assignment.iter().map(|(c, g)| (c, *g)).collect();
    let mut rows = vec![0u64; files.len()];
    for batch in reader {
        let batch = batch.map_err(|e| io_err(path, e))?;
        let column = batch
            .column_by_name(&req.group_col)
            .ok_or_else(|| io_err(path, "class column vanished from a batch"))?;
        let keys = class_keys(column).map_err(|e| io_err(path, e))?;
        let mut group_of = Vec::with_capacity(keys.len());
        for key in &keys {
            let g = lookup
                .get(key)
                .copied()
                .ok_or_else(|| io_err(path, format!("class {key:?} appeared only in pass 2")))?;
            group_of.push(g);
        }
        for (g, writer) in writers.iter_mut().enumerate() {
            let mask: BooleanArray = group_of.iter().map(|x| Some(*x == g)).collect();
            let count = mask.true_count();
            if count == 0 {
                continue;
            }
            let part = arrow_select::filter::filter_record_batch(&batch, &mask)
                .map_err(|e| io_err(&files[g], e))?;
            writer.write(&part).map_err(|e| io_err(&files[g], e))?;
            rows[g] += count as u64;
        }
    }
    for (g, writer) in writers.into_iter().enumerate() {
        writer.close().map_err(|e| io_err(&files[g], e))?;
    }
    pending.publish(files)?;
    Ok(rows)
}
