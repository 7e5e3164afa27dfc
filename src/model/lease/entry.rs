//! The lease book's values: its policy, each shard's persisted entry and live holders, what a
//! grant returns, and why a request is refused; plus the two rules that act on one entry
//! (dropping a holder, extrapolating when a holder finishes).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::ids::{Epoch, NodeId, ShardId};
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
    /// A shard is copied only once its holder has had it this long (no copies of shards that
    /// just started: they would double the load on the origin servers for nothing).
    pub copy_after: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            max_retries: 3,
            speculative: true,
            copy_after: Duration::from_secs(30),
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
    /// The holder (stored as its base58 text).
    pub peer: NodeId,
    /// The grant's fencing epoch.
    pub epoch: Epoch,
    /// When it was granted.
    pub granted_at: UnixMillis,
    /// When it lapses unless renewed.
    pub expires_at: UnixMillis,
    /// Rows finished, as last reported by a renewal.
    pub rows_done: u64,
    /// When `rows_done` last grew (the grant counts as progress; so does a seeder restart).
    pub progress_at: UnixMillis,
    /// True for a tail copy of a shard someone else holds.
    pub speculative: bool,
}

impl Holder {
    /// A lease granted at `now` (no rows done yet; the grant counts as progress).
    pub(super) fn granted(
        peer: NodeId,
        epoch: Epoch,
        now: UnixMillis,
        expires_at: UnixMillis,
        speculative: bool,
    ) -> Self {
        Holder {
            peer,
            epoch,
            granted_at: now,
            expires_at,
            rows_done: 0,
            progress_at: now,
            speculative,
        }
    }
}

/// Everything the book knows about one shard; persisted as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Rows in the shard.
    pub rows: u64,
    /// Where it stands; only the [`LeaseBook`] handlers move it.
    pub phase: ShardPhase,
    /// Live leases (empty unless `Leased`).
    pub holders: Vec<Holder>,
    /// Failed attempts: leases lost without completion, counted once per distinct peer.
    pub failures: u32,
    /// The distinct peers that lost it (expired, gave it back failed, or stalled), in order.
    pub failed_by: Vec<NodeId>,
    /// The epoch of the winning completion, once `Done`.
    pub done_epoch: Option<Epoch>,
    /// Who completed it, once `Done`.
    pub done_by: Option<NodeId>,
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
            failed_by: Vec::new(),
            done_epoch: None,
            done_by: None,
            last_error: None,
        }
    }

    /// The live holder with `epoch`, if any.
    pub fn holder(&self, epoch: Epoch) -> Option<&Holder> {
        self.holders.iter().find(|h| h.epoch == epoch)
    }
}

/// A lease handed out by [`LeaseBook::handle_bid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Free, or a leased one when this is a speculative copy.
    pub shard: ShardId,
    /// Its fencing epoch.
    pub epoch: Epoch,
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
        /// The shard named in the request.
        shard: ShardId,
        /// The epoch presented.
        epoch: Epoch,
    },
    /// The holder reported no progress for too long: the lease is revoked.
    #[error("{shard} epoch {epoch} revoked: no progress reported for {secs} s")]
    Stalled {
        /// The shard named in the request.
        shard: ShardId,
        /// The epoch presented.
        epoch: Epoch,
        /// Seconds without progress.
        secs: u64,
    },
    /// The lease belongs to another peer.
    #[error("{shard} epoch {epoch} is held by another peer")]
    NotHolder {
        /// The shard named in the request.
        shard: ShardId,
        /// The epoch presented.
        epoch: Epoch,
    },
}

/// A lease that ended without completion, reported by [`LeaseBook::handle_timeout`] and
/// [`LeaseBook::handle_abandon`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostLease {
    pub shard: ShardId,
    /// The holder that lost it.
    pub peer: NodeId,
    /// Its fencing epoch: any later request presenting it is refused.
    pub epoch: Epoch,
    /// The shard's phase afterwards (`Free`, `Leased` if a copy survives, or `Failed`).
    pub phase_after: ShardPhase,
    /// Why it was lost.
    pub reason: String,
    /// Whether the loss is the holder's fault (expired, failed, stalled) rather than a worker
    /// going away cleanly; the seeder charges such losses to the peer.
    pub peer_fault: bool,
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

/// When the shard's only holder is expected to finish, extrapolating its reported progress;
/// a holder with no progress yet is assumed to need twice what it has spent.
pub(super) fn expected_finish(entry: &ShardEntry, now: UnixMillis) -> u64 {
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

/// Who pays for a lost lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Charge {
    /// Nobody: the holder went away cleanly (released, shutdown).
    Nobody,
    /// The peer only (a give-back with a local cause: disk full, engine error): the shard
    /// remembers who failed it (not granted to that peer again while another can take it)
    /// but no attempt is counted against it.
    Peer,
    /// The peer and the shard (expiry, revocation): one attempt per distinct peer, against
    /// this failure budget.
    PeerAndShard(u32),
}

/// Removes the holder with `epoch`, charging the loss as `charge` says; `None` (and the entry
/// untouched) when no holder has that epoch.
pub(super) fn drop_holder(
    entry: &mut ShardEntry,
    shard: ShardId,
    epoch: Epoch,
    reason: &str,
    charge: Charge,
) -> Option<LostLease> {
    let at = entry.holders.iter().position(|h| h.epoch == epoch)?;
    let gone = entry.holders.remove(at);
    let peer = gone.peer;
    if entry.holders.is_empty() {
        entry.phase = ShardPhase::Free;
        match charge {
            Charge::Nobody => {}
            Charge::Peer => {
                entry.last_error = Some(reason.to_string());
                if !entry.failed_by.contains(&peer) {
                    entry.failed_by.push(peer);
                }
            }
            Charge::PeerAndShard(max_retries) => {
                entry.last_error = Some(reason.to_string());
                if !entry.failed_by.contains(&peer) {
                    entry.failed_by.push(peer);
                    entry.failures += 1;
                }
                if entry.failures > max_retries {
                    entry.phase = ShardPhase::Failed;
                }
            }
        }
    } else if !gone.speculative {
        // The primary is gone but a copy survives: it becomes the primary.
        for h in &mut entry.holders {
            h.speculative = false;
        }
    }
    Some(LostLease {
        shard,
        peer,
        epoch,
        phase_after: entry.phase,
        reason: reason.to_string(),
        peer_fault: charge != Charge::Nobody,
    })
}
