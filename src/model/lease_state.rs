//! A lease's state as gossip, `/status` and the dataset report name it (`leased`, `done`,
//! `free`, `failed`): the typed value, its names, and its mapping from the lease book's
//! [`ShardPhase`]. Below `protocol` and `results`, which both carry it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::lease::ShardPhase;

/// A lease's state as gossip announces it. On the wire: its name (`leased`, `done`, `free`,
/// `failed`), as the untyped string of earlier builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Granted to the holder.
    Leased,
    /// Completed and stored.
    Done,
    /// Released or expired: open to a bid.
    Free,
    /// Out of retries.
    Failed,
}

impl LeaseState {
    /// Every state.
    pub const ALL: [LeaseState; 4] = [
        LeaseState::Leased,
        LeaseState::Done,
        LeaseState::Free,
        LeaseState::Failed,
    ];

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Leased => "leased",
            LeaseState::Done => "done",
            LeaseState::Free => "free",
            LeaseState::Failed => "failed",
        }
    }
}

impl From<ShardPhase> for LeaseState {
    /// A shard's phase as the state of its lease (the same four names).
    fn from(phase: ShardPhase) -> Self {
        match phase {
            ShardPhase::Free => LeaseState::Free,
            ShardPhase::Leased => LeaseState::Leased,
            ShardPhase::Done => LeaseState::Done,
            ShardPhase::Failed => LeaseState::Failed,
        }
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for LeaseState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LeaseState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        LeaseState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                serde::de::Error::unknown_variant(&text, &["leased", "done", "free", "failed"])
            })
    }
}
