//! Indexes over a lease book's shards, kept in step with every transition so that a decision
//! costs O(log shards + live leases), not a scan of every shard: the free shards in order, the
//! shards with live holders, the per-phase counts and each peer's recorded completions.
//!
//! Memory: a few bytes per free or leased shard plus one small entry per completing peer.

use std::collections::{BTreeSet, HashMap};

use crate::model::ids::NodeId;

use super::entry::{PhaseCounts, ShardEntry, ShardPhase};

/// The book's derived state; rebuilt from the entries on creation and restore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ShardIndex {
    /// Shards in `Free`, ascending.
    pub free: BTreeSet<u32>,
    /// Shards with at least one live holder.
    pub live: BTreeSet<u32>,
    /// Shards per phase.
    pub counts: PhaseCounts,
    /// Shards done per completing peer.
    pub done_by: HashMap<NodeId, u32>,
}

impl ShardIndex {
    /// The index of `shards`.
    pub fn build(shards: &[ShardEntry]) -> Self {
        let mut index = Self::default();
        for (i, e) in shards.iter().enumerate() {
            index.add(idx32(i), e);
        }
        index
    }

    /// Replaces what the index knew of shard `i` (`before`: the phase and completing peer it
    /// had) by what `after` says.
    pub fn update(&mut self, i: usize, before: (ShardPhase, Option<NodeId>), after: &ShardEntry) {
        let i32_ = idx32(i);
        self.free.remove(&i32_);
        self.live.remove(&i32_);
        let slot = phase_slot(&mut self.counts, before.0);
        debug_assert!(*slot > 0, "phase counts out of step");
        *slot = slot.saturating_sub(1);
        if before.0 == ShardPhase::Done
            && let Some(peer) = before.1
            && let Some(n) = self.done_by.get_mut(&peer)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.done_by.remove(&peer);
            }
        }
        self.add(i32_, after);
    }

    fn add(&mut self, i: u32, e: &ShardEntry) {
        if e.phase == ShardPhase::Free {
            self.free.insert(i);
        }
        if !e.holders.is_empty() {
            self.live.insert(i);
        }
        *phase_slot(&mut self.counts, e.phase) += 1;
        if e.phase == ShardPhase::Done
            && let Some(peer) = e.done_by
        {
            *self.done_by.entry(peer).or_default() += 1;
        }
    }
}

fn phase_slot(c: &mut PhaseCounts, phase: ShardPhase) -> &mut u32 {
    match phase {
        ShardPhase::Free => &mut c.free,
        ShardPhase::Leased => &mut c.leased,
        ShardPhase::Done => &mut c.done,
        ShardPhase::Failed => &mut c.failed,
    }
}

fn idx32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}
