//! Whole-file writes that are atomic for readers: the bytes go to `<name>.part` next to the
//! target, are fsynced, then renamed over it; the directory is fsynced too (best effort) so the
//! rename survives a crash. On failure the temporary file is removed and the previous file,
//! if any, is untouched. Streaming writers (archives, parquet, row files) write their own
//! temporary file and end with [`persist`], the same fsync-rename-fsync as [`write_atomic`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `out/x.tar.gz` → `out/x.tar.gz.part`: where a file is written before it is renamed into
/// place.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    path.with_file_name(name)
}

/// Replaces `path` with `bytes` atomically (mode 0644 before the umask).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o644)
}

/// [`write_atomic`] with the file's permission bits (`0o755` for a script, `0o600` for a key).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = part_path(path);
    // A stale temporary file would keep its old permission bits: start afresh.
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        drop(f);
        persist(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Makes the finished temporary file (or directory tree) `tmp` the file `path`: fsyncs it,
/// renames it over `path` and fsyncs the directory (best effort), so after a crash `path` is
/// either the old file or all of the new one. `tmp` is left in place when this fails.
pub fn persist(tmp: &Path, path: &Path) -> io::Result<()> {
    File::open(tmp)?.sync_all()?;
    std::fs::rename(tmp, path)?;
    sync_parent(path);
    Ok(())
}

/// Fsyncs the directory holding `path` (best effort: some file systems refuse it).
fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_part_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!part_path(&path).exists());
        write_atomic_mode(&path, b"#!/bin/sh\n", 0o755).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o100, 0o100, "executable: {mode:o}");
    }

    #[test]
    fn a_failed_write_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_atomic(&path, b"kept").unwrap();
        // The target is a directory now: the rename fails, the temp file is removed.
        let target = dir.path().join("sub");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("f"), b"").unwrap();
        assert!(write_atomic(&target, b"x").is_err());
        assert!(!part_path(&target).exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
    }

    #[test]
    fn persist_moves_a_finished_file_or_tree_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("a.rows.tmp");
        std::fs::write(&tmp, b"rows").unwrap();
        let path = dir.path().join("a.rows");
        persist(&tmp, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"rows");
        assert!(!tmp.exists());
        let tree = dir.path().join("t.part");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("x"), b"x").unwrap();
        persist(&tree, &dir.path().join("t")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("t/x")).unwrap(), b"x");
        // A missing temporary file is an error, and nothing appears.
        assert!(persist(&tmp, &dir.path().join("b.rows")).is_err());
        assert!(!dir.path().join("b.rows").exists());
    }

    #[test]
    fn part_files_sit_next_to_their_target() {
        assert_eq!(part_path(Path::new("a/x.tar")), Path::new("a/x.tar.part"));
    }
}
