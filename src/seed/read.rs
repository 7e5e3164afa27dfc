//! Streaming reads of a seed file through the engine's readers (`crate::input`), yielding each
//! row with its grouping value for `--group-col`. When the grouping column is not the class
//! column, a second reader over the same file supplies it batch by batch (both readers cut the
//! file into identical batches).

use std::path::Path;

use crate::input::{self, InputError, RowBatches, UrlRow};

/// Which columns to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// URL column (required).
    pub url: String,
    /// Class column (optional).
    pub class: Option<String>,
    /// Grouping column for `--group-col` (optional).
    pub group: Option<String>,
    /// Columns the dataset's settings need besides URL and class (extra, hash, caption),
    /// carried in each row's `extra` cells in this order.
    pub extra: Vec<String>,
}

/// One row as read: the row, and its grouping value when a grouping column was asked for.
pub type ReadRow = (UrlRow, Option<String>);

/// Rows in the file (parquet: from its metadata; CSV: by reading it).
pub fn count_rows(path: &Path, cols: &Columns) -> Result<u64, InputError> {
    let mut rows = input::open(path, &cols.url, cols.class.as_deref())?;
    if let Some(n) = rows.total_rows() {
        return Ok(n);
    }
    let mut n = 0u64;
    while let Some(batch) = rows.next_batch() {
        n += batch?.len() as u64;
    }
    Ok(n)
}

/// Calls `each` on every row of `path` in order; row indices start at `first_index`. Returns
/// the number of rows read.
pub fn for_each_row(
    path: &Path,
    cols: &Columns,
    first_index: u64,
    mut each: impl FnMut(ReadRow) -> Result<(), InputError>,
) -> Result<u64, InputError> {
    let mut rows = input::open_with(path, &cols.url, cols.class.as_deref(), &cols.extra)?;
    let mut groups: Option<Box<dyn RowBatches>> = match &cols.group {
        Some(g) if Some(g) != cols.class.as_ref() => Some(input::open(path, &cols.url, Some(g))?),
        _ => None,
    };
    let mut n = 0u64;
    while let Some(batch) = rows.next_batch() {
        let batch = batch?;
        let keys: Vec<Option<String>> = match groups.as_mut() {
            Some(g) => match g.next_batch() {
                Some(b) => b?.into_iter().map(|r| r.class).collect(),
                None => Vec::new(),
            },
            None if cols.group.is_some() => batch.iter().map(|r| r.class.clone()).collect(),
            None => Vec::new(),
        };
        if cols.group.is_some() && keys.len() != batch.len() {
            return Err(InputError::Unreadable {
                path: path.display().to_string(),
                reason: format!("column '{}' could not be read alongside the URLs", cols.url),
            });
        }
        let mut keys = keys.into_iter();
        for mut row in batch {
            row.index += first_index;
            each((row, keys.next().flatten()))?;
            n += 1;
        }
    }
    Ok(n)
}
