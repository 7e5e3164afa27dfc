//! The pipeline of one shard run: a reader thread streams row batches through a bounded
//! channel; the dispatcher names each row (in input order) and spawns its fetch under the
//! global concurrency semaphore; fetch tasks send finished rows through a bounded channel to the
//! writer thread. Memory is bounded by concurrency and channel sizes, never by the row count.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::format::{ClassIds, Layout, RowSide};
use super::post;
use super::resume::{self, OutputSpec, Prepared, url_key};
use super::row::{RowContext, RowJob, fetch_row};
use super::writer::{WriterMsg, WriterOutcome, writer_loop};
use super::{
    EngineConfig, EngineError, OutputFormat, RowResult, RowStatus, ShardCounters, ShardJob,
    ShardReport, archive_stem, classes_path, overview_path, results_path, sample_key,
};
use crate::archive::compression_for;
use crate::fetch::Fetcher;
use crate::fetch::hosts::{HostGates, HostTicket, now};
use crate::fetch::robots_cache::RobotsCache;
use crate::input::{InputError, UrlRow};
use crate::model::naming::url_stem;
use crate::model::retry::RetryPolicy;
use crate::results::overview::{overview_json, write_overview};

/// Time in-flight rows get to finish after SIGINT/SIGTERM before they are abandoned.
const GRACE: Duration = Duration::from_secs(4);
/// Finished rows waiting for the writer.
const WRITER_QUEUE: usize = 64;

fn record(row: &UrlRow, status: RowStatus, kind: &str, message: String) -> WriterMsg {
    WriterMsg::Record(RowResult {
        index: row.index,
        url: row.url.clone(),
        class: row.class.clone(),
        status,
        http_status: None,
        error_kind: Some(kind.to_string()),
        error_message: Some(message),
        bytes: 0,
        sha256: None,
        member: None,
        attempts: 0,
        elapsed_ms: 0,
    })
}

/// Parses a row's URL; only absolute http(s) URLs with a host are fetchable.
fn parse_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported URL scheme '{}'", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("URL without a host".to_string());
    }
    Ok(url)
}

/// A row read ahead of its dispatch.
struct Ahead {
    row: UrlRow,
    parsed: Parsed,
}

/// What the look-ahead found in a row.
enum Parsed {
    /// Stored by the run being resumed (its URL is compared at dispatch).
    Done,
    /// No URL.
    Empty,
    /// Not a fetchable URL: why.
    Invalid(String),
    /// To fetch, registered with its host.
    Fetch(reqwest::Url, HostTicket),
}

/// `host:port` of a URL: the key of its host's gate.
pub(crate) fn host_key(url: &reqwest::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// Parses a batch's URLs and registers each fetchable row with its host.
fn look_ahead(
    batch: Vec<UrlRow>,
    done: &std::collections::HashMap<u64, u64>,
    gates: &HostGates,
) -> Vec<Ahead> {
    batch
        .into_iter()
        .map(|row| {
            let text = row.url.as_deref().map(str::trim).unwrap_or("");
            let parsed = if done.contains_key(&row.index) {
                Parsed::Done
            } else if text.is_empty() {
                Parsed::Empty
            } else {
                match parse_url(text) {
                    Ok(url) => {
                        let ticket = gates.enqueue(&host_key(&url));
                        Parsed::Fetch(url, ticket)
                    }
                    Err(message) => Parsed::Invalid(message),
                }
            };
            Ahead { row, parsed }
        })
        .collect()
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
        mut names,
        mut folders,
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
    // `--verify-hash`: where the expected digest sits in each row's extra cells.
    let hash_check = cfg.verify_hash.as_ref().and_then(|c| {
        let pos = cfg.input_columns().iter().position(|x| *x == c.column)?;
        Some((pos, c.algorithm, c.column.clone()))
    });
    let webdataset = cfg.format == OutputFormat::Webdataset;
    let needs_side = webdataset || !cfg.extra_cols.is_empty();
    // Where the caption sits in each row's extra cells.
    let caption_pos = cfg
        .caption_col
        .as_ref()
        .and_then(|c| cfg.input_columns().iter().position(|x| x == c));
    let mut class_ids = ClassIds::with_names(&cfg.class_names);
    let steps = post::Steps::new(cfg);
    let mut input_error: Option<EngineError> = None;
    // One batch is read ahead of the one being dispatched, its rows registered with their
    // hosts: a request keeps its connection only for a queued row of its host.
    let mut ahead: Option<Result<Vec<Ahead>, InputError>> = None;
    'batches: loop {
        let batch = match ahead.take() {
            Some(b) => Some(b),
            None => tokio::select! {
                _ = cancel.cancelled() => break,
                b = row_rx.recv() => b.map(|b| b.map(|b| look_ahead(b, &done, &ctx.gates))),
            },
        };
        let batch = match batch {
            None => break,
            Some(Err(e)) => {
                input_error = Some(EngineError::Input(e));
                break;
            }
            Some(Ok(b)) => b,
        };
        ahead = tokio::select! {
            _ = cancel.cancelled() => break,
            b = row_rx.recv() => b.map(|b| b.map(|b| look_ahead(b, &done, &ctx.gates))),
        };
        for Ahead { row, parsed } in batch {
            let (url, host) = match parsed {
                Parsed::Done => {
                    if done.get(&row.index) == Some(&url_key(row.url.as_deref())) {
                        // A carried-over row still takes its class id, so the table (first
                        // appearance in input order) is the one a clean run writes.
                        if webdataset {
                            class_ids.id(row.class.as_deref());
                        }
                        continue;
                    }
                    input_error = Some(EngineError::ResumeMismatch { index: row.index });
                    break 'batches;
                }
                Parsed::Fetch(url, host) => (Ok(url), Some(host)),
                Parsed::Invalid(message) => (Err(message), None),
                Parsed::Empty => (Err(String::new()), None),
            };
            if needs_side {
                let caption = caption_pos.and_then(|p| row.extra.get(p).cloned().flatten());
                let mut extra = row.extra.clone();
                extra.truncate(cfg.extra_cols.len());
                let side = RowSide {
                    extra,
                    class_id: if webdataset {
                        class_ids.id(row.class.as_deref())
                    } else {
                        None
                    },
                    dims: None,
                    caption,
                };
                let msg = WriterMsg::Side {
                    index: row.index,
                    side,
                };
                if tx.send(msg).await.is_err() {
                    break 'batches;
                }
            }
            let text = row.url.as_deref().map(str::trim).unwrap_or("");
            let (url, host) = match (url, host) {
                (Ok(u), Some(h)) => (u, h),
                (Err(message), _) if !message.is_empty() => {
                    let msg = record(&row, RowStatus::Failed, "invalid_url", message);
                    if tx.send(msg).await.is_err() {
                        break 'batches;
                    }
                    continue;
                }
                _ => {
                    let msg = record(
                        &row,
                        RowStatus::Skipped,
                        "empty_url",
                        "the URL cell is empty".into(),
                    );
                    if tx.send(msg).await.is_err() {
                        break 'batches;
                    }
                    continue;
                }
            };
            let member_base = if webdataset {
                sample_key(row.index)
            } else {
                let folder = folders.folder(row.class.as_deref()).to_string();
                let stem = names.claim(&folder, &url_stem(text), row.index);
                format!("{top}/{folder}/{stem}")
            };
            let permit = tokio::select! {
                _ = cancel.cancelled() => break 'batches,
                p = Arc::clone(&semaphore).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break 'batches,
                },
            };
            let expected = hash_check.as_ref().and_then(|(pos, algorithm, column)| {
                let cell = row.extra.get(*pos)?.as_deref()?.trim();
                (!cell.is_empty()).then(|| (*algorithm, column.clone(), cell.to_string()))
            });
            let job = RowJob {
                index: row.index,
                url_text: text.to_string(),
                url,
                host,
                class: row.class,
                member_base,
                spill: spill_dir.join(format!("{spill_prefix}-{}", row.index)),
            };
            let (ctx, tx) = (Arc::clone(&ctx), tx.clone());
            let steps = Arc::clone(&steps);
            tracker.spawn(async move {
                let index = job.index;
                let (mut msg, dims) =
                    post::apply(fetch_row(ctx, job).await, expected, &steps).await;
                if let Some(dims) = dims {
                    let _ = tx.send(WriterMsg::Dims { index, dims }).await;
                }
                if tx.capacity() < WRITER_QUEUE / 2 {
                    // The writer is behind: hash here rather than add to its work.
                    msg.hash_body();
                }
                // The slot is held until the writer took the row: a slow writer slows the
                // fetches instead of piling finished bodies up in memory.
                let _ = tx.send(msg).await;
                drop(permit);
            });
        }
    }
    drop(ahead);
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
        write_overview(&path, &class_ids.to_json())
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
