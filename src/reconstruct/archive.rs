//! The archive `ldawt reconstruct` writes: `<stem>/<label>/<row>.<ext>` in a `.tar`, or gzip
//! compressed for `.tar.gz`/`.tgz`, written to a hidden temp file and renamed into place only
//! when complete. Also owns the label → folder name rule.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;

/// The folder name used for rows whose label is null.
pub const NULL_LABEL_DIR: &str = "__null__";

/// A label as a single safe path component: `/`, `\`, NUL and control characters become `_`;
/// empty, `.` and `..` become `_`; a null label becomes [`NULL_LABEL_DIR`].
pub fn label_dir(label: Option<&str>) -> String {
    let Some(label) = label else {
        return NULL_LABEL_DIR.to_string();
    };
    let cleaned: String = label
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => "_".to_string(),
        _ => cleaned,
    }
}

/// Splits an output name into (stem, gzip?): `x.tar.gz`/`x.tgz` → ("x", true), `x.tar` →
/// ("x", false); anything else → None.
pub fn stem_and_gzip(output: &Path) -> Option<(String, bool)> {
    let name = output.file_name()?.to_string_lossy().into_owned();
    let lower = name.to_ascii_lowercase();
    for (suffix, gz) in [(".tar.gz", true), (".tgz", true), (".tar", false)] {
        if lower.ends_with(suffix) && name.len() > suffix.len() {
            return Some((name[..name.len() - suffix.len()].to_string(), gz));
        }
    }
    None
}

enum Sink {
    Plain(BufWriter<File>),
    Gzip(Box<GzEncoder<BufWriter<File>>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
        }
    }
}

/// An archive being written; dropped without `finish` it deletes its temp file.
pub struct ArchiveOut {
    builder: Option<tar::Builder<Sink>>,
    temp: PathBuf,
    output: PathBuf,
    stem: String,
    dirs: BTreeSet<String>,
    mtime: u64,
}

impl ArchiveOut {
    /// Creates the temp file next to `output`. `mtime` is stamped on every entry.
    pub fn create(output: &Path, stem: &str, gzip: bool, mtime: u64) -> std::io::Result<Self> {
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = output.with_file_name(format!(".{name}.partial"));
        let file = BufWriter::new(File::create(&temp)?);
        let sink = if gzip {
            Sink::Gzip(Box::new(GzEncoder::new(file, flate2::Compression::new(6))))
        } else {
            Sink::Plain(file)
        };
        let mut out = Self {
            builder: Some(tar::Builder::new(sink)),
            temp,
            output: output.to_path_buf(),
            stem: stem.to_string(),
            dirs: BTreeSet::new(),
            mtime,
        };
        out.add_dir(format!("{stem}/"))?;
        Ok(out)
    }

    fn builder(&mut self) -> std::io::Result<&mut tar::Builder<Sink>> {
        self.builder
            .as_mut()
            .ok_or_else(|| std::io::Error::other("archive already finished"))
    }

    fn add_dir(&mut self, path: String) -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_mtime(self.mtime);
        self.builder()?
            .append_data(&mut header, &path, std::io::empty())?;
        self.dirs.insert(path);
        Ok(())
    }

    /// Adds `<stem>/<label_dir>/<file_name>`.
    pub fn add_file(
        &mut self,
        label_dir: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let dir = format!("{}/{label_dir}/", self.stem);
        if !self.dirs.contains(&dir) {
            self.add_dir(dir.clone())?;
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        header.set_mtime(self.mtime);
        self.builder()?
            .append_data(&mut header, format!("{dir}{file_name}"), bytes)
    }

    /// Completes the archive and renames it into place.
    pub fn finish(mut self) -> std::io::Result<()> {
        let builder = self
            .builder
            .take()
            .ok_or_else(|| std::io::Error::other("archive already finished"))?;
        let result = (|| {
            let file = match builder.into_inner()? {
                Sink::Plain(w) => w,
                Sink::Gzip(w) => w.finish()?,
            };
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&self.temp, &self.output)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        result
    }
}

impl Drop for ArchiveOut {
    fn drop(&mut self) {
        if self.builder.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_single_safe_components() {
        assert_eq!(label_dir(Some("Apis mellifera")), "Apis mellifera");
        assert_eq!(label_dir(Some("../etc/passwd")), ".._etc_passwd");
        assert_eq!(label_dir(Some("..")), "_");
        assert_eq!(label_dir(Some("a\nb")), "a_b");
        assert_eq!(label_dir(None), NULL_LABEL_DIR);
    }

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
