//! Control streams between a worker and a seeder: one request, one response — bids and grants,
//! a shard's rows, renewals, completions, give-backs, and typed refusals.

use serde::{Deserialize, Serialize};

use crate::input::UrlRow;
use crate::model::ids::{DatasetId, Epoch, ShardId};
use crate::model::node_stats::NodeStats;
use crate::model::time::UnixMillis;
use crate::protocol::settings::DatasetSettings;

/// Control streams: one request, one response. Version 2: refusals carry a typed
/// [`RejectReason`]. Version 3: grants carry the dataset's [`DatasetSettings`], renewals the
/// worker's slow-down count.
pub const CONTROL_PROTOCOL: &str = "/ldawt/control/3";
/// Largest encoded control request.
pub const MAX_CONTROL_REQUEST_BYTES: usize = 1 << 20;
/// Largest encoded control response (a shard's rows travel in one).
pub const MAX_CONTROL_RESPONSE_BYTES: usize = 256 << 20;

/// A worker's request to a seeder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Ask for a shard of `dataset`.
    Bid {
        /// A dataset the asked seeder announced in `Gossip::Dataset`.
        dataset: DatasetId,
        /// The bidder's resources.
        stats: NodeStats,
    },
    /// Fetch the rows of a granted shard.
    Rows {
        /// From the [`Grant`].
        dataset: DatasetId,
        /// From the [`Grant`].
        shard: ShardId,
        /// The grant's epoch.
        epoch: Epoch,
    },
    /// Keep a lease alive.
    Renew {
        /// From the [`Grant`].
        dataset: DatasetId,
        /// From the [`Grant`].
        shard: ShardId,
        /// The grant's epoch.
        epoch: Epoch,
        /// Rows finished so far.
        rows_done: u64,
        /// 429/503 answers received for this lease since the previous renewal: the seeder
        /// lowers the swarm's per-host budget for everyone.
        throttled: u32,
    },
    /// Both files of a shard were transferred and verified: mark it done.
    Complete {
        /// From the [`Grant`].
        dataset: DatasetId,
        /// From the [`Grant`].
        shard: ShardId,
        /// The grant's epoch.
        epoch: Epoch,
        /// Rows stored.
        ok: u64,
        /// Rows failed.
        failed: u64,
        /// Bytes stored.
        bytes: u64,
    },
    /// Give a lease back (shutdown, local failure).
    Abandon {
        /// From the [`Grant`].
        dataset: DatasetId,
        /// From the [`Grant`].
        shard: ShardId,
        /// The grant's epoch.
        epoch: Epoch,
        /// Why.
        reason: String,
        /// True when the shard failed on this worker (counts against its retries); false when
        /// the worker is merely going away (shutdown, preemption).
        failed: bool,
    },
}

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// The dataset named in the `Bid` this answers.
    pub dataset: DatasetId,
    /// Chosen by the seeder's lease book; numbered from 0.
    pub shard: ShardId,
    /// Fencing epoch: present it on every later request.
    pub epoch: Epoch,
    /// When the lease lapses unless renewed.
    pub expires_at: UnixMillis,
    /// Lease time-to-live; renew well before it runs out.
    pub ttl_ms: u64,
    /// Rows in the shard.
    pub rows: u64,
    /// Archive file name to produce (`<stem>.tar.gz`).
    pub archive_name: String,
    /// True for a speculative copy of a slow in-flight shard.
    pub speculative: bool,
    /// The dataset's engine settings (the per-host cap is this lease's share of the swarm's
    /// budget); `None`: the worker's own. Boxed: the other messages stay small.
    pub settings: Option<Box<DatasetSettings>>,
}

/// A seeder's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlResponse {
    /// A lease.
    Granted(Grant),
    /// Nothing to hand out now; ask again later.
    NoWork {
        /// Suggested wait.
        retry_after_ms: u64,
        /// True when the dataset is finished (stop asking).
        finished: bool,
    },
    /// A shard's rows.
    Rows(Vec<UrlRow>),
    /// The lease was extended.
    Renewed {
        /// New expiry.
        expires_at: UnixMillis,
    },
    /// Request accepted.
    Ack,
    /// Refused; what the worker does next depends on [`Refusal::reason`].
    Rejected(Refusal),
}

/// Why a node refused a request or a transfer. The worker's reaction depends on it: a
/// [`RejectReason::Fenced`] lease is over, a [`RejectReason::Busy`] request is retried later and
/// never costs finished work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    /// The lease is not (or no longer) the sender's: stale epoch, expired, another copy won,
    /// shard already done. Stop working on that shard.
    Fenced,
    /// The dataset is not seeded by the receiving node.
    UnknownDataset,
    /// Temporarily unable (transfer slots taken, overloaded, slow to decide): retry the same
    /// request later with backoff.
    Busy,
    /// What the sender delivered failed verification; the shard goes to another peer.
    Invalid,
    /// The sender is not allowed this now (over its lease cap, excluded for the dataset,
    /// a malformed or oversized request).
    NotAllowed,
    /// The receiver's own storage failed; it grants and accepts nothing until restarted.
    /// Keep finished work and retry later.
    StorageFailed,
}

impl RejectReason {
    /// True when the same request may succeed later (keep finished work, back off, retry).
    pub fn is_retryable(self) -> bool {
        matches!(self, RejectReason::Busy | RejectReason::StorageFailed)
    }

    /// A short stable name (logs, status documents).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Fenced => "fenced",
            RejectReason::UnknownDataset => "unknown_dataset",
            RejectReason::Busy => "busy",
            RejectReason::Invalid => "invalid",
            RejectReason::NotAllowed => "not_allowed",
            RejectReason::StorageFailed => "storage_failed",
        }
    }
}

/// A refusal: a typed reason plus a human-readable detail (bounded, never a path on the
/// receiver's disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// What kind of refusal (drives the sender's reaction).
    pub reason: RejectReason,
    /// For people and logs.
    pub detail: String,
}

/// Longest refusal detail kept (longer ones are cut on a char boundary).
pub const MAX_REFUSAL_DETAIL: usize = 512;

impl Refusal {
    /// A refusal of kind `reason` explained by `detail` (cut to [`MAX_REFUSAL_DETAIL`]).
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        if detail.len() > MAX_REFUSAL_DETAIL {
            let mut cut = MAX_REFUSAL_DETAIL;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        Self { reason, detail }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

impl ControlResponse {
    /// `Rejected` with a typed reason.
    pub fn rejected(reason: RejectReason, detail: impl Into<String>) -> Self {
        ControlResponse::Rejected(Refusal::new(reason, detail))
    }
}
