//! A shard's rows on disk in the seeder's data dir: a sequence of records, each a little-endian
//! `u32` length then a postcard `UrlRow`. Written to a temp name and renamed when complete.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::input::UrlRow;

/// Appends rows to a shard file; [`RowFileWriter::finish`] makes it visible.
pub struct RowFileWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
}

impl RowFileWriter {
    /// Starts `path` (written as `path.tmp` until finished).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let tmp = path.with_extension("rows.tmp");
        Ok(Self {
            out: BufWriter::with_capacity(1 << 16, File::create(&tmp)?),
            tmp,
            path: path.to_path_buf(),
            rows: 0,
        })
    }

    /// Appends one row.
    pub fn push(&mut self, row: &UrlRow) -> std::io::Result<()> {
        let bytes = postcard::to_stdvec(row).map_err(std::io::Error::other)?;
        let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&bytes)?;
        self.rows += 1;
        Ok(())
    }

    /// Flushes, syncs and renames into place; returns the row count.
    pub fn finish(self) -> std::io::Result<u64> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)?;
        Ok(self.rows)
    }
}

/// Reads every row of a shard file.
pub fn read_rows(path: &Path) -> std::io::Result<Vec<UrlRow>> {
    let mut input = BufReader::new(File::open(path)?);
    let mut rows = Vec::new();
    let mut len = [0u8; 4];
    loop {
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut buf)?;
        rows.push(postcard::from_bytes(&buf).map_err(std::io::Error::other)?);
    }
    Ok(rows)
}
