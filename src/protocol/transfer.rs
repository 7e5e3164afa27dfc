//! Archive transfer streams (worker → seeder push, resumable): the header frame that precedes a
//! shard's archive or results file. The body's framing and resumption live in `net::transfer`.

use serde::{Deserialize, Serialize};

use crate::model::ids::{DatasetId, Epoch, ShardId};

/// Archive transfer streams (worker → seeder push, resumable). Version 2: typed refusals.
pub const TRANSFER_PROTOCOL: &str = "/ldawt/archive/2";
/// Largest encoded transfer header.
pub const MAX_TRANSFER_HEADER_BYTES: usize = 16 << 10;

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
    /// From the [`Grant`](super::control::Grant).
    pub dataset: DatasetId,
    /// From the [`Grant`](super::control::Grant).
    pub shard: ShardId,
    /// The grant's epoch.
    pub epoch: Epoch,
    /// Which file.
    pub kind: FileKind,
    /// Total size in bytes.
    pub size: u64,
    /// sha256 of the whole file.
    pub sha256: [u8; 32],
}
