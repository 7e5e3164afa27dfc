//! The lease book: a sans-IO state machine (quinn / kad style) that owns which peer works on
//! which shard of one dataset. Inputs are `handle_*(…, now)`, the next deadline is
//! [`LeaseBook::poll_timeout`], and [`LeaseBook::handle_timeout`] expires what lapsed.
//!
//! Rules:
//! - every grant gets a fresh, strictly growing epoch (fencing token); a request that names an
//!   epoch which is not a live holder of that shard is rejected;
//! - a shard has at most one non-speculative live holder, plus at most one speculative copy
//!   handed out at the tail (when nothing is free) to a different peer, once the holder has had
//!   it for `copy_after`;
//! - the first completion by a live holder wins; the shard becomes `Done` (terminal) and the
//!   other holders are cancelled;
//! - a lost lease (expired, abandoned as failed, or revoked for lack of progress) without a
//!   surviving holder counts as one failed attempt, **once per distinct peer**: one peer cannot
//!   fail a shard by losing it again and again. After more than `max_retries` failed attempts
//!   the shard is `Failed`; a rerun with `--retry-failed` or a raised `max_retries` reopens it;
//! - a holder whose renewals report no progress (`rows_done` not growing, shard not fully
//!   downloaded) for [`STALL_TTLS`] TTLs is revoked;
//! - such losses are also charged to the peer ([`PeerLedger`]: backoff, then exclusion from
//!   the dataset), and a free shard is not handed back to a peer that failed it while another
//!   admissible peer has bid within the last TTL;
//! - epochs never repeat: the book resumes above every epoch seen and above the persisted
//!   high-water mark, and a restart gives every holder one TTL of grace (an expiry that fell in
//!   the seeder's own downtime is not the holder's fault).
//!
//! Scale: every decision goes through indexes kept in step with the entries ([`index`]: free
//! shards in order, shards with live holders, counts), so it costs O(log shards + live
//! leases), never a scan of every shard.

mod entry;
mod index;
mod peers;

use index::ShardIndex;

use entry::{Charge, drop_holder, expected_finish};

use std::time::Duration;

use crate::model::ids::{Epoch, NodeId, ShardId};
use crate::model::time::UnixMillis;

pub use entry::{
    Holder, Lease, LeaseConfig, LeaseError, LostLease, PhaseCounts, ShardEntry, ShardPhase,
};
pub use peers::{Admission, INITIAL_PEER_CAP, MAX_PEER_FAULTS, PeerLedger, PeerRecord, peer_cap};

/// TTLs without progress after which a lease is revoked.
pub const STALL_TTLS: u32 = 3;

/// Free shards a filtered bid ([`LeaseBook::handle_bid_where`]) asks at most, so a bid costs
/// the same whatever the shard count.
pub const BID_SCAN: usize = 64;

/// The least time a holder gets to renew after a seeder restart, whatever the TTL: a worker
/// reconnects through its redial backoff (up to 30 s, `net::NetTuning::redial_max`), and a
/// holder that finished its shard during the outage must not lose it to an expiry the moment
/// the seeder is back.
pub const MIN_RESTART_GRACE: Duration = Duration::from_secs(30);

/// The lease state of every shard of one dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseBook {
    cfg: LeaseConfig,
    shards: Vec<ShardEntry>,
    next_epoch: Epoch,
    peers: PeerLedger,
    index: ShardIndex,
}

impl LeaseBook {
    /// A book of free shards with the given row counts.
    pub fn new(cfg: LeaseConfig, shard_rows: &[u64]) -> Self {
        let shards: Vec<ShardEntry> = shard_rows.iter().map(|r| ShardEntry::new(*r)).collect();
        Self {
            cfg,
            index: ShardIndex::build(&shards),
            shards,
            next_epoch: Epoch(1),
            peers: PeerLedger::new(),
        }
    }

    /// Rebuilds a book from persisted entries at `now` (a restart): in-flight leases keep their
    /// holders, each with at least one TTL (and [`MIN_RESTART_GRACE`]) from `now` to renew and no
    /// stall counted for the downtime; done stays done; failed shards whose distinct failures are
    /// within this run's `max_retries` are free again. Epochs continue above every epoch seen and
    /// above `next_epoch` (the persisted high-water mark; 0 if unknown).
    pub fn restore(
        cfg: LeaseConfig,
        mut shards: Vec<ShardEntry>,
        next_epoch: Epoch,
        now: UnixMillis,
    ) -> Self {
        let max_epoch = shards
            .iter()
            .flat_map(|s| s.holders.iter().map(|h| h.epoch).chain(s.done_epoch))
            .max()
            .unwrap_or_default();
        let grace = now.plus(cfg.ttl.max(MIN_RESTART_GRACE));
        for s in &mut shards {
            for h in &mut s.holders {
                h.expires_at = h.expires_at.max(grace);
                h.progress_at = h.progress_at.max(now);
                // No speculative copy of a restored holder's shard before `copy_after` from
                // now: it may hold finished work it could not deliver while we were down.
                h.granted_at = h.granted_at.max(now);
            }
            if s.phase == ShardPhase::Failed && s.failures <= cfg.max_retries {
                s.phase = ShardPhase::Free;
            }
        }
        Self {
            cfg,
            index: ShardIndex::build(&shards),
            shards,
            next_epoch: next_epoch.max(max_epoch.next()),
            peers: PeerLedger::new(),
        }
    }

    /// Reopens every failed shard with a clean failure count (`--retry-failed`); returns them.
    pub fn reopen_failed(&mut self) -> Vec<ShardId> {
        let mut reopened = Vec::new();
        for (i, s) in self.shards.iter_mut().enumerate() {
            if s.phase == ShardPhase::Failed {
                s.phase = ShardPhase::Free;
                s.failures = 0;
                s.failed_by.clear();
                reopened.push(shard_id(i));
            }
        }
        self.index = ShardIndex::build(&self.shards);
        reopened
    }

    /// Reopens a done shard for a retry round (`--retry-failed` on a finished dataset): free
    /// again, with a clean failure count. False when the shard is not done.
    pub fn reopen_done(&mut self, shard: ShardId) -> bool {
        let Some(s) = self.shards.get_mut(shard.0 as usize) else {
            return false;
        };
        if s.phase != ShardPhase::Done {
            return false;
        }
        s.phase = ShardPhase::Free;
        s.failures = 0;
        s.failed_by.clear();
        self.index = ShardIndex::build(&self.shards);
        true
    }

    /// What the book knows about each peer.
    pub fn peers(&self) -> &PeerLedger {
        &self.peers
    }

    /// Records that `peer` bid now, granted or not (a peer at its cap still counts as one that
    /// can take a shard another peer failed).
    pub fn note_bid(&mut self, peer: NodeId, now: UnixMillis) {
        self.peers.note_bid(peer, now);
    }

    /// Whether `peer` may get a lease now: faults back it off, then exclude it from the
    /// dataset, but only while another admissible peer has bid within the last TTL (a lone
    /// worker is backed off, never shut out, so a run cannot stall on exclusions).
    pub fn admission(&self, peer: NodeId, now: UnixMillis) -> Admission {
        match self.peers.admission(peer, now) {
            Admission::Excluded { .. }
                if !self.peers.someone_else_active(peer, &[], self.cfg.ttl, now) =>
            {
                let until = self.peers.get(peer).map_or(now, |r| r.backoff_until);
                if until > now {
                    Admission::BackOff { until }
                } else {
                    Admission::Admitted
                }
            }
            other => other,
        }
    }

    /// Shards completed by `peer`, as recorded here.
    pub fn completed_by(&self, peer: NodeId) -> u32 {
        self.index.done_by.get(&peer).copied().unwrap_or(0)
    }

    /// The most leases `peer` may hold at once by what the seeder measured: a small start,
    /// plus one per completion recorded.
    pub fn peer_cap(&self, peer: NodeId) -> u32 {
        peer_cap(self.completed_by(peer))
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
    pub fn next_epoch(&self) -> Epoch {
        self.next_epoch
    }

    /// Shards per phase.
    pub fn counts(&self) -> PhaseCounts {
        self.index.counts
    }

    /// True when every shard is done or failed.
    pub fn is_finished(&self) -> bool {
        let c = self.index.counts;
        c.free == 0 && c.leased == 0
    }

    /// Live leases held by `peer` across the book.
    pub fn held_by(&self, peer: NodeId) -> u32 {
        let n = self
            .live_entries()
            .flat_map(|(_, s)| s.holders.iter())
            .filter(|h| h.peer == peer)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Shards open to a bid now: free ones, plus in-flight ones eligible for a tail copy.
    pub fn open_count(&self, now: UnixMillis) -> u32 {
        let free = self.index.free.len();
        let n = if free > 0 || !self.cfg.speculative {
            free
        } else {
            self.live_entries()
                .filter(|(_, s)| self.copyable(s, None, now))
                .count()
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Hands `peer` a lease: the lowest free shard; at the tail (nothing free) a speculative
    /// copy of the in-flight shard expected to finish last, if `allow_speculative` and the peer
    /// does not already hold it. `None` when there is nothing to give.
    pub fn handle_bid(
        &mut self,
        peer: NodeId,
        allow_speculative: bool,
        now: UnixMillis,
    ) -> Option<Lease> {
        self.handle_bid_where(peer, allow_speculative, now, |_| true)
    }

    /// [`Self::handle_bid`] among the shards `accept` takes (the swarm's per-host budget
    /// skips shards whose hosts are taken); at most [`BID_SCAN`] free shards are asked.
    pub fn handle_bid_where(
        &mut self,
        peer: NodeId,
        allow_speculative: bool,
        now: UnixMillis,
        mut accept: impl FnMut(ShardId) -> bool,
    ) -> Option<Lease> {
        let expires_at = now.plus(self.cfg.ttl);
        self.peers.note_bid(peer, now);
        if let Some(idx) = self.free_shard_for(peer, now, &mut accept) {
            let epoch = self.take_epoch();
            let holder = Holder::granted(peer, epoch, now, expires_at, false);
            self.mutate(idx, |entry| {
                entry.phase = ShardPhase::Leased;
                entry.holders.push(holder);
            });
            return Some(Lease {
                shard: shard_id(idx),
                epoch,
                expires_at,
                speculative: false,
            });
        }
        if !(self.cfg.speculative && allow_speculative) || self.index.counts.free > 0 {
            return None;
        }
        let idx = self
            .live_entries()
            .filter(|(i, s)| self.copyable(s, Some(peer), now) && accept(shard_id(*i)))
            .max_by_key(|(i, s)| (expected_finish(s, now), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)?;
        let epoch = self.take_epoch();
        let holder = Holder::granted(peer, epoch, now, expires_at, true);
        self.mutate(idx, |entry| entry.holders.push(holder));
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
        epoch: Epoch,
        peer: NodeId,
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

    /// Bytes of this live lease's archive are arriving: the holder is alive and delivering, so
    /// the lease is extended by the TTL from `now` like a renewal (without counting progress).
    /// A delivery that crowds out the holder's renewals on a slow or busy link (they share one
    /// connection) must not expire the lease it is delivering.
    pub fn handle_delivering(
        &mut self,
        shard: ShardId,
        epoch: Epoch,
        peer: NodeId,
        now: UnixMillis,
    ) -> Result<UnixMillis, LeaseError> {
        self.check(shard, epoch, peer, now)?;
        let ttl = self.cfg.ttl;
        holder_renewed(self.holder_mut(shard, epoch)?, now.plus(ttl))
    }

    /// Extends a live lease by the TTL from `now`; returns the new expiry.
    pub fn handle_renew(
        &mut self,
        shard: ShardId,
        epoch: Epoch,
        peer: NodeId,
        rows_done: u64,
        now: UnixMillis,
    ) -> Result<UnixMillis, LeaseError> {
        self.check(shard, epoch, peer, now)?;
        let ttl = self.cfg.ttl;
        let stall_after = ttl.saturating_mul(STALL_TTLS);
        let rows = self.entry(shard)?.rows;
        let holder = self.holder_mut(shard, epoch)?;
        if rows_done > holder.rows_done {
            holder.rows_done = rows_done;
            holder.progress_at = now;
        } else if holder.rows_done < rows && now.since(holder.progress_at) >= stall_after {
            let secs = now.since(holder.progress_at).as_secs();
            let reason = format!("revoked: no progress reported for {secs} s");
            let charge = Charge::PeerAndShard(self.cfg.max_retries);
            self.lose(shard, epoch, &reason, charge, now)?;
            return Err(LeaseError::Stalled { shard, epoch, secs });
        }
        holder_renewed(self.holder_mut(shard, epoch)?, now.plus(ttl))
    }

    /// Marks the shard done by this live lease. Returns the other holders, now cancelled.
    pub fn handle_complete(
        &mut self,
        shard: ShardId,
        epoch: Epoch,
        peer: NodeId,
        now: UnixMillis,
    ) -> Result<Vec<Holder>, LeaseError> {
        self.check(shard, epoch, peer, now)?;
        self.entry(shard)?;
        let others = self.mutate(shard.0 as usize, |entry| {
            let others: Vec<Holder> = entry
                .holders
                .drain(..)
                .filter(|h| h.epoch != epoch)
                .collect();
            entry.phase = ShardPhase::Done;
            entry.done_epoch = Some(epoch);
            entry.done_by = Some(peer);
            others
        });
        self.peers.on_completion(peer);
        Ok(others)
    }

    /// Gives a live lease back before its expiry. When `failed` (the shard failed on that
    /// worker: disk full, engine error — a local cause) the peer is charged a fault (backoff,
    /// then exclusion) and the shard is not granted to it again while another peer can take
    /// it, but the shard's retry budget is untouched; a worker that is only going away
    /// (`failed == false`) costs nobody anything.
    pub fn handle_abandon(
        &mut self,
        shard: ShardId,
        epoch: Epoch,
        peer: NodeId,
        reason: &str,
        failed: bool,
        now: UnixMillis,
    ) -> Result<LostLease, LeaseError> {
        self.check(shard, epoch, peer, now)?;
        // A failed give-back has a local cause (disk full, engine error on the worker's side):
        // the peer pays for it, the shard does not.
        let charge = if failed { Charge::Peer } else { Charge::Nobody };
        self.lose(shard, epoch, reason, charge, now)
    }

    /// Expires every lease whose expiry is at or before `now`.
    pub fn handle_timeout(&mut self, now: UnixMillis) -> Vec<LostLease> {
        let lapsed: Vec<(ShardId, Epoch)> = self
            .live_entries()
            .flat_map(|(idx, entry)| {
                entry
                    .holders
                    .iter()
                    .filter(|h| h.expires_at <= now)
                    .map(move |h| (shard_id(idx), h.epoch))
            })
            .collect();
        lapsed
            .into_iter()
            .filter_map(|(shard, epoch)| {
                let charge = Charge::PeerAndShard(self.cfg.max_retries);
                self.lose(shard, epoch, "lease expired", charge, now).ok()
            })
            .collect()
    }

    /// Drops a holder, charging the peer (unless [`Charge::Nobody`]) and, for
    /// [`Charge::PeerAndShard`], the shard (once per distinct peer).
    fn lose(
        &mut self,
        shard: ShardId,
        epoch: Epoch,
        reason: &str,
        charge: Charge,
        now: UnixMillis,
    ) -> Result<LostLease, LeaseError> {
        self.entry(shard)?;
        let lost = self
            .mutate(shard.0 as usize, |entry| {
                drop_holder(entry, shard, epoch, reason, charge)
            })
            .ok_or(LeaseError::StaleEpoch { shard, epoch })?;
        if charge != Charge::Nobody {
            self.peers.on_fault(lost.peer, reason, self.cfg.ttl, now);
        }
        Ok(lost)
    }

    /// The lowest free shard for `peer`: one it has not failed, else one it failed when no
    /// other admissible peer has bid within the last TTL.
    fn free_shard_for(
        &self,
        peer: NodeId,
        now: UnixMillis,
        accept: &mut impl FnMut(ShardId) -> bool,
    ) -> Option<usize> {
        let free = || {
            self.index
                .free
                .iter()
                .map(|i| *i as usize)
                .filter_map(|i| self.shards.get(i).map(|s| (i, s)))
        };
        let found = free()
            .filter(|(_, s)| !s.failed_by.contains(&peer))
            .take(BID_SCAN)
            .find(|(i, _)| accept(shard_id(*i)));
        found
            .or_else(|| {
                free()
                    .filter(|(_, s)| {
                        !self
                            .peers
                            .someone_else_active(peer, &s.failed_by, self.cfg.ttl, now)
                    })
                    .take(BID_SCAN)
                    .find(|(i, _)| accept(shard_id(*i)))
            })
            .map(|(i, _)| i)
    }

    /// The earliest lease expiry, when something must be expired.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.live_entries()
            .flat_map(|(_, s)| s.holders.iter().map(|h| h.expires_at))
            .min()
    }

    /// Whether the indexes agree with the entries (checked by the reference-model tests).
    #[cfg(test)]
    fn index_in_step(&self) -> bool {
        self.index == ShardIndex::build(&self.shards)
    }

    /// The shards with live holders, in shard order.
    fn live_entries(&self) -> impl Iterator<Item = (usize, &ShardEntry)> {
        self.index
            .live
            .iter()
            .map(|i| *i as usize)
            .filter_map(|i| self.shards.get(i).map(|s| (i, s)))
    }

    /// Applies `f` to shard `idx`'s entry and brings the indexes in step.
    fn mutate<R>(&mut self, idx: usize, f: impl FnOnce(&mut ShardEntry) -> R) -> R {
        let entry = &mut self.shards[idx];
        let phase = entry.phase;
        let done_by = entry.done_by;
        let r = f(entry);
        self.index.update(idx, (phase, done_by), entry);
        r
    }

    /// Whether `s` may get a tail copy (for `peer`, who must not hold it already).
    fn copyable(&self, s: &ShardEntry, peer: Option<NodeId>, now: UnixMillis) -> bool {
        s.phase == ShardPhase::Leased
            && s.holders.len() == 1
            && s.holders
                .iter()
                .all(|h| Some(h.peer) != peer && now.since(h.granted_at) >= self.cfg.copy_after)
    }

    fn take_epoch(&mut self) -> Epoch {
        let e = self.next_epoch;
        self.next_epoch = e.next();
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

    fn holder_mut(&mut self, shard: ShardId, epoch: Epoch) -> Result<&mut Holder, LeaseError> {
        self.entry_mut(shard)?
            .holders
            .iter_mut()
            .find(|h| h.epoch == epoch)
            .ok_or(LeaseError::StaleEpoch { shard, epoch })
    }
}

fn holder_renewed(holder: &mut Holder, until: UnixMillis) -> Result<UnixMillis, LeaseError> {
    holder.expires_at = holder.expires_at.max(until);
    Ok(holder.expires_at)
}

fn shard_id(idx: usize) -> ShardId {
    ShardId(u32::try_from(idx).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod delivering_tests;
#[cfg(test)]
mod tests;
