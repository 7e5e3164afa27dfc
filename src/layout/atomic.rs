//! Whole-file writes that are atomic for readers: the bytes go to `<name>.part` next to the
//! target, are fsynced, then renamed over it; the directory is fsynced too (best effort) so the
//! rename survives a crash. On failure the temporary file is removed and the previous file,
//! if any, is untouched.

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

/// [`write_atomic`] with the file's permission bits (`0o755` for a script).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = part_path(path);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
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
    fn part_files_sit_next_to_their_target() {
        assert_eq!(part_path(Path::new("a/x.tar")), Path::new("a/x.tar.part"));
    }
}
