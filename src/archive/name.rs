//! Names derived from an archive's path: its [`Compression`](super::Compression) (from the
//! suffix), its stem (the top folder inside it) and the side files written next to it. The
//! suffix table itself is [`crate::model::naming::ARCHIVE_SUFFIXES`].

use std::path::{Path, PathBuf};

use super::Compression;
use crate::model::naming::{split_archive_suffix, split_archive_suffix_ignore_case};

/// Chooses the compression from the output name: `.tar` → none, anything else (`.tar.gz`,
/// `.tgz`) → gzip at the fast level 1.
pub fn compression_for(path: &Path) -> Compression {
    let name = path.to_string_lossy();
    match split_archive_suffix_ignore_case(&name) {
        Some((_, false)) => Compression::None,
        _ => Compression::Gzip { level: 1 },
    }
}

/// The archive's stem: its file name without `.tar.gz`, `.tgz` or `.tar` (or `.parquet`, the
/// parquet output format). It is also the top-level folder inside the archive
/// (`<stem>/<class>/<name>.<ext>`).
pub fn archive_stem(archive: &Path) -> String {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some((stem, _)) = split_archive_suffix(&name) {
        return stem.to_string();
    }
    match name.strip_suffix(".parquet") {
        Some(stem) => stem.to_string(),
        None => name,
    }
}

/// `out/shard.tar.gz` → `out/shard.results.parquet`.
pub fn results_path(archive: &Path) -> PathBuf {
    archive.with_file_name(format!("{}.results.parquet", archive_stem(archive)))
}

/// `out/shard.tar.gz` → `out/shard.overview.json`.
pub fn overview_path(archive: &Path) -> PathBuf {
    archive.with_file_name(format!("{}.overview.json", archive_stem(archive)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_files_follow_the_archive_name() {
        let a = Path::new("out/group_1.tar.gz");
        assert_eq!(archive_stem(a), "group_1");
        assert_eq!(results_path(a), Path::new("out/group_1.results.parquet"));
        assert_eq!(overview_path(a), Path::new("out/group_1.overview.json"));
        assert_eq!(archive_stem(Path::new("x.tgz")), "x");
        assert_eq!(archive_stem(Path::new("x.tar")), "x");
        assert_eq!(archive_stem(Path::new("x.parquet")), "x");
    }

    #[test]
    fn compression_follows_the_suffix() {
        assert_eq!(compression_for(Path::new("a/x.tar")), Compression::None);
        assert_eq!(compression_for(Path::new("a/x.TAR")), Compression::None);
        assert_eq!(
            compression_for(Path::new("a/x.tar.gz")),
            Compression::Gzip { level: 1 }
        );
        assert_eq!(
            compression_for(Path::new("a/x.TGZ")),
            Compression::Gzip { level: 1 }
        );
    }
}
