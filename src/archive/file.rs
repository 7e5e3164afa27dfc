//! The bytes' way into `<archive>.part`. [`HashingFile`] counts (and, when asked, hashes) what
//! reaches the file and has a background thread `fdatasync` it every [`SYNC_EVERY`] bytes, then
//! drop those pages from the page cache. [`GatherWriter`] sits above it for plain tars: image
//! bodies are queued as the very chunks the connection read, not copied, and go out with the
//! small pieces around them (tar headers, padding) in one vectored write per
//! [`WRITE_BUFFER`] — large writes, which ext4 handles far more cheaply than one per image
//! (measured: per-image writes cost 25 % more system time), without the copy a `BufWriter`
//! makes of every byte.

use std::fs::File;
use std::io::{self, IoSlice, Write};

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Bytes gathered before they are written.
pub(super) const WRITE_BUFFER: usize = 1024 * 1024;
/// Most pieces in one vectored write (Linux's `IOV_MAX` is 1024).
const MAX_PIECES: usize = 512;
/// Bytes written between two background `fdatasync`s.
const SYNC_EVERY: u64 = 64 * 1024 * 1024;

/// The background flusher: a thread holding a clone of the file descriptor. After each
/// `fdatasync` it drops the synced pages from the page cache (`POSIX_FADV_DONTNEED`): an
/// archive is written once and not read back soon, so keeping it cached only evicts what the
/// machine does use, and the writes then reuse the pages just freed instead of ever fresh
/// ones. On the development VM that cut the cost of writing the archive by half or more
/// (fresh pages of a virtual machine are slow to fault in).
struct Syncer {
    wake: std::sync::mpsc::SyncSender<u64>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    fn start(file: &File) -> Option<Self> {
        let clone = file.try_clone().ok()?;
        let (wake, rx) = std::sync::mpsc::sync_channel::<u64>(1);
        let thread = std::thread::Builder::new()
            .name("ldawt-sync".into())
            .spawn(move || {
                while let Ok(upto) = rx.recv() {
                    if clone.sync_data().is_ok() {
                        let len = std::num::NonZeroU64::new(upto);
                        let dont = rustix::fs::Advice::DontNeed;
                        let _ = rustix::fs::fadvise(&clone, 0, len, dont);
                    }
                }
            })
            .ok()?;
        Some(Self { wake, thread })
    }

    fn stop(self) {
        drop(self.wake);
        let _ = self.thread.join();
    }
}

/// A file writer that counts, and hashes when asked to, everything written through it.
pub(super) struct HashingFile {
    file: File,
    hasher: Option<Sha256>,
    written: u64,
    unsynced: u64,
    syncer: Option<Syncer>,
}

impl HashingFile {
    /// Wraps a freshly created file; `digest` computes its sha256.
    pub(super) fn new(file: File, digest: bool) -> Self {
        Self {
            syncer: Syncer::start(&file),
            file,
            hasher: digest.then(Sha256::new),
            written: 0,
            unsynced: 0,
        }
    }

    fn counted(&mut self, n: u64) {
        self.written += n;
        self.unsynced += n;
        if self.unsynced >= SYNC_EVERY {
            self.unsynced = 0;
            if let Some(s) = &self.syncer {
                // A sync already pending covers these bytes too.
                let _ = s.wake.try_send(self.written);
            }
        }
    }

    /// Writes all of `parts`, in order, with as few vectored writes as the kernel allows.
    /// (After an error the archive is abandoned, so the digest covers complete calls only.)
    fn write_parts(&mut self, parts: &[Bytes]) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut left: &mut [IoSlice<'_>] = &mut slices;
        while !left.is_empty() {
            match self.file.write_vectored(left) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut left, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut total = 0u64;
        for part in parts {
            if let Some(h) = &mut self.hasher {
                h.update(part);
            }
            total += part.len() as u64;
        }
        self.counted(total);
        Ok(())
    }

    /// Stops the syncer, fsyncs, and returns the size and the hex sha256 (when asked for).
    pub(super) fn close(mut self) -> io::Result<(u64, Option<String>)> {
        if let Some(s) = self.syncer.take() {
            s.stop();
        }
        self.file.sync_all()?;
        Ok((
            self.written,
            self.hasher.take().map(|h| hex::encode(h.finalize())),
        ))
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.counted(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Gathers shared chunks and small copied pieces, and writes them out in large vectored writes.
pub(super) struct GatherWriter {
    pieces: Vec<Bytes>,
    /// Small writes not yet turned into a piece.
    staged: Vec<u8>,
    pending: usize,
    inner: HashingFile,
}

impl GatherWriter {
    pub(super) fn new(inner: HashingFile) -> Self {
        Self {
            pieces: Vec::with_capacity(MAX_PIECES),
            staged: Vec::new(),
            pending: 0,
            inner,
        }
    }

    /// Queues `chunk` without copying it (it is kept alive until written).
    pub(super) fn push(&mut self, chunk: Bytes) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.seal_staged();
        self.pending += chunk.len();
        self.pieces.push(chunk);
        self.maybe_flush()
    }

    fn seal_staged(&mut self) {
        if !self.staged.is_empty() {
            self.pieces
                .push(Bytes::from(std::mem::take(&mut self.staged)));
        }
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.pending >= WRITE_BUFFER || self.pieces.len() + 1 >= MAX_PIECES {
            self.write_out()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> io::Result<()> {
        self.seal_staged();
        let result = self.inner.write_parts(&self.pieces);
        self.pieces.clear();
        self.pending = 0;
        result
    }

    /// Writes what is queued and hands back the file.
    pub(super) fn into_inner(mut self) -> io::Result<HashingFile> {
        self.write_out()?;
        Ok(self.inner)
    }
}

impl Write for GatherWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.staged.extend_from_slice(data);
        self.pending += data.len();
        if self.pending >= WRITE_BUFFER {
            self.write_out()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_chunks_and_small_writes_land_in_order_with_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.part");
        let file = HashingFile::new(File::create(&path).unwrap(), true);
        let mut w = GatherWriter::new(file);
        let mut want = Vec::new();
        for i in 0..3000u32 {
            let small = i.to_le_bytes();
            w.write_all(&small).unwrap();
            want.extend_from_slice(&small);
            // Bodies of varied sizes; enough in all for several full writes and many pieces.
            let body = Bytes::from(vec![(i % 251) as u8; (i as usize * 37) % 3000]);
            want.extend_from_slice(&body);
            w.push(body).unwrap();
        }
        w.write_all(b"end").unwrap();
        want.extend_from_slice(b"end");
        let (size, sha) = w.into_inner().unwrap().close().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(size, want.len() as u64);
        assert!(got == want, "content differs");
        assert_eq!(sha.unwrap(), hex::encode(Sha256::digest(&want)));
    }
}
