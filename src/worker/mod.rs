//! The worker loop: bid for shards of every dataset it knows of (from gossip announcements and
//! from this node's own coordinator) while it has room, run each granted lease in its own task
//! (see [`lease_task`]), and stop on shutdown (giving leases back) or after `--exit-when-idle`.
//!
//! Bids carry measured stats ([`stats::Probe`] + [`activity::Activity`]); the seeder decides,
//! and the worker also never runs more leases than its own capacity allows. Offers are bid on
//! concurrently (up to the free slots), each bid bounded by [`BID_TIMEOUT`]: a seeder that does
//! not answer costs seconds, is tried again only after a growing pause, and seeders that
//! answered come first. Bidding is driven by events — offers pushed by the node, a lease
//! ended, a download slot freed — and by the deadlines answers set ([`pacing`]); there is no
//! periodic poll.
//!
//! Shards finished before the worker died are kept in its work dir and offered again to their
//! seeder once it is in the offers (see [`kept`]); other scratch of a previous life is removed.
//!
//! Rows from a remote seeder are fetched with private and loopback addresses blocked unless
//! the node runs with `--allow-private-urls` (a seeder is not allowed to make workers probe
//! their own networks).

pub mod activity;
mod deliver;
pub mod kept;
pub mod lease_task;
pub mod link;
mod pacing;
pub mod stats;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::EngineConfig;
use crate::model::bid;
use crate::model::ids::{DatasetId, NodeId};
use crate::model::node_stats::NodeStats;
use crate::protocol::control::{ControlRequest, ControlResponse};
use crate::protocol::settings::{DatasetSettings, SettingsError, lease_config};
use activity::Activity;
use lease_task::{LeaseCtx, LeaseOutcome, redeliver, run_lease};
use link::SeederLink;
pub use pacing::BID_TIMEOUT;
use pacing::{BidResult, CAPACITY_RECHECK, OfferKey, Pacing};
use stats::Probe;

/// A dataset with work, and how to reach its seeder.
#[derive(Clone)]
pub struct Offer {
    /// As announced in the seeder's `Gossip::Dataset`.
    pub dataset: DatasetId,
    /// The route to its seeder.
    pub link: SeederLink,
    /// Whether it has shards to hand out (bid on it); a dataset whose shards are all leased is
    /// still offered so that kept shards reach their seeder.
    pub open: bool,
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This node's peer id.
    pub me: NodeId,
    /// Scratch space for archives being built.
    pub work_dir: PathBuf,
    /// Engine tuning.
    pub engine: EngineConfig,
    /// Stop after holding no lease for this long.
    pub exit_when_idle: Option<Duration>,
    /// Never hold more leases than this (on top of the resource-derived capacity).
    pub max_leases: Option<u32>,
    /// Rows of a remote seeder may target loopback and private addresses.
    pub allow_private_urls: bool,
}

/// What a worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Leases completed.
    pub completed: u64,
    /// Leases lost to the seeder.
    pub lost: u64,
    /// Leases given back.
    pub abandoned: u64,
}

impl WorkerSummary {
    /// Counts a lease task's end (a task that panicked or was aborted counts as given back).
    fn count(&mut self, done: Result<LeaseOutcome, tokio::task::JoinError>) {
        match done {
            Ok(LeaseOutcome::Completed) => self.completed += 1,
            Ok(LeaseOutcome::Lost(_)) => self.lost += 1,
            Ok(LeaseOutcome::Abandoned(_) | LeaseOutcome::Released(_)) | Err(_) => {
                self.abandoned += 1
            }
        }
    }
}

/// The worker's current stats, as bid and advertised.
pub fn current_stats(probe: &Probe, activity: &Activity, cfg: &WorkerConfig) -> NodeStats {
    let mut s = probe.measure(&cfg.work_dir);
    let (bps, ips) = activity.rate();
    s.bytes_per_s = bps;
    s.images_per_s = ips;
    s.leases_held = activity.leases_held.load(Ordering::Relaxed);
    s.shards_done = activity.shards_done.load(Ordering::Relaxed);
    s.works = true;
    let cap = local_capacity(&s, cfg);
    let downloading = activity.downloading.load(Ordering::Relaxed);
    s.free_slots = cap
        .downloads
        .saturating_sub(downloading)
        .min(cap.leases.saturating_sub(s.leases_held));
    s
}

/// This node's own limits: resources for a shard of 1,000 typical rows (the seeder re-checks
/// with the dataset's real shard size), and `--max-leases`.
fn local_capacity(s: &NodeStats, cfg: &WorkerConfig) -> bid::Capacity {
    let expected = bid::expected_shard_bytes(1_000, bid::DEFAULT_BYTES_PER_ROW);
    let cap = bid::capacity(s, expected);
    match cfg.max_leases {
        Some(m) => bid::Capacity {
            downloads: cap.downloads.min(m),
            leases: cap.leases.min(m),
        },
        None => cap,
    }
}

/// The engine settings of one lease: rows of a remote seeder may not reach loopback, private,
/// link-local or multicast addresses unless the node allows private URLs, and its results
/// carry error kinds, not raw texts; the node's own seeder is trusted.
fn lease_engine(cfg: &WorkerConfig, remote: bool) -> EngineConfig {
    let mut engine = cfg.engine.clone();
    engine.fetch.block_private_addresses = remote && !cfg.allow_private_urls;
    // Raw error texts name internal hosts and ports: a remote seeder gets kinds and statuses.
    engine.redact_error_messages = remote;
    engine
}

/// The engine settings of one lease: the grant's dataset settings (checked as hostile input,
/// only ever tightening `local`'s limits) over the worker's own lease engine; `local`'s SSRF
/// guard and redaction stay whatever the seeder sends.
pub fn lease_settings(
    local: &EngineConfig,
    settings: Option<&DatasetSettings>,
) -> Result<EngineConfig, SettingsError> {
    let mut e = lease_config(settings, local)?;
    e.fetch.block_private_addresses = local.fetch.block_private_addresses;
    e.redact_error_messages = local.redact_error_messages;
    e.hash_archive = local.hash_archive;
    e.compression = local.compression;
    Ok(e)
}

/// With no free slot, how soon this node's capacity is measured again (`None`: it can bid).
/// Busy, a freed slot or an ended lease wakes the worker; what may still grow meanwhile is the
/// capacity its measured throughput earns, measured over [`activity::RATE_WINDOW`]. Idle and
/// unable to bid (disk or memory short), it looks again sooner.
fn recheck_after(s: &NodeStats) -> Option<Duration> {
    if s.free_slots > 0 {
        None
    } else if s.leases_held == 0 {
        Some(CAPACITY_RECHECK)
    } else {
        Some(activity::RATE_WINDOW)
    }
}

/// Runs the worker until `shutdown` or until it has been idle for `exit_when_idle`.
pub async fn run(
    cfg: WorkerConfig,
    mut offers: watch::Receiver<Vec<Offer>>,
    probe: Arc<Probe>,
    activity: Arc<Activity>,
    shutdown: CancellationToken,
) -> WorkerSummary {
    // Scratch left by a previous life (kill -9): finished shards are kept and offered again,
    // the rest belongs to leases that are gone or fenced.
    let mut kept = kept::recover(&cfg.work_dir);
    let mut tasks: JoinSet<LeaseOutcome> = JoinSet::new();
    let mut summary = WorkerSummary::default();
    let mut pacing = Pacing::default();
    let mut idle_since = Instant::now();
    let leases = shutdown.child_token();
    let decline = stats::DeclineLog::default();
    let mut offers_open = true;
    // The next deadline: a bid due, the capacity to measure again, or the idle limit. The
    // first round (offers already known, kept shards) runs at once.
    let mut wake = Some(Instant::now());
    loop {
        let deadline = wake.unwrap_or_else(Instant::now);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                activity.leases_held.fetch_sub(1, Ordering::Relaxed);
                summary.count(done);
                idle_since = Instant::now();
            }
            // A download finished: its slot can take the next shard right away.
            _ = activity.slot_freed.notified() => {}
            // New offers are pushed by the node: bid on them now.
            changed = offers.changed(), if offers_open => offers_open = changed.is_ok(),
            _ = tokio::time::sleep_until(deadline), if wake.is_some() => {}
        }
        if !tasks.is_empty() {
            idle_since = Instant::now();
        } else if let Some(limit) = cfg.exit_when_idle
            && idle_since.elapsed() >= limit
        {
            tracing::info!("idle for {limit:?}: the worker stops");
            break;
        }
        let mut current: Vec<Offer> = offers.borrow_and_update().clone();
        // Shards finished before a restart go to their seeder as soon as it is offered.
        kept.retain(|k| {
            let Some(offer) = current.iter().find(|o| {
                o.dataset == k.finished.grant.dataset && o.link.seeder(cfg.me) == k.finished.seeder
            }) else {
                return true;
            };
            activity.leases_held.fetch_add(1, Ordering::Relaxed);
            let remote = matches!(offer.link, SeederLink::Remote { .. });
            let ctx = LeaseCtx {
                link: offer.link.clone(),
                me: cfg.me,
                grant: k.finished.grant.clone(),
                work_dir: cfg.work_dir.clone(),
                engine: lease_engine(&cfg, remote),
                activity: activity.clone(),
            };
            tasks.spawn(redeliver(ctx, k.clone(), leases.clone()));
            false
        });
        current.retain(|o| o.open);
        let key = |o: &Offer| -> OfferKey { (o.dataset, o.link.seeder(cfg.me)) };
        let open: Vec<OfferKey> = current.iter().map(key).collect();
        let stats = current_stats(&probe, &activity, &cfg);
        if stats.free_slots == 0 && stats.leases_held == 0 && !current.is_empty() {
            // Idle and not bidding: say why (WARN, once per reason).
            let shard = bid::expected_shard_bytes(1_000, bid::DEFAULT_BYTES_PER_ROW);
            decline.note(stats::why_not_bidding(&stats, shard, &cfg.work_dir));
        } else if stats.free_slots > 0 {
            decline.note(None);
        }
        let due = pacing.due(current, key, Instant::now(), stats.free_slots as usize);
        let bids = due.into_iter().map(|offer| {
            let req = ControlRequest::Bid {
                dataset: offer.dataset,
                stats: stats.clone(),
            };
            let me = cfg.me;
            async move {
                let answer = tokio::time::timeout(BID_TIMEOUT, offer.link.request(me, req)).await;
                (offer, answer)
            }
        });
        for (offer, answer) in futures::future::join_all(bids).await {
            let k = key(&offer);
            let Ok(answer) = answer else {
                let pause = pacing.record(k, BidResult::Silent, Instant::now());
                tracing::info!(dataset = %offer.dataset, seeder = %k.1, "no answer to a bid within {BID_TIMEOUT:?}; next try in {pause:?}");
                continue;
            };
            pacing.record(k, BidResult::Answered(&answer), Instant::now());
            match answer {
                Ok(ControlResponse::Granted(grant)) => {
                    tracing::info!(dataset = %grant.dataset, shard = %grant.shard, epoch = %grant.epoch, speculative = grant.speculative, "lease granted");
                    activity.leases_held.fetch_add(1, Ordering::Relaxed);
                    let remote = matches!(offer.link, SeederLink::Remote { .. });
                    let ctx = LeaseCtx {
                        link: offer.link.clone(),
                        me: cfg.me,
                        grant,
                        work_dir: cfg.work_dir.clone(),
                        engine: lease_engine(&cfg, remote),
                        activity: activity.clone(),
                    };
                    tasks.spawn(run_lease(ctx, leases.clone()));
                    idle_since = Instant::now();
                }
                Ok(ControlResponse::NoWork { .. }) => {}
                Ok(ControlResponse::Rejected(r)) => {
                    tracing::debug!(dataset = %offer.dataset, "bid refused: {r}");
                }
                Ok(other) => tracing::warn!("unexpected answer to a bid: {other:?}"),
                Err(e) => {
                    tracing::debug!(dataset = %offer.dataset, "cannot reach the seeder: {e}");
                }
            }
        }
        // Forget pauses of offers that are gone, so the pacing stays as small as the offers.
        let live: HashSet<OfferKey> = offers.borrow().iter().map(key).collect();
        pacing.keep_only(&live);
        // Sleep until the next deadline; events (offers, ended leases, freed slots) come first.
        let now = Instant::now();
        let bid_wake = pacing.next_wake(
            &open,
            recheck_after(&current_stats(&probe, &activity, &cfg)),
            now,
        );
        let idle_limit = cfg
            .exit_when_idle
            .filter(|_| tasks.is_empty())
            .map(|limit| idle_since + limit);
        wake = bid_wake.into_iter().chain(idle_limit).min();
    }
    // Give every lease back, bounded in time.
    leases.cancel();
    let deadline = tokio::time::sleep(Duration::from_secs(15));
    tokio::pin!(deadline);
    while !tasks.is_empty() {
        tokio::select! {
            _ = &mut deadline => { tasks.abort_all(); break; }
            Some(done) = tasks.join_next() => {
                activity.leases_held.fetch_sub(1, Ordering::Relaxed);
                summary.count(done);
            }
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_rows_are_kept_off_private_addresses_unless_allowed() {
        let mut cfg = WorkerConfig {
            me: crate::model::ids::seeded_node_id(0),
            work_dir: PathBuf::from("w"),
            engine: EngineConfig::default(),
            exit_when_idle: None,
            max_leases: None,
            allow_private_urls: false,
        };
        assert!(lease_engine(&cfg, true).fetch.block_private_addresses);
        assert!(lease_engine(&cfg, true).redact_error_messages);
        assert!(!lease_engine(&cfg, false).fetch.block_private_addresses);
        assert!(!lease_engine(&cfg, false).redact_error_messages);
        cfg.allow_private_urls = true;
        assert!(!lease_engine(&cfg, true).fetch.block_private_addresses);
    }

    #[test]
    fn a_seeders_settings_never_lift_the_ssrf_guard_nor_the_workers_caps() {
        let cfg = WorkerConfig {
            me: crate::model::ids::seeded_node_id(0),
            work_dir: PathBuf::from("w"),
            engine: EngineConfig {
                concurrency: 4,
                ..EngineConfig::default()
            },
            exit_when_idle: None,
            max_leases: None,
            allow_private_urls: false,
        };
        let local = lease_engine(&cfg, true);
        let wide = EngineConfig {
            concurrency: 1_000,
            resize: crate::engine::ResizeOptions {
                mode: crate::engine::ResizeMode::Border,
                ..crate::engine::ResizeOptions::default()
            },
            ..EngineConfig::default()
        };
        let s = DatasetSettings::from_engine(&wide);
        let e = lease_settings(&local, Some(&s)).unwrap();
        assert!(e.fetch.block_private_addresses && e.redact_error_messages);
        assert_eq!(e.concurrency, 4);
        assert_eq!(e.resize.mode, crate::engine::ResizeMode::Border);
        assert_eq!(lease_settings(&local, None).unwrap(), local);
    }
}
