//! How files reach the disk, in one place: [`write_atomic`] (the temp-write, fsync, rename
//! dance every small output file goes through, so a reader never sees half a file), the
//! `.part` name of a file being written ([`part_path`]) and the free space of the filesystem
//! holding a path ([`free_space`], the storage guard of seeders and workers).

mod atomic;

pub use atomic::{part_path, write_atomic, write_atomic_mode};

use std::path::Path;

/// Free bytes available to this user on the filesystem holding `path` (or its nearest
/// existing ancestor), by `statvfs`.
pub fn free_space(path: &Path) -> Option<u64> {
    let mut p = Some(path);
    while let Some(dir) = p {
        if let Ok(st) = rustix::fs::statvfs(dir) {
            return Some(st.f_bavail.saturating_mul(st.f_frsize));
        }
        p = dir.parent();
    }
    None
}
