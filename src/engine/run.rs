//! The pipeline of one shard run: a reader thread streams row batches through a bounded
//! channel; the dispatcher prepares each row (in input order: names, side data, host
//! registration) into a bounded look-ahead queue and starts the oldest queued row under the
//! global concurrency semaphore; a fetch task then goes on with the next queued rows of its
//! row's host, on the same connection. Fetch tasks send finished rows through a bounded channel
//! to the writer thread. Memory is bounded by the look-ahead, concurrency and channel sizes,
//! never by the row count.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::format::Layout;
use super::post;
use super::resume::{self, OutputSpec, Prepared};
use super::row::{RowContext, fetch_row};
use super::writer::{WriterMsg, WriterOutcome, writer_loop};
use super::{
    EngineConfig, EngineError, OutputFormat, ShardCounters, ShardJob, ShardReport, archive_stem,
    classes_path, overview_path, results_path,
};
use crate::archive::compression_for;
use crate::fetch::Fetcher;
use crate::fetch::hosts::{HostGates, now};
use crate::fetch::robots_cache::RobotsCache;
use crate::input::{InputError, UrlRow};
use crate::model::retry::RetryPolicy;
use crate::results::overview::{overview_json, write_overview};

/// Time in-flight rows get to finish after SIGINT/SIGTERM before they are abandoned.
const GRACE: Duration = Duration::from_secs(4);
/// Finished rows waiting for the writer.
const WRITER_QUEUE: usize = 64;
/// Rows read ahead of their fetch (a batch more at most): a host's rows this close share a
/// connection.
const LOOKAHEAD_ROWS: usize = 16_384;

/// Yields before a task's next row of the same host (see the fetch task).
const CHECKIN_YIELDS: usize = 3;

mod host_queue;
mod prepare;

use host_queue::HostQueue;
use prepare::{Prep, Preparer, Queued, Then};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs one shard (see [`super::run_shard`]).
pub(crate) async fn run(
    job: ShardJob,
    cfg: &EngineConfig,
    counters: Arc<ShardCounters>,
    cancel: CancellationToken,
) -> Result<ShardReport, EngineError> {
    let started = Instant::now();
    let ShardJob {
        mut rows,
        archive_path,
        resume,
    } = job;
    let compression = cfg
        .compression
        .unwrap_or_else(|| compression_for(&archive_path));
    let fetcher = Fetcher::new(&cfg.fetch).map_err(|e| EngineError::Http(e.to_string()))?;
    let top = archive_stem(&archive_path);
    let mtime = now().0 / 1000;
    let digest = cfg.hash_archive;
    let spec = OutputSpec {
        compression,
        mtime,
        digest,
        format: cfg.format,
        extra_cols: cfg.extra_cols.clone(),
        dims: post::measures(cfg),
        keep_final: cfg.retry_failed,
    };
    let prepared = {
        let (path, top) = (archive_path.clone(), top.clone());
        tokio::task::spawn_blocking(move || resume::prepare(&path, &top, resume, &spec))
            .await
            .map_err(|e| EngineError::Http(format!("preparing outputs: {e}")))??
    };
    let Prepared {
        archive,
        mut results,
        done,
        names,
        folders,
        tally,
    } = prepared;
    results.redact_error_messages(cfg.redact_error_messages);
    if let Some(total) = rows.total_rows() {
        counters.rows_total.store(total, Ordering::Relaxed);
    }
    counters.ok.store(tally.ok, Ordering::Relaxed);
    counters.bytes.store(tally.bytes, Ordering::Relaxed);
    counters.failed.store(tally.failed, Ordering::Relaxed);
    counters
        .rows_done
        .store(tally.ok + tally.failed + tally.skipped, Ordering::Relaxed);
    let carried_over = tally.ok + tally.failed + tally.skipped;

    let (tx, rx) = mpsc::channel::<WriterMsg>(WRITER_QUEUE);
    let layout = Layout {
        format: cfg.format,
        extra_cols: cfg.extra_cols.clone(),
        captions: cfg.caption_col.is_some() && cfg.format == OutputFormat::Webdataset,
    };
    let writer = {
        let counters = Arc::clone(&counters);
        let path = archive_path.clone();
        std::thread::Builder::new()
            .name("ldawt-writer".into())
            .spawn(move || writer_loop(rx, archive, results, tally, counters, path, layout))
            .map_err(|source| EngineError::Output {
                path: archive_path.clone(),
                source,
            })?
    };
    let (row_tx, mut row_rx) = mpsc::channel::<Result<Vec<UrlRow>, InputError>>(2);
    let reader = std::thread::Builder::new()
        .name("ldawt-reader".into())
        .spawn(move || {
            while let Some(batch) = rows.next_batch() {
                let stop = batch.is_err();
                if row_tx.blocking_send(batch).is_err() || stop {
                    break;
                }
            }
        })
        .map_err(|source| EngineError::Output {
            path: archive_path.clone(),
            source,
        })?;

    let abort = CancellationToken::new();
    let robots = cfg
        .respect_robots_txt
        .then(|| RobotsCache::new(fetcher.client().clone(), cfg.fetch.total_timeout));
    let ctx = Arc::new(RowContext {
        robots,
        fetcher,
        gates: HostGates::with_idle_cap(
            cfg.fetch.per_host.max(1),
            cfg.concurrency.max(1) + crate::fetch::hosts::IDLE_CONNECTIONS_CAP,
        ),
        policy: RetryPolicy {
            max_attempts: cfg.max_attempts.max(1),
            ..RetryPolicy::default()
        },
        stop: cancel.clone(),
        abort: abort.clone(),
        counters: Arc::clone(&counters),
    });
    let semaphore = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let tracker = TaskTracker::new();
    let spill_dir = archive_path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let spill_prefix = format!(
        ".{}.spill",
        archive_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let webdataset = cfg.format == OutputFormat::Webdataset;
    let mut prep = Preparer::new(cfg, (done, names, folders), top, (spill_dir, spill_prefix));
    let steps = post::Steps::new(cfg);
    let mut input_error: Option<EngineError> = None;
    // Rows are read ahead (up to LOOKAHEAD_ROWS, registered with their hosts): the oldest is
    // started when a slot is free, and a task that finished a row takes the next queued row of
    // the same host, on the connection it kept for it.
    let queue: Arc<Mutex<HostQueue<Queued>>> = Arc::default();
    let mut input_done = false;
    'dispatch: loop {
        while !input_done && lock(&queue).len() < LOOKAHEAD_ROWS {
            let batch = if lock(&queue).is_empty() {
                tokio::select! {
                    _ = cancel.cancelled() => break 'dispatch,
                    b = row_rx.recv() => b,
                }
            } else {
                match row_rx.try_recv() {
                    Ok(b) => Some(b),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            let rows = match batch {
                None => {
                    input_done = true;
                    break;
                }
                Some(Err(e)) => {
                    input_error = Some(EngineError::Input(e));
                    break 'dispatch;
                }
                Some(Ok(rows)) => rows,
            };
            for row in rows {
                let Prep { side, then } = prep.row(row, &ctx.gates);
                if let Some(side) = side
                    && tx.send(side).await.is_err()
                {
                    break 'dispatch;
                }
                match then {
                    Then::Carried => {}
                    Then::Mismatch(index) => {
                        input_error = Some(EngineError::ResumeMismatch { index });
                        break 'dispatch;
                    }
                    Then::Record(msg) => {
                        if tx.send(msg).await.is_err() {
                            break 'dispatch;
                        }
                    }
                    Then::Fetch(q) => {
                        let host = Arc::clone(q.job.host.gate().key());
                        lock(&queue).push(host, q);
                    }
                }
            }
        }
        if lock(&queue).is_empty() {
            if input_done {
                break;
            }
            continue;
        }
        let permit = tokio::select! {
            _ = cancel.cancelled() => break 'dispatch,
            p = Arc::clone(&semaphore).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break 'dispatch,
            },
        };
        // Tasks may have taken every queued row meanwhile.
        let Some(first) = lock(&queue).pop_oldest() else {
            continue;
        };
        let (ctx, tx, queue) = (Arc::clone(&ctx), tx.clone(), Arc::clone(&queue));
        let steps = Arc::clone(&steps);
        tracker.spawn(async move {
            let mut next = Some(first);
            while let Some(Queued { job, expected }) = next.take() {
                let (index, host) = (job.index, Arc::clone(job.host.gate().key()));
                let (mut msg, dims) =
                    post::apply(fetch_row(Arc::clone(&ctx), job).await, expected, &steps).await;
                if let Some(dims) = dims {
                    let _ = tx.send(WriterMsg::Dims { index, dims }).await;
                }
                if tx.capacity() < WRITER_QUEUE / 2 {
                    // The writer is behind: hash here rather than add to its work.
                    msg.hash_body();
                }
                // The slot is held until the writer took the row: a slow writer slows the
                // fetches instead of piling finished bodies up in memory.
                if tx.send(msg).await.is_err() || ctx.stop.is_cancelled() {
                    break;
                }
                next = lock(&queue).pop_host(&host);
                if next.is_some() {
                    // The connection goes back to the pool from hyper's own tasks once the
                    // body is read: let them run first, or the next request would race them
                    // and open another connection.
                    for _ in 0..CHECKIN_YIELDS {
                        tokio::task::yield_now().await;
                    }
                }
            }
            drop(permit);
        });
    }
    // Stopped or failed: the rows still queued are not started (a resume fetches them).
    let left = std::mem::take(&mut *lock(&queue));
    drop(left);
    drop(row_rx);
    if cancel.is_cancelled() || input_error.is_some() {
        let abort = abort.clone();
        let grace = if input_error.is_some() {
            Duration::ZERO
        } else {
            GRACE
        };
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            abort.cancel();
        });
    }
    tracker.close();
    tracker.wait().await;
    drop(tx);
    drop(ctx);
    let outcome = tokio::task::spawn_blocking(move || {
        let _ = reader.join();
        writer.join()
    })
    .await
    .map_err(|e| EngineError::Http(format!("writer task: {e}")))?
    .map_err(|_| EngineError::Http("the writer thread panicked".to_string()))?;
    let report = finish(
        outcome,
        input_error,
        cfg,
        &archive_path,
        &counters,
        (cancel.is_cancelled(), carried_over),
        started,
    )
    .await?;
    if webdataset {
        let path = classes_path(&archive_path);
        write_overview(&path, &prep.class_ids.to_json())
            .map_err(|source| EngineError::Output { path, source })?;
    }
    Ok(report)
}

/// Closes the outputs (or removes them on error), writes the overview and builds the report.
async fn finish(
    outcome: WriterOutcome,
    input_error: Option<EngineError>,
    cfg: &EngineConfig,
    archive_path: &std::path::Path,
    counters: &ShardCounters,
    (interrupted, carried_over): (bool, u64),
    started: Instant,
) -> Result<ShardReport, EngineError> {
    let WriterOutcome {
        archive,
        results,
        tally,
        error,
    } = outcome;
    if let Some(e) = input_error {
        archive.abort();
        results.abort();
        return Err(e);
    }
    if let Some(e) = error {
        archive.abort();
        results.abort();
        return Err(e);
    }
    let path = archive_path.to_path_buf();
    let closed = tokio::task::spawn_blocking(move || {
        let summary = archive
            .finish()
            .map_err(|source| EngineError::Output { path, source });
        match summary {
            Ok(s) => results.finish().map(|()| s).map_err(EngineError::Results),
            Err(e) => {
                results.abort();
                Err(e)
            }
        }
    })
    .await
    .map_err(|e| EngineError::Http(format!("closing outputs: {e}")))??;
    let rows_total = counters.rows_total.load(Ordering::Relaxed);
    let report = ShardReport {
        rows_total: rows_total.max(tally.ok + tally.failed + tally.skipped),
        ok: tally.ok,
        failed: tally.failed,
        skipped: tally.skipped,
        bytes: tally.bytes,
        elapsed: started.elapsed(),
        interrupted,
        archive_path: archive_path.to_path_buf(),
        archive_size: closed.size,
        archive_sha256: closed.sha256,
        results_path: results_path(archive_path),
        error_breakdown: tally.errors,
        carried_over,
        failed_rows: tally.failed_rows.into_values().collect(),
    };
    counters
        .rows_total
        .store(report.rows_total, Ordering::Relaxed);
    let doc = overview_json(&report, &cfg.overview_settings(), now().0);
    write_overview(&overview_path(archive_path), &doc).map_err(|source| EngineError::Output {
        path: overview_path(archive_path),
        source,
    })?;
    Ok(report)
}
