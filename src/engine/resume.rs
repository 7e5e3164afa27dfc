//! Preparing a run's outputs: a fresh archive and results file, and for `--resume` the rows a
//! previous run stored — in every `--format`: tar members (classdirs, whole webdataset samples)
//! are copied from the old archive into the new one, a `files` tree is reopened, an images
//! parquet is rewritten — and their results carried over, so nothing is downloaded twice and
//! names stay identical.
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

/// What identifies a stored row in the previous output (hashed): its member (classdirs,
/// files), its sample key (webdataset: the member without its extension, shared by the
/// sample's `.json`, `.cls` and `.txt`) or its row index (parquet).
fn identity(format: OutputFormat, r: &crate::engine::RowResult) -> Option<u64> {
    let member = r.member.as_deref();
    match format {
        OutputFormat::Classdirs | OutputFormat::Files => member.map(|m| fnv1a(m.as_bytes())),
        OutputFormat::Webdataset => member.map(|m| fnv1a(sample_of(m).as_bytes())),
        OutputFormat::Parquet => Some(r.index),
    }
}

/// `0000000007.jpg` → `0000000007` (keys are digits, so the first dot ends them).
fn sample_of(member: &str) -> &str {
    member.split_once('.').map_or(member, |(k, _)| k)
}

/// Creates the outputs (`.part` files) and, when `resume` is set and a previous results file
/// exists, carries its stored rows over in the layout's own way: tar members are copied into
/// the new tar (a webdataset sample with all its members), a directory tree is reopened and
/// keeps its vouched-for files, an images parquet is rewritten with its vouched-for rows.
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
    let resuming = resume && results_file.exists();
    // Pass 1: the rows stored before, as hashes of their identity.
    let mut wanted: HashSet<u64> = HashSet::new();
    if resuming {
        read_results(&results_file, |r| {
            if r.status == RowStatus::Ok
                && let Some(id) = identity(spec.format, &r)
            {
                wanted.insert(id);
            }
        })
        .map_err(EngineError::Results)?;
    }
    // The previous results are read again below, so the new file goes to its `.part` name.
    let archive = match spec.format {
        OutputFormat::Files if resuming => {
            Output::Dir(DirWriter::reopen(archive_path, top).map_err(out)?)
        }
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
    if resuming && let Err(e) = carry_over(archive_path, &results_file, wanted, spec, &mut prepared)
    {
        // (A reopened tree goes back under its name: the previous run's files stay.)
        prepared.archive.abort();
        prepared.results.abort();
        return Err(e);
    }
    Ok(prepared)
}

/// Brings the `wanted` rows' stored data from the previous output into the new one; returns
/// the identities actually brought (each once).
fn copy_stored(
    archive_path: &Path,
    format: OutputFormat,
    mut wanted: HashSet<u64>,
    into: &mut Output,
) -> std::io::Result<HashSet<u64>> {
    let mut copied: HashSet<u64> = HashSet::with_capacity(wanted.len());
    match into {
        Output::Tar(tar) if format == OutputFormat::Webdataset => {
            // Every member of a wanted sample, each name once; the sample counts as brought
            // with its `.json`, which follows the image.
            let mut seen: HashSet<u64> = HashSet::new();
            let keep = |member: &str| {
                let key = fnv1a(sample_of(member).as_bytes());
                if !wanted.contains(&key) || !seen.insert(fnv1a(member.as_bytes())) {
                    return false;
                }
                if member.ends_with(".json") {
                    copied.insert(key);
                }
                true
            };
            copy_members(archive_path, keep, tar)?;
        }
        Output::Tar(tar) => {
            let keep = |member: &str| {
                let key = fnv1a(member.as_bytes());
                wanted.remove(&key) && copied.insert(key)
            };
            copy_members(archive_path, keep, tar)?;
        }
        Output::Dir(dir) => {
            dir.retain(|member| {
                let key = fnv1a(member.as_bytes());
                wanted.remove(&key) && copied.insert(key)
            })?;
        }
        Output::Parquet(sink) => {
            sink.copy_from(archive_path, |index| {
                wanted.remove(&index) && copied.insert(index)
            })?;
        }
    }
    Ok(copied)
}

/// Copies the stored rows from the old output, then carries over the previous results of the
/// rows whose data was brought (and with `keep_final`, the final failures).
fn carry_over(
    archive_path: &Path,
    results_file: &Path,
    wanted: HashSet<u64>,
    spec: &OutputSpec,
    to: &mut Prepared,
) -> Result<(), EngineError> {
    let vouched = wanted.len();
    let mut copied =
        copy_stored(archive_path, spec.format, wanted, &mut to.archive).map_err(|source| {
            EngineError::Output {
                path: archive_path.to_path_buf(),
                source,
            }
        })?;
    let brought = copied.len();
    // Pass 2: carry over the rows whose data was brought.
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
        if !identity(spec.format, &r).is_some_and(|id| copied.remove(&id)) {
            return;
        }
        if spec.format != OutputFormat::Webdataset
            && let Some((folder, stem)) = r.member.as_deref().and_then(split_member)
        {
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
        missing = vouched - brought,
        "resume: rows carried over from the previous run"
    );
    Ok(())
}
