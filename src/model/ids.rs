//! Identifier newtypes shared by the swarm: datasets and shards. Peer identities are libp2p's
//! `PeerId`, converted at the `net` boundary.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A dataset: the first 16 bytes of sha256(content + sharding parameters), so reseeding the
/// same file with the same parameters yields the same id and resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DatasetId(pub [u8; 16]);

impl fmt::Display for DatasetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl DatasetId {
    /// Full 32-character hex form (the display form is the 12-character prefix).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A shard of a dataset, numbered from 0.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct ShardId(pub u32);

impl ShardId {
    /// The number as every file name spells it, zero-padded to five digits (`00042`): the
    /// one place that formats it (see [`crate::layout`]).
    pub fn padded(self) -> String {
        format!("{:05}", self.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}", self.padded())
    }
}
