//! One granted lease, start to finish: fetch the shard's rows, run the engine into the work
//! dir while renewing the lease on a ticker (a `Refused` renewal cancels the engine), push the
//! archive then the results file to the seeder, and complete with the grant's epoch. On
//! shutdown or local failure the lease is given back with `Abandon`.
//!
//! A grant whose archive name is not a plain file name is refused before anything is written.
//! Free space is watched while the shard downloads (given back early, with the cause, below
//! [`DISK_RESERVE`]). A finished shard is marked as such in its directory ([`super::kept`],
//! so a restarted worker offers it again) and delivered by [`super::deliver`], kept across
//! seeder outages ("busy", "storage failed", unreachable) for at least [`FINISHED_PATIENCE`];
//! only a definite answer (stored, or fenced / invalid) ends it sooner.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::activity::Activity;
use super::deliver::{deliver, deliver_kept};
use super::kept::{Finished, Kept, write_marker};
use super::link::{LinkError, SeederLink};
use super::stats::{free_space, human_bytes};
use crate::engine::{self, EngineConfig, ShardCounters, ShardJob};
use crate::input::VecRows;
use crate::layout::{LeaseDir, WorkDir};
use crate::model::ids::NodeId;
use crate::model::retry::RetryPolicy;
use crate::model::shard::check_archive_name;
use crate::protocol::control::{ControlRequest, ControlResponse, Grant};

/// Why a lease is released on shutdown.
pub(super) const SHUTTING_DOWN: &str = "the worker is shutting down";

/// How long a worker keeps trying to reach a seeder before it starts a shard.
const START_PATIENCE: Duration = Duration::from_secs(60);
/// How long a lease given back is retried (the worker's shutdown waits 15 s for its leases).
const GIVE_BACK_PATIENCE: Duration = Duration::from_secs(6);
/// One attempt to give a lease back.
const GIVE_BACK_ATTEMPT: Duration = Duration::from_secs(3);

/// How long a finished shard is kept and offered again while the seeder is unreachable or
/// busy: at least this, and at least [`FINISHED_PATIENCE_TTLS`] lease TTLs. Only a definite
/// answer (stored, or fenced / invalid) ends it sooner.
const FINISHED_PATIENCE: Duration = Duration::from_secs(15 * 60);
/// [`FINISHED_PATIENCE`] in lease TTLs, for long TTLs.
const FINISHED_PATIENCE_TTLS: u32 = 10;

/// Free space kept on the work dir's filesystem while a shard downloads: below it the shard is
/// given back early (before ENOSPC) with the cause.
pub const DISK_RESERVE: u64 = 8 << 20;

/// How often free space is checked while a shard downloads.
const DISK_CHECK_EVERY: Duration = Duration::from_millis(200);

/// How a lease ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Completed and acknowledged.
    Completed,
    /// The seeder took it back (expired, another copy won).
    Lost(String),
    /// Given back after failing here (counts against the shard's retries).
    Abandoned(String),
    /// Given back because this worker is going away (costs the shard nothing).
    Released(String),
}

/// What a lease task needs.
pub struct LeaseCtx {
    /// Route to the seeder.
    pub link: SeederLink,
    /// This node's peer id.
    pub me: NodeId,
    /// The seeder's grant this task works on (dataset, shard, epoch, expiry).
    pub grant: Grant,
    /// Root of the worker's scratch space.
    pub work_dir: PathBuf,
    /// Engine tuning.
    pub engine: EngineConfig,
    /// Shared counters.
    pub activity: Arc<Activity>,
}

/// Runs one lease to its end; `shutdown` gives it back.
pub async fn run_lease(ctx: LeaseCtx, shutdown: CancellationToken) -> LeaseOutcome {
    run(ctx, None, shutdown).await
}

/// Delivers a shard finished before this worker restarted (see [`super::kept`]) under its
/// old lease: renewed and uploaded (resuming), then completed; a lease the seeder no longer
/// knows ends it as lost and the files go.
pub async fn redeliver(ctx: LeaseCtx, kept: Kept, shutdown: CancellationToken) -> LeaseOutcome {
    run(ctx, Some(kept), shutdown).await
}

async fn run(mut ctx: LeaseCtx, kept: Option<Kept>, shutdown: CancellationToken) -> LeaseOutcome {
    let g = ctx.grant.clone();
    // The seeder's dataset settings are hostile input: checked field by field, and they can
    // only tighten this worker's own limits; refused settings give the lease back unused.
    match super::lease_settings(&ctx.engine, g.settings.as_deref()) {
        Ok(engine) => ctx.engine = engine,
        Err(e) => {
            let seeder = ctx.link.seeder(ctx.me);
            tracing::error!(dataset = %g.dataset, shard = %g.shard, epoch = %g.epoch, %seeder, "refused a grant from seeder {seeder}: {e}; nothing was fetched");
            let reason = e.to_string();
            give_back(&ctx, &g, reason.clone(), false).await;
            return LeaseOutcome::Released(reason);
        }
    }
    // Nothing from a peer becomes a path unchecked: a grant whose archive name is not one plain
    // file name of the form seeders generate is given back before anything is fetched or
    // written.
    if let Err(e) = check_archive_name(&g.archive_name) {
        let seeder = ctx.link.seeder(ctx.me);
        tracing::error!(
            dataset = %g.dataset, shard = %g.shard, epoch = %g.epoch, %seeder,
            "refused a grant from seeder {seeder}: {e}: {:?}; nothing was written",
            g.archive_name
        );
        let reason = format!("refused grant: {e}");
        give_back(&ctx, &g, reason.clone(), false).await;
        return LeaseOutcome::Released(reason);
    }
    let (dir, finished) = match kept {
        Some(k) => (k.dir, Some(k.finished)),
        None => (
            WorkDir::new(&ctx.work_dir)
                .lease(g.dataset, g.shard, g.epoch)
                .into_path(),
            None,
        ),
    };
    let lost = CancellationToken::new();
    let counters = ShardCounters::new();
    // A finished shard reports all its rows done: an upload is not a stall.
    let rows_floor = if finished.is_some() { g.rows } else { 0 };
    let renewer = tokio::spawn(renew_loop(
        ctx.link.clone(),
        ctx.me,
        g.clone(),
        counters.clone(),
        rows_floor,
        lost.clone(),
    ));
    ctx.activity.track(&counters);
    // Never drop `work` midway: a lost lease cancels the engine through its token, so its
    // tasks wind down and nothing keeps writing into the directory removed below.
    let done = match finished {
        Some(f) => deliver_kept(&ctx, &dir, &f, &lost, &shutdown).await,
        None => work(&ctx, &dir, counters.clone(), &lost, &shutdown).await,
    };
    let outcome = match done {
        LeaseOutcome::Completed => LeaseOutcome::Completed,
        _ if lost.is_cancelled() => LeaseOutcome::Lost("the seeder refused a renewal".into()),
        other => other,
    };
    renewer.abort();
    ctx.activity.untrack(&counters);
    let given_back = match &outcome {
        LeaseOutcome::Abandoned(reason) => Some((reason.clone(), true)),
        LeaseOutcome::Released(reason) => Some((reason.clone(), false)),
        _ => None,
    };
    if let Some((reason, failed)) = given_back {
        give_back(&ctx, &g, reason, failed).await;
    }
    let _ = tokio::fs::remove_dir_all(&dir).await;
    match &outcome {
        // A local failure (disk full, engine error) is the worker's own problem: say so loudly.
        LeaseOutcome::Abandoned(reason) => {
            tracing::warn!(dataset = %g.dataset, shard = %g.shard, epoch = %g.epoch, "shard given back after a failure here: {reason}");
        }
        _ => {
            tracing::info!(dataset = %g.dataset, shard = %g.shard, epoch = %g.epoch, ?outcome, "lease ended");
        }
    }
    outcome
}

/// Tells the seeder the lease is given back, trying again while it cannot be reached, for at
/// most [`GIVE_BACK_PATIENCE`] (then the lease expires instead). Shutdown is what usually brings
/// a lease here, so the retries answer to no cancellation: a seeder slow under load must still
/// hear that the shard is free, or the lapsed lease counts as a failure of the shard.
async fn give_back(ctx: &LeaseCtx, g: &Grant, reason: String, failed: bool) {
    let req = ControlRequest::Abandon {
        dataset: g.dataset,
        shard: g.shard,
        epoch: g.epoch,
        reason,
        failed,
    };
    let call = || async {
        match tokio::time::timeout(GIVE_BACK_ATTEMPT, ctx.link.request(ctx.me, req.clone())).await {
            Ok(answer) => answer,
            Err(_) => Err(LinkError::Transient(format!(
                "no answer within {GIVE_BACK_ATTEMPT:?}"
            ))),
        }
    };
    if let Err(e) = retry(call, &CancellationToken::new(), GIVE_BACK_PATIENCE).await {
        tracing::warn!(dataset = %g.dataset, shard = %g.shard, epoch = %g.epoch, "could not give the lease back, it will expire at its seeder: {e}");
    }
}

async fn work(
    ctx: &LeaseCtx,
    dir: &Path,
    counters: Arc<ShardCounters>,
    lost: &CancellationToken,
    shutdown: &CancellationToken,
) -> LeaseOutcome {
    let g = &ctx.grant;
    let rows_req = ControlRequest::Rows {
        dataset: g.dataset,
        shard: g.shard,
        epoch: g.epoch,
    };
    let rows = match retry(
        || ctx.link.request(ctx.me, rows_req.clone()),
        shutdown,
        START_PATIENCE,
    )
    .await
    {
        Ok(ControlResponse::Rows(rows)) => rows,
        Ok(ControlResponse::Rejected(r)) => return LeaseOutcome::Lost(r.to_string()),
        Ok(other) => {
            return LeaseOutcome::Abandoned(format!("unexpected answer to Rows: {other:?}"));
        }
        Err(e) => return given_up(e, shutdown),
    };
    if let Err(e) = tokio::fs::create_dir_all(dir).await {
        return LeaseOutcome::Abandoned(format!("cannot create {}: {e}", dir.display()));
    }
    let archive = LeaseDir::new(dir).archive(&g.archive_name);
    let engine_cancel = shutdown.child_token();
    let stop_engine = engine_cancel.clone();
    let lost_watch = lost.clone();
    let disk_full: Arc<std::sync::OnceLock<String>> = Arc::default();
    let (disk_flag, disk_dir) = (disk_full.clone(), dir.to_path_buf());
    let watcher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(DISK_CHECK_EVERY);
        loop {
            tokio::select! {
                _ = lost_watch.cancelled() => break,
                _ = tick.tick() => {
                    let free = free_space(&disk_dir).unwrap_or(u64::MAX);
                    if free < DISK_RESERVE {
                        let _ = disk_flag.set(format!(
                            "disk nearly full: {} free on the filesystem of {} (reserve {})",
                            human_bytes(free),
                            disk_dir.display(),
                            human_bytes(DISK_RESERVE)
                        ));
                        break;
                    }
                }
            }
        }
        stop_engine.cancel();
    });
    let job = ShardJob {
        rows: Box::new(VecRows::new(rows)),
        archive_path: archive.clone(),
        resume: false,
    };
    let slot = DownloadSlot::take(&ctx.activity);
    let report = engine::run_shard(job, &ctx.engine, counters, engine_cancel).await;
    drop(slot);
    watcher.abort();
    if shutdown.is_cancelled() {
        return LeaseOutcome::Released(SHUTTING_DOWN.into());
    }
    if let Some(cause) = disk_full.get() {
        tracing::warn!(dataset = %g.dataset, shard = %g.shard, "giving the shard back: {cause}");
        return LeaseOutcome::Abandoned(cause.clone());
    }
    let report = match report {
        Ok(r) if !r.interrupted => r,
        Ok(_) => return LeaseOutcome::Abandoned("the engine was interrupted".into()),
        Err(e) => return LeaseOutcome::Abandoned(format!("engine failure: {e}")),
    };
    let finished = Finished {
        grant: g.clone(),
        seeder: ctx.link.seeder(ctx.me),
        ok: report.ok,
        failed: report.failed + report.skipped,
        bytes: report.bytes,
        archive_size: report.archive_size,
        archive_sha256: report.archive_sha256.clone(),
    };
    // Kept across this worker's own death: a restart offers it again instead of deleting it.
    if let Err(e) = write_marker(dir, &finished) {
        tracing::warn!(shard = %g.shard, "cannot mark the finished shard in {} (a restart would download it again): {e}", dir.display());
    }
    deliver(ctx, &archive, &finished, lost, shutdown).await
}

/// Renews every third of the TTL until refused (then cancels `lost`), reporting at least
/// `rows_floor` rows done.
async fn renew_loop(
    link: SeederLink,
    me: NodeId,
    g: Grant,
    counters: Arc<ShardCounters>,
    rows_floor: u64,
    lost: CancellationToken,
) {
    let period = Duration::from_millis((g.ttl_ms / 3).max(100));
    // Slow-downs (429/503) already reported to the seeder.
    let mut reported = 0u64;
    loop {
        tokio::time::sleep(period).await;
        let throttled_now = counters.throttled.load(Ordering::Relaxed);
        let req = ControlRequest::Renew {
            dataset: g.dataset,
            shard: g.shard,
            epoch: g.epoch,
            rows_done: counters.snapshot().0.max(rows_floor),
            throttled: u32::try_from(throttled_now.saturating_sub(reported)).unwrap_or(u32::MAX),
        };
        match link.request(me, req).await {
            Ok(ControlResponse::Renewed { .. }) => reported = throttled_now,
            Ok(ControlResponse::Rejected(r)) if r.reason.is_retryable() => {
                tracing::warn!(shard = %g.shard, "renewal refused for now (will retry): {r}");
            }
            Ok(ControlResponse::Rejected(r)) => {
                tracing::warn!(shard = %g.shard, epoch = %g.epoch, "lease lost: {r}");
                lost.cancel();
                return;
            }
            Ok(other) => tracing::warn!(shard = %g.shard, "unexpected answer to Renew: {other:?}"),
            Err(e) => tracing::warn!(shard = %g.shard, "cannot renew (will retry): {e}"),
        }
    }
}

/// Retries a transient failure (unreachable, busy, storage failed) with backoff for up to
/// `patience` (a restarting seeder); a definite answer is returned at once.
pub(super) async fn retry<F, Fut>(
    mut call: F,
    shutdown: &CancellationToken,
    patience: Duration,
) -> Result<ControlResponse, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<ControlResponse, LinkError>>,
{
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let more = started.elapsed() < patience;
        match call().await {
            Ok(ControlResponse::Rejected(r)) if r.reason.is_retryable() && more => {
                tracing::warn!(attempt, "seeder refused for now, retrying: {r}");
                if sleep_or_cancel(backoff(attempt), shutdown).await {
                    return Err(SHUTTING_DOWN.into());
                }
            }
            Ok(r) => return Ok(r),
            Err(LinkError::Refused(r)) if !r.reason.is_retryable() => {
                return Ok(ControlResponse::Rejected(r));
            }
            Err(e) if more => {
                tracing::warn!(attempt, "seeder unreachable, retrying: {e}");
                if sleep_or_cancel(backoff(attempt), shutdown).await {
                    return Err(SHUTTING_DOWN.into());
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// How long a finished shard is kept while its seeder cannot take it.
pub(super) fn finished_patience(g: &Grant) -> Duration {
    FINISHED_PATIENCE.max(Duration::from_millis(g.ttl_ms).saturating_mul(FINISHED_PATIENCE_TTLS))
}

/// Counts one running download; released on drop, so a lease task cancelled mid-download
/// frees its slot too.
struct DownloadSlot<'a>(&'a Activity);

impl<'a> DownloadSlot<'a> {
    fn take(activity: &'a Activity) -> Self {
        activity.downloading.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for DownloadSlot<'_> {
    fn drop(&mut self) {
        self.0.downloading.fetch_sub(1, Ordering::Relaxed);
        self.0.slot_freed.notify_one();
    }
}

/// A lease given up after `reason`: released when the worker is going away, abandoned else.
pub(super) fn given_up(reason: String, shutdown: &CancellationToken) -> LeaseOutcome {
    if shutdown.is_cancelled() {
        LeaseOutcome::Released(reason)
    } else {
        LeaseOutcome::Abandoned(reason)
    }
}

/// The wait after `attempt` failed calls to the seeder (≥ 1): the shared retry schedule
/// ([`RetryPolicy::ceiling`]) from 0.5 s, doubling, at most 10 s, without jitter (one worker's
/// calls to one seeder do not stampede).
pub(super) fn backoff(attempt: u32) -> Duration {
    RetryPolicy {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(10),
        ..RetryPolicy::default()
    }
    .ceiling(attempt)
}

/// Sleeps `d`; true when cancelled first.
pub(super) async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_to_the_seeder_back_off_on_the_shared_schedule_up_to_ten_seconds() {
        let secs: Vec<f64> = (1..=7).map(|a| backoff(a).as_secs_f64()).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]);
    }
}
