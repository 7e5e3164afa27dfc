//! An in-process simulation of one seeder's leasing at scale: the real sans-IO [`LeaseBook`]
//! driven with simulated time by many simulated peers with churn, under the coordinator's
//! bid rule (admission, then a cap of `min(slots, peer_cap)` leases held, tail copies only for
//! an idle bidder). No sockets, no disk: the lease database and the transfers are left out, so
//! it measures the decisions themselves.
//!
//! Peers bid for free slots, renew every TTL/3 with their progress, complete when their
//! simulated work is done, give a lease back failed now and then, and leave: cleanly (leases
//! given back) or by crashing (leases left to expire). A peer that comes back is a new peer
//! (new id). Gossip is counted as the coordinator and the nodes publish it: one `Lease`
//! message per grant, give-back and completion, plus every online node's `Heartbeat` and the
//! seeder's `Dataset` announcement each heartbeat interval; each message reaches every peer.
//!
//! [`run`] reports decisions per second of wall time (the whole loop, peers' bookkeeping
//! included), what every shard became, and the peers that were starved (online while free
//! shards waited, yet never granted anything).

use std::time::{Duration, Instant};

use crate::model::ids::{DatasetId, Epoch, NodeId, ShardId, seeded_node_id};
use crate::model::lease::{Admission, LeaseBook, LeaseConfig, ShardPhase};
use crate::model::lease_state::LeaseState;
use crate::model::node_stats::NodeStats;
use crate::model::time::UnixMillis;
use crate::protocol::codec::encode;
use crate::protocol::gossip::{Gossip, MAX_GOSSIP_BYTES};

/// The simulated swarm.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Shards in the dataset.
    pub shards: u32,
    /// Every shard holds this many rows; a holder reports progress proportional to its lease time.
    pub rows_per_shard: u64,
    /// Peers online at the start (each departure is replaced by a new peer later).
    pub peers: u32,
    /// Leases a peer wants at once (its capacity).
    pub slots: u32,
    /// Simulated time one shard takes on one peer, in seconds (uniform in this range).
    pub shard_secs: (u64, u64),
    /// Lease policy.
    pub lease: LeaseConfig,
    /// Mean time a peer stays online, in seconds (exponential).
    pub mean_online_secs: u64,
    /// Mean time before a departed peer is replaced, in seconds (exponential).
    pub mean_offline_secs: u64,
    /// Fraction of departures that are crashes (leases left to expire).
    pub crash_fraction: f64,
    /// Probability that a lease ends given back as failed instead of completed.
    pub fail_rate: f64,
    /// Interval of heartbeats and dataset announcements, in milliseconds.
    pub heartbeat_ms: u64,
    /// Simulation step, in milliseconds.
    pub step_ms: u64,
    /// Give up after this much simulated time, in seconds.
    pub max_sim_secs: u64,
    /// A peer online this long while free shards wait, without any grant, is starved (ms).
    pub starved_after_ms: u64,
    /// Random seed.
    pub seed: u64,
}

impl SimConfig {
    /// The case: 100,000 shards of 10,000 rows, 200 peers of 4 slots, churn.
    pub fn web_scale() -> Self {
        Self {
            shards: 100_000,
            rows_per_shard: 10_000,
            peers: 200,
            slots: 4,
            shard_secs: (60, 180),
            lease: LeaseConfig::default(),
            mean_online_secs: 1_200,
            mean_offline_secs: 120,
            crash_fraction: 0.5,
            fail_rate: 0.005,
            heartbeat_ms: 2_000,
            step_ms: 1_000,
            max_sim_secs: 7 * 24 * 3600,
            starved_after_ms: 10_000,
            seed: 10,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimReport {
    /// Lease-book decisions answered (bids, renewals, completions, give-backs).
    pub decisions: u64,
    /// Wall time of the whole simulation loop.
    pub wall: Duration,
    /// Simulated time until every shard was done or failed (or the limit).
    pub sim_secs: u64,
    /// Whether every shard ended done or failed.
    pub finished: bool,
    /// Shards in total.
    pub shards_total: u32,
    /// Shards whose completion was accepted.
    pub shards_done: u32,
    /// Shards failed for good.
    pub shards_failed: u32,
    /// Shards still free or leased at the end (lost if the run finished).
    pub shards_open: u32,
    /// Shards whose completion was accepted more than once (must be 0).
    pub double_completions: u32,
    /// Leases granted, tail copies included.
    pub grants: u64,
    /// Grants that were tail copies.
    pub copies: u64,
    /// Completions accepted.
    pub completions: u64,
    /// Leases that expired (crashed holders).
    pub expiries: u64,
    /// Leases given back (clean departures and failures).
    pub give_backs: u64,
    /// Renewals accepted.
    pub renewals: u64,
    /// Peers seen (every replacement is a new peer).
    pub peers_seen: u32,
    /// Peers online while free shards waited for at least `starved_after_ms`, never granted.
    pub starved: Vec<NodeId>,
    /// Fewest grants per peer-hour online while free shards waited, over peers online ≥ 10 min.
    pub min_grants_per_hour: f64,
    /// Most grants per peer-hour online while free shards waited, over the same peers.
    pub max_grants_per_hour: f64,
    /// Gossip payload bytes published (every peer receives each message).
    pub gossip_bytes: u64,
}

impl SimReport {
    /// Decisions per second of wall time.
    pub fn decisions_per_s(&self) -> f64 {
        self.decisions as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Gossip payload bytes each peer receives per simulated second.
    pub fn gossip_bytes_per_peer_per_s(&self) -> f64 {
        self.gossip_bytes as f64 / (self.sim_secs.max(1) as f64)
    }
}

struct Held {
    shard: ShardId,
    epoch: Epoch,
    started: u64,
    finish_at: u64,
    next_renew: u64,
    fails: bool,
}

struct Peer {
    id: NodeId,
    online: bool,
    /// When it leaves (online) or is replaced (offline), simulated ms.
    until: u64,
    held: Vec<Held>,
    grants: u64,
    online_while_free_ms: u64,
}

struct Sim {
    cfg: SimConfig,
    book: LeaseBook,
    rng: fastrand::Rng,
    dataset: DatasetId,
    report: SimReport,
    completed: Vec<u8>,
    next_peer: u64,
    lease_bytes: Vec<usize>,
}

/// Runs the simulation to the end (every shard done or failed) or `max_sim_secs`.
pub fn run(cfg: &SimConfig) -> SimReport {
    run_observed(cfg, || {})
}

/// [`run`], calling `at_end` once the run is over while its lease book is still alive (to
/// measure its memory).
pub fn run_observed(cfg: &SimConfig, at_end: impl FnOnce()) -> SimReport {
    let rows = vec![cfg.rows_per_shard; cfg.shards as usize];
    let mut sim = Sim {
        book: LeaseBook::new(cfg.lease, &rows),
        rng: fastrand::Rng::with_seed(cfg.seed),
        dataset: DatasetId([7; 16]),
        report: SimReport {
            shards_total: cfg.shards,
            min_grants_per_hour: f64::INFINITY,
            ..SimReport::default()
        },
        completed: vec![0; cfg.shards as usize],
        next_peer: 0,
        lease_bytes: Vec::new(),
        cfg: cfg.clone(),
    };
    sim.lease_bytes = [LeaseState::Leased, LeaseState::Free, LeaseState::Done]
        .into_iter()
        .map(|s| sim.gossip_len(s))
        .collect();
    let mut peers: Vec<Peer> = (0..cfg.peers).map(|_| sim.new_peer(0)).collect();
    let heartbeat = sim.heartbeat_len();
    let announce = sim.announce_len();
    let started = Instant::now();
    let mut now = 0u64;
    let mut next_heartbeat = 0u64;
    let mut order: Vec<usize> = (0..peers.len()).collect();
    while !sim.book.is_finished() && now < cfg.max_sim_secs * 1000 {
        now += cfg.step_ms;
        sim.report.expiries += sim.book.handle_timeout(UnixMillis(now)).len() as u64;
        let free_waiting = sim.book.counts().free > 0;
        sim.rng.shuffle(&mut order);
        for &i in &order {
            sim.step_peer(&mut peers[i], now, free_waiting);
        }
        if now >= next_heartbeat {
            next_heartbeat = now + cfg.heartbeat_ms;
            let online = peers.iter().filter(|p| p.online).count() as u64;
            sim.report.gossip_bytes += online * heartbeat as u64 + announce as u64;
        }
    }
    sim.report.wall = started.elapsed();
    sim.report.sim_secs = now / 1000;
    sim.finish(&peers);
    at_end();
    sim.report
}

impl Sim {
    fn new_peer(&mut self, now: u64) -> Peer {
        self.next_peer += 1;
        self.report.peers_seen += 1;
        let online_for = self.exp(self.cfg.mean_online_secs);
        Peer {
            id: seeded_node_id(self.next_peer),
            online: true,
            until: now + online_for,
            held: Vec::new(),
            grants: 0,
            online_while_free_ms: 0,
        }
    }

    /// An exponential delay with mean `mean_secs`, in ms.
    fn exp(&mut self, mean_secs: u64) -> u64 {
        let u = self.rng.f64().max(1e-12);
        (-u.ln() * mean_secs as f64 * 1000.0) as u64
    }

    fn step_peer(&mut self, p: &mut Peer, now: u64, free_waiting: bool) {
        if !p.online {
            if now >= p.until {
                *p = self.new_peer(now);
            }
            return;
        }
        if now >= p.until {
            self.depart(p, now);
            return;
        }
        if free_waiting {
            p.online_while_free_ms += self.cfg.step_ms;
        }
        self.work(p, now);
        self.bid(p, now);
    }

    fn depart(&mut self, p: &mut Peer, now: u64) {
        let crash = self.rng.f64() < self.cfg.crash_fraction;
        for h in std::mem::take(&mut p.held) {
            if crash {
                continue;
            }
            self.report.decisions += 1;
            let r = self.book.handle_abandon(
                h.shard,
                h.epoch,
                p.id,
                "worker stopping",
                false,
                UnixMillis(now),
            );
            if r.is_ok() {
                self.report.give_backs += 1;
                self.report.gossip_bytes += self.lease_bytes[1] as u64;
            }
        }
        self.record_rate(p);
        p.online = false;
        p.until = now + self.exp(self.cfg.mean_offline_secs);
    }

    fn work(&mut self, p: &mut Peer, now: u64) {
        let t = UnixMillis(now);
        let mut kept = Vec::with_capacity(p.held.len());
        for mut h in std::mem::take(&mut p.held) {
            if now >= h.finish_at {
                self.report.decisions += 1;
                if h.fails {
                    if self
                        .book
                        .handle_abandon(h.shard, h.epoch, p.id, "simulated failure", true, t)
                        .is_ok()
                    {
                        self.report.give_backs += 1;
                        self.report.gossip_bytes += self.lease_bytes[1] as u64;
                    }
                } else if self.book.handle_complete(h.shard, h.epoch, p.id, t).is_ok() {
                    self.report.completions += 1;
                    self.report.gossip_bytes += self.lease_bytes[2] as u64;
                    let n = &mut self.completed[h.shard.0 as usize];
                    *n = n.saturating_add(1);
                }
                continue;
            }
            if now >= h.next_renew {
                self.report.decisions += 1;
                let span = h.finish_at.saturating_sub(h.started).max(1);
                let rows_done = self.cfg.rows_per_shard * (now - h.started) / span;
                match self.book.handle_renew(h.shard, h.epoch, p.id, rows_done, t) {
                    Ok(_) => {
                        self.report.renewals += 1;
                        h.next_renew = now + self.renew_every();
                    }
                    // Fenced (expired, copied and completed elsewhere, revoked): drop it.
                    Err(_) => continue,
                }
            }
            kept.push(h);
        }
        p.held = kept;
    }

    fn renew_every(&self) -> u64 {
        (self.cfg.lease.ttl.as_millis() as u64 / 3).max(1)
    }

    /// The coordinator's bid rule, once per free slot.
    fn bid(&mut self, p: &mut Peer, now: u64) {
        let t = UnixMillis(now);
        while (p.held.len() as u32) < self.cfg.slots {
            self.report.decisions += 1;
            match self.book.admission(p.id, t) {
                Admission::Admitted => self.book.note_bid(p.id, t),
                _ => return,
            }
            let held = self.book.held_by(p.id);
            if held >= self.cfg.slots.min(self.book.peer_cap(p.id)) {
                return;
            }
            let Some(lease) = self.book.handle_bid(p.id, held == 0, t) else {
                return;
            };
            self.report.grants += 1;
            self.report.copies += u64::from(lease.speculative);
            self.report.gossip_bytes += self.lease_bytes[0] as u64;
            p.grants += 1;
            let (lo, hi) = self.cfg.shard_secs;
            let secs = self.rng.u64(lo..=hi.max(lo));
            p.held.push(Held {
                shard: lease.shard,
                epoch: lease.epoch,
                started: now,
                finish_at: now + secs * 1000,
                next_renew: now + self.renew_every(),
                fails: self.rng.f64() < self.cfg.fail_rate,
            });
        }
    }

    fn record_rate(&mut self, p: &Peer) {
        if p.online_while_free_ms >= self.cfg.starved_after_ms && p.grants == 0 {
            self.report.starved.push(p.id);
        }
        if p.online_while_free_ms >= 600_000 {
            let rate = p.grants as f64 / (p.online_while_free_ms as f64 / 3_600_000.0);
            self.report.min_grants_per_hour = self.report.min_grants_per_hour.min(rate);
            self.report.max_grants_per_hour = self.report.max_grants_per_hour.max(rate);
        }
    }

    fn finish(&mut self, peers: &[Peer]) {
        for p in peers.iter().filter(|p| p.online) {
            self.record_rate(p);
        }
        if !self.report.min_grants_per_hour.is_finite() {
            self.report.min_grants_per_hour = 0.0;
        }
        let c = self.book.counts();
        self.report.finished = self.book.is_finished();
        self.report.shards_done = c.done;
        self.report.shards_failed = c.failed;
        self.report.shards_open = c.free + c.leased;
        self.report.double_completions = self.completed.iter().filter(|n| **n > 1).count() as u32;
        // Every done shard was completed exactly once, and nothing else was.
        let done_seen = self.completed.iter().filter(|n| **n == 1).count() as u32;
        let phases_done = self
            .book
            .shards()
            .iter()
            .filter(|e| e.phase == ShardPhase::Done)
            .count() as u32;
        if done_seen != phases_done {
            self.report.double_completions += done_seen.abs_diff(phases_done);
        }
    }

    fn gossip_len(&self, state: LeaseState) -> usize {
        let g = Gossip::Lease {
            dataset: self.dataset,
            shard: ShardId(self.cfg.shards.saturating_sub(1)),
            holder: Some(NodeId(libp2p::PeerId::random())),
            epoch: Epoch(1 << 20),
            expires_at: UnixMillis(1_800_000_000_000),
            state,
        };
        encode(&g, MAX_GOSSIP_BYTES).map(|b| b.len()).unwrap_or(0)
    }

    fn heartbeat_len(&self) -> usize {
        let g = Gossip::Heartbeat {
            stats: NodeStats {
                cores: 64,
                mem_total: 1 << 38,
                mem_free: 1 << 37,
                disk_free: 1 << 42,
                load1: 3.5,
                bytes_per_s: 1.0e8,
                images_per_s: 1234.5,
                leases_held: self.cfg.slots,
                shards_done: 1000,
                free_slots: 2,
                works: true,
                seeds: false,
            },
            nonce: u64::MAX,
            sent_at: UnixMillis(1_800_000_000_000),
        };
        encode(&g, MAX_GOSSIP_BYTES).map(|b| b.len()).unwrap_or(0)
    }

    fn announce_len(&self) -> usize {
        let g = Gossip::Dataset {
            dataset: self.dataset,
            name: "laion-100m-part-00".into(),
            shards_total: self.cfg.shards,
            shards_done: self.cfg.shards / 2,
            shards_open: self.cfg.shards / 2,
            shards_failed: 0,
            rows_total: u64::from(self.cfg.shards) * self.cfg.rows_per_shard,
            sent_at: UnixMillis(1_800_000_000_000),
        };
        encode(&g, MAX_GOSSIP_BYTES).map(|b| b.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small swarm with heavy churn: every shard ends done exactly once (or failed for good,
    /// accounted), nothing stays open, and no peer that was around while work waited went
    /// without a lease.
    #[test]
    fn a_churning_swarm_finishes_every_shard_once_and_starves_no_peer() {
        let cfg = SimConfig {
            shards: 2_000,
            peers: 30,
            mean_online_secs: 300,
            mean_offline_secs: 60,
            fail_rate: 0.02,
            max_sim_secs: 48 * 3600,
            ..SimConfig::web_scale()
        };
        let r = run(&cfg);
        assert!(r.finished, "not finished after {} s: {r:?}", r.sim_secs);
        assert_eq!(r.shards_open, 0, "{r:?}");
        assert_eq!(r.shards_done + r.shards_failed, r.shards_total, "{r:?}");
        assert_eq!(r.double_completions, 0, "{r:?}");
        assert_eq!(u64::from(r.shards_done), r.completions, "{r:?}");
        assert!(r.starved.is_empty(), "starved peers: {:?}", r.starved);
        assert!(r.peers_seen > cfg.peers * 2, "too little churn: {r:?}");
        assert!(
            r.expiries > 0 && r.give_backs > 0,
            "no crash or give-back: {r:?}"
        );
        assert!(r.min_grants_per_hour > 0.0, "{r:?}");
        // A failure budget of 3 distinct peers is not exhausted by 2 % failures and churn.
        assert!(r.shards_failed <= 2, "{r:?}");
    }
}
