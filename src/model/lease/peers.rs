//! What the seeder has measured about each peer of one dataset, kept apart from the shards:
//! faults (leases it let expire, gave back failed, or stalled on) with backoff and exclusion,
//! and the per-peer cap on leases held at once, which starts small and grows with the
//! completions the seeder itself recorded (claimed stats never raise it).
//!
//! Rules (pure, `now` as argument):
//! - a fault sets a backoff of `ttl × 2^(consecutive − 1)` (at most [`MAX_BACKOFF_TTLS`] TTLs)
//!   during which the peer gets no lease of this dataset;
//! - after [`MAX_PEER_FAULTS`] consecutive faults the peer is excluded from the dataset for the
//!   rest of the run (the last cause is kept and shown) while other peers are around (the
//!   lease book only backs a lone peer off);
//! - a completion clears the consecutive count;
//! - cap = [`INITIAL_PEER_CAP`] + completions recorded for the peer.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::ids::NodeId;
use crate::model::time::UnixMillis;

/// Leases a peer with no recorded completion may hold at once.
pub const INITIAL_PEER_CAP: u32 = 2;
/// Consecutive faults after which a peer gets no more leases of the dataset.
pub const MAX_PEER_FAULTS: u32 = 3;
/// Longest backoff after a fault, in TTLs.
pub const MAX_BACKOFF_TTLS: u32 = 8;
/// How many peers are remembered at most (the oldest-seen is forgotten first).
pub const MAX_PEERS: usize = 4096;

/// One peer's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerRecord {
    /// Faults since its last completion.
    pub consecutive_faults: u32,
    /// Faults in total.
    pub faults: u32,
    /// The last fault's cause.
    pub last_fault: Option<String>,
    /// No lease before this time.
    pub backoff_until: UnixMillis,
    /// When it last bid; `None` for a peer known only from a completion or a fault (it is
    /// not a bidder that could take a shard someone else failed).
    pub last_bid: Option<UnixMillis>,
}

/// Whether a peer may get a lease now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Yes.
    Admitted,
    /// Not before `until` (it failed recently).
    BackOff {
        /// When it may bid again.
        until: UnixMillis,
    },
    /// Not in this run: too many consecutive faults.
    Excluded {
        /// Consecutive faults.
        faults: u32,
        /// The last cause.
        cause: String,
    },
}

/// The seeder's record of every peer of one dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerLedger {
    peers: BTreeMap<NodeId, PeerRecord>,
}

impl PeerLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// One peer's record.
    pub fn get(&self, peer: NodeId) -> Option<&PeerRecord> {
        self.peers.get(&peer)
    }

    /// Records a bid from `peer`.
    pub fn note_bid(&mut self, peer: NodeId, now: UnixMillis) {
        self.entry(peer).last_bid = Some(now);
    }

    /// Whether `peer` may get a lease now.
    pub fn admission(&self, peer: NodeId, now: UnixMillis) -> Admission {
        let Some(r) = self.peers.get(&peer) else {
            return Admission::Admitted;
        };
        if r.consecutive_faults >= MAX_PEER_FAULTS {
            return Admission::Excluded {
                faults: r.consecutive_faults,
                cause: r.last_fault.clone().unwrap_or_default(),
            };
        }
        if r.backoff_until > now {
            return Admission::BackOff {
                until: r.backoff_until,
            };
        }
        Admission::Admitted
    }

    /// Charges `peer` one fault.
    pub fn on_fault(&mut self, peer: NodeId, cause: &str, ttl: Duration, now: UnixMillis) {
        let r = self.entry(peer);
        r.consecutive_faults = r.consecutive_faults.saturating_add(1);
        r.faults = r.faults.saturating_add(1);
        r.last_fault = Some(cause.to_string());
        let ttls = 1u32
            .checked_shl(r.consecutive_faults.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(MAX_BACKOFF_TTLS);
        r.backoff_until = now.plus(ttl.saturating_mul(ttls));
    }

    /// `peer` completed a shard: its consecutive faults are forgiven.
    pub fn on_completion(&mut self, peer: NodeId) {
        let r = self.entry(peer);
        r.consecutive_faults = 0;
        r.backoff_until = UnixMillis(0);
    }

    /// True when a peer other than `peer` and not in `except` bid within `window` before `now`
    /// and may get a lease: someone else can take a shard `peer` failed.
    pub fn someone_else_active(
        &self,
        peer: NodeId,
        except: &[NodeId],
        window: Duration,
        now: UnixMillis,
    ) -> bool {
        self.peers.iter().any(|(p, r)| {
            *p != peer
                && !except.contains(p)
                && r.last_bid.is_some_and(|at| now.since(at) < window)
                && r.consecutive_faults < MAX_PEER_FAULTS
        })
    }

    /// Peers excluded from the dataset, with their cause.
    pub fn excluded(&self) -> Vec<(NodeId, String)> {
        self.peers
            .iter()
            .filter(|(_, r)| r.consecutive_faults >= MAX_PEER_FAULTS)
            .map(|(p, r)| (*p, r.last_fault.clone().unwrap_or_default()))
            .collect()
    }

    fn entry(&mut self, peer: NodeId) -> &mut PeerRecord {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            // Forget the peer seen longest ago that is not excluded.
            let oldest = self
                .peers
                .iter()
                .filter(|(_, r)| r.consecutive_faults < MAX_PEER_FAULTS)
                .min_by_key(|(_, r)| r.last_bid)
                .map(|(p, _)| *p);
            if let Some(p) = oldest {
                self.peers.remove(&p);
            }
        }
        self.peers.entry(peer).or_default()
    }
}

/// The cap on leases `completions` recorded completions earn.
pub fn peer_cap(completions: u32) -> u32 {
    INITIAL_PEER_CAP.saturating_add(completions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::seeded_node_id;

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn faults_back_off_then_exclude_and_completions_forgive() {
        let (a, b) = (seeded_node_id(1), seeded_node_id(2));
        let mut l = PeerLedger::new();
        assert_eq!(l.admission(a, UnixMillis(0)), Admission::Admitted);
        l.on_fault(a, "disk full", TTL, UnixMillis(0));
        assert_eq!(
            l.admission(a, UnixMillis(5_000)),
            Admission::BackOff {
                until: UnixMillis(10_000)
            }
        );
        assert_eq!(l.admission(a, UnixMillis(10_000)), Admission::Admitted);
        l.on_fault(a, "disk full", TTL, UnixMillis(10_000));
        assert_eq!(
            l.admission(a, UnixMillis(10_000)),
            Admission::BackOff {
                until: UnixMillis(30_000)
            }
        );
        l.on_completion(a);
        assert_eq!(l.admission(a, UnixMillis(10_000)), Admission::Admitted);
        for i in 0..MAX_PEER_FAULTS {
            l.on_fault(
                a,
                &format!("No space left on device ({i})"),
                TTL,
                UnixMillis(0),
            );
        }
        assert_eq!(
            l.admission(a, UnixMillis(1 << 40)),
            Admission::Excluded {
                faults: 3,
                cause: "No space left on device (2)".into()
            }
        );
        assert_eq!(l.excluded().len(), 1);
        // Another peer is unaffected.
        assert_eq!(l.admission(b, UnixMillis(0)), Admission::Admitted);
    }

    #[test]
    fn backoff_is_bounded() {
        let a = seeded_node_id(1);
        let mut l = PeerLedger::new();
        for _ in 0..2 {
            l.on_fault(a, "x", TTL, UnixMillis(0));
        }
        l.on_completion(a);
        for _ in 0..2 {
            l.on_fault(a, "x", TTL, UnixMillis(0));
        }
        let Admission::BackOff { until } = l.admission(a, UnixMillis(0)) else {
            panic!("backing off");
        };
        assert!(until.0 <= u64::from(MAX_BACKOFF_TTLS) * 10_000);
    }

    #[test]
    fn someone_else_is_a_recent_admissible_bidder() {
        let (a, b) = (seeded_node_id(1), seeded_node_id(2));
        let mut l = PeerLedger::new();
        l.note_bid(a, UnixMillis(0));
        assert!(!l.someone_else_active(a, &[], TTL, UnixMillis(1)));
        l.note_bid(b, UnixMillis(0));
        assert!(l.someone_else_active(a, &[], TTL, UnixMillis(1)));
        assert!(!l.someone_else_active(a, &[b], TTL, UnixMillis(1)));
        assert!(!l.someone_else_active(a, &[], TTL, UnixMillis(10_000)));
        for _ in 0..MAX_PEER_FAULTS {
            l.on_fault(b, "x", TTL, UnixMillis(0));
        }
        assert!(!l.someone_else_active(a, &[], TTL, UnixMillis(1)));
    }

    #[test]
    fn a_peer_known_only_by_completion_or_fault_is_not_a_bidder() {
        // Found by the reference-model proptest: a record created by a completion had a last
        // bid at time 0, so at time 0 it counted as a recent bidder.
        let (a, b, c) = (seeded_node_id(1), seeded_node_id(2), seeded_node_id(3));
        let mut l = PeerLedger::new();
        l.on_completion(a);
        l.on_fault(b, "x", TTL, UnixMillis(0));
        assert!(!l.someone_else_active(c, &[], TTL, UnixMillis(0)));
    }

    #[test]
    fn caps_grow_with_completions() {
        assert_eq!(peer_cap(0), INITIAL_PEER_CAP);
        assert_eq!(peer_cap(5), INITIAL_PEER_CAP + 5);
        assert_eq!(peer_cap(u32::MAX), u32::MAX);
    }
}
