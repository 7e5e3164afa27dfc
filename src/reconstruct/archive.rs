//! The archive `ldawt reconstruct` writes: `<stem>/<label>/<row>.<ext>` in a `.tar`, or gzip
//! compressed for `.tar.gz`/`.tgz`, through the engine's `crate::archive::ArchiveWriter` (temp
//! file, renamed into place only when complete). Class folders are named by the caller with
//! the shared rule (`crate::model::naming`).

use std::path::Path;

use crate::archive::{ArchiveWriter, compression_for};
use crate::model::naming::split_archive_suffix_ignore_case;

/// Splits an output name into (stem, gzip?): `x.tar.gz`/`x.tgz` → ("x", true), `x.tar` →
/// ("x", false); anything else → None.
pub fn stem_and_gzip(output: &Path) -> Option<(String, bool)> {
    let name = output.file_name()?.to_string_lossy();
    match split_archive_suffix_ignore_case(&name) {
        Some((stem, gz)) if !stem.is_empty() => Some((stem.to_string(), gz)),
        _ => None,
    }
}

/// The archive being written: `crate::archive::ArchiveWriter` (temp `.part` file, fsync,
/// rename), removed again if dropped before [`PendingArchive::finish`].
pub struct PendingArchive {
    writer: Option<ArchiveWriter>,
    stem: String,
}

impl PendingArchive {
    /// Starts `output` (gzip unless it ends in `.tar`) with top folder `stem`; `mtime` is
    /// stamped on every member.
    pub fn create(output: &Path, stem: &str, mtime: u64) -> std::io::Result<Self> {
        let writer = ArchiveWriter::create(output, stem, compression_for(output), mtime, false)?;
        Ok(Self {
            writer: Some(writer),
            stem: stem.to_string(),
        })
    }

    /// Adds `<stem>/<label_dir>/<file_name>` (`label_dir` already made safe).
    pub fn add_file(
        &mut self,
        label_dir: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let member = format!("{}/{label_dir}/{file_name}", self.stem);
        self.writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("archive already finished"))?
            .append_bytes(
                &member,
                bytes,
                crate::model::naming::is_precompressed(bytes),
            )
    }

    /// Completes the archive and renames it into place.
    pub fn finish(mut self) -> std::io::Result<()> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| std::io::Error::other("archive already finished"))?;
        writer.finish().map(|_| ())
    }
}

impl Drop for PendingArchive {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names() {
        assert_eq!(
            stem_and_gzip(Path::new("/x/y.tar.gz")),
            Some(("y".into(), true))
        );
        assert_eq!(stem_and_gzip(Path::new("y.TGZ")), Some(("y".into(), true)));
        assert_eq!(stem_and_gzip(Path::new("y.tar")), Some(("y".into(), false)));
        assert_eq!(stem_and_gzip(Path::new("y.zip")), None);
        assert_eq!(stem_and_gzip(Path::new(".tar")), None);
    }
}
