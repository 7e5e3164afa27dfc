//! The disk layout and how files reach the disk, in one place: the node's data dir
//! ([`DataDir`]: keys, lease database, seeded rows, the worker's scratch) and a seeder's
//! output dir ([`OutDir`]: stored shards, merged results, staging area), each path by one
//! method named for what it is (a shard's number is spelt by [`ShardId::padded`]);
//! [`write_atomic`] (the temp-write, fsync, rename dance every small state or output file goes
//! through, so a reader never sees half a file) and [`persist`] (its last step, for streaming
//! writers); the `.part` name of a file being written ([`part_path`]) and the free space of
//! the filesystem holding a path ([`free_space`], the storage guard of seeders and workers).
//!
//! [`ShardId::padded`]: crate::model::ids::ShardId::padded

/// A directory newtype over `PathBuf`: `new` (documented by the given line), `path` and
/// `into_path`; the type's own paths are its other methods.
macro_rules! directory_type {
    ($(#[$doc:meta])* $name:ident, $new_doc:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(std::path::PathBuf);

        impl $name {
            #[doc = $new_doc]
            pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
                Self(path.into())
            }

            /// The directory itself.
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }

            /// The directory itself, owned.
            pub fn into_path(self) -> std::path::PathBuf {
                self.0
            }
        }
    };
}

mod atomic;
mod data_dir;
mod out_dir;

pub use atomic::{part_path, persist, write_atomic, write_atomic_mode};
pub use data_dir::{DataDir, FINISHED_MARKER, LeaseDir, SWARM_KEY_FILE, SeedDir, WorkDir};
pub use out_dir::{OutDir, VERIFYING_SUFFIX, parse_staged_name, staged_prefix};

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
