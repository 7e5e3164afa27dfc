//! Property test of the lease book: random bids, renewals, completions, give-backs, clock
//! advances and restarts, checked step by step against a small reference model.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::model::ids::seeded_node_id;

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Bid(u8, bool),
    Renew(u8, u8, u64),
    Complete(u8, u8),
    Abandon(u8, u8, bool),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u64..700).prop_map(Op::Advance),
        6 => (0u8..4, any::<bool>()).prop_map(|(p, s)| Op::Bid(p, s)),
        6 => (0u8..4, 0u8..40, 0u64..20).prop_map(|(p, e, r)| Op::Renew(p, e, r)),
        3 => (0u8..4, 0u8..40).prop_map(|(p, e)| Op::Complete(p, e)),
        3 => (0u8..4, 0u8..40, any::<bool>()).prop_map(|(p, e, f)| Op::Abandon(p, e, f)),
        1 => Just(Op::Restart),
    ]
}

/// A live lease in the reference.
#[derive(Debug, Clone)]
struct Live {
    shard: u32,
    peer: NodeId,
    expires: u64,
    spec: bool,
    granted: u64,
    rows_done: u64,
    progress: u64,
}

/// The reference: live leases by epoch; per shard done/failed/failures and the distinct
/// peers that failed it; per peer the last bid and consecutive faults.
#[derive(Default)]
struct Model {
    live: BTreeMap<u64, Live>,
    done: BTreeMap<u32, u64>,
    failed: BTreeMap<u32, ()>,
    failures: BTreeMap<u32, u32>,
    failed_by: BTreeMap<u32, Vec<NodeId>>,
    bidders: BTreeMap<NodeId, u64>,
    faults: BTreeMap<NodeId, u32>,
    granted: Vec<(u64, u32, NodeId)>,
}

impl Model {
    fn expire(&mut self, now: u64, max_retries: u32) -> Vec<u64> {
        let gone: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, v)| v.expires <= now)
            .map(|(e, _)| *e)
            .collect();
        for e in &gone {
            self.lose(*e, max_retries, true, true);
        }
        gone
    }

    /// `counts`: the peer is charged; `attempt`: the shard is charged too (expiry,
    /// revocation), not for a failed give-back (a local cause).
    fn lose(&mut self, epoch: u64, max_retries: u32, counts: bool, attempt: bool) {
        if let Some(l) = self.live.remove(&epoch) {
            if counts {
                *self.faults.entry(l.peer).or_default() += 1;
            }
            let others: Vec<u64> = self.holders(l.shard);
            if others.is_empty() && !counts {
                // Released by a worker going away: the shard is free again, no failure.
            } else if others.is_empty() {
                let by = self.failed_by.entry(l.shard).or_default();
                let f = self.failures.entry(l.shard).or_default();
                if !by.contains(&l.peer) {
                    by.push(l.peer);
                    *f += u32::from(attempt);
                }
                if *f > max_retries {
                    self.failed.insert(l.shard, ());
                }
            } else if !l.spec {
                for o in others {
                    if let Some(v) = self.live.get_mut(&o) {
                        v.spec = false;
                    }
                }
            }
        }
    }

    fn holders(&self, shard: u32) -> Vec<u64> {
        self.live
            .iter()
            .filter(|(_, v)| v.shard == shard)
            .map(|(e, _)| *e)
            .collect()
    }

    fn valid(&self, epoch: u64, peer: NodeId, now: u64) -> bool {
        self.live
            .get(&epoch)
            .is_some_and(|v| v.peer == peer && v.expires > now)
    }

    /// Another admissible peer, not among those that failed `shard`, bid within a TTL.
    fn someone_else(&self, peer: NodeId, shard: u32, now: u64) -> bool {
        let by = self.failed_by.get(&shard).cloned().unwrap_or_default();
        self.bidders.iter().any(|(q, at)| {
            *q != peer
                && !by.contains(q)
                && now - at < TTL
                && self.faults.get(q).copied().unwrap_or(0) < MAX_PEER_FAULTS
        })
    }

    fn failed_it(&self, peer: NodeId, shard: u32) -> bool {
        self.failed_by
            .get(&shard)
            .is_some_and(|b| b.contains(&peer))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn lease_book_matches_the_reference_model(
        shards in 1usize..6,
        max_retries in 0u32..3,
        ops in proptest::collection::vec(op(), 1..160),
    ) {
        let rows: Vec<u64> = (0..shards as u64).map(|i| 10 + i).collect();
        let policy = LeaseConfig {
            copy_after: Duration::from_millis(COPY_AFTER),
            ..cfg(max_retries)
        };
        let mut book = LeaseBook::new(policy, &rows);
        let mut model = Model::default();
        let mut now = 0u64;
        let mut last_epoch = 0u64;
        for op in ops {
            prop_assert!(book.index_in_step(), "lease book indexes out of step");
            let lost = book.handle_timeout(t(now));
            let model_lost = model.expire(now, max_retries);
            let mut lost_epochs: Vec<u64> = lost.iter().map(|l| l.epoch.0).collect();
            lost_epochs.sort_unstable();
            prop_assert_eq!(lost_epochs, model_lost, "expired set differs at {}", now);
            let pick = |model: &Model, e: u8| -> Option<(u64, u32, NodeId)> {
                if model.granted.is_empty() { None } else {
                    Some(model.granted[e as usize % model.granted.len()])
                }
            };
            match op {
                Op::Advance(d) => now += d,
                Op::Restart => {
                    book = LeaseBook::restore(policy, book.shards().to_vec(), book.next_epoch(), t(now));
                    for v in model.live.values_mut() {
                        v.expires = v.expires.max(now + TTL.max(GRACE_MS));
                        v.progress = v.progress.max(now);
                        v.granted = v.granted.max(now);
                    }
                    model.bidders.clear();
                    model.faults.clear();
                }
                Op::Bid(p, spec) => {
                    let peer = seeded_node_id(u64::from(p));
                    model.bidders.insert(peer, now);
                    let free: Vec<u32> = (0..shards as u32)
                        .filter(|s| !model.done.contains_key(s) && !model.failed.contains_key(s)
                            && model.holders(*s).is_empty())
                        .collect();
                    let choice = free.iter().copied().find(|s| !model.failed_it(peer, *s))
                        .or_else(|| free.iter().copied().find(|s| !model.someone_else(peer, *s, now)));
                    match book.handle_bid(peer, spec, t(now)) {
                        Some(lease) => {
                            prop_assert!(lease.epoch.0 > last_epoch, "epochs only grow");
                            last_epoch = lease.epoch.0;
                            prop_assert_eq!(lease.expires_at, t(now + TTL));
                            if !free.is_empty() {
                                prop_assert!(!lease.speculative);
                                prop_assert_eq!(Some(lease.shard.0), choice);
                            } else {
                                prop_assert!(spec && lease.speculative);
                                let hs = model.holders(lease.shard.0);
                                prop_assert_eq!(hs.len(), 1);
                                prop_assert!(model.live[&hs[0]].peer != peer);
                                prop_assert!(now - model.live[&hs[0]].granted >= COPY_AFTER, "copied too early");
                            }
                            model.live.insert(lease.epoch.0, Live {
                                shard: lease.shard.0, peer, expires: now + TTL,
                                spec: lease.speculative, granted: now, rows_done: 0, progress: now,
                            });
                            model.granted.push((lease.epoch.0, lease.shard.0, peer));
                        }
                        None => {
                            prop_assert!(choice.is_none(), "a free shard was refused");
                            if spec && free.is_empty() {
                                let copyable = (0..shards as u32).any(|s| {
                                    let hs = model.holders(s);
                                    hs.len() == 1
                                        && model.live[&hs[0]].peer != peer
                                        && now - model.live[&hs[0]].granted >= COPY_AFTER
                                });
                                prop_assert!(!copyable, "a tail copy was possible");
                            }
                        }
                    }
                }
                Op::Renew(p, e, rows_done) => {
                    if let Some((epoch, shard, owner)) = pick(&model, e) {
                        let peer = if p == 0 { owner } else { seeded_node_id(u64::from(p)) };
                        let ok = model.valid(epoch, peer, now);
                        let r = book.handle_renew(ShardId(shard), Epoch(epoch), peer, rows_done, t(now));
                        if !ok {
                            prop_assert!(r.is_err(), "renew of stale/foreign epoch");
                        } else {
                            let v = model.live[&epoch].clone();
                            let total = rows[shard as usize];
                            if rows_done > v.rows_done {
                                prop_assert!(r.is_ok());
                                let m = model.live.get_mut(&epoch).unwrap();
                                m.rows_done = rows_done;
                                m.progress = now;
                                m.expires = m.expires.max(now + TTL);
                            } else if v.rows_done < total && now - v.progress >= u64::from(STALL_TTLS) * TTL {
                                let stalled = matches!(r, Err(LeaseError::Stalled { .. }));
                                prop_assert!(stalled, "a stalled lease was renewed: {:?}", r);
                                model.lose(epoch, max_retries, true, true);
                            } else {
                                prop_assert!(r.is_ok());
                                let m = model.live.get_mut(&epoch).unwrap();
                                m.expires = m.expires.max(now + TTL);
                            }
                        }
                    }
                }
                Op::Complete(p, e) => {
                    if let Some((epoch, shard, owner)) = pick(&model, e) {
                        let peer = if p == 0 { owner } else { seeded_node_id(u64::from(p)) };
                        let ok = model.valid(epoch, peer, now);
                        let r = book.handle_complete(ShardId(shard), Epoch(epoch), peer, t(now));
                        prop_assert_eq!(r.is_ok(), ok, "complete of stale/foreign epoch");
                        if ok {
                            for other in model.holders(shard) {
                                model.live.remove(&other);
                            }
                            model.done.insert(shard, epoch);
                            model.faults.insert(peer, 0);
                        }
                    }
                }
                Op::Abandon(p, e, failed) => {
                    if let Some((epoch, shard, owner)) = pick(&model, e) {
                        let peer = if p == 0 { owner } else { seeded_node_id(u64::from(p)) };
                        let ok = model.valid(epoch, peer, now);
                        let r = book.handle_abandon(ShardId(shard), Epoch(epoch), peer, "x", failed, t(now));
                        prop_assert_eq!(r.is_ok(), ok);
                        if ok {
                            model.lose(epoch, max_retries, failed, false);
                        }
                    }
                }
            }
            // Invariants.
            for (i, s) in book.shards().iter().enumerate() {
                let i = i as u32;
                let primaries = s.holders.iter().filter(|h| !h.speculative).count();
                prop_assert!(primaries <= 1, "two primaries on shard {}", i);
                prop_assert!(s.holders.len() <= 2);
                prop_assert_eq!(s.failures, model.failures.get(&i).copied().unwrap_or(0));
                prop_assert!(s.failures as usize <= s.failed_by.len(), "at most one failure per distinct peer");
                match s.phase {
                    ShardPhase::Done => {
                        prop_assert!(s.holders.is_empty());
                        prop_assert_eq!(s.done_epoch, model.done.get(&i).copied().map(Epoch));
                    }
                    ShardPhase::Failed => {
                        prop_assert!(s.holders.is_empty());
                        prop_assert!(model.failed.contains_key(&i));
                    }
                    ShardPhase::Leased => {
                        prop_assert!(primaries == 1);
                    }
                    ShardPhase::Free => prop_assert!(s.holders.is_empty()),
                }
                if model.done.contains_key(&i) {
                    prop_assert_eq!(s.phase, ShardPhase::Done, "done is terminal");
                }
                let mut he: Vec<u64> = s.holders.iter().map(|h| h.epoch.0).collect();
                he.sort_unstable();
                prop_assert_eq!(he, model.holders(i));
            }
            let model_deadline = model.live.values().map(|v| v.expires).min();
            prop_assert_eq!(book.poll_timeout().map(|d| d.0), model_deadline);
        }
    }
}
