//! `--format files`: the archive's members written as plain files under a directory instead of
//! a tar. Members (`<top>/<class folder>/<name>.<ext>`) land in `<output>.part/<class
//! folder>/<name>.<ext>`; [`DirWriter::finish`] fsyncs them and renames the directory to
//! `<output>`, so a half-written tree never carries the final name. `--resume` reopens a
//! previous tree ([`DirWriter::reopen`]) and keeps only the files its results vouch for
//! ([`DirWriter::retain`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

use super::{ArchiveSummary, part_path};

/// Writes one directory tree (blocking; owned by the writer thread).
#[derive(Debug)]
pub struct DirWriter {
    part: PathBuf,
    path: PathBuf,
    top: String,
    size: u64,
    files: Vec<PathBuf>,
    /// A previous run's tree (`--resume`): [`Self::abort`] gives it its name back.
    reopened: bool,
}

impl DirWriter {
    /// Creates the empty `<path>.part/` directory (an old one is removed first: it can only be
    /// the leftover of an interrupted run). `top` is the members' first path component.
    pub fn create(path: &Path, top: &str) -> io::Result<Self> {
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", path.display()),
            ));
        }
        let part = part_path(path);
        if part.exists() {
            std::fs::remove_dir_all(&part)?;
        }
        std::fs::create_dir_all(&part)?;
        Ok(Self::empty(part, path, top, false))
    }

    /// A writer of nothing yet into `part`, to become `path`, under the top folder `top`.
    fn empty(part: PathBuf, path: &Path, top: &str, reopened: bool) -> Self {
        Self {
            part,
            path: path.to_path_buf(),
            top: top.to_string(),
            size: 0,
            files: Vec::new(),
            reopened,
        }
    }

    /// Reopens a previous run's tree for `--resume`: `<path>` is moved back to `<path>.part`
    /// (a stale `.part` beside it is removed first). Without `<path>`, a `.part` left by a
    /// killed resumed run is taken as it is ([`Self::retain`] then keeps only what the
    /// previous results vouch for); with neither, this is [`Self::create`].
    pub fn reopen(path: &Path, top: &str) -> io::Result<Self> {
        let part = part_path(path);
        if path.exists() {
            if part.exists() {
                std::fs::remove_dir_all(&part)?;
            }
            std::fs::rename(path, &part)?;
        } else if !part.is_dir() {
            return Self::create(path, top);
        }
        Ok(Self::empty(part, path, top, true))
    }

    /// Keeps the files of the reopened tree whose member name (`<top>/<relative path>`)
    /// `keep` accepts and deletes the others (leftovers of rows no results file records);
    /// returns how many were kept.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) -> io::Result<u64> {
        let mut kept = 0;
        let mut pending = vec![self.part.clone()];
        // Bounded by the tree: every directory is visited once.
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                let path = entry.path();
                if kind.is_dir() {
                    pending.push(path);
                    continue;
                }
                let rel = path.strip_prefix(&self.part).unwrap_or(&path);
                let member = format!("{}/{}", self.top, rel.to_string_lossy());
                if kind.is_file() && keep(&member) {
                    self.size += entry.metadata()?.len();
                    self.files.push(path);
                    kept += 1;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        Ok(kept)
    }

    /// Where `member` goes: below the `.part` directory, without the top folder. Only plain
    /// components are accepted (the class folders are sanitised upstream; this is a backstop).
    fn target(&self, member: &str) -> io::Result<PathBuf> {
        let rest = member
            .strip_prefix(&self.top)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(member);
        let rel = Path::new(rest);
        if rest.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("member path {member:?} does not stay inside the output directory"),
            ));
        }
        Ok(self.part.join(rel))
    }

    fn create_file(&mut self, member: &str) -> io::Result<File> {
        let target = self.target(member)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = File::create(&target)?;
        self.files.push(target);
        Ok(file)
    }

    /// Writes `member` from `data`.
    pub fn append(&mut self, member: &str, data: impl Read) -> io::Result<()> {
        let mut file = self.create_file(member)?;
        let mut data = data;
        self.size += io::copy(&mut data, &mut file)?;
        Ok(())
    }

    /// Writes `member` from chunks, in order.
    pub fn append_chunks(&mut self, member: &str, chunks: &[Bytes]) -> io::Result<()> {
        let mut file = self.create_file(member)?;
        for c in chunks {
            file.write_all(c)?;
            self.size += c.len() as u64;
        }
        Ok(())
    }

    /// Fsyncs every file and renames `<path>.part` to `<path>`.
    pub fn finish(self) -> io::Result<ArchiveSummary> {
        for f in &self.files {
            File::open(f)?.sync_all()?;
        }
        crate::layout::persist(&self.part, &self.path)?;
        Ok(ArchiveSummary {
            size: self.size,
            sha256: None,
        })
    }

    /// Removes the partial directory; a reopened tree is moved back under its name instead,
    /// so a failed `--resume` never loses the previous run's files (files it added that no
    /// results file records are removed by the next resume's [`Self::retain`]).
    pub fn abort(self) {
        if self.reopened {
            let _ = std::fs::rename(&self.part, &self.path);
        } else {
            let _ = std::fs::remove_dir_all(&self.part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_become_files_and_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("shard");
        let mut w = DirWriter::create(&out, "shard").unwrap();
        w.append_chunks(
            "shard/a b/x.jpg",
            &[Bytes::from_static(b"ab"), Bytes::from_static(b"c")],
        )
        .unwrap();
        w.append("shard/y.png", &b"png"[..]).unwrap();
        assert!(w.append("shard/../evil", &b""[..]).is_err());
        assert!(w.append("/etc/passwd", &b""[..]).is_err());
        assert!(!out.exists(), "nothing under the final name before finish");
        let summary = w.finish().unwrap();
        assert_eq!(summary.size, 6);
        assert_eq!(std::fs::read(out.join("a b/x.jpg")).unwrap(), b"abc");
        assert_eq!(std::fs::read(out.join("y.png")).unwrap(), b"png");
        assert!(!dir.path().join("evil").exists());
        assert!(
            DirWriter::create(&out, "shard").is_err(),
            "never over an existing tree"
        );
        // Resume: the tree is reopened, only vouched-for files stay, new ones join them.
        let mut w = DirWriter::reopen(&out, "shard").unwrap();
        assert!(!out.exists());
        let kept = w.retain(|m| m == "shard/a b/x.jpg").unwrap();
        assert_eq!(kept, 1);
        w.append("shard/z.jpg", &b"zz"[..]).unwrap();
        assert_eq!(w.finish().unwrap().size, 5);
        assert_eq!(std::fs::read(out.join("a b/x.jpg")).unwrap(), b"abc");
        assert!(
            !out.join("y.png").exists(),
            "a file no result vouches for is removed"
        );
        assert_eq!(std::fs::read(out.join("z.jpg")).unwrap(), b"zz");
    }
}
