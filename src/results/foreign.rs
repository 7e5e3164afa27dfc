//! Bounds on a results file that came from another node, read from its parquet footer only,
//! before a single row is decoded.

use std::path::Path;

use super::ResultsError;

/// Reads only the footer of a results file that came from another node and refuses one that
/// claims more than `max_rows` rows or `max_bytes` uncompressed bytes, or uses a codec other
/// than the engine's (snappy) or none: what [`read_results`] would then decode stays bounded.
pub fn check_foreign_results(
    path: &Path,
    max_rows: u64,
    max_bytes: u64,
) -> Result<(), ResultsError> {
    let fmt = |reason: String| ResultsError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let builder = super::open_parquet(path)?;
    let meta = builder.metadata();
    let rows = u64::try_from(meta.file_metadata().num_rows()).unwrap_or(u64::MAX);
    if rows > max_rows {
        return Err(fmt(format!(
            "{rows} rows, more than the {max_rows} expected"
        )));
    }
    let mut bytes = 0u64;
    for rg in meta.row_groups() {
        for c in rg.columns() {
            bytes = bytes.saturating_add(u64::try_from(c.uncompressed_size()).unwrap_or(u64::MAX));
            if !matches!(
                c.compression(),
                parquet::basic::Compression::SNAPPY | parquet::basic::Compression::UNCOMPRESSED
            ) {
                return Err(fmt(format!("unexpected codec {}", c.compression())));
            }
        }
    }
    if bytes > max_bytes {
        return Err(fmt(format!(
            "{bytes} uncompressed bytes, more than the {max_bytes} allowed"
        )));
    }
    Ok(())
}
