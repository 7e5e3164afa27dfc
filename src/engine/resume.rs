//! Preparing a run's outputs: a fresh archive and results file, and for `--resume` the rows a
//! previous run stored — their members are copied from the old archive into the new one and
//! their results carried over, so nothing is downloaded twice and names stay identical.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::writer::Tally;
use super::{Compression, EngineError, RowResult, RowStatus, results_path};
use crate::archive::{ArchiveWriter, copy::copy_members};
use crate::model::naming::{ClassFolders, NameSet, fnv1a, split_member};
use crate::results::{ResultsWriter, read_results};

/// Everything the pipeline starts from.
pub(crate) struct Prepared {
    pub(crate) archive: ArchiveWriter,
    pub(crate) results: ResultsWriter,
    /// Row index → hash of its URL, for rows already stored.
    pub(crate) done: HashMap<u64, u64>,
    pub(crate) names: NameSet,
    pub(crate) folders: ClassFolders,
    pub(crate) tally: Tally,
}

/// The hash under which a stored row's URL is remembered.
pub(crate) fn url_key(url: Option<&str>) -> u64 {
    fnv1a(url.unwrap_or("").as_bytes())
}

/// Creates the outputs (`.part` files) and, when `resume` is set and a previous results file
/// exists, carries its ok rows over.
pub(crate) fn prepare(
    archive_path: &Path,
    top: &str,
    compression: Compression,
    resume: bool,
    mtime: u64,
    digest: bool,
) -> Result<Prepared, EngineError> {
    let out = |source| EngineError::Output {
        path: archive_path.to_path_buf(),
        source,
    };
    if let Some(parent) = archive_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(out)?;
    }
    let results_file = results_path(archive_path);
    let mut previous: HashMap<String, RowResult> = HashMap::new();
    if resume && results_file.exists() {
        read_results(&results_file, |r| {
            if r.status == RowStatus::Ok
                && let Some(member) = r.member.clone()
            {
                previous.insert(member, r);
            }
        })
        .map_err(EngineError::Results)?;
    }
    let mut archive =
        ArchiveWriter::create(archive_path, top, compression, mtime, digest).map_err(out)?;
    let mut results = match ResultsWriter::create(&results_file) {
        Ok(r) => r,
        Err(e) => {
            archive.abort();
            return Err(EngineError::Results(e));
        }
    };
    let mut prepared_rows = Vec::new();
    if !previous.is_empty() {
        let keep: HashSet<String> = previous.keys().cloned().collect();
        let copied = match copy_members(archive_path, &keep, &mut archive) {
            Ok(c) => c,
            Err(source) => {
                archive.abort();
                results.abort();
                return Err(out(source));
            }
        };
        for member in copied {
            if let Some(r) = previous.remove(&member) {
                prepared_rows.push(r);
            }
        }
        tracing::info!(
            carried = prepared_rows.len(),
            missing = previous.len(),
            "resume: rows carried over from the previous run"
        );
    }
    prepared_rows.sort_by_key(|r| r.index);
    let mut done = HashMap::with_capacity(prepared_rows.len());
    let mut names = NameSet::new();
    let mut folders = ClassFolders::new();
    let mut tally = Tally::default();
    for r in prepared_rows {
        if let Some((folder, stem)) = r.member.as_deref().and_then(split_member) {
            names.insert_existing(folder, stem);
            folders.preassign(r.class.as_deref(), folder);
        }
        done.insert(r.index, url_key(r.url.as_deref()));
        tally.count(&r);
        if let Err(e) = results.push(r) {
            archive.abort();
            results.abort();
            return Err(EngineError::Results(e));
        }
    }
    Ok(Prepared {
        archive,
        results,
        done,
        names,
        folders,
        tally,
    })
}
