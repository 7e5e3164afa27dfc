//! The swarm's messages: gossip announcements, control requests between a worker and a seeder,
//! and the header of an archive transfer. Encoded with postcard inside a versioned envelope;
//! the framing (length prefix, size limits, timeouts) is applied by `net`.
//!
//! Gossip carries only adverts (who exists, what datasets have work, who holds which lease);
//! every decision (grant, renew, complete) goes over a direct control stream to the seeder.

use serde::{Deserialize, Serialize};

use crate::input::UrlRow;
use crate::model::ids::{DatasetId, ShardId};
use crate::model::time::UnixMillis;
use crate::protocol::settings::DatasetSettings;

/// Control streams: one request, one response. Version 2: refusals carry a typed
/// [`RejectReason`]. Version 3: grants carry the dataset's [`DatasetSettings`], renewals the
/// worker's slow-down count.
pub const CONTROL_PROTOCOL: &str = "/ldawt/control/3";
/// Archive transfer streams (worker → seeder push, resumable). Version 2: typed refusals.
pub const TRANSFER_PROTOCOL: &str = "/ldawt/archive/2";
/// The gossipsub topic every node subscribes to.
pub const GOSSIP_TOPIC: &str = "ldawt/announce/1";
/// Largest encoded control request.
pub const MAX_CONTROL_REQUEST_BYTES: usize = 1 << 20;
/// Largest encoded control response (a shard's rows travel in one).
pub const MAX_CONTROL_RESPONSE_BYTES: usize = 256 << 20;
/// Largest encoded gossip message (gossipsub's own default cap is 64 KiB).
pub const MAX_GOSSIP_BYTES: usize = 60 << 10;
/// Largest encoded transfer header.
pub const MAX_TRANSFER_HEADER_BYTES: usize = 16 << 10;

pub use crate::model::node_stats::NodeStats;

/// A gossip announcement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Gossip {
    /// "I exist": periodic, carries a nonce so identical repeats are not deduplicated away.
    Heartbeat {
        /// The sender's stats.
        stats: NodeStats,
        /// Random per message.
        nonce: u64,
        /// Sender's clock.
        sent_at: UnixMillis,
    },
    /// A seeder's dataset and its progress.
    Dataset {
        /// Id of the announced dataset: what a worker names in its `Bid`.
        dataset: DatasetId,
        /// Human name (seed file name).
        name: String,
        /// Shards in total.
        shards_total: u32,
        /// Shards verified and stored.
        shards_done: u32,
        /// Shards waiting for a worker (free, or eligible for a speculative copy).
        shards_open: u32,
        /// Shards that exhausted their retries.
        shards_failed: u32,
        /// Rows in total.
        rows_total: u64,
        /// Sender's clock.
        sent_at: UnixMillis,
    },
    /// A lease changed hands or state (informational: the seeder's redb is the authority).
    Lease {
        dataset: DatasetId,
        shard: ShardId,
        /// Holder's peer id (base58), empty when released.
        holder: String,
        /// Fencing epoch.
        epoch: u64,
        /// Expiry.
        expires_at: UnixMillis,
        /// `leased`, `done`, `free`, `failed`.
        state: String,
    },
}

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
        epoch: u64,
    },
    /// Keep a lease alive.
    Renew {
        /// From the [`Grant`].
        dataset: DatasetId,
        /// From the [`Grant`].
        shard: ShardId,
        /// The grant's epoch.
        epoch: u64,
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
        epoch: u64,
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
        epoch: u64,
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
    pub epoch: u64,
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

/// Which file of a shard a transfer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// The shard's archive of downloaded images.
    Archive,
    /// The per-row results parquet.
    Results,
}

/// First frame of a transfer stream, sent by the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferHeader {
    /// From the [`Grant`].
    pub dataset: DatasetId,
    /// From the [`Grant`].
    pub shard: ShardId,
    /// The grant's epoch.
    pub epoch: u64,
    /// Which file.
    pub kind: FileKind,
    /// Total size in bytes.
    pub size: u64,
    /// sha256 of the whole file.
    pub sha256: [u8; 32],
}

/// Versioned envelope around every encoded message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Envelope<T> {
    /// Version 1.
    V1(T),
}

/// Encoding/decoding failures.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The message is larger than its protocol allows.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The protocol's maximum in bytes.
        limit: usize,
    },
    /// Not a valid message.
    #[error("malformed message: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Encodes `msg` in a V1 envelope, refusing results over `limit` bytes.
pub fn encode<T: Serialize + Clone>(msg: &T, limit: usize) -> Result<Vec<u8>, CodecError> {
    let bytes = postcard::to_stdvec(&Envelope::V1(msg.clone()))?;
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    Ok(bytes)
}

/// Decodes a V1 envelope, refusing inputs over `limit` bytes.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let Envelope::V1(msg) = postcard::from_bytes(bytes)?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let d = DatasetId([7; 16]);
        let reqs = vec![
            ControlRequest::Bid {
                dataset: d,
                stats: NodeStats {
                    cores: 2,
                    works: true,
                    ..Default::default()
                },
            },
            ControlRequest::Rows {
                dataset: d,
                shard: ShardId(3),
                epoch: 9,
            },
            ControlRequest::Complete {
                dataset: d,
                shard: ShardId(3),
                epoch: 9,
                ok: 1,
                failed: 2,
                bytes: 3,
            },
        ];
        for r in reqs {
            let b = encode(&r, MAX_CONTROL_REQUEST_BYTES).unwrap();
            assert_eq!(
                decode::<ControlRequest>(&b, MAX_CONTROL_REQUEST_BYTES).unwrap(),
                r
            );
        }
        let resp = ControlResponse::Rows(vec![UrlRow {
            index: 5,
            url: Some("http://h/a.jpg".into()),
            class: None,
            extra: Vec::new(),
        }]);
        let b = encode(&resp, MAX_CONTROL_RESPONSE_BYTES).unwrap();
        assert_eq!(
            decode::<ControlResponse>(&b, MAX_CONTROL_RESPONSE_BYTES).unwrap(),
            resp
        );
        let g = Gossip::Heartbeat {
            stats: NodeStats::default(),
            nonce: 1,
            sent_at: UnixMillis(2),
        };
        let b = encode(&g, MAX_GOSSIP_BYTES).unwrap();
        assert_eq!(decode::<Gossip>(&b, MAX_GOSSIP_BYTES).unwrap(), g);
        let h = TransferHeader {
            dataset: d,
            shard: ShardId(1),
            epoch: 2,
            kind: FileKind::Archive,
            size: 10,
            sha256: [1; 32],
        };
        let b = encode(&h, MAX_TRANSFER_HEADER_BYTES).unwrap();
        assert_eq!(
            decode::<TransferHeader>(&b, MAX_TRANSFER_HEADER_BYTES).unwrap(),
            h
        );
    }

    #[test]
    fn refusals_round_trip_and_are_bounded() {
        let r = ControlResponse::rejected(RejectReason::Fenced, "é".repeat(1_000));
        let b = encode(&r, MAX_CONTROL_RESPONSE_BYTES).unwrap();
        let back = decode::<ControlResponse>(&b, MAX_CONTROL_RESPONSE_BYTES).unwrap();
        assert_eq!(back, r);
        let ControlResponse::Rejected(refusal) = back else {
            panic!("not a refusal")
        };
        assert!(refusal.detail.len() <= MAX_REFUSAL_DETAIL);
        assert!(!refusal.reason.is_retryable());
        assert!(RejectReason::Busy.is_retryable());
        assert!(RejectReason::StorageFailed.is_retryable());
    }

    #[test]
    fn oversize_and_garbage_are_refused() {
        let big = ControlResponse::rejected(RejectReason::Busy, "x".repeat(100));
        assert!(matches!(encode(&big, 10), Err(CodecError::TooLarge { .. })));
        assert!(decode::<ControlRequest>(&[0xff, 0xff, 0xff], 100).is_err());
        assert!(decode::<ControlRequest>(&[0u8; 200], 100).is_err());
    }
}
