//! Identifier newtypes shared by the swarm: datasets, shards, lease epochs and nodes. A node is
//! its libp2p `PeerId` ([`NodeId`]), written as its base58 text on the wire and in files.

use std::fmt;
use std::str::FromStr;

use libp2p::PeerId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// A lease's fencing epoch: every grant of a dataset gets a higher one, and a request carrying
/// an older one is refused. On the wire: the number itself.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch after this one.
    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A node of the swarm: its libp2p peer id. On the wire and in files: its base58 text (what
/// `PeerId`'s `Display` writes), so the encoding is that of a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub PeerId);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for NodeId {
    type Err = libp2p::identity::ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(NodeId)
    }
}

/// A node id derived from `n` (the ed25519 key whose secret is `n`'s bytes): the same number
/// always gives the same id, different numbers different ids. For simulations and tests, which
/// need real, reproducible peer ids (tests once used names like `"peer-a"`).
pub fn seeded_node_id(n: u64) -> NodeId {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&n.to_le_bytes());
    secret[31] = 1; // never the all-zero secret
    match libp2p::identity::Keypair::ed25519_from_bytes(secret) {
        Ok(key) => NodeId(key.public().to_peer_id()),
        // Not reached: any 32 bytes are an ed25519 secret.
        Err(_) => NodeId(PeerId::random()),
    }
}

impl From<PeerId> for NodeId {
    fn from(p: PeerId) -> Self {
        NodeId(p)
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("not a peer id ({text:?}): {e}")))
    }
}

/// A [`NodeId`] that may be absent, written as its text or as the empty string.
pub mod node_id_or_empty {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::NodeId;

    /// Writes the id's text, or `""` for none.
    pub fn serialize<S: Serializer>(id: &Option<NodeId>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.collect_str(&id.0),
            None => s.serialize_str(""),
        }
    }

    /// Reads an id's text, `""` being none.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NodeId>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("not a peer id ({text:?}): {e}")))
    }
}
