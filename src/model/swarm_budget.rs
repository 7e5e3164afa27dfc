//! One politeness budget per host for the whole swarm (`--swarm-per-host N`), pure.
//!
//! Design: every lease of the dataset is treated as one that may touch any host (the seeder
//! does not group shards by host), so the per-host cap written into a grant is that lease's
//! reserved share of the budget, and the caps of all live leases never sum above it: whatever
//! host the rows point at, the requests in flight to it across the swarm stay within N.
//!
//! - The budget is split evenly among the *active* peers (those that bid or renewed within
//!   [`ACTIVE_WINDOW`]): a peer's leases together hold at most `limit / active peers` (at
//!   least 1); a new lease gets what is left of its peer's share and of the budget, or no
//!   lease at all while the budget is taken (the bid is answered "no work, retry").
//! - A lease keeps its cap for its life (a lowered cap could not take effect before the
//!   worker's next renewal, and the budget is only sure to be free once the lease ends), so
//!   shares re-balance as leases end and new ones are granted.
//! - Slow-downs: a renewal reporting 429/503 answers halves the swarm's limit (once per
//!   [`COOLDOWN`]); it grows back by one per [`RECOVER_EVERY`] without slow-downs, up to N.
//!   Later grants get the lower shares, so the whole swarm slows down, not one node.
//! - Leases the budget does not know (restored after a seeder restart) count as holding the
//!   whole limit until they end.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::model::time::UnixMillis;

/// A peer that neither bid nor renewed for this long no longer takes a share.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(30);
/// Reports closer together than this halve the limit once.
pub const COOLDOWN: Duration = Duration::from_secs(5);
/// The limit grows by one after this long without a slow-down.
pub const RECOVER_EVERY: Duration = Duration::from_secs(10);

/// One live lease's reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reservation {
    peer: String,
    cap: u32,
}

/// The swarm's per-host budget of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmBudget {
    cap: u32,
    limit: u32,
    last_decrease: Option<UnixMillis>,
    last_change: UnixMillis,
    leases: BTreeMap<(u32, u64), Reservation>,
    active: HashMap<String, UnixMillis>,
}

impl SwarmBudget {
    /// A budget of `cap` requests in flight per host, summed over the swarm.
    pub fn new(cap: u32) -> Self {
        let cap = cap.max(1);
        Self {
            cap,
            limit: cap,
            last_decrease: None,
            last_change: UnixMillis(0),
            leases: BTreeMap::new(),
            active: HashMap::new(),
        }
    }

    /// The budget now (lowered by slow-downs, never above the configured one).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The per-host caps reserved by live leases, summed.
    pub fn reserved(&self) -> u32 {
        self.leases.values().map(|r| r.cap).sum()
    }

    /// `peer` bid or renewed: it takes a share.
    pub fn note_peer(&mut self, peer: &str, now: UnixMillis) {
        self.active.insert(peer.to_string(), now);
    }

    fn active_peers(&self, now: UnixMillis) -> u32 {
        let n = self
            .active
            .values()
            .filter(|t| now.since(**t) < ACTIVE_WINDOW)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }

    /// What one peer may hold in total now.
    pub fn share(&self, now: UnixMillis) -> u32 {
        (self.limit / self.active_peers(now)).max(1)
    }

    /// The per-host cap a new lease of `peer` would get, or `None` while the budget (or the
    /// peer's share of it) is taken. Call [`Self::reserve`] once the lease exists.
    pub fn offer(&mut self, peer: &str, now: UnixMillis) -> Option<u32> {
        self.recover(now);
        self.note_peer(peer, now);
        let held: u32 = self
            .leases
            .values()
            .filter(|r| r.peer == peer)
            .map(|r| r.cap)
            .sum();
        let left = self.limit.saturating_sub(self.reserved());
        let cap = self.share(now).saturating_sub(held).min(left);
        (cap > 0).then_some(cap)
    }

    /// Records the lease `(shard, epoch)` of `peer` holding `cap`.
    pub fn reserve(&mut self, shard: u32, epoch: u64, peer: &str, cap: u32) {
        self.leases.insert(
            (shard, epoch),
            Reservation {
                peer: peer.to_string(),
                cap,
            },
        );
    }

    /// Brings the reservations in line with the live leases `(shard, epoch, peer)`: ended
    /// leases free their share; unknown ones (restored after a restart) hold the whole limit.
    pub fn sync<'a>(&mut self, live: impl IntoIterator<Item = (u32, u64, &'a str)>) {
        let mut keep = BTreeMap::new();
        for (shard, epoch, peer) in live {
            let r = self
                .leases
                .remove(&(shard, epoch))
                .unwrap_or_else(|| Reservation {
                    peer: peer.to_string(),
                    cap: self.limit,
                });
            keep.insert((shard, epoch), r);
        }
        self.leases = keep;
    }

    /// A worker reported `count` slow-downs (429/503): halve the limit, once per cool-down.
    pub fn on_throttled(&mut self, count: u32, now: UnixMillis) {
        if count == 0 {
            return;
        }
        let recent = self.last_decrease.is_some_and(|t| now.since(t) < COOLDOWN);
        if !recent {
            self.limit = (self.limit / 2).max(1);
            self.last_decrease = Some(now);
            self.last_change = now;
        }
    }

    /// Grows the limit back by one per [`RECOVER_EVERY`] since the last change.
    fn recover(&mut self, now: UnixMillis) {
        if self.limit >= self.cap {
            self.last_change = now;
            return;
        }
        let quiet = now.since(self.last_change);
        let steps = (quiet.as_millis() / RECOVER_EVERY.as_millis()).min(u128::from(self.cap));
        if steps > 0 {
            let steps = u32::try_from(steps).unwrap_or(self.cap);
            self.limit = self.limit.saturating_add(steps).min(self.cap);
            self.last_change = now;
        }
    }

    /// Forgets peers inactive for long (bounds the table).
    pub fn forget_idle(&mut self, now: UnixMillis) {
        self.active
            .retain(|_, t| now.since(*t) < ACTIVE_WINDOW.saturating_mul(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: UnixMillis = UnixMillis(1_000_000);

    #[test]
    fn the_budget_is_split_among_active_peers() {
        let mut b = SwarmBudget::new(4);
        b.note_peer("a", T);
        b.note_peer("b", T);
        assert_eq!(b.offer("a", T), Some(2));
        b.reserve(0, 1, "a", 2);
        assert_eq!(b.offer("a", T), None, "a holds its share");
        assert_eq!(b.offer("b", T), Some(2));
        b.reserve(1, 2, "b", 2);
        assert_eq!(b.reserved(), 4);
        assert_eq!(b.offer("c", T), None, "the budget is taken");
        // a's lease ends: its share is free again.
        b.sync([(1, 2, "b")]);
        assert_eq!(b.reserved(), 2);
        assert!(b.offer("a", T).is_some());
    }

    #[test]
    fn a_lone_peer_gets_the_whole_budget_and_others_wait_for_it() {
        let mut b = SwarmBudget::new(4);
        assert_eq!(b.offer("a", T), Some(4));
        b.reserve(0, 1, "a", 4);
        assert_eq!(b.offer("b", T), None);
    }

    #[test]
    fn slow_downs_halve_the_swarm_limit_once_per_cooldown_then_it_recovers() {
        let mut b = SwarmBudget::new(8);
        b.on_throttled(3, T);
        b.on_throttled(5, T.plus(Duration::from_secs(1)));
        assert_eq!(b.limit(), 4);
        b.on_throttled(1, T.plus(COOLDOWN));
        assert_eq!(b.limit(), 2);
        b.on_throttled(0, T.plus(COOLDOWN * 3));
        assert_eq!(b.limit(), 2, "no slow-down reported");
        assert_eq!(b.offer("a", T.plus(COOLDOWN)), Some(2));
        let later = T.plus(COOLDOWN).plus(RECOVER_EVERY * 3);
        b.note_peer("a", later);
        assert_eq!(b.offer("b", later), Some(2), "5 split by two peers");
        assert_eq!(b.limit(), 5, "three steps of recovery");
        b.offer("x", later.plus(RECOVER_EVERY * 100));
        assert_eq!(b.limit(), 8, "never above the configured budget");
    }

    #[test]
    fn restored_leases_hold_the_whole_limit_until_they_end() {
        let mut b = SwarmBudget::new(4);
        b.sync([(3, 9, "old")]);
        assert_eq!(b.offer("a", T), None);
        b.sync(std::iter::empty());
        assert_eq!(b.offer("a", T), Some(4));
    }

    proptest! {
        /// Whatever the order of bids, slow-downs and lease ends, the caps of the live leases
        /// never sum above the configured budget.
        #[test]
        fn reservations_never_exceed_the_budget(
            cap in 1u32..20,
            ops in proptest::collection::vec((0u8..4, 0usize..5), 0..300),
        ) {
            let mut b = SwarmBudget::new(cap);
            let mut now = T;
            let mut live: Vec<(u32, u64, String)> = Vec::new();
            let mut next = 0u32;
            for (op, peer) in ops {
                now = now.plus(Duration::from_millis(700));
                let peer = format!("p{peer}");
                match op {
                    0 | 1 => if let Some(c) = b.offer(&peer, now) {
                        prop_assert!(c >= 1);
                        next += 1;
                        b.reserve(next, u64::from(next), &peer, c);
                        live.push((next, u64::from(next), peer));
                    },
                    2 => {
                        if !live.is_empty() { live.remove(0); }
                        b.sync(live.iter().map(|(s, e, p)| (*s, *e, p.as_str())));
                    }
                    _ => b.on_throttled(1, now),
                }
                prop_assert!(b.reserved() <= cap);
                prop_assert!(b.limit() >= 1 && b.limit() <= cap);
            }
        }
    }
}
