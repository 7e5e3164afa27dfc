//! The lease book: a sans-IO state machine (quinn / kad style) that owns which peer works on
//! which shard of one dataset. Inputs are `handle_*(…, now)`, the next deadline is
//! [`LeaseBook::poll_timeout`], and [`LeaseBook::handle_timeout`] expires what lapsed.
//!
//! Rules:
//! - every grant gets a fresh, strictly growing epoch (fencing token); a request that names an
//!   epoch which is not a live holder of that shard is rejected;
//! - a shard has at most one non-speculative live holder, plus at most one speculative copy
//!   handed out at the tail (when nothing is free) to a different peer;
//! - the first completion by a live holder wins; the shard becomes `Done` (terminal) and the
//!   other holders are cancelled;
//! - a lost lease (expired or abandoned) without a surviving holder counts as one failed
//!   attempt; after more than `max_retries` failed attempts the shard is `Failed` (terminal).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::ids::ShardId;
use crate::model::time::UnixMillis;

/// Policy of a lease book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseConfig {
    /// How long a grant or renewal lasts.
    pub ttl: Duration,
    /// Failed attempts allowed before a shard is given up (0 = one attempt only).
    pub max_retries: u32,
    /// Whether idle peers may take speculative copies of in-flight shards at the tail.
    pub speculative: bool,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            max_retries: 3,
            speculative: true,
        }
    }
}

/// Where a shard stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardPhase {
    /// Waiting for a worker.
    Free,
    /// Held by one or more live leases.
    Leased,
    /// Verified and stored (terminal).
    Done,
    /// Exhausted its retries (terminal).
    Failed,
}

/// One live lease on a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holder (peer id, base58).
    pub peer: String,
    /// The grant's fencing epoch.
    pub epoch: u64,
    /// When it was granted.
    pub granted_at: UnixMillis,
    /// When it lapses unless renewed.
    pub expires_at: UnixMillis,
    /// Rows finished, as last reported by a renewal.
    pub rows_done: u64,
    /// True for a tail copy of a shard someone else holds.
    pub speculative: bool,
}

/// Everything the book knows about one shard; persisted as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Rows in the shard.
    pub rows: u64,
    /// Its phase.
    pub phase: ShardPhase,
    /// Live leases (empty unless `Leased`).
    pub holders: Vec<Holder>,
    /// Leases lost without completion.
    pub failures: u32,
    /// The epoch of the winning completion, once `Done`.
    pub done_epoch: Option<u64>,
    /// Who completed it, once `Done`.
    pub done_by: Option<String>,
    /// Why it failed, once `Failed` (the last loss).
    pub last_error: Option<String>,
}

impl ShardEntry {
    /// A free shard of `rows` rows.
    pub fn new(rows: u64) -> Self {
        Self {
            rows,
            phase: ShardPhase::Free,
            holders: Vec::new(),
            failures: 0,
            done_epoch: None,
            done_by: None,
            last_error: None,
        }
    }

    /// The live holder with `epoch`, if any.
    pub fn holder(&self, epoch: u64) -> Option<&Holder> {
        self.holders.iter().find(|h| h.epoch == epoch)
    }
}

/// A lease handed out by [`LeaseBook::handle_bid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The shard.
    pub shard: ShardId,
    /// Its fencing epoch.
    pub epoch: u64,
    /// Its expiry.
    pub expires_at: UnixMillis,
    /// Whether it is a speculative copy.
    pub speculative: bool,
}

/// Why a request on a lease was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// No such shard in this dataset.
    #[error("unknown {0}")]
    UnknownShard(ShardId),
    /// The shard is already done.
    #[error("{0} is already done")]
    AlreadyDone(ShardId),
    /// The shard exhausted its retries.
    #[error("{0} has failed for good")]
    Failed(ShardId),
    /// The epoch is not a live lease (expired, superseded, or never granted).
    #[error("stale epoch {epoch} for {shard}")]
    StaleEpoch {
        /// The shard.
        shard: ShardId,
        /// The epoch presented.
        epoch: u64,
    },
    /// The lease belongs to another peer.
    #[error("{shard} epoch {epoch} is held by another peer")]
    NotHolder {
        /// The shard.
        shard: ShardId,
        /// The epoch presented.
        epoch: u64,
    },
}

/// A lease that ended without completion, reported by [`LeaseBook::handle_timeout`] and
/// [`LeaseBook::handle_abandon`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostLease {
    /// The shard.
    pub shard: ShardId,
    /// The holder that lost it.
    pub peer: String,
    /// Its epoch.
    pub epoch: u64,
    /// The shard's phase afterwards (`Free`, `Leased` if a copy survives, or `Failed`).
    pub phase_after: ShardPhase,
}

/// Counts of shards per phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseCounts {
    /// Free shards.
    pub free: u32,
    /// Leased shards.
    pub leased: u32,
    /// Done shards.
    pub done: u32,
    /// Failed shards.
    pub failed: u32,
}

/// The lease state of every shard of one dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseBook {
    cfg: LeaseConfig,
    shards: Vec<ShardEntry>,
    next_epoch: u64,
}

impl LeaseBook {
    /// A book of free shards with the given row counts.
    pub fn new(cfg: LeaseConfig, shard_rows: &[u64]) -> Self {
        Self {
            cfg,
            shards: shard_rows.iter().map(|r| ShardEntry::new(*r)).collect(),
            next_epoch: 1,
        }
    }

    /// Rebuilds a book from persisted entries: in-flight leases keep their holders and expiries,
    /// done stays done. Epochs continue above every epoch seen.
    pub fn restore(cfg: LeaseConfig, shards: Vec<ShardEntry>) -> Self {
        let max_epoch = shards
            .iter()
            .flat_map(|s| s.holders.iter().map(|h| h.epoch).chain(s.done_epoch))
            .max()
            .unwrap_or(0);
        Self {
            cfg,
            shards,
            next_epoch: max_epoch + 1,
        }
    }

    /// The policy.
    pub fn config(&self) -> LeaseConfig {
        self.cfg
    }

    /// Every shard's entry, indexed by shard number.
    pub fn shards(&self) -> &[ShardEntry] {
        &self.shards
    }

    /// One shard's entry.
    pub fn shard(&self, shard: ShardId) -> Option<&ShardEntry> {
        self.shards.get(shard.0 as usize)
    }

    /// The next epoch that will be handed out (persisted implicitly through the entries).
    pub fn next_epoch(&self) -> u64 {
        self.next_epoch
    }

    /// Shards per phase.
    pub fn counts(&self) -> PhaseCounts {
        let mut c = PhaseCounts::default();
        for s in &self.shards {
            match s.phase {
                ShardPhase::Free => c.free += 1,
                ShardPhase::Leased => c.leased += 1,
                ShardPhase::Done => c.done += 1,
                ShardPhase::Failed => c.failed += 1,
            }
        }
        c
    }

    /// True when every shard is done or failed.
    pub fn is_finished(&self) -> bool {
        self.shards
            .iter()
            .all(|s| matches!(s.phase, ShardPhase::Done | ShardPhase::Failed))
    }

    /// Live leases held by `peer` across the book.
    pub fn held_by(&self, peer: &str) -> u32 {
        let n = self
            .shards
            .iter()
            .flat_map(|s| s.holders.iter())
            .filter(|h| h.peer == peer)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Shards open to a bid now: free ones, plus in-flight ones eligible for a tail copy.
    pub fn open_count(&self) -> u32 {
        let free = self
            .shards
            .iter()
            .filter(|s| s.phase == ShardPhase::Free)
            .count();
        let n = if free > 0 || !self.cfg.speculative {
            free
        } else {
            self.shards
                .iter()
                .filter(|s| s.phase == ShardPhase::Leased && s.holders.len() == 1)
                .count()
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Hands `peer` a lease: the lowest free shard; at the tail (nothing free) a speculative
    /// copy of the in-flight shard expected to finish last, if `allow_speculative` and the peer
    /// does not already hold it. `None` when there is nothing to give.
    pub fn handle_bid(
        &mut self,
        peer: &str,
        allow_speculative: bool,
        now: UnixMillis,
    ) -> Option<Lease> {
        let expires_at = now.plus(self.cfg.ttl);
        if let Some(idx) = self.shards.iter().position(|s| s.phase == ShardPhase::Free) {
            let epoch = self.take_epoch();
            let entry = &mut self.shards[idx];
            entry.phase = ShardPhase::Leased;
            entry.holders.push(Holder {
                peer: peer.to_string(),
                epoch,
                granted_at: now,
                expires_at,
                rows_done: 0,
                speculative: false,
            });
            return Some(Lease {
                shard: shard_id(idx),
                epoch,
                expires_at,
                speculative: false,
            });
        }
        if !(self.cfg.speculative && allow_speculative) {
            return None;
        }
        let idx = self
            .shards
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.phase == ShardPhase::Leased
                    && s.holders.len() == 1
                    && s.holders.iter().all(|h| h.peer != peer)
            })
            .max_by_key(|(i, s)| (expected_finish(s, now), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)?;
        let epoch = self.take_epoch();
        self.shards[idx].holders.push(Holder {
            peer: peer.to_string(),
            epoch,
            granted_at: now,
            expires_at,
            rows_done: 0,
            speculative: true,
        });
        Some(Lease {
            shard: shard_id(idx),
            epoch,
            expires_at,
            speculative: true,
        })
    }

    /// Checks that `epoch` is a live, unexpired lease of `peer` on `shard` (used before
    /// accepting files).
    pub fn check(
        &self,
        shard: ShardId,
        epoch: u64,
        peer: &str,
        now: UnixMillis,
    ) -> Result<&Holder, LeaseError> {
        let entry = self.entry(shard)?;
        let holder = entry
            .holder(epoch)
            .filter(|h| h.expires_at > now)
            .ok_or(LeaseError::StaleEpoch { shard, epoch })?;
        if holder.peer != peer {
            return Err(LeaseError::NotHolder { shard, epoch });
        }
        Ok(holder)
    }

    /// Extends a live lease by the TTL from `now`; returns the new expiry.
    pub fn handle_renew(
        &mut self,
        shard: ShardId,
        epoch: u64,
        peer: &str,
        rows_done: u64,
        now: UnixMillis,
    ) -> Result<UnixMillis, LeaseError> {
        self.check(shard, epoch, peer, now)?;
        let ttl = self.cfg.ttl;
        let holder = self.holder_mut(shard, epoch)?;
        holder.expires_at = holder.expires_at.max(now.plus(ttl));
        holder.rows_done = holder.rows_done.max(rows_done);
        Ok(holder.expires_at)
    }

    /// Marks the shard done by this live lease. Returns the other holders, now cancelled.
    pub fn handle_complete(
        &mut self,
        shard: ShardId,
        epoch: u64,
        peer: &str,
        now: UnixMillis,
    ) -> Result<Vec<Holder>, LeaseError> {
        self.check(shard, epoch, peer, now)?;
        let entry = self.entry_mut(shard)?;
        let others: Vec<Holder> = entry
            .holders
            .drain(..)
            .filter(|h| h.epoch != epoch)
            .collect();
        entry.phase = ShardPhase::Done;
        entry.done_epoch = Some(epoch);
        entry.done_by = Some(peer.to_string());
        Ok(others)
    }

    /// Gives a live lease back before its expiry; counts as a failed attempt unless another
    /// holder keeps the shard going.
    pub fn handle_abandon(
        &mut self,
        shard: ShardId,
        epoch: u64,
        peer: &str,
        reason: &str,
        now: UnixMillis,
    ) -> Result<LostLease, LeaseError> {
        self.check(shard, epoch, peer, now)?;
        let max_retries = self.cfg.max_retries;
        let entry = self.entry_mut(shard)?;
        Ok(drop_holder(entry, shard, epoch, reason, max_retries))
    }

    /// Expires every lease whose expiry is at or before `now`.
    pub fn handle_timeout(&mut self, now: UnixMillis) -> Vec<LostLease> {
        let max_retries = self.cfg.max_retries;
        let mut lost = Vec::new();
        for (idx, entry) in self.shards.iter_mut().enumerate() {
            let lapsed: Vec<u64> = entry
                .holders
                .iter()
                .filter(|h| h.expires_at <= now)
                .map(|h| h.epoch)
                .collect();
            for epoch in lapsed {
                lost.push(drop_holder(
                    entry,
                    shard_id(idx),
                    epoch,
                    "lease expired",
                    max_retries,
                ));
            }
        }
        lost
    }

    /// The earliest lease expiry, when something must be expired.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.shards
            .iter()
            .flat_map(|s| s.holders.iter().map(|h| h.expires_at))
            .min()
    }

    fn take_epoch(&mut self) -> u64 {
        let e = self.next_epoch;
        self.next_epoch += 1;
        e
    }

    fn entry(&self, shard: ShardId) -> Result<&ShardEntry, LeaseError> {
        let entry = self
            .shards
            .get(shard.0 as usize)
            .ok_or(LeaseError::UnknownShard(shard))?;
        match entry.phase {
            ShardPhase::Done => Err(LeaseError::AlreadyDone(shard)),
            ShardPhase::Failed => Err(LeaseError::Failed(shard)),
            _ => Ok(entry),
        }
    }

    fn entry_mut(&mut self, shard: ShardId) -> Result<&mut ShardEntry, LeaseError> {
        self.entry(shard)?;
        self.shards
            .get_mut(shard.0 as usize)
            .ok_or(LeaseError::UnknownShard(shard))
    }

    fn holder_mut(&mut self, shard: ShardId, epoch: u64) -> Result<&mut Holder, LeaseError> {
        self.entry_mut(shard)?
            .holders
            .iter_mut()
            .find(|h| h.epoch == epoch)
            .ok_or(LeaseError::StaleEpoch { shard, epoch })
    }
}

fn shard_id(idx: usize) -> ShardId {
    ShardId(u32::try_from(idx).unwrap_or(u32::MAX))
}

/// When the shard's only holder is expected to finish, extrapolating its reported progress;
/// a holder with no progress yet is assumed to need twice what it has spent.
fn expected_finish(entry: &ShardEntry, now: UnixMillis) -> u64 {
    entry
        .holders
        .iter()
        .map(|h| {
            let spent = now.0.saturating_sub(h.granted_at.0).max(1);
            let remaining = if h.rows_done == 0 {
                spent.saturating_mul(2)
            } else {
                let left = entry.rows.saturating_sub(h.rows_done);
                spent.saturating_mul(left) / h.rows_done
            };
            now.0.saturating_add(remaining)
        })
        .min()
        .unwrap_or(0)
}

fn drop_holder(
    entry: &mut ShardEntry,
    shard: ShardId,
    epoch: u64,
    reason: &str,
    max_retries: u32,
) -> LostLease {
    let mut peer = String::new();
    let mut was_speculative = true;
    entry.holders.retain(|h| {
        if h.epoch == epoch {
            peer = h.peer.clone();
            was_speculative = h.speculative;
            false
        } else {
            true
        }
    });
    if entry.holders.is_empty() {
        entry.failures += 1;
        entry.last_error = Some(reason.to_string());
        entry.phase = if entry.failures > max_retries {
            ShardPhase::Failed
        } else {
            ShardPhase::Free
        };
    } else if !was_speculative {
        // The primary is gone but a copy survives: it becomes the primary.
        for h in &mut entry.holders {
            h.speculative = false;
        }
    }
    LostLease {
        shard,
        peer,
        epoch,
        phase_after: entry.phase,
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
