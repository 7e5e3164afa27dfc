//! Unit tests of the lease book, one scenario each; the property test against a small
//! reference model is in [`reference_model`].

use std::time::Duration;

use super::*;
use crate::model::ids::seeded_node_id as node;

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

// Peers: `node(1..=5)` are `a`..`e` (a lease is named after its peer), `node(66)` a hostile one.

fn t(ms: u64) -> UnixMillis {
    UnixMillis(ms)
}

#[test]
fn grant_renew_complete_happy_path() {
    let mut book = LeaseBook::new(cfg(1), &[10, 20]);
    let a = book.handle_bid(node(1), true, t(0)).unwrap();
    assert_eq!((a.shard, a.speculative), (ShardId(0), false));
    assert_eq!(a.expires_at, t(TTL));
    let b = book.handle_bid(node(2), true, t(10)).unwrap();
    assert_eq!(b.shard, ShardId(1));
    assert!(b.epoch > a.epoch);
    assert_eq!(
        book.handle_renew(a.shard, a.epoch, node(1), 5, t(500)),
        Ok(t(500 + TTL))
    );
    assert_eq!(
        book.handle_complete(a.shard, a.epoch, node(1), t(600)),
        Ok(vec![])
    );
    assert_eq!(book.shard(a.shard).unwrap().phase, ShardPhase::Done);
    assert_eq!(
        book.handle_complete(a.shard, a.epoch, node(1), t(700)),
        Err(LeaseError::AlreadyDone(a.shard))
    );
    assert_eq!(book.poll_timeout(), Some(t(10 + TTL)));
}

#[test]
fn expiry_re_leases_and_fences_the_old_holder() {
    let mut book = LeaseBook::new(cfg(3), &[10]);
    let a = book.handle_bid(node(1), true, t(0)).unwrap();
    assert!(
        book.handle_timeout(t(TTL - 1)).is_empty(),
        "nothing expires early"
    );
    let lost = book.handle_timeout(t(TTL));
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].phase_after, ShardPhase::Free);
    let b = book.handle_bid(node(2), true, t(TTL + 1)).unwrap();
    assert_eq!(b.shard, a.shard);
    assert!(b.epoch > a.epoch);
    // The silent worker comes back late: its epoch is stale.
    assert_eq!(
        book.handle_complete(a.shard, a.epoch, node(1), t(TTL + 2)),
        Err(LeaseError::StaleEpoch {
            shard: a.shard,
            epoch: a.epoch
        })
    );
    // Someone else presenting b's epoch is refused too.
    assert!(matches!(
        book.handle_complete(b.shard, b.epoch, node(1), t(TTL + 2)),
        Err(LeaseError::NotHolder { .. })
    ));
    assert!(
        book.handle_complete(b.shard, b.epoch, node(2), t(TTL + 3))
            .is_ok()
    );
}

#[test]
fn retries_are_bounded() {
    let mut book = LeaseBook::new(cfg(1), &[10]);
    let a = book.handle_bid(node(1), true, t(0)).unwrap();
    let lost = book.handle_timeout(a.expires_at);
    assert_eq!(lost[0].phase_after, ShardPhase::Free);
    book.handle_bid(node(2), true, t(TTL + 2)).unwrap();
    let lost = book.handle_timeout(t(2 * TTL + 2));
    assert_eq!(lost[0].phase_after, ShardPhase::Failed);
    assert!(book.is_finished());
    assert_eq!(book.handle_bid(node(3), true, t(3 + TTL)), None);
    assert_eq!(
        book.shard(ShardId(0)).unwrap().last_error.as_deref(),
        Some("lease expired")
    );
}

#[test]
fn tail_copy_goes_to_another_peer_and_first_completion_wins() {
    let mut book = LeaseBook::new(cfg(3), &[100, 100]);
    let a = book.handle_bid(node(1), true, t(0)).unwrap();
    let b = book.handle_bid(node(2), true, t(0)).unwrap();
    book.handle_renew(a.shard, a.epoch, node(1), 90, t(500))
        .unwrap();
    book.handle_renew(b.shard, b.epoch, node(2), 10, t(500))
        .unwrap();
    assert_eq!(
        book.handle_bid(node(3), false, t(600)),
        None,
        "copies only if allowed"
    );
    let c = book.handle_bid(node(3), true, t(600)).unwrap();
    assert!(c.speculative);
    assert_eq!(c.shard, b.shard, "the slowest shard is copied");
    // Never a copy of one's own shard, at most one copy per shard.
    assert_eq!(book.handle_bid(node(1), true, t(600)), None);
    let d = book.handle_bid(node(4), true, t(600)).unwrap();
    assert_eq!(d.shard, a.shard);
    assert_eq!(book.handle_bid(node(5), true, t(600)), None);
    let cancelled = book
        .handle_complete(c.shard, c.epoch, node(3), t(700))
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].peer, node(2));
    assert!(
        book.handle_renew(b.shard, b.epoch, node(2), 20, t(800))
            .is_err()
    );
}

#[test]
fn a_worker_going_away_costs_the_shard_nothing() {
    let mut book = LeaseBook::new(cfg(0), &[10]);
    for i in 0..5 {
        let l = book.handle_bid(node(1), true, t(i)).unwrap();
        let lost = book
            .handle_abandon(l.shard, l.epoch, node(1), "shutdown", false, t(i))
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
    book.handle_bid(node(1), true, t(0)).unwrap();
    assert_eq!(book.open_count(t(499)), 0);
    assert_eq!(book.handle_bid(node(2), true, t(499)), None);
    assert_eq!(book.open_count(t(500)), 1);
    assert!(book.handle_bid(node(2), true, t(500)).unwrap().speculative);
    assert_eq!(book.open_count(t(501)), 0);
}

#[test]
fn a_surviving_copy_becomes_primary() {
    let mut book = LeaseBook::new(cfg(0), &[10]);
    let a = book.handle_bid(node(1), true, t(0)).unwrap();
    let b = book.handle_bid(node(2), true, t(500)).unwrap();
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
    let a = book.handle_bid(node(1), true, t(0)).unwrap();
    let b = book.handle_bid(node(2), true, t(0)).unwrap();
    book.handle_complete(b.shard, b.epoch, node(2), t(1))
        .unwrap();
    let restored = LeaseBook::restore(cfg(2), book.shards().to_vec(), Epoch(0), t(0));
    // Holders keep their leases, with at least the restart grace to renew.
    let mut expected = book.shards().to_vec();
    for h in expected.iter_mut().flat_map(|s| s.holders.iter_mut()) {
        h.expires_at = h.expires_at.max(t(GRACE_MS));
    }
    assert_eq!(restored.shards(), expected.as_slice());
    assert!(restored.next_epoch() > b.epoch);
    assert!(restored.check(a.shard, a.epoch, node(1), t(2)).is_ok());
    assert_eq!(restored.counts().done, 1);
}

#[test]
fn one_peer_cannot_fail_a_shard_alone() {
    let mut book = LeaseBook::new(cfg(1), &[10]);
    for i in 0..20 {
        let l = book.handle_bid(node(66), true, t(i * 100_000)).unwrap();
        book.handle_abandon(l.shard, l.epoch, node(66), "x", true, t(i * 100_000))
            .unwrap();
    }
    let e = book.shard(ShardId(0)).unwrap();
    // Failed give-backs charge the peer, not the shard.
    assert_eq!((e.phase, e.failures), (ShardPhase::Free, 0));
    assert_eq!(e.failed_by, vec![node(66)]);
    // Expiries do count against the shard, once per distinct peer.
    let l = book.handle_bid(node(2), true, t(3_000_000)).unwrap();
    let lost = book.handle_timeout(l.expires_at);
    assert_eq!(lost[0].phase_after, ShardPhase::Free);
    let l = book.handle_bid(node(3), true, t(4_000_000)).unwrap();
    let lost = book.handle_timeout(l.expires_at);
    assert_eq!(lost[0].phase_after, ShardPhase::Failed);
    assert!(lost[0].peer_fault);
}

#[test]
fn a_failed_shard_goes_to_another_peer_while_one_is_around() {
    let mut book = LeaseBook::new(cfg(3), &[10, 10]);
    book.handle_bid(node(2), true, t(0)).unwrap(); // b is around (and holds shard 0)
    let a = book.handle_bid(node(1), true, t(0)).unwrap();
    assert_eq!(a.shard, ShardId(1));
    book.handle_abandon(
        a.shard,
        a.epoch,
        node(1),
        "No space left on device",
        true,
        t(1),
    )
    .unwrap();
    // a backs off; after that, b has bid recently, so a does not get shard 1 back.
    assert!(matches!(
        book.admission(node(1), t(2)),
        Admission::BackOff { .. }
    ));
    book.note_bid(node(2), t(TTL)); // b bid again (at its cap: nothing granted)
    assert_eq!(book.handle_bid(node(1), true, t(TTL + 1)), None);
    assert_eq!(
        book.handle_bid(node(2), true, t(TTL + 2)).unwrap().shard,
        ShardId(1)
    );
    // Alone, a peer does get a shard it failed before.
    let mut book = LeaseBook::new(cfg(3), &[10]);
    let l = book.handle_bid(node(1), true, t(0)).unwrap();
    book.handle_abandon(l.shard, l.epoch, node(1), "x", true, t(0))
        .unwrap();
    assert!(book.handle_bid(node(1), true, t(5 * TTL)).is_some());
}

#[test]
fn repeated_faults_exclude_a_peer_and_completions_raise_its_cap() {
    let mut book = LeaseBook::new(cfg(10), &[10; 8]);
    assert_eq!(book.peer_cap(node(1)), INITIAL_PEER_CAP);
    let mut now = 0;
    for _ in 0..MAX_PEER_FAULTS {
        let l = book.handle_bid(node(1), true, t(now)).unwrap();
        book.handle_abandon(
            l.shard,
            l.epoch,
            node(1),
            "engine failure: disk full",
            true,
            t(now),
        )
        .unwrap();
        now += 100 * TTL;
    }
    // Alone, it is only backed off; with another peer around, it is excluded.
    assert_eq!(book.admission(node(1), t(now)), Admission::Admitted);
    book.note_bid(node(2), t(now));
    assert!(matches!(
        book.admission(node(1), t(now)),
        Admission::Excluded { faults: 3, .. }
    ));
    let b = book.handle_bid(node(2), true, t(now)).unwrap();
    book.handle_complete(b.shard, b.epoch, node(2), t(now))
        .unwrap();
    assert_eq!(book.completed_by(node(2)), 1);
    assert_eq!(book.peer_cap(node(2)), INITIAL_PEER_CAP + 1);
}

#[test]
fn a_lease_without_progress_is_revoked() {
    let mut book = LeaseBook::new(cfg(3), &[10]);
    let a = book.handle_bid(node(1), true, t(0)).unwrap();
    let mut now = 0;
    // Progress keeps it alive.
    for rows in 1..=5 {
        now += TTL / 2;
        assert!(
            book.handle_renew(a.shard, a.epoch, node(1), rows, t(now))
                .is_ok()
        );
    }
    // Then renewals with no progress: fine for a while, revoked after STALL_TTLS TTLs.
    let stalled_from = now;
    loop {
        now += TTL / 2;
        match book.handle_renew(a.shard, a.epoch, node(1), 5, t(now)) {
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
    let a = book.handle_bid(node(1), true, t(0)).unwrap();
    book.handle_renew(a.shard, a.epoch, node(1), 10, t(1))
        .unwrap();
    for i in 1..20 {
        assert!(
            book.handle_renew(a.shard, a.epoch, node(1), 10, t(i * TTL / 2))
                .is_ok()
        );
    }
}

#[test]
fn a_restart_gives_holders_a_grace_ttl_and_reopens_within_new_retries() {
    let mut book = LeaseBook::new(cfg(0), &[10, 10]);
    let a = book.handle_bid(node(1), true, t(0)).unwrap();
    let b = book.handle_bid(node(2), true, t(0)).unwrap();
    book.handle_renew(a.shard, a.epoch, node(1), 1, t(TTL - 1))
        .unwrap();
    book.handle_timeout(b.expires_at);
    assert_eq!(book.counts().failed, 1);
    // The seeder was down far longer than the TTL: the holder still has one TTL to renew.
    let down_until = t(50 * TTL);
    let mut restored = LeaseBook::restore(cfg(0), book.shards().to_vec(), Epoch(0), down_until);
    assert!(restored.handle_timeout(down_until).is_empty());
    assert!(
        restored
            .handle_renew(a.shard, a.epoch, node(1), 0, t(50 * TTL + 10))
            .is_ok()
    );
    assert_eq!(
        restored.counts().failed,
        1,
        "same max_retries: still failed"
    );
    // A raised --max-retries reopens it; so does --retry-failed.
    let raised = LeaseBook::restore(cfg(1), book.shards().to_vec(), Epoch(0), down_until);
    assert_eq!(raised.counts().failed, 0);
    assert_eq!(restored.reopen_failed(), vec![b.shard]);
    assert_eq!(restored.shard(b.shard).unwrap().failures, 0);
    // The persisted high-water mark wins over what the entries show.
    let high = LeaseBook::restore(cfg(0), book.shards().to_vec(), Epoch(40), down_until);
    assert_eq!(high.next_epoch(), Epoch(40));
}

mod reference_model;
