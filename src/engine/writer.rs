//! The writer thread: the single owner of the archive and the results file. Fetch tasks send
//! it finished rows over a bounded channel (backpressure); it appends bodies to the tar,
//! records every row, and keeps the tally the report and overview are built from.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc::Receiver;

use super::{EngineError, RowResult, RowStatus, ShardCounters};
use crate::archive::ArchiveWriter;
use crate::fetch::Body;
use crate::results::ResultsWriter;

/// A finished row on its way to the writer.
#[derive(Debug)]
pub(crate) enum WriterMsg {
    /// A downloaded body to store under `result.member`.
    Stored {
        /// The row's result (status ok, member set).
        result: RowResult,
        /// The bytes.
        body: Body,
    },
    /// A row with nothing to store (failed or skipped).
    Record(RowResult),
}

/// Counts of one run (including rows carried over by `--resume`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) skipped: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Tally {
    pub(crate) fn count(&mut self, r: &RowResult) {
        match r.status {
            RowStatus::Ok => {
                self.ok += 1;
                self.bytes += r.bytes;
            }
            RowStatus::Failed => self.failed += 1,
            RowStatus::Skipped => self.skipped += 1,
        }
        if r.status != RowStatus::Ok
            && let Some(kind) = &r.error_kind
        {
            *self.errors.entry(kind.clone()).or_insert(0) += 1;
        }
    }
}

/// What the writer thread hands back when its channel closes.
pub(crate) struct WriterOutcome {
    pub(crate) archive: ArchiveWriter,
    pub(crate) results: ResultsWriter,
    pub(crate) tally: Tally,
    pub(crate) error: Option<EngineError>,
}

fn store(archive: &mut ArchiveWriter, member: &str, len: u64, body: Body) -> std::io::Result<()> {
    match body {
        Body::Memory(bytes) => archive.append(member, len, bytes.as_slice()),
        Body::Spilled { path } => {
            let result = std::fs::File::open(&path).and_then(|f| archive.append(member, len, f));
            let _ = std::fs::remove_file(&path);
            result
        }
    }
}

/// Runs until every sender is gone. After a write error it keeps draining (so senders never
/// block) but stores nothing more; the error is returned in the outcome.
pub(crate) fn writer_loop(
    mut rx: Receiver<WriterMsg>,
    mut archive: ArchiveWriter,
    mut results: ResultsWriter,
    mut tally: Tally,
    counters: Arc<ShardCounters>,
    archive_path: std::path::PathBuf,
) -> WriterOutcome {
    let mut error: Option<EngineError> = None;
    while let Some(msg) = rx.blocking_recv() {
        let result = match msg {
            WriterMsg::Stored { result, body } => {
                if error.is_some() {
                    if let Body::Spilled { path } = body {
                        let _ = std::fs::remove_file(path);
                    }
                    continue;
                }
                let member = result.member.clone().unwrap_or_default();
                if let Err(source) = store(&mut archive, &member, result.bytes, body) {
                    error = Some(EngineError::Output {
                        path: archive_path.clone(),
                        source,
                    });
                    continue;
                }
                result
            }
            WriterMsg::Record(result) => result,
        };
        if error.is_some() {
            continue;
        }
        counters.rows_done.fetch_add(1, Ordering::Relaxed);
        match result.status {
            RowStatus::Ok => {
                counters.ok.fetch_add(1, Ordering::Relaxed);
                counters.bytes.fetch_add(result.bytes, Ordering::Relaxed);
            }
            RowStatus::Failed => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            RowStatus::Skipped => {}
        }
        tally.count(&result);
        if let Err(e) = results.push(result) {
            error = Some(EngineError::Results(e));
        }
    }
    WriterOutcome {
        archive,
        results,
        tally,
        error,
    }
}
