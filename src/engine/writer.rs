//! The writer thread: the single owner of the archive and the results file. Fetch tasks send
//! it finished rows over a bounded channel (backpressure); it hashes the bodies not hashed yet,
//! appends them to the tar, records every row, and keeps the tally the report and overview are
//! built from.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc::Receiver;
use tokio::sync::mpsc::error::TryRecvError;

use super::format::{Dims, Layout, Output, RowSide, sample_json};
use super::{
    EngineError, FAILED_ROWS_LISTED, FailedRow, OutputFormat, RowResult, RowStatus, ShardCounters,
};
use crate::fetch::{Body, sha256_of};
use crate::results::{ResultsWriter, RowExtras};

/// A finished row on its way to the writer.
#[derive(Debug)]
pub(crate) enum WriterMsg {
    /// A downloaded body to store under `result.member`.
    Stored {
        /// The row's result (status ok, member set).
        result: RowResult,
        /// The bytes.
        body: Body,
        /// Already-compressed image data (stored, not deflated, in a gzip archive).
        precompressed: bool,
    },
    /// A row with nothing to store (failed or skipped).
    Record(RowResult),
    /// What the writer needs of row `index` besides its result (extra cells, class id); sent
    /// by the dispatcher before the row's result can arrive, only when the run needs it.
    Side {
        /// The row index.
        index: u64,
        /// Its side data.
        side: RowSide,
    },
    /// The dimensions of row `index`'s image, sent by its fetch task just before its result.
    Dims {
        /// The row index.
        index: u64,
        /// Before and after a resize.
        dims: Dims,
    },
}

impl WriterMsg {
    /// The result, body and `precompressed` flag of a `Stored` message; any other message
    /// comes back as it is (boxed: the caller hands it straight on).
    pub(crate) fn into_stored(self) -> Result<(RowResult, Body, bool), Box<Self>> {
        match self {
            WriterMsg::Stored {
                result,
                body,
                precompressed,
            } => Ok((result, body, precompressed)),
            other => Err(Box::new(other)),
        }
    }

    /// The record of a row whose image is not stored after all: skipped as `kind`, `message`
    /// saying why (a filter or a failed decode).
    pub(crate) fn skipped(result: &RowResult, kind: &str, message: String) -> Self {
        WriterMsg::Record(RowResult {
            status: RowStatus::Skipped,
            error_kind: Some(kind.to_string()),
            error_message: Some(message),
            bytes: 0,
            sha256: None,
            member: None,
            ..result.clone()
        })
    }

    /// Fills in the sha256 of a body held in memory, if not done yet. The writer does it for
    /// every row it receives; a fetch task does it first when the writer is falling behind, so
    /// the hashing (a quarter of the engine's CPU on a fast link) runs wherever a core is free.
    pub(crate) fn hash_body(&mut self) {
        if let Self::Stored {
            result,
            body: Body::Memory(bytes),
            ..
        } = self
            && result.sha256.is_none()
        {
            result.sha256 = Some(hex::encode(sha256_of(bytes)));
        }
    }
}

/// Counts of one run (including rows carried over by `--resume`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) skipped: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    /// The failed rows with the lowest indexes (at most [`FAILED_ROWS_LISTED`]).
    pub(crate) failed_rows: BTreeMap<u64, FailedRow>,
}

impl Tally {
    fn keep_failed(&mut self, r: &RowResult) {
        let full = self.failed_rows.len() >= FAILED_ROWS_LISTED;
        if full
            && self
                .failed_rows
                .last_key_value()
                .is_some_and(|(i, _)| *i < r.index)
        {
            return;
        }
        self.failed_rows.insert(
            r.index,
            FailedRow {
                index: r.index,
                url: r.url.clone(),
                error_kind: r.error_kind.clone(),
            },
        );
        if self.failed_rows.len() > FAILED_ROWS_LISTED {
            self.failed_rows.pop_last();
        }
    }

    pub(crate) fn count(&mut self, r: &RowResult) {
        match r.status {
            RowStatus::Ok => {
                self.ok += 1;
                self.bytes += r.bytes;
            }
            RowStatus::Failed => {
                self.failed += 1;
                self.keep_failed(r);
            }
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
    pub(crate) archive: Output,
    pub(crate) results: ResultsWriter,
    pub(crate) tally: Tally,
    pub(crate) error: Option<EngineError>,
}

fn store(
    archive: &mut Output,
    member: &str,
    len: u64,
    body: Body,
    precompressed: bool,
) -> std::io::Result<()> {
    match body {
        Body::Memory(chunks) => archive.append_chunks(member, &chunks, precompressed),
        Body::Spilled { path } => {
            let result = std::fs::File::open(&path)
                .and_then(|f| archive.append(member, len, f, precompressed));
            let _ = std::fs::remove_file(&path);
            result
        }
    }
}

/// Stores a row's body, and for a webdataset its `.json`, `.cls` (and `.txt`) right after it;
/// an images parquet takes the whole row.
fn store_row(
    archive: &mut Output,
    result: &RowResult,
    body: Body,
    precompressed: bool,
    side: &RowSide,
    layout: &Layout,
) -> std::io::Result<()> {
    let member = result.member.as_deref().unwrap_or_default();
    if let Output::Parquet(sink) = archive {
        let bytes = match body {
            Body::Memory(chunks) => chunks.concat(),
            Body::Spilled { path } => {
                let bytes = std::fs::read(&path);
                let _ = std::fs::remove_file(&path);
                bytes?
            }
        };
        return sink.push(bytes, result, side);
    }
    store(archive, member, result.bytes, body, precompressed)?;
    if layout.format != OutputFormat::Webdataset {
        return Ok(());
    }
    let key = member.rsplit_once('.').map_or(member, |(k, _)| k);
    let json = sample_json(key, result, side, layout);
    archive.append_chunks(&format!("{key}.json"), &[json.into()], false)?;
    if let Some(id) = side.class_id {
        archive.append_chunks(&format!("{key}.cls"), &[id.to_string().into()], false)?;
    }
    if layout.captions {
        let text = side.caption.clone().unwrap_or_default();
        archive.append_chunks(&format!("{key}.txt"), &[text.into()], false)?;
    }
    Ok(())
}

/// Empty polls of the queue before the writer blocks on it.
const IDLE_POLLS: u32 = 8;
/// Pause between two polls.
const POLL_PAUSE: Duration = Duration::from_micros(250);

/// The next message, or `None` once every sender is gone. Under load the queue is rarely empty
/// for long, so the writer polls it after short pauses instead of parking at once: a parked
/// writer costs every sender a wake-up (a futex call and a context switch per image). After
/// [`IDLE_POLLS`] empty polls (a slow link) it parks.
fn next_msg(rx: &mut Receiver<WriterMsg>) -> Option<WriterMsg> {
    for _ in 0..IDLE_POLLS {
        match rx.try_recv() {
            Ok(msg) => return Some(msg),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => std::thread::sleep(POLL_PAUSE),
        }
    }
    rx.blocking_recv()
}

/// Runs until every sender is gone. After a write error it keeps draining (so senders never
/// block) but stores nothing more; the error is returned in the outcome.
pub(crate) fn writer_loop(
    mut rx: Receiver<WriterMsg>,
    mut archive: Output,
    mut results: ResultsWriter,
    mut tally: Tally,
    counters: Arc<ShardCounters>,
    archive_path: std::path::PathBuf,
    layout: Layout,
) -> WriterOutcome {
    let mut error: Option<EngineError> = None;
    let mut sides: HashMap<u64, RowSide> = HashMap::new();
    while let Some(mut msg) = next_msg(&mut rx) {
        msg.hash_body();
        let index = match &msg {
            WriterMsg::Side { index, side } => {
                sides.insert(*index, side.clone());
                continue;
            }
            WriterMsg::Dims { index, dims } => {
                sides.entry(*index).or_default().dims = Some(*dims);
                continue;
            }
            WriterMsg::Stored { result, .. } | WriterMsg::Record(result) => result.index,
        };
        let side = sides.remove(&index).unwrap_or_default();
        let result = match msg {
            WriterMsg::Side { .. } | WriterMsg::Dims { .. } => continue,
            WriterMsg::Stored {
                result,
                body,
                precompressed,
            } => {
                if error.is_some() {
                    if let Body::Spilled { path } = body {
                        let _ = std::fs::remove_file(path);
                    }
                    continue;
                }
                if let Err(source) =
                    store_row(&mut archive, &result, body, precompressed, &side, &layout)
                {
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
        let more = RowExtras {
            cells: side.extra,
            dims: side
                .dims
                .map(|d| [d.stored.0, d.stored.1, d.original.0, d.original.1]),
        };
        if let Err(e) = results.push_with(result, more) {
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
