//! The shard archive: a tar (plain or gzip) written by one thread to `<archive>.part` in large
//! writes ([`file`]: image chunks are not copied on the way), hashed as it is written when
//! asked, then fsynced and renamed into place. Members are `<top>/<class folder>/<name>.<ext>`
//! with directory entries for `<top>/` and each folder, and fixed metadata (mode 0644, uid/gid
//! 0, the run's start time) so runs are reproducible.
//! [`copy`] carries members of a previous archive over for `--resume`; [`dir`] writes the same
//! members as a plain directory tree (`--format files`); `name` derives the compression, the
//! stem and the side files' paths from the archive's name.

pub mod copy;
pub mod dir;
mod file;
mod gzip;
mod name;

pub use crate::layout::part_path;
pub use name::{archive_stem, compression_for, overview_path, results_path};

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use self::file::{GatherWriter, HashingFile, WRITE_BUFFER};
use self::gzip::GzipWriter;

/// How the archive is compressed. Chosen from the output name by default
/// ([`compression_for`]): `.tar` → `None`, `.tar.gz` / `.tgz` → `Gzip` at a fast level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Compression {
    /// A plain POSIX tar (images are already compressed).
    None,
    /// gzip at the given level (0–9).
    Gzip {
        /// The zlib level.
        level: u32,
    },
}

/// The byte sink under the tar builder.
// One per archive, so the variants' size difference does not matter; boxing the plain one
// would add an indirection to every write of the hot path.
#[allow(clippy::large_enum_variant)]
enum Sink {
    Plain(GatherWriter),
    Gzip(Box<GzipWriter<BufWriter<HashingFile>>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Gzip(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.write_all(buf),
            Self::Gzip(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Gzip(w) => w.flush(),
        }
    }
}

impl Sink {
    fn into_file(self) -> io::Result<HashingFile> {
        match self {
            Self::Plain(w) => w.into_inner(),
            Self::Gzip(w) => w
                .finish()?
                .into_inner()
                .map_err(io::IntoInnerError::into_error),
        }
    }
}

/// What a finished archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// Its size in bytes.
    pub size: u64,
    /// Its hex sha256, when the writer was asked to compute it.
    pub sha256: Option<String>,
}

/// Writes one archive (blocking; owned by the writer thread).
pub struct ArchiveWriter {
    builder: tar::Builder<Sink>,
    part: PathBuf,
    path: PathBuf,
    top: String,
    dirs: HashSet<String>,
    mtime: u64,
}

impl ArchiveWriter {
    /// Creates `<path>.part`. `top` is the archive's top folder; `mtime` stamps every member.
    /// With `digest`, the archive's sha256 is computed as it is written (a full extra pass over
    /// every byte: a third of the engine's CPU on fast links, so only when someone uses it).
    pub fn create(
        path: &Path,
        top: &str,
        compression: Compression,
        mtime: u64,
        digest: bool,
    ) -> io::Result<Self> {
        let part = part_path(path);
        let hashing = HashingFile::new(File::create(&part)?, digest);
        let sink = match compression {
            Compression::None => Sink::Plain(GatherWriter::new(hashing)),
            Compression::Gzip { level } => {
                let buffered = BufWriter::with_capacity(WRITE_BUFFER, hashing);
                Sink::Gzip(Box::new(GzipWriter::new(buffered, level)?))
            }
        };
        let mut builder = tar::Builder::new(sink);
        builder.mode(tar::HeaderMode::Deterministic);
        Ok(Self {
            builder,
            part,
            path: path.to_path_buf(),
            top: top.to_string(),
            dirs: HashSet::new(),
            mtime,
        })
    }

    /// The archive's top folder.
    pub fn top(&self) -> &str {
        &self.top
    }

    fn header(&self, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// Adds the directory entry `dir/` once.
    pub fn ensure_dir(&mut self, dir: &str) -> io::Result<()> {
        if self.dirs.contains(dir) {
            return Ok(());
        }
        if let Some((parent, _)) = dir.rsplit_once('/') {
            let parent = parent.to_string();
            self.ensure_dir(&parent)?;
        }
        let mut h = self.header(tar::EntryType::Directory, 0, 0o755);
        self.builder
            .append_data(&mut h, format!("{dir}/"), io::empty())?;
        self.dirs.insert(dir.to_string());
        Ok(())
    }

    /// Appends a regular file `member` (a full path starting with the top folder) of `size`
    /// bytes read from `data`, creating its parent directory entries first. In a gzip archive,
    /// `precompressed` data (JPEG, PNG…) is stored rather than deflated (see [`gzip`]).
    pub fn append(
        &mut self,
        member: &str,
        size: u64,
        data: impl Read,
        precompressed: bool,
    ) -> io::Result<()> {
        if let Some((dir, _)) = member.rsplit_once('/') {
            let dir = dir.to_string();
            self.ensure_dir(&dir)?;
        }
        if let Sink::Gzip(g) = self.builder.get_mut() {
            g.set_storing(precompressed)?;
        }
        let mut h = self.header(tar::EntryType::Regular, size, 0o644);
        self.builder.append_data(&mut h, member, data)?;
        if let Sink::Gzip(g) = self.builder.get_mut() {
            g.set_storing(false)?;
        }
        Ok(())
    }

    /// Like [`ArchiveWriter::append`] for a body in memory.
    pub fn append_bytes(
        &mut self,
        member: &str,
        data: &[u8],
        precompressed: bool,
    ) -> io::Result<()> {
        self.append_chunks(member, &[Bytes::copy_from_slice(data)], precompressed)
    }

    /// Like [`ArchiveWriter::append`] for a body held as chunks, in order. When the name fits
    /// the tar header, a plain tar queues the chunks themselves (no copy, see [`file`]);
    /// longer names take the builder's GNU long-name path.
    pub fn append_chunks(
        &mut self,
        member: &str,
        chunks: &[Bytes],
        precompressed: bool,
    ) -> io::Result<()> {
        let size: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let mut h = self.header(tar::EntryType::Regular, size, 0o644);
        if h.set_path(member).is_err() {
            // Rare (a path over 100 bytes): one copy is fine here.
            return self.append(member, size, &chunks.concat()[..], precompressed);
        }
        h.set_cksum();
        if let Some((dir, _)) = member.rsplit_once('/') {
            let dir = dir.to_string();
            self.ensure_dir(&dir)?;
        }
        let pad = &[0u8; 512][..((512 - size % 512) % 512) as usize];
        match self.builder.get_mut() {
            Sink::Plain(w) => {
                w.write_all(h.as_bytes())?;
                for chunk in chunks {
                    w.push(chunk.clone())?;
                }
                w.write_all(pad)
            }
            Sink::Gzip(g) => {
                g.set_storing(precompressed)?;
                g.write_all(h.as_bytes())?;
                for chunk in chunks {
                    g.write_all(chunk)?;
                }
                g.write_all(pad)?;
                g.set_storing(false)
            }
        }
    }

    /// Writes the end-of-archive blocks, fsyncs and renames `.part` into place.
    pub fn finish(self) -> io::Result<ArchiveSummary> {
        let sink = self.builder.into_inner()?;
        let (size, sha256) = sink.into_file()?.close()?;
        let summary = ArchiveSummary { size, sha256 };
        crate::layout::persist(&self.part, &self.path)?;
        Ok(summary)
    }

    /// Drops the partial archive.
    pub fn abort(self) {
        let part = self.part.clone();
        drop(self);
        let _ = std::fs::remove_file(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_stored_whole_with_short_and_long_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tar");
        let mut w = ArchiveWriter::create(&path, "s", Compression::None, 0, true).unwrap();
        let long = format!("s/{}/{}.jpg", "c".repeat(90), "n".repeat(60));
        let chunks: Vec<Bytes> = [vec![1; 700], vec![], vec![2; 5000], vec![3; 3]]
            .into_iter()
            .map(Bytes::from)
            .collect();
        w.append_chunks("s/a/x.jpg", &chunks, true).unwrap();
        w.append_chunks(&long, &chunks, true).unwrap();
        let summary = w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(summary.size, bytes.len() as u64);
        let want: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut found = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type() == tar::EntryType::Regular {
                let mut got = Vec::new();
                entry.read_to_end(&mut got).unwrap();
                assert_eq!(got, want);
                found.push(entry.path().unwrap().to_string_lossy().into_owned());
            }
        }
        assert_eq!(found, vec!["s/a/x.jpg".to_string(), long]);
    }
}
