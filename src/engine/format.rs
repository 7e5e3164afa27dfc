//! The output layouts (`--format`): where a stored row's bytes go and what goes with them.
//!
//! - `classdirs` (default): a tar of `<stem>/<class folder>/<name>.<ext>`.
//! - `webdataset`: a tar of samples, each `KEY.<ext>`, `KEY.json` and (with a class)
//!   `KEY.cls`, plus `KEY.txt` with `--caption-col`, adjacent, `KEY` being the row index zero-padded to 10 digits (unique in the
//!   dataset, sorted like the input). The `.cls` holds the class id from a table assigned in
//!   input order and written beside the archive as `<stem>.classes.json`.
//! - `files`: the classdirs members as plain files under `<output>/` (no tar).
//! - `parquet`: one parquet of the images and their rows' columns (see [`super::parquet_sink`]).
//!
//! [`Output`] is the writer thread's sink for all three; [`RowSide`] is what the writer needs of
//! a row beyond its result (extra cells, class id), sent ahead of the row by the dispatcher.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::{Map, Value};

use super::parquet_sink::ParquetSink;
use super::{OutputFormat, RowResult, archive_stem};
use crate::archive::dir::DirWriter;
use crate::archive::{ArchiveSummary, ArchiveWriter};

/// Keys of a webdataset sample's `.json` (extra columns must not reuse them).
pub const SAMPLE_KEYS: [&str; 13] = [
    "caption",
    "key",
    "index",
    "url",
    "class",
    "class_id",
    "sha256",
    "http_status",
    "bytes",
    "width",
    "height",
    "original_width",
    "original_height",
];

/// The webdataset key of row `index`.
pub fn sample_key(index: u64) -> String {
    format!("{index:010}")
}

/// `out/shard.tar` → `out/shard.classes.json`.
pub fn classes_path(archive: &Path) -> PathBuf {
    archive.with_file_name(format!("{}.classes.json", archive_stem(archive)))
}

/// Class ids in order of first appearance in the input (so the same input always gives the
/// same table). A row without a class has no id.
#[derive(Debug, Default)]
pub(crate) struct ClassIds {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl ClassIds {
    /// A table starting with `names` (ids 0, 1, … in that order); other classes take the next
    /// ids on first sight.
    pub(crate) fn with_names(names: &[String]) -> Self {
        let mut ids = Self::default();
        for n in names {
            ids.id(Some(n));
        }
        ids
    }

    /// The id of `class`, assigning the next one on first sight.
    pub(crate) fn id(&mut self, class: Option<&str>) -> Option<u32> {
        let class = class?;
        if let Some(id) = self.ids.get(class) {
            return Some(*id);
        }
        let id = u32::try_from(self.names.len()).ok()?;
        self.ids.insert(class.to_string(), id);
        self.names.push(class.to_string());
        Some(id)
    }

    /// The table as JSON: `{"classes": {"name": id, …}, "names": ["name", …]}` (names in id
    /// order).
    pub(crate) fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), Value::from(i as u64)))
            .collect();
        serde_json::json!({ "classes": map, "names": self.names })
    }
}

/// An image's width and height as downloaded and as stored (after a resize).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    pub(crate) original: (u32, u32),
    pub(crate) stored: (u32, u32),
}

/// What the writer needs of a row besides its result.
#[derive(Debug, Default, Clone)]
pub(crate) struct RowSide {
    /// Cells of the extra columns, in `--extra-cols` order.
    pub(crate) extra: Vec<Option<String>>,
    /// The webdataset class id.
    pub(crate) class_id: Option<u32>,
    /// The image's dimensions, when a step read them.
    pub(crate) dims: Option<Dims>,
    /// The caption (`--caption-col`).
    pub(crate) caption: Option<String>,
}

/// The writer's view of the output settings.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) format: OutputFormat,
    pub(crate) extra_cols: Vec<String>,
    /// Samples carry a caption (`KEY.txt`).
    pub(crate) captions: bool,
}

/// The `.json` member of a webdataset sample.
pub(crate) fn sample_json(key: &str, r: &RowResult, side: &RowSide, layout: &Layout) -> Vec<u8> {
    let mut doc = Map::new();
    doc.insert("key".into(), key.into());
    doc.insert("index".into(), r.index.into());
    doc.insert("url".into(), r.url.clone().into());
    doc.insert("class".into(), r.class.clone().into());
    doc.insert("class_id".into(), side.class_id.into());
    doc.insert("sha256".into(), r.sha256.clone().into());
    doc.insert("http_status".into(), r.http_status.into());
    doc.insert("bytes".into(), r.bytes.into());
    if layout.captions {
        doc.insert("caption".into(), side.caption.clone().into());
    }
    let dim = |f: fn(&Dims) -> u32| side.dims.as_ref().map(f);
    doc.insert("width".into(), dim(|d| d.stored.0).into());
    doc.insert("height".into(), dim(|d| d.stored.1).into());
    doc.insert("original_width".into(), dim(|d| d.original.0).into());
    doc.insert("original_height".into(), dim(|d| d.original.1).into());
    for (i, col) in layout.extra_cols.iter().enumerate() {
        let cell = side.extra.get(i).cloned().flatten();
        doc.insert(col.clone(), cell.into());
    }
    serde_json::to_vec(&Value::Object(doc)).unwrap_or_default()
}

fn not_a_member_sink() -> io::Error {
    io::Error::other("an images parquet takes whole rows, not archive members")
}

/// The writer thread's sink: a tar (classdirs, webdataset), a directory tree (files) or an
/// images parquet (parquet).
pub(crate) enum Output {
    /// A tar or tar.gz.
    Tar(Box<ArchiveWriter>),
    /// A directory tree.
    Dir(DirWriter),
    /// An images parquet.
    Parquet(Box<ParquetSink>),
}

impl Output {
    /// Appends `member` of `size` bytes from `data`.
    pub(crate) fn append(
        &mut self,
        member: &str,
        size: u64,
        data: impl Read,
        precompressed: bool,
    ) -> io::Result<()> {
        match self {
            Self::Tar(a) => a.append(member, size, data, precompressed),
            Self::Dir(d) => d.append(member, data),
            Self::Parquet(_) => Err(not_a_member_sink()),
        }
    }

    /// Appends `member` from chunks.
    pub(crate) fn append_chunks(
        &mut self,
        member: &str,
        chunks: &[Bytes],
        precompressed: bool,
    ) -> io::Result<()> {
        match self {
            Self::Tar(a) => a.append_chunks(member, chunks, precompressed),
            Self::Dir(d) => d.append_chunks(member, chunks),
            Self::Parquet(_) => Err(not_a_member_sink()),
        }
    }

    /// Closes the output and moves it into place.
    pub(crate) fn finish(self) -> io::Result<ArchiveSummary> {
        match self {
            Self::Tar(a) => a.finish(),
            Self::Dir(d) => d.finish(),
            Self::Parquet(p) => p.finish(),
        }
    }

    /// Drops the partial output.
    pub(crate) fn abort(self) {
        match self {
            Self::Tar(a) => a.abort(),
            Self::Dir(d) => d.abort(),
            Self::Parquet(p) => p.abort(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RowStatus;

    #[test]
    fn class_ids_follow_first_appearance() {
        let mut ids = ClassIds::default();
        assert_eq!(ids.id(Some("b")), Some(0));
        assert_eq!(ids.id(Some("a")), Some(1));
        assert_eq!(ids.id(None), None);
        assert_eq!(ids.id(Some("b")), Some(0));
        let doc = ids.to_json();
        assert_eq!(doc["classes"]["a"], 1);
        assert_eq!(doc["names"][0], "b");
    }

    #[test]
    fn sample_json_carries_the_row_and_its_extra_cells() {
        let r = RowResult {
            index: 7,
            url: Some("http://h/x.jpg".into()),
            class: Some("c".into()),
            status: RowStatus::Ok,
            http_status: Some(200),
            error_kind: None,
            error_message: None,
            bytes: 3,
            sha256: Some("ab".into()),
            member: Some("0000000007.jpg".into()),
            attempts: 1,
            elapsed_ms: 1,
        };
        let side = RowSide {
            extra: vec![Some("v".into())],
            class_id: Some(2),
            dims: Some(Dims {
                original: (640, 480),
                stored: (256, 192),
            }),
            caption: Some("a bee".into()),
        };
        let layout = Layout {
            format: OutputFormat::Webdataset,
            extra_cols: vec!["license".into(), "missing".into()],
            captions: true,
        };
        let key = sample_key(7);
        assert_eq!(key, "0000000007");
        let doc: Value = serde_json::from_slice(&sample_json(&key, &r, &side, &layout)).unwrap();
        assert_eq!(doc["key"], "0000000007");
        assert_eq!(doc["class_id"], 2);
        assert_eq!(doc["license"], "v");
        assert_eq!(doc["missing"], Value::Null);
        assert_eq!(doc["http_status"], 200);
        assert_eq!(doc["width"], 256);
        assert_eq!(doc["original_height"], 480);
        assert_eq!(doc["caption"], "a bee");
    }
}
