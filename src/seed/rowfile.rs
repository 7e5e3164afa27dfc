//! A shard's rows on disk in the seeder's data dir: a sequence of records, each a little-endian
//! `u32` length then a postcard `UrlRow`. Written to a temp name and renamed when complete;
//! the shard's hosts ([`super::hosts`]) are tallied as rows go by and written beside it first.
//!
//! Each open writer holds a 64 KiB buffer and a file descriptor, so seeding keeps only a
//! bounded number open at once (one in contiguous mode); [`open_writers_peak`] makes that
//! observable for the calling thread (seeding runs on one blocking thread).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::input::UrlRow;

/// Write buffer per open shard file.
const WRITE_BUFFER: usize = 1 << 16;

thread_local! {
    /// (open now, most open at once since the last reset) on this thread.
    static OPEN_WRITERS: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// The most [`RowFileWriter`]s open at once on this thread since the last call (which resets
/// the peak to the number open now).
pub fn open_writers_peak() -> usize {
    OPEN_WRITERS.with(|c| {
        let (open, peak) = c.get();
        c.set((open, open));
        peak
    })
}

fn writer_opened() {
    OPEN_WRITERS.with(|c| {
        let (open, peak) = c.get();
        c.set((open + 1, peak.max(open + 1)));
    });
}

/// Appends rows to a shard file; [`RowFileWriter::finish`] makes it visible.
pub struct RowFileWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
    scratch: Vec<u8>,
    hosts: super::hosts::HostTally,
}

impl RowFileWriter {
    /// Starts `path` (written as `path.tmp` until finished).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let tmp = path.with_extension("rows.tmp");
        let file = File::create(&tmp)?;
        writer_opened();
        Ok(Self {
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            tmp,
            path: path.to_path_buf(),
            rows: 0,
            scratch: Vec::new(),
            hosts: super::hosts::HostTally::default(),
        })
    }

    /// Appends one row.
    pub fn push(&mut self, row: &UrlRow) -> std::io::Result<()> {
        // One encoding buffer reused for every row (no allocation per row).
        let mut bytes = std::mem::take(&mut self.scratch);
        bytes.clear();
        let bytes = postcard::to_extend(row, bytes).map_err(std::io::Error::other)?;
        let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&bytes)?;
        self.scratch = bytes;
        self.rows += 1;
        self.hosts.add(row.url.as_deref());
        Ok(())
    }

    /// Flushes, writes the shard's hosts file, then syncs and renames into place
    /// ([`crate::layout::persist`]); returns the row count.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.out.flush()?;
        super::hosts::write(&self.path, &self.hosts.summary())?;
        crate::layout::persist(&self.tmp, &self.path)?;
        Ok(self.rows)
    }
}

impl Drop for RowFileWriter {
    fn drop(&mut self) {
        OPEN_WRITERS.with(|c| {
            let (open, peak) = c.get();
            c.set((open.saturating_sub(1), peak));
        });
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
