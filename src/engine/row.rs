//! One row's life: take a slot of its host, attempt the download, and on failure retry as the
//! policy says (backoff with jitter, `Retry-After`), feeding the host's pacing; then hand the
//! result (and body) to the writer. Cancellation is honoured at every wait.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::writer::WriterMsg;
use super::{RowResult, RowStatus};
use crate::fetch::hosts::{HostGates, HostTicket};
use crate::fetch::robots_cache::RobotsCache;
use crate::fetch::{AttemptError, Fetcher};
use crate::model::retry::{Failure, RetryPolicy};

/// Shared by every row task of a run.
pub(crate) struct RowContext {
    pub(crate) fetcher: Fetcher,
    pub(crate) gates: HostGates,
    pub(crate) policy: RetryPolicy,
    /// Stop starting new attempts (SIGINT/SIGTERM).
    pub(crate) stop: CancellationToken,
    /// Abandon in-flight attempts (the grace period after `stop` ran out).
    pub(crate) abort: CancellationToken,
    /// `--respect-robots-txt`.
    pub(crate) robots: Option<RobotsCache>,
    /// The run's counters (slow-downs are counted here).
    pub(crate) counters: Arc<super::ShardCounters>,
}

/// One row, named and ready to fetch.
pub(crate) struct RowJob {
    pub(crate) index: u64,
    pub(crate) url_text: String,
    pub(crate) url: reqwest::Url,
    /// The row's place in its host's queue (finished when the job is dropped).
    pub(crate) host: HostTicket,
    pub(crate) class: Option<String>,
    /// `<top>/<folder>/<stem>`; the extension is added once known.
    pub(crate) member_base: String,
    pub(crate) spill: PathBuf,
}

fn interrupted(job: &RowJob, attempts: u32, started: Instant) -> WriterMsg {
    WriterMsg::Record(RowResult {
        index: job.index,
        url: Some(job.url_text.clone()),
        class: job.class.clone(),
        status: RowStatus::Skipped,
        http_status: None,
        error_kind: Some("interrupted".to_string()),
        error_message: Some("the run was interrupted before this row finished".to_string()),
        bytes: 0,
        sha256: None,
        member: None,
        attempts,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn failed(job: &RowJob, err: AttemptError, attempts: u32, started: Instant) -> WriterMsg {
    // An opt-out is the creator's choice, not a failure: the row is skipped with its reason.
    let status = if err.failure == Failure::OptedOut {
        RowStatus::Skipped
    } else {
        RowStatus::Failed
    };
    WriterMsg::Record(RowResult {
        index: job.index,
        url: Some(job.url_text.clone()),
        class: job.class.clone(),
        status,
        http_status: err.http_status,
        error_kind: Some(err.failure.kind()),
        error_message: Some(err.message),
        bytes: 0,
        sha256: None,
        member: None,
        attempts,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Downloads one row with retries and returns what the writer must record.
pub(crate) async fn fetch_row(ctx: Arc<RowContext>, job: RowJob) -> WriterMsg {
    let started = Instant::now();
    if let Some(robots) = &ctx.robots
        && !robots.allows(&job.url).await
    {
        return WriterMsg::Record(RowResult {
            index: job.index,
            url: Some(job.url_text.clone()),
            class: job.class.clone(),
            status: RowStatus::Skipped,
            http_status: None,
            error_kind: Some("robots_disallowed".to_string()),
            error_message: Some("the site's robots.txt disallows this URL for ldawt".to_string()),
            bytes: 0,
            sha256: None,
            member: None,
            attempts: 0,
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
    }
    let gate = Arc::clone(job.host.gate());
    let mut attempts = 0u32;
    loop {
        let Some(permit) = gate.acquire(&ctx.abort).await else {
            return interrupted(&job, attempts, started);
        };
        if attempts == 0 && ctx.stop.is_cancelled() {
            // Dispatched but not started when the run was stopped: leave it for `--resume`.
            return interrupted(&job, attempts, started);
        }
        attempts += 1;
        let outcome = tokio::select! {
            r = ctx.fetcher.fetch_once(&job.url, &job.spill, permit.keep_alive()) => r,
            _ = ctx.abort.cancelled() => {
                let _ = tokio::fs::remove_file(&job.spill).await;
                return interrupted(&job, attempts, started);
            }
        };
        drop(permit);
        let err = match outcome {
            Ok(fetched) => {
                gate.on_success();
                let member = format!("{}.{}", job.member_base, fetched.extension);
                return WriterMsg::Stored {
                    result: RowResult {
                        index: job.index,
                        url: Some(job.url_text.clone()),
                        class: job.class.clone(),
                        status: RowStatus::Ok,
                        http_status: Some(200),
                        error_kind: None,
                        error_message: None,
                        bytes: fetched.len,
                        sha256: fetched.sha256.map(hex::encode),
                        member: Some(member),
                        attempts,
                        elapsed_ms: started.elapsed().as_millis() as u64,
                    },
                    body: fetched.body,
                    precompressed: fetched.precompressed,
                };
            }
            Err(err) => err,
        };
        if err.failure.is_throttle() {
            ctx.counters
                .throttled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            gate.on_throttle(err.retry_after);
        } else if err.http_status.is_some() {
            gate.on_success();
        }
        let delay = ctx
            .policy
            .next_delay(&err.failure, attempts, err.retry_after, fastrand::f64());
        let Some(delay) = delay else {
            return failed(&job, err, attempts, started);
        };
        if ctx.stop.is_cancelled() {
            return interrupted(&job, attempts, started);
        }
        tracing::debug!(url = %job.url_text, attempt = attempts, kind = %err.failure.kind(), ?delay, "retrying");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = ctx.stop.cancelled() => return interrupted(&job, attempts, started),
        }
    }
}
