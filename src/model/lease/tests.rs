//! Unit and property tests of the lease book against a small reference model.

use std::collections::BTreeMap;

use std::time::Duration;

use proptest::prelude::*;

use super::*;

const TTL: u64 = 1_000;
/// [`super::MIN_RESTART_GRACE`] in milliseconds.
const GRACE_MS: u64 = super::MIN_RESTART_GRACE.as_millis() as u64;
/// Tail copies need the holder to have had the shard this long (property test).
const COPY_AFTER: u64 = 300;

fn cfg(max_retries: u32) -> LeaseConfig {
    LeaseConfig {
        ttl: Duration::from_millis(TTL),
        max_retries,
        speculative: true,
        copy_after: Duration::ZERO,
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
    let lost = book.handle_timeout(a.expires_at);
    assert_eq!(lost[0].phase_after, ShardPhase::Free);
    book.handle_bid("b", true, t(TTL + 2)).unwrap();
    let lost = book.handle_timeout(t(2 * TTL + 2));
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
fn a_worker_going_away_costs_the_shard_nothing() {
    let mut book = LeaseBook::new(cfg(0), &[10]);
    for i in 0..5 {
        let l = book.handle_bid("a", true, t(i)).unwrap();
        let lost = book
            .handle_abandon(l.shard, l.epoch, "a", "shutdown", false, t(i))
            .unwrap();
        assert_eq!(lost.phase_after, ShardPhase::Free);
    }
    assert_eq!(book.shard(ShardId(0)).unwrap().failures, 0);
}

#[test]
fn shards_that_just_started_are_not_copied() {
    let mut book = LeaseBook::new(
        LeaseConfig {
            copy_after: Duration::from_millis(500),
            ..cfg(1)
        },
        &[10],
    );
    book.handle_bid("a", true, t(0)).unwrap();
    assert_eq!(book.open_count(t(499)), 0);
    assert_eq!(book.handle_bid("b", true, t(499)), None);
    assert_eq!(book.open_count(t(500)), 1);
    assert!(book.handle_bid("b", true, t(500)).unwrap().speculative);
    assert_eq!(book.open_count(t(501)), 0);
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
    let restored = LeaseBook::restore(cfg(2), book.shards().to_vec(), 0, t(0));
    // Holders keep their leases, with at least the restart grace to renew.
    let mut expected = book.shards().to_vec();
    for h in expected.iter_mut().flat_map(|s| s.holders.iter_mut()) {
        h.expires_at = h.expires_at.max(t(GRACE_MS));
    }
    assert_eq!(restored.shards(), expected.as_slice());
    assert!(restored.next_epoch() > b.epoch);
    assert!(restored.check(a.shard, a.epoch, "a", t(2)).is_ok());
    assert_eq!(restored.counts().done, 1);
}

#[test]
fn one_peer_cannot_fail_a_shard_alone() {
    let mut book = LeaseBook::new(cfg(1), &[10]);
    for i in 0..20 {
        let l = book.handle_bid("hostile", true, t(i * 100_000)).unwrap();
        book.handle_abandon(l.shard, l.epoch, "hostile", "x", true, t(i * 100_000))
            .unwrap();
    }
    let e = book.shard(ShardId(0)).unwrap();
    // Failed give-backs charge the peer, not the shard.
    assert_eq!((e.phase, e.failures), (ShardPhase::Free, 0));
    assert_eq!(e.failed_by, vec!["hostile".to_string()]);
    // Expiries do count against the shard, once per distinct peer.
    let l = book.handle_bid("b", true, t(3_000_000)).unwrap();
    let lost = book.handle_timeout(l.expires_at);
    assert_eq!(lost[0].phase_after, ShardPhase::Free);
    let l = book.handle_bid("c", true, t(4_000_000)).unwrap();
    let lost = book.handle_timeout(l.expires_at);
    assert_eq!(lost[0].phase_after, ShardPhase::Failed);
    assert!(lost[0].peer_fault);
}

#[test]
fn a_failed_shard_goes_to_another_peer_while_one_is_around() {
    let mut book = LeaseBook::new(cfg(3), &[10, 10]);
    book.handle_bid("b", true, t(0)).unwrap(); // b is around (and holds shard 0)
    let a = book.handle_bid("a", true, t(0)).unwrap();
    assert_eq!(a.shard, ShardId(1));
    book.handle_abandon(a.shard, a.epoch, "a", "No space left on device", true, t(1))
        .unwrap();
    // a backs off; after that, b has bid recently, so a does not get shard 1 back.
    assert!(matches!(
        book.admission("a", t(2)),
        Admission::BackOff { .. }
    ));
    book.note_bid("b", t(TTL)); // b bid again (at its cap: nothing granted)
    assert_eq!(book.handle_bid("a", true, t(TTL + 1)), None);
    assert_eq!(
        book.handle_bid("b", true, t(TTL + 2)).unwrap().shard,
        ShardId(1)
    );
    // Alone, a peer does get a shard it failed before.
    let mut book = LeaseBook::new(cfg(3), &[10]);
    let l = book.handle_bid("a", true, t(0)).unwrap();
    book.handle_abandon(l.shard, l.epoch, "a", "x", true, t(0))
        .unwrap();
    assert!(book.handle_bid("a", true, t(5 * TTL)).is_some());
}

#[test]
fn repeated_faults_exclude_a_peer_and_completions_raise_its_cap() {
    let mut book = LeaseBook::new(cfg(10), &[10; 8]);
    assert_eq!(book.peer_cap("a"), INITIAL_PEER_CAP);
    let mut now = 0;
    for _ in 0..MAX_PEER_FAULTS {
        let l = book.handle_bid("a", true, t(now)).unwrap();
        book.handle_abandon(
            l.shard,
            l.epoch,
            "a",
            "engine failure: disk full",
            true,
            t(now),
        )
        .unwrap();
        now += 100 * TTL;
    }
    // Alone, it is only backed off; with another peer around, it is excluded.
    assert_eq!(book.admission("a", t(now)), Admission::Admitted);
    book.note_bid("b", t(now));
    assert!(matches!(
        book.admission("a", t(now)),
        Admission::Excluded { faults: 3, .. }
    ));
    let b = book.handle_bid("b", true, t(now)).unwrap();
    book.handle_complete(b.shard, b.epoch, "b", t(now)).unwrap();
    assert_eq!(book.completed_by("b"), 1);
    assert_eq!(book.peer_cap("b"), INITIAL_PEER_CAP + 1);
}

#[test]
fn a_lease_without_progress_is_revoked() {
    let mut book = LeaseBook::new(cfg(3), &[10]);
    let a = book.handle_bid("a", true, t(0)).unwrap();
    let mut now = 0;
    // Progress keeps it alive.
    for rows in 1..=5 {
        now += TTL / 2;
        assert!(
            book.handle_renew(a.shard, a.epoch, "a", rows, t(now))
                .is_ok()
        );
    }
    // Then renewals with no progress: fine for a while, revoked after STALL_TTLS TTLs.
    let stalled_from = now;
    loop {
        now += TTL / 2;
        match book.handle_renew(a.shard, a.epoch, "a", 5, t(now)) {
            Ok(_) => assert!(now - stalled_from < u64::from(STALL_TTLS) * TTL),
            Err(e) => {
                assert!(matches!(e, LeaseError::Stalled { .. }), "{e}");
                assert!(now - stalled_from >= u64::from(STALL_TTLS) * TTL);
                break;
            }
        }
    }
    let e = book.shard(a.shard).unwrap();
    assert_eq!((e.phase, e.failures), (ShardPhase::Free, 1));
    // A holder that finished downloading (uploading) is not stalled.
    let mut book = LeaseBook::new(cfg(3), &[10]);
    let a = book.handle_bid("a", true, t(0)).unwrap();
    book.handle_renew(a.shard, a.epoch, "a", 10, t(1)).unwrap();
    for i in 1..20 {
        assert!(
            book.handle_renew(a.shard, a.epoch, "a", 10, t(i * TTL / 2))
                .is_ok()
        );
    }
}

#[test]
fn a_restart_gives_holders_a_grace_ttl_and_reopens_within_new_retries() {
    let mut book = LeaseBook::new(cfg(0), &[10, 10]);
    let a = book.handle_bid("a", true, t(0)).unwrap();
    let b = book.handle_bid("b", true, t(0)).unwrap();
    book.handle_renew(a.shard, a.epoch, "a", 1, t(TTL - 1))
        .unwrap();
    book.handle_timeout(b.expires_at);
    assert_eq!(book.counts().failed, 1);
    // The seeder was down far longer than the TTL: the holder still has one TTL to renew.
    let down_until = t(50 * TTL);
    let mut restored = LeaseBook::restore(cfg(0), book.shards().to_vec(), 0, down_until);
    assert!(restored.handle_timeout(down_until).is_empty());
    assert!(
        restored
            .handle_renew(a.shard, a.epoch, "a", 0, t(50 * TTL + 10))
            .is_ok()
    );
    assert_eq!(
        restored.counts().failed,
        1,
        "same max_retries: still failed"
    );
    // A raised --max-retries reopens it; so does --retry-failed.
    let raised = LeaseBook::restore(cfg(1), book.shards().to_vec(), 0, down_until);
    assert_eq!(raised.counts().failed, 0);
    assert_eq!(restored.reopen_failed(), vec![b.shard]);
    assert_eq!(restored.shard(b.shard).unwrap().failures, 0);
    // The persisted high-water mark wins over what the entries show.
    let high = LeaseBook::restore(cfg(0), book.shards().to_vec(), 40, down_until);
    assert_eq!(high.next_epoch(), 40);
}

// ---- property test against a reference model ----

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
    peer: String,
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
    failed_by: BTreeMap<u32, Vec<String>>,
    bidders: BTreeMap<String, u64>,
    faults: BTreeMap<String, u32>,
    granted: Vec<(u64, u32, String)>,
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
                *self.faults.entry(l.peer.clone()).or_default() += 1;
            }
            let others: Vec<u64> = self.holders(l.shard);
            if others.is_empty() && !counts {
                // Released by a worker going away: the shard is free again, no failure.
            } else if others.is_empty() {
                let by = self.failed_by.entry(l.shard).or_default();
                let f = self.failures.entry(l.shard).or_default();
                if !by.contains(&l.peer) {
                    by.push(l.peer.clone());
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

    fn valid(&self, epoch: u64, peer: &str, now: u64) -> bool {
        self.live
            .get(&epoch)
            .is_some_and(|v| v.peer == peer && v.expires > now)
    }

    /// Another admissible peer, not among those that failed `shard`, bid within a TTL.
    fn someone_else(&self, peer: &str, shard: u32, now: u64) -> bool {
        let by = self.failed_by.get(&shard).cloned().unwrap_or_default();
        self.bidders.iter().any(|(q, at)| {
            q != peer
                && !by.contains(q)
                && now - at < TTL
                && self.faults.get(q).copied().unwrap_or(0) < MAX_PEER_FAULTS
        })
    }

    fn failed_it(&self, peer: &str, shard: u32) -> bool {
        self.failed_by
            .get(&shard)
            .is_some_and(|b| b.iter().any(|p| p == peer))
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
                    let peer = format!("p{p}");
                    model.bidders.insert(peer.clone(), now);
                    let free: Vec<u32> = (0..shards as u32)
                        .filter(|s| !model.done.contains_key(s) && !model.failed.contains_key(s)
                            && model.holders(*s).is_empty())
                        .collect();
                    let choice = free.iter().copied().find(|s| !model.failed_it(&peer, *s))
                        .or_else(|| free.iter().copied().find(|s| !model.someone_else(&peer, *s, now)));
                    match book.handle_bid(&peer, spec, t(now)) {
                        Some(lease) => {
                            prop_assert!(lease.epoch > last_epoch, "epochs only grow");
                            last_epoch = lease.epoch;
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
                            model.live.insert(lease.epoch, Live {
                                shard: lease.shard.0, peer: peer.clone(), expires: now + TTL,
                                spec: lease.speculative, granted: now, rows_done: 0, progress: now,
                            });
                            model.granted.push((lease.epoch, lease.shard.0, peer));
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
                        let peer = if p == 0 { owner } else { format!("p{p}") };
                        let ok = model.valid(epoch, &peer, now);
                        let r = book.handle_renew(ShardId(shard), epoch, &peer, rows_done, t(now));
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
                        let peer = if p == 0 { owner } else { format!("p{p}") };
                        let ok = model.valid(epoch, &peer, now);
                        let r = book.handle_complete(ShardId(shard), epoch, &peer, t(now));
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
                        let peer = if p == 0 { owner } else { format!("p{p}") };
                        let ok = model.valid(epoch, &peer, now);
                        let r = book.handle_abandon(ShardId(shard), epoch, &peer, "x", failed, t(now));
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
            let model_deadline = model.live.values().map(|v| v.expires).min();
            prop_assert_eq!(book.poll_timeout().map(|d| d.0), model_deadline);
        }
    }
}
