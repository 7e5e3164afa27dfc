//! Preparing a run's outputs: a fresh archive and results file, and for `--resume` the rows a
//! previous run stored — their members are copied from the old archive into the new one and
//! their results carried over, so nothing is downloaded twice and names stay identical.
//! The previous results are streamed twice (which members to keep; then the rows to carry)
//! rather than held: what stays in memory is a 64-bit hash per stored row, so resuming a
//! million-row shard costs tens of megabytes, not the rows' text.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::format::Output;
use super::parquet_sink::ParquetSink;
use super::retry_failed::is_final;
use super::writer::Tally;
use super::{Compression, EngineError, OutputFormat, RowStatus, results_path};
use crate::archive::dir::DirWriter;
use crate::archive::{ArchiveWriter, copy::copy_members};
use crate::model::naming::{ClassFolders, NameSet, fnv1a, split_member};
use crate::results::{ResultsLayout, ResultsWriter, read_results, read_results_with};

/// Everything the pipeline starts from.
pub(crate) struct Prepared {
    pub(crate) archive: Output,
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

/// How the outputs are made.
pub(crate) struct OutputSpec {
    pub(crate) compression: Compression,
    pub(crate) mtime: u64,
    pub(crate) digest: bool,
    pub(crate) format: OutputFormat,
    pub(crate) extra_cols: Vec<String>,
    /// Record the images' dimensions in the results.
    pub(crate) dims: bool,
    /// `--retry-failed`: also carry the previous run's final outcomes over.
    pub(crate) keep_final: bool,
}

/// Creates the outputs (`.part` files) and, when `resume` is set and a previous results file
/// exists, carries its ok rows over (classdirs only: the other layouts are refused earlier).
pub(crate) fn prepare(
    archive_path: &Path,
    top: &str,
    resume: bool,
    spec: &OutputSpec,
) -> Result<Prepared, EngineError> {
    let out = |source| EngineError::Output {
        path: archive_path.to_path_buf(),
        source,
    };
    if let Some(parent) = archive_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(out)?;
    }
    let results_file = results_path(archive_path);
    // Pass 1: the members of the rows stored before, as hashes.
    let mut wanted: HashSet<u64> = HashSet::new();
    if resume && results_file.exists() {
        read_results(&results_file, |r| {
            if r.status == RowStatus::Ok
                && let Some(member) = &r.member
            {
                wanted.insert(fnv1a(member.as_bytes()));
            }
        })
        .map_err(EngineError::Results)?;
    }
    // The previous results are read again below, so the new file goes to its `.part` name.
    let archive = match spec.format {
        OutputFormat::Files => Output::Dir(DirWriter::create(archive_path, top).map_err(out)?),
        OutputFormat::Parquet => Output::Parquet(Box::new(
            ParquetSink::create(archive_path, &spec.extra_cols).map_err(out)?,
        )),
        OutputFormat::Classdirs | OutputFormat::Webdataset => Output::Tar(Box::new(
            ArchiveWriter::create(archive_path, top, spec.compression, spec.mtime, spec.digest)
                .map_err(out)?,
        )),
    };
    let layout = ResultsLayout {
        dims: spec.dims,
        extra: spec.extra_cols.clone(),
    };
    let results = match ResultsWriter::create_with(&results_file, layout) {
        Ok(r) => r,
        Err(e) => {
            archive.abort();
            return Err(EngineError::Results(e));
        }
    };
    let mut prepared = Prepared {
        archive,
        results,
        done: HashMap::new(),
        names: NameSet::new(),
        folders: ClassFolders::new(),
        tally: Tally::default(),
    };
    if resume
        && results_file.exists()
        && (!wanted.is_empty() || spec.keep_final)
        && let Err(e) = carry_over(archive_path, &results_file, wanted, spec, &mut prepared)
    {
        prepared.archive.abort();
        prepared.results.abort();
        return Err(e);
    }
    Ok(prepared)
}

/// Copies the `wanted` members (hashes) from the old archive, each once, then carries over the
/// previous results of the rows whose member was copied.
fn carry_over(
    archive_path: &Path,
    results_file: &Path,
    mut wanted: HashSet<u64>,
    spec: &OutputSpec,
    to: &mut Prepared,
) -> Result<(), EngineError> {
    let mut copied: HashSet<u64> = HashSet::with_capacity(wanted.len());
    let any_stored = !wanted.is_empty();
    let keep = |member: &str| {
        let key = fnv1a(member.as_bytes());
        wanted.remove(&key) && copied.insert(key)
    };
    let Output::Tar(archive) = &mut to.archive else {
        return Err(EngineError::Http(
            "--resume works with the classdirs format only".to_string(),
        ));
    };
    if any_stored {
        copy_members(archive_path, keep, archive).map_err(|source| EngineError::Output {
            path: archive_path.to_path_buf(),
            source,
        })?;
    }
    // Pass 2: carry over the rows whose member was copied.
    let mut failure = None;
    read_results_with(results_file, &spec.extra_cols, |r, cells| {
        if failure.is_some() {
            return;
        }
        if r.status != RowStatus::Ok {
            if spec.keep_final && is_final(&r) {
                to.done.insert(r.index, url_key(r.url.as_deref()));
                to.tally.count(&r);
                if let Err(e) = to.results.push_with(r, cells) {
                    failure = Some(e);
                }
            }
            return;
        }
        let Some(member) = r.member.as_deref() else {
            return;
        };
        if !copied.remove(&fnv1a(member.as_bytes())) {
            return;
        }
        if let Some((folder, stem)) = split_member(member) {
            to.names.insert_existing(folder, stem);
            to.folders.preassign(r.class.as_deref(), folder);
        }
        to.done.insert(r.index, url_key(r.url.as_deref()));
        to.tally.count(&r);
        if let Err(e) = to.results.push_with(r, cells) {
            failure = Some(e);
        }
    })
    .map_err(EngineError::Results)?;
    if let Some(e) = failure {
        return Err(EngineError::Results(e));
    }
    tracing::info!(
        carried = to.done.len(),
        missing = wanted.len() + copied.len(),
        "resume: rows carried over from the previous run"
    );
    Ok(())
}
