//! One politeness budget per host for the whole swarm (`--swarm-per-host N`), pure.
//!
//! Design: the seeder knows which hosts each shard's rows point at ([`ShardHosts`], recorded
//! while seeding: the heaviest few, plus an `other` mark when there are more). A lease *may
//! touch* host `h` when its shard lists `h` or has `other` rows (an unlisted host can hide
//! there). The per-host cap written into a grant is that lease's reserved share, and for every
//! host the caps of the live leases that may touch it never sum above N: whatever the workers
//! do, the requests in flight to one host across the swarm stay within N.
//!
//! - Per host, the budget is split evenly among the peers *on* that host: those holding a
//!   lease that may touch it, those whose last bid (within [`ACTIVE_WINDOW`]) wanted a shard
//!   that may touch it, and the bidder. A new lease gets, for every host its shard may touch,
//!   at most what is left of the bidder's share and of the host's budget; the smallest is its
//!   cap. A shard with no room is skipped for another free one ([`BidView::cap_for`]); with
//!   none, the bid is answered "no work, retry". So a worker on host A's shards gets the whole
//!   budget of A while the other workers fetch from other hosts; a dataset whose shards all
//!   have `other` rows (millions of hosts) is budgeted as one host, as before.
//! - A lease keeps its cap for its life (a lowered cap could not take effect before the
//!   worker's next renewal, and the budget is only sure to be free once the lease ends), so
//!   shares re-balance as leases end and new ones are granted.
//! - Slow-downs: a renewal reporting 429/503 answers halves the swarm's limit (once per
//!   [`COOLDOWN`]); it grows back by one per [`RECOVER_EVERY`] without slow-downs, up to N.
//!   Later grants get the lower shares, so the whole swarm slows down, not one node.
//! - Leases the budget does not know (restored after a seeder restart) count as holding the
//!   whole limit until they end.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::ids::{Epoch, NodeId, ShardId};

use crate::model::time::UnixMillis;

/// A peer that neither bid nor renewed for this long no longer takes a share.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(30);
/// Reports closer together than this halve the limit once.
pub const COOLDOWN: Duration = Duration::from_secs(5);
/// The limit grows by one after this long without a slow-down.
pub const RECOVER_EVERY: Duration = Duration::from_secs(10);

/// Which hosts one shard's rows point at (recorded by [`crate::seed::hosts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHosts {
    /// The heaviest hosts (`host[:port]`, lower case), most rows first.
    pub hosts: Vec<String>,
    /// Rows of hosts not listed exist (or the shard's hosts are unknown).
    pub other: bool,
}

impl ShardHosts {
    /// A shard whose hosts are unknown: it may touch any host.
    pub fn unknown() -> Self {
        Self {
            hosts: Vec::new(),
            other: true,
        }
    }
}

/// A shard's hosts as interned ids.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Keys {
    hosts: Box<[u32]>,
    other: bool,
}

/// One live lease's reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reservation {
    peer: NodeId,
    cap: u32,
}

/// A peer's last sign of life and the shard its last bid wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    at: UnixMillis,
    wanted: Option<(ShardId, UnixMillis)>,
}

/// The swarm's per-host budget of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmBudget {
    cap: u32,
    limit: u32,
    last_decrease: Option<UnixMillis>,
    last_change: UnixMillis,
    /// Per shard (by number); a shard past the end may touch any host.
    shards: Vec<Keys>,
    leases: BTreeMap<(ShardId, Epoch), Reservation>,
    active: HashMap<NodeId, Seen>,
}

impl SwarmBudget {
    /// A budget of `cap` requests in flight per host, summed over the swarm, not knowing
    /// which hosts the shards point at (every lease may touch every host).
    pub fn new(cap: u32) -> Self {
        Self::with_hosts(cap, &[])
    }

    /// A budget of `cap` per host over shards whose hosts are `shards` (by shard number).
    pub fn with_hosts(cap: u32, shards: &[ShardHosts]) -> Self {
        let cap = cap.max(1);
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let shards = shards
            .iter()
            .map(|s| {
                let mut hosts: Vec<u32> = s
                    .hosts
                    .iter()
                    .map(|h| {
                        let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
                        *ids.entry(h.as_str()).or_insert(next)
                    })
                    .collect();
                hosts.sort_unstable();
                hosts.dedup();
                Keys {
                    hosts: hosts.into_boxed_slice(),
                    other: s.other,
                }
            })
            .collect();
        Self {
            cap,
            limit: cap,
            last_decrease: None,
            last_change: UnixMillis(0),
            shards,
            leases: BTreeMap::new(),
            active: HashMap::new(),
        }
    }

    /// The budget now (lowered by slow-downs, never above the configured one).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The per-host caps reserved by live leases, summed (over every host).
    pub fn reserved(&self) -> u32 {
        self.leases.values().map(|r| r.cap).sum()
    }

    fn keys(&self, shard: ShardId) -> Option<&Keys> {
        self.shards.get(shard.0 as usize)
    }

    /// True when a lease on `shard` may send requests to the host with id `host`.
    fn touches(&self, shard: ShardId, host: Option<u32>) -> bool {
        match self.keys(shard) {
            None => true,
            Some(k) => k.other || host.is_some_and(|h| k.hosts.binary_search(&h).is_ok()),
        }
    }

    /// The sum of the caps of the live leases that may touch `host` (`None`: a host no shard
    /// lists). Each host's sum stays within the configured budget.
    fn load_on(&self, host: Option<u32>) -> u32 {
        self.leases
            .iter()
            .filter(|((s, _), _)| self.touches(*s, host))
            .map(|(_, r)| r.cap)
            .sum()
    }

    /// The most any one host is loaded now (the figure the server side sees at worst).
    pub fn peak_host_load(&self) -> u32 {
        let listed = self.shards.iter().flat_map(|k| k.hosts.iter().copied());
        let distinct: BTreeSet<u32> = listed.collect();
        distinct
            .into_iter()
            .map(Some)
            .chain([None])
            .map(|h| self.load_on(h))
            .max()
            .unwrap_or(0)
    }

    /// `peer` bid or renewed: it is alive (what it wants is noted by [`Self::note_wanted`]).
    pub fn note_peer(&mut self, peer: NodeId, now: UnixMillis) {
        self.active
            .entry(peer)
            .and_modify(|s| s.at = now)
            .or_insert(Seen {
                at: now,
                wanted: None,
            });
    }

    /// `peer`'s bid wanted `shard` (granted or not): until [`ACTIVE_WINDOW`] passes, it takes
    /// a share of the hosts of that shard.
    pub fn note_wanted(&mut self, peer: NodeId, shard: ShardId, now: UnixMillis) {
        self.active.insert(
            peer,
            Seen {
                at: now,
                wanted: Some((shard, now)),
            },
        );
    }

    /// Starts answering one bid of `peer`: the view tells the cap of a lease on any shard.
    pub fn bid(&mut self, peer: NodeId, now: UnixMillis) -> BidView<'_> {
        self.recover(now);
        self.note_peer(peer, now);
        BidView::new(self, peer, now)
    }

    /// Records the lease `(shard, epoch)` of `peer` holding `cap`.
    pub fn reserve(&mut self, shard: ShardId, epoch: Epoch, peer: NodeId, cap: u32) {
        self.leases
            .insert((shard, epoch), Reservation { peer, cap });
    }

    /// Brings the reservations in line with the live leases `(shard, epoch, peer)`: ended
    /// leases free their share; unknown ones (restored after a restart) hold the whole limit.
    pub fn sync(&mut self, live: impl IntoIterator<Item = (ShardId, Epoch, NodeId)>) {
        let mut keep = BTreeMap::new();
        for (shard, epoch, peer) in live {
            let r = self.leases.remove(&(shard, epoch)).unwrap_or(Reservation {
                peer,
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
            .retain(|_, s| now.since(s.at) < ACTIVE_WINDOW.saturating_mul(10));
    }
}

/// Who is on one host, and how much of its budget is reserved.
#[derive(Debug, Default, Clone)]
struct HostLoad {
    load: u32,
    held: u32,
    peers: BTreeSet<NodeId>,
}

/// The budget as one bid sees it: the load and the peers of every host any live lease or
/// recent bid may touch, computed once, then asked shard by shard.
#[derive(Debug)]
pub struct BidView<'a> {
    budget: &'a SwarmBudget,
    peer: NodeId,
    /// Leases and wants whose shard may touch any host.
    tail: HostLoad,
    /// Per listed host, those whose shard lists it (without `other`).
    listed: HashMap<u32, HostLoad>,
}

impl<'a> BidView<'a> {
    fn new(budget: &'a SwarmBudget, peer: NodeId, now: UnixMillis) -> Self {
        let mut tail = HostLoad::default();
        let mut listed: HashMap<u32, HostLoad> = HashMap::new();
        let mut each = |shard: ShardId, who: NodeId, cap: u32| {
            let add = |l: &mut HostLoad| {
                l.load += cap;
                if who == peer {
                    l.held += cap;
                }
                l.peers.insert(who);
            };
            match budget.keys(shard) {
                Some(k) if !k.other => {
                    for h in k.hosts.iter() {
                        add(listed.entry(*h).or_default());
                    }
                }
                _ => add(&mut tail),
            }
        };
        for ((shard, _), r) in &budget.leases {
            each(*shard, r.peer, r.cap);
        }
        for (who, seen) in &budget.active {
            if let Some((shard, at)) = seen.wanted
                && now.since(at) < ACTIVE_WINDOW
                && *who != peer
            {
                each(shard, *who, 0);
            }
        }
        Self {
            budget,
            peer,
            tail,
            listed,
        }
    }

    /// What is left for the bidder on one host (`None`: a host no live lease lists).
    fn room(&self, host: Option<u32>) -> u32 {
        let limit = self.budget.limit;
        let empty = HostLoad::default();
        let own = host.and_then(|h| self.listed.get(&h)).unwrap_or(&empty);
        let load = own.load + self.tail.load;
        let held = own.held + self.tail.held;
        let mut peers: BTreeSet<NodeId> = own.peers.union(&self.tail.peers).copied().collect();
        peers.insert(self.peer);
        let n = u32::try_from(peers.len()).unwrap_or(u32::MAX).max(1);
        let share = (limit / n).max(1);
        share.saturating_sub(held).min(limit.saturating_sub(load))
    }

    /// The per-host cap a new lease of the bidder on `shard` would get, or `None` while the
    /// budget of one of its hosts (or the bidder's share of it) is taken.
    pub fn cap_for(&self, shard: ShardId) -> Option<u32> {
        let cap = match self.budget.keys(shard) {
            Some(k) if !k.other => k
                .hosts
                .iter()
                .map(|h| self.room(Some(*h)))
                .min()
                .unwrap_or(self.budget.limit),
            // Any host: the tail and every host some lease lists.
            _ => self
                .listed
                .keys()
                .map(|h| self.room(Some(*h)))
                .chain([self.room(None)])
                .min()
                .unwrap_or(0),
        };
        (cap > 0).then_some(cap)
    }
}

#[cfg(test)]
#[path = "swarm_budget_tests.rs"]
mod tests;
