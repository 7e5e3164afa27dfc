//! Streaming CSV reader: checks the header for the asked columns and that at least one record
//! exists, then hands out `UrlRow` batches record by record (constant memory).

use std::fs::File;
use std::path::Path;

use super::{InputError, RowBatches, UrlRow};

/// Rows of a CSV file with a header line.
pub struct CsvRows {
    records: csv::StringRecordsIntoIter<File>,
    pending: Option<csv::StringRecord>,
    path: String,
    url_pos: usize,
    class_pos: Option<usize>,
    extra_pos: Vec<usize>,
    headers: csv::StringRecord,
    next_index: u64,
    batch_rows: usize,
}

/// Opens `path`, finding `url_col` and `class_col` in the header.
pub fn open(
    path: &Path,
    url_col: &str,
    class_col: Option<&str>,
    batch_rows: usize,
) -> Result<CsvRows, InputError> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| super::open_error(&shown, e))?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let headers = reader
        .headers()
        .map_err(|e| InputError::Unreadable {
            path: shown.clone(),
            reason: format!("bad CSV header ({e})"),
        })?
        .clone();
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| InputError::MissingColumn {
                path: shown.clone(),
                column: name.to_string(),
                available: headers.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let url_pos = find(url_col)?;
    let class_pos = class_col.map(find).transpose()?;
    let mut records = reader.into_records();
    let first = match records.next() {
        None => return Err(InputError::Empty { path: shown }),
        Some(Err(e)) => {
            return Err(InputError::Unreadable {
                path: shown,
                reason: format!("row 0: {e}"),
            });
        }
        Some(Ok(r)) => r,
    };
    Ok(CsvRows {
        records,
        pending: Some(first),
        path: shown,
        url_pos,
        class_pos,
        extra_pos: Vec::new(),
        headers,
        next_index: 0,
        batch_rows: batch_rows.max(1),
    })
}

impl CsvRows {
    /// Also reads the `extra` columns into [`UrlRow::extra`].
    pub fn with_extra(mut self, extra: &[String]) -> Result<Self, InputError> {
        self.extra_pos = extra
            .iter()
            .map(|name| {
                self.headers.iter().position(|h| h == name).ok_or_else(|| {
                    InputError::MissingColumn {
                        path: self.path.clone(),
                        column: name.clone(),
                        available: self.headers.iter().collect::<Vec<_>>().join(", "),
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    fn row(&mut self, record: &csv::StringRecord) -> UrlRow {
        let cell = |pos: usize| {
            record
                .get(pos)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let row = UrlRow {
            index: self.next_index,
            url: cell(self.url_pos),
            class: self.class_pos.and_then(cell),
            extra: self.extra_pos.iter().map(|p| cell(*p)).collect(),
        };
        self.next_index += 1;
        row
    }
}

impl RowBatches for CsvRows {
    fn total_rows(&self) -> Option<u64> {
        None
    }

    fn next_batch(&mut self) -> Option<Result<Vec<UrlRow>, InputError>> {
        let mut batch = Vec::with_capacity(self.batch_rows.min(1024));
        if let Some(first) = self.pending.take() {
            batch.push(self.row(&first));
        }
        while batch.len() < self.batch_rows {
            match self.records.next() {
                None => break,
                Some(Ok(record)) => batch.push(self.row(&record)),
                Some(Err(e)) => {
                    return Some(Err(InputError::Unreadable {
                        path: self.path.clone(),
                        reason: format!("row {}: {e}", self.next_index),
                    }));
                }
            }
        }
        (!batch.is_empty()).then_some(Ok(batch))
    }
}
