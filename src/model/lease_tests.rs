//! Unit and property tests of the lease book against a small reference model.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const TTL: u64 = 1_000;

fn cfg(max_retries: u32) -> LeaseConfig {
    LeaseConfig {
        ttl: Duration::from_millis(TTL),
        max_retries,
        speculative: true,
    }
}

fn t(ms: u64) -> UnixMillis {
    UnixMillis(ms)
}

#[test]
fn grant_renew_complete_happy_path() {
    let mut book = LeaseBook::new(cfg(1), &[10, 20]);
    let a = book.handle_bid("a", true, t(0)).unwrap();
    assert_eq!((a.shard, a.speculative), (ShardId(0), false));
    assert_eq!(a.expires_at, t(TTL));
    let b = book.handle_bid("b", true, t(10)).unwrap();
    assert_eq!(b.shard, ShardId(1));
    assert!(b.epoch > a.epoch);
    assert_eq!(
        book.handle_renew(a.shard, a.epoch, "a", 5, t(500)),
        Ok(t(500 + TTL))
    );
    assert_eq!(
        book.handle_complete(a.shard, a.epoch, "a", t(600)),
        Ok(vec![])
    );
    assert_eq!(book.shard(a.shard).unwrap().phase, ShardPhase::Done);
    assert_eq!(
        book.handle_complete(a.shard, a.epoch, "a", t(700)),
        Err(LeaseError::AlreadyDone(a.shard))
    );
    assert_eq!(book.poll_timeout(), Some(t(10 + TTL)));
}

#[test]
fn expiry_re_leases_and_fences_the_old_holder() {
    let mut book = LeaseBook::new(cfg(3), &[10]);
    let a = book.handle_bid("a", true, t(0)).unwrap();
    assert!(
        book.handle_timeout(t(TTL - 1)).is_empty(),
        "nothing expires early"
    );
    let lost = book.handle_timeout(t(TTL));
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].phase_after, ShardPhase::Free);
    let b = book.handle_bid("b", true, t(TTL + 1)).unwrap();
    assert_eq!(b.shard, a.shard);
    assert!(b.epoch > a.epoch);
    // The silent worker comes back late: its epoch is stale.
    assert_eq!(
        book.handle_complete(a.shard, a.epoch, "a", t(TTL + 2)),
        Err(LeaseError::StaleEpoch {
            shard: a.shard,
            epoch: a.epoch
        })
    );
    // Someone else presenting b's epoch is refused too.
    assert!(matches!(
        book.handle_complete(b.shard, b.epoch, "a", t(TTL + 2)),
        Err(LeaseError::NotHolder { .. })
    ));
    assert!(
        book.handle_complete(b.shard, b.epoch, "b", t(TTL + 3))
            .is_ok()
    );
}

#[test]
fn retries_are_bounded() {
    let mut book = LeaseBook::new(cfg(1), &[10]);
    let a = book.handle_bid("a", true, t(0)).unwrap();
    let lost = book
        .handle_abandon(a.shard, a.epoch, "a", "disk full", t(1))
        .unwrap();
    assert_eq!(lost.phase_after, ShardPhase::Free);
    book.handle_bid("b", true, t(2)).unwrap();
    let lost = book.handle_timeout(t(2 + TTL));
    assert_eq!(lost[0].phase_after, ShardPhase::Failed);
    assert!(book.is_finished());
    assert_eq!(book.handle_bid("c", true, t(3 + TTL)), None);
    assert_eq!(
        book.shard(ShardId(0)).unwrap().last_error.as_deref(),
        Some("lease expired")
    );
}

#[test]
fn tail_copy_goes_to_another_peer_and_first_completion_wins() {
    let mut book = LeaseBook::new(cfg(3), &[100, 100]);
    let a = book.handle_bid("a", true, t(0)).unwrap();
    let b = book.handle_bid("b", true, t(0)).unwrap();
    book.handle_renew(a.shard, a.epoch, "a", 90, t(500))
        .unwrap();
    book.handle_renew(b.shard, b.epoch, "b", 10, t(500))
        .unwrap();
    assert_eq!(
        book.handle_bid("c", false, t(600)),
        None,
        "copies only if allowed"
    );
    let c = book.handle_bid("c", true, t(600)).unwrap();
    assert!(c.speculative);
    assert_eq!(c.shard, b.shard, "the slowest shard is copied");
    // Never a copy of one's own shard, at most one copy per shard.
    assert_eq!(book.handle_bid("a", true, t(600)), None);
    let d = book.handle_bid("d", true, t(600)).unwrap();
    assert_eq!(d.shard, a.shard);
    assert_eq!(book.handle_bid("e", true, t(600)), None);
    let cancelled = book.handle_complete(c.shard, c.epoch, "c", t(700)).unwrap();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].peer, "b");
    assert!(
        book.handle_renew(b.shard, b.epoch, "b", 20, t(800))
            .is_err()
    );
}

#[test]
fn a_surviving_copy_becomes_primary() {
    let mut book = LeaseBook::new(cfg(0), &[10]);
    let a = book.handle_bid("a", true, t(0)).unwrap();
    let b = book.handle_bid("b", true, t(500)).unwrap();
    assert!(b.speculative);
    let lost = book.handle_timeout(t(TTL));
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].epoch, a.epoch);
    assert_eq!(lost[0].phase_after, ShardPhase::Leased);
    let e = book.shard(ShardId(0)).unwrap();
    assert_eq!(e.failures, 0);
    assert!(!e.holders[0].speculative);
}

#[test]
fn restore_keeps_holders_and_epochs_grow() {
    let mut book = LeaseBook::new(cfg(2), &[1, 2, 3]);
    let a = book.handle_bid("a", true, t(0)).unwrap();
    let b = book.handle_bid("b", true, t(0)).unwrap();
    book.handle_complete(b.shard, b.epoch, "b", t(1)).unwrap();
    let restored = LeaseBook::restore(cfg(2), book.shards().to_vec());
    assert_eq!(restored.shards(), book.shards());
    assert!(restored.next_epoch() > b.epoch);
    assert!(restored.check(a.shard, a.epoch, "a", t(2)).is_ok());
    assert_eq!(restored.counts().done, 1);
}

// ---- property test against a reference model ----

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Bid(u8, bool),
    Renew(u8, u8, u64),
    Complete(u8, u8),
    Abandon(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u64..700).prop_map(Op::Advance),
        (0u8..4, any::<bool>()).prop_map(|(p, s)| Op::Bid(p, s)),
        (0u8..4, 0u8..40, 0u64..20).prop_map(|(p, e, r)| Op::Renew(p, e, r)),
        (0u8..4, 0u8..40).prop_map(|(p, e)| Op::Complete(p, e)),
        (0u8..4, 0u8..40).prop_map(|(p, e)| Op::Abandon(p, e)),
    ]
}

/// The reference: epochs → (shard, peer, expiry, speculative); per shard done/failed/failures.
#[derive(Default)]
struct Model {
    live: BTreeMap<u64, (u32, String, u64, bool)>,
    done: BTreeMap<u32, u64>,
    failed: BTreeMap<u32, ()>,
    failures: BTreeMap<u32, u32>,
    granted: Vec<(u64, u32, String)>,
}

impl Model {
    fn expire(&mut self, now: u64, max_retries: u32) -> Vec<u64> {
        let gone: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, v)| v.2 <= now)
            .map(|(e, _)| *e)
            .collect();
        for e in &gone {
            self.lose(*e, max_retries);
        }
        gone
    }

    fn lose(&mut self, epoch: u64, max_retries: u32) {
        if let Some((shard, _, _, spec)) = self.live.remove(&epoch) {
            let others: Vec<u64> = self.holders(shard);
            if others.is_empty() {
                let f = self.failures.entry(shard).or_default();
                *f += 1;
                if *f > max_retries {
                    self.failed.insert(shard, ());
                }
            } else if !spec {
                for o in others {
                    if let Some(v) = self.live.get_mut(&o) {
                        v.3 = false;
                    }
                }
            }
        }
    }

    fn holders(&self, shard: u32) -> Vec<u64> {
        self.live
            .iter()
            .filter(|(_, v)| v.0 == shard)
            .map(|(e, _)| *e)
            .collect()
    }

    fn valid(&self, epoch: u64, peer: &str, now: u64) -> bool {
        self.live
            .get(&epoch)
            .is_some_and(|v| v.1 == peer && v.2 > now)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn lease_book_matches_the_reference_model(
        shards in 1usize..6,
        max_retries in 0u32..3,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let rows: Vec<u64> = (0..shards as u64).map(|i| 10 + i).collect();
        let mut book = LeaseBook::new(cfg(max_retries), &rows);
        let mut model = Model::default();
        let mut now = 0u64;
        let mut last_epoch = 0u64;
        for op in ops {
            let lost = book.handle_timeout(t(now));
            let model_lost = model.expire(now, max_retries);
            let mut lost_epochs: Vec<u64> = lost.iter().map(|l| l.epoch).collect();
            lost_epochs.sort_unstable();
            prop_assert_eq!(lost_epochs, model_lost, "expired set differs at {}", now);
            let pick = |model: &Model, e: u8| -> Option<(u64, u32, String)> {
                if model.granted.is_empty() { None } else {
                    Some(model.granted[e as usize % model.granted.len()].clone())
                }
            };
            match op {
                Op::Advance(d) => now += d,
                Op::Bid(p, spec) => {
                    let peer = format!("p{p}");
                    let free: Vec<u32> = (0..shards as u32)
                        .filter(|s| !model.done.contains_key(s) && !model.failed.contains_key(s)
                            && model.holders(*s).is_empty())
                        .collect();
                    match book.handle_bid(&peer, spec, t(now)) {
                        Some(lease) => {
                            prop_assert!(lease.epoch > last_epoch, "epochs only grow");
                            last_epoch = lease.epoch;
                            prop_assert_eq!(lease.expires_at, t(now + TTL));
                            if let Some(first) = free.first() {
                                prop_assert!(!lease.speculative);
                                prop_assert_eq!(lease.shard.0, *first);
                            } else {
                                prop_assert!(spec && lease.speculative);
                                let hs = model.holders(lease.shard.0);
                                prop_assert_eq!(hs.len(), 1);
                                prop_assert!(model.live[&hs[0]].1 != peer);
                            }
                            model.live.insert(lease.epoch,
                                (lease.shard.0, peer.clone(), now + TTL, lease.speculative));
                            model.granted.push((lease.epoch, lease.shard.0, peer));
                        }
                        None => {
                            prop_assert!(free.is_empty());
                            if spec {
                                let copyable = (0..shards as u32).any(|s| {
                                    let hs = model.holders(s);
                                    hs.len() == 1 && model.live[&hs[0]].1 != peer
                                });
                                prop_assert!(!copyable, "a tail copy was possible");
                            }
                        }
                    }
                }
                Op::Renew(p, e, rows_done) => {
                    if let Some((epoch, shard, owner)) = pick(&model, e) {
                        let peer = if p == 0 { owner } else { format!("p{p}") };
                        let ok = model.valid(epoch, &peer, now);
                        let r = book.handle_renew(ShardId(shard), epoch, &peer, rows_done, t(now));
                        prop_assert_eq!(r.is_ok(), ok, "renew of stale/foreign epoch");
                        if ok && let Some(v) = model.live.get_mut(&epoch) {
                            v.2 = v.2.max(now + TTL);
                        }
                    }
                }
                Op::Complete(p, e) => {
                    if let Some((epoch, shard, owner)) = pick(&model, e) {
                        let peer = if p == 0 { owner } else { format!("p{p}") };
                        let ok = model.valid(epoch, &peer, now);
                        let r = book.handle_complete(ShardId(shard), epoch, &peer, t(now));
                        prop_assert_eq!(r.is_ok(), ok, "complete of stale/foreign epoch");
                        if ok {
                            for other in model.holders(shard) {
                                model.live.remove(&other);
                            }
                            model.done.insert(shard, epoch);
                        }
                    }
                }
                Op::Abandon(p, e) => {
                    if let Some((epoch, shard, owner)) = pick(&model, e) {
                        let peer = if p == 0 { owner } else { format!("p{p}") };
                        let ok = model.valid(epoch, &peer, now);
                        let r = book.handle_abandon(ShardId(shard), epoch, &peer, "x", t(now));
                        prop_assert_eq!(r.is_ok(), ok);
                        if ok {
                            model.lose(epoch, max_retries);
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
                match s.phase {
                    ShardPhase::Done => {
                        prop_assert!(s.holders.is_empty());
                        prop_assert_eq!(s.done_epoch, model.done.get(&i).copied());
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
                let mut he: Vec<u64> = s.holders.iter().map(|h| h.epoch).collect();
                he.sort_unstable();
                prop_assert_eq!(he, model.holders(i));
            }
            let model_deadline = model.live.values().map(|v| v.2).min();
            prop_assert_eq!(book.poll_timeout().map(|d| d.0), model_deadline);
        }
    }
}
