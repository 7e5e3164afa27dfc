//! The coordinator's answers to control requests: bids (checked against the bidder's
//! capacity), a shard's rows, renewals, completions (see [`super::complete`]: verified, then
//! promoted into `--out` and committed as done in one step) and abandons.

use super::{Coordinator, NO_WORK_RETRY_MS};
use crate::model::bid;
use crate::model::ids::{DatasetId, Epoch, ShardId};
use crate::model::lease::{Admission, LeaseError};
use crate::model::node_stats::NodeStats;
use crate::model::time::UnixMillis;
use crate::protocol::control::{ControlRequest, ControlResponse, Grant, Refusal, RejectReason};
use crate::protocol::gossip::LeaseState;
use crate::protocol::settings::DatasetSettings;
use crate::seed::{dataset_dir, rowfile, shard_path};

impl Coordinator {
    /// Answers one control request from `peer`.
    pub async fn handle_request(
        &mut self,
        peer: &str,
        req: ControlRequest,
        now: UnixMillis,
    ) -> ControlResponse {
        if let Some(f) = &self.storage_failed {
            return ControlResponse::rejected(RejectReason::StorageFailed, f.to_string());
        }
        self.handle_timeout(now).await;
        match req {
            ControlRequest::Bid { dataset, stats } => self.bid(peer, dataset, stats, now).await,
            ControlRequest::Rows {
                dataset,
                shard,
                epoch: Epoch(epoch),
            } => self.rows(peer, dataset, shard, epoch, now).await,
            ControlRequest::Renew {
                dataset,
                shard,
                epoch: Epoch(epoch),
                rows_done,
                throttled,
            } => {
                let r = match self.datasets.get_mut(&dataset) {
                    None => return unknown(dataset),
                    Some(d) => {
                        let r = d.book.handle_renew(shard, epoch, peer, rows_done, now);
                        // Slow-downs count only from a live lease's holder.
                        if let (Ok(_), Some(b)) = (&r, d.budget.as_mut()) {
                            b.note_peer(peer, now);
                            if throttled > 0 {
                                let before = b.limit();
                                b.on_throttled(throttled, now);
                                tracing::info!(dataset = %dataset, shard = %shard, peer, throttled, limit = b.limit(), before, "a worker was told to slow down (429/503): the swarm's per-host budget follows");
                            }
                        }
                        r
                    }
                };
                match r {
                    Ok(expires_at) => match self.persist_checked(dataset, &[shard]).await {
                        Ok(()) => ControlResponse::Renewed { expires_at },
                        Err(e) => storage_refusal(&e),
                    },
                    Err(e @ LeaseError::Stalled { .. }) => {
                        tracing::warn!(dataset = %dataset, shard = %shard, peer, epoch, "lease revoked: {e}");
                        self.lease_gossip(dataset, shard, peer, epoch, LeaseState::Free, now);
                        self.persist(dataset, &[shard]).await;
                        rejected(e)
                    }
                    Err(e) => rejected(e),
                }
            }
            ControlRequest::Complete {
                dataset,
                shard,
                epoch: Epoch(epoch),
                ..
            } => {
                let key = super::CompleteKey {
                    dataset,
                    shard,
                    epoch,
                };
                self.complete(peer, key, now).await
            }
            ControlRequest::Abandon {
                dataset,
                shard,
                epoch: Epoch(epoch),
                reason,
                failed,
            } => {
                let r = match self.datasets.get_mut(&dataset) {
                    None => return unknown(dataset),
                    Some(d) => d
                        .book
                        .handle_abandon(shard, epoch, peer, &reason, failed, now),
                };
                match r {
                    Ok(lost) => {
                        if failed {
                            tracing::warn!(dataset = %dataset, shard = %shard, peer, reason, phase = ?lost.phase_after, "lease given back failed (a local cause: charged to the peer, not to the shard)");
                        } else {
                            tracing::info!(dataset = %dataset, shard = %shard, peer, reason, "lease given back");
                        }
                        self.lease_gossip(dataset, shard, &lost.peer, epoch, LeaseState::Free, now);
                        self.persist(dataset, &[shard]).await;
                        ControlResponse::Ack
                    }
                    Err(e) => rejected(e),
                }
            }
        }
    }

    async fn bid(
        &mut self,
        peer: &str,
        dataset: DatasetId,
        stats: NodeStats,
        now: UnixMillis,
    ) -> ControlResponse {
        self.peer_stats.insert(peer.to_string(), stats.clone());
        let Some(d) = self.datasets.get_mut(&dataset) else {
            return unknown(dataset);
        };
        if d.book.is_finished() {
            return ControlResponse::NoWork {
                retry_after_ms: NO_WORK_RETRY_MS,
                finished: true,
            };
        }
        let avg_rows = d.seeded.rows_total / (d.seeded.shard_rows.len().max(1) as u64);
        let expected = bid::expected_shard_bytes(avg_rows, d.bytes_per_row());
        match d.book.admission(peer, now) {
            Admission::Admitted => d.book.note_bid(peer, now),
            Admission::BackOff { until } => {
                return ControlResponse::NoWork {
                    retry_after_ms: until.0.saturating_sub(now.0).max(NO_WORK_RETRY_MS),
                    finished: false,
                };
            }
            Admission::Excluded { faults, cause } => {
                return ControlResponse::rejected(
                    RejectReason::NotAllowed,
                    format!(
                        "excluded from dataset {dataset} for this run after {faults} failures in a row; last: {cause}"
                    ),
                );
            }
        }
        // Claimed stats can only lower what the seeder's own measurements allow: a peer starts
        // with a small cap that grows with the completions recorded here.
        let held = d.book.held_by(peer);
        let by_stats = bid::capacity(&stats, expected).leases;
        let cap = if self.cfg.local_peer.as_deref() == Some(peer) {
            by_stats
        } else {
            by_stats.min(d.book.peer_cap(peer))
        };
        if held >= cap {
            return no_work();
        }
        // Tail copies go to idle bidders only, and only to ones at least half as fast as the
        // fastest bidder seen: a copy on a slower peer would not finish first.
        let best = self
            .peer_stats
            .values()
            .map(bid::score)
            .fold(0.0f64, f64::max);
        let allow_copy = held == 0 && bid::score(&stats) >= best * 0.5;
        // `--swarm-per-host`: the lease goes to a shard whose hosts have room in the swarm's
        // budget and gets its share as its per-host cap; no lease while every host is taken.
        let (lease, per_host) = match d.budget.as_mut() {
            None => match d.book.handle_bid(peer, allow_copy, now) {
                Some(l) => (l, None),
                None => return no_work(),
            },
            Some(b) => {
                b.sync(d.book.shards().iter().enumerate().flat_map(|(i, s)| {
                    let i = u32::try_from(i).unwrap_or(u32::MAX);
                    s.holders.iter().map(move |h| (i, h.epoch, h.peer.as_str()))
                }));
                b.forget_idle(now);
                let view = b.bid(peer, now);
                let mut wanted = None;
                let lease = d.book.handle_bid_where(peer, allow_copy, now, |s| {
                    wanted.get_or_insert(s.0);
                    view.cap_for(s.0).is_some()
                });
                let cap = lease.as_ref().and_then(|l| view.cap_for(l.shard.0));
                drop(view);
                if let Some(w) = lease.as_ref().map(|l| l.shard.0).or(wanted) {
                    b.note_wanted(peer, w, now);
                }
                match (lease, cap) {
                    (Some(l), Some(c)) => {
                        b.reserve(l.shard.0, l.epoch, peer, c);
                        (l, Some(c))
                    }
                    (Some(l), None) => {
                        // Not reached (the shard was accepted for its room); never grant
                        // a lease outside the budget.
                        let _ =
                            d.book
                                .handle_abandon(l.shard, l.epoch, peer, "no budget", false, now);
                        return no_work();
                    }
                    (None, _) => return no_work(),
                }
            }
        };
        let idx = lease.shard.0 as usize;
        let settings = self.cfg.settings.clone();
        // A budget needs settings to travel in: the defaults, if none were given.
        let settings = settings.or_else(|| {
            per_host.map(|_| DatasetSettings::from_engine(&crate::engine::EngineConfig::default()))
        });
        let settings = settings.map(|mut s| {
            if let Some(c) = per_host {
                s.per_host = s.per_host.min(c);
            }
            Box::new(s)
        });
        let grant = Grant {
            dataset,
            shard: lease.shard,
            epoch: Epoch(lease.epoch),
            expires_at: lease.expires_at,
            ttl_ms: u64::try_from(d.book.config().ttl.as_millis()).unwrap_or(u64::MAX),
            rows: match d.retry.get(&lease.shard.0) {
                Some(r) => r.rows,
                None => d.seeded.shard_rows.get(idx).copied().unwrap_or(0),
            },
            archive_name: match d.retry.get(&lease.shard.0) {
                Some(r) => r.archive_name.clone(),
                None => d.seeded.archive_names.get(idx).cloned().unwrap_or_default(),
            },
            speculative: lease.speculative,
            settings,
        };
        tracing::info!(dataset = %dataset, shard = %lease.shard, peer, epoch = lease.epoch, speculative = lease.speculative, per_host, "lease granted");
        // No lease is reported granted unless it (and its epoch) was committed.
        if let Err(e) = self.persist_checked(dataset, &[lease.shard]).await {
            return storage_refusal(&e);
        }
        self.lease_gossip(
            dataset,
            lease.shard,
            peer,
            lease.epoch,
            LeaseState::Leased,
            now,
        );
        ControlResponse::Granted(grant)
    }

    async fn rows(
        &mut self,
        peer: &str,
        dataset: DatasetId,
        shard: ShardId,
        epoch: u64,
        now: UnixMillis,
    ) -> ControlResponse {
        let path = match self.live_lease(peer, dataset, shard, epoch, now) {
            Err(refused) => return refused,
            // A retry round's rows are the ones it retries.
            Ok(d) => match d.retry.get(&shard.0) {
                Some(r) => r.rows_file.clone(),
                None => shard_path(&dataset_dir(&self.cfg.data_dir, dataset), shard),
            },
        };
        let read = tokio::task::spawn_blocking(move || rowfile::read_rows(&path))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        match read {
            Ok(rows) => ControlResponse::Rows(rows),
            Err(e) => ControlResponse::rejected(
                RejectReason::StorageFailed,
                format!("seeder cannot read the rows of {shard}: {e}"),
            ),
        }
    }

    /// The dataset, if `epoch` is a live lease of `peer` on `shard`; else the refusal.
    pub(super) fn live_lease(
        &self,
        peer: &str,
        dataset: DatasetId,
        shard: ShardId,
        epoch: u64,
        now: UnixMillis,
    ) -> Result<&super::Dataset, ControlResponse> {
        let d = self
            .datasets
            .get(&dataset)
            .ok_or_else(|| unknown(dataset))?;
        d.book.check(shard, epoch, peer, now).map_err(rejected)?;
        Ok(d)
    }
}

fn storage_refusal(e: &crate::store::StoreError) -> ControlResponse {
    ControlResponse::rejected(
        RejectReason::StorageFailed,
        format!("seeder storage failed: {e}"),
    )
}

fn no_work() -> ControlResponse {
    ControlResponse::NoWork {
        retry_after_ms: NO_WORK_RETRY_MS,
        finished: false,
    }
}

pub(super) fn unknown(dataset: DatasetId) -> ControlResponse {
    ControlResponse::rejected(
        RejectReason::UnknownDataset,
        format!("unknown dataset {dataset}"),
    )
}

pub(super) fn rejected(e: LeaseError) -> ControlResponse {
    ControlResponse::Rejected(lease_refusal(&e))
}

/// A lease-book refusal on the wire: every [`LeaseError`] means the lease is not the sender's
/// (any more), so the worker stops working on it.
pub(super) fn lease_refusal(e: &LeaseError) -> Refusal {
    Refusal::new(RejectReason::Fenced, e.to_string())
}
