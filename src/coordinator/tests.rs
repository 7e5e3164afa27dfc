//! Coordinator tests on real files: grants, staging, fencing of stale epochs, resume from the
//! store, and the final results covering every input row exactly once.

use std::path::Path;
use std::time::Duration;

use super::driver::Driver;
use super::test_support::*;
use super::*;
use crate::model::ids::seeded_node_id as node;
use crate::protocol::control::{ControlRequest, ControlResponse, Grant, RejectReason};
use crate::protocol::transfer::FileKind;

// Peers: `node(1..=4)` are the `a`..`d` of the comments.

#[tokio::test]
async fn stale_epochs_are_fenced_and_every_row_is_accounted_once() {
    let s = setup(25, 10);
    let store = Store::open(&s.data.join("leases.redb")).unwrap();
    let mut c = coordinator(&s, 1_000, store);
    let ds = s.seeded.id;
    assert!(
        !c.add_dataset(s.seeded.clone(), UnixMillis(0))
            .await
            .unwrap()
    );
    let tmp = s.out.parent().unwrap().join("w");

    // Worker a takes shard 0 and goes silent; its lease expires and b gets the shard.
    let a0 = grant(&mut c, node(1), ds, 0).await;
    assert_eq!(a0.shard, ShardId(0));
    c.handle_timeout(UnixMillis(1_000)).await;
    let b0 = grant(&mut c, node(2), ds, 1_001).await;
    assert_eq!(b0.shard, ShardId(0));
    assert!(b0.epoch > a0.epoch);
    // a comes back late: its files and its completion are refused.
    let late = deliver(&mut c, node(1), &a0, &tmp.join("a"), 1_002).await;
    assert!(matches!(late, ControlResponse::Rejected { .. }), "{late:?}");
    assert!(matches!(
        c.decide_file(node(1), &header(&a0, FileKind::Archive), UnixMillis(1_002))
            .await,
        IntakeDecision::Reject { .. }
    ));
    // Completing without the files is refused too.
    let early = c
        .handle_request(
            node(2),
            ControlRequest::Complete {
                dataset: ds,
                shard: b0.shard,
                epoch: b0.epoch,
                ok: 0,
                failed: 0,
                bytes: 0,
            },
            UnixMillis(1_003),
        )
        .await;
    assert!(matches!(early, ControlResponse::Rejected { .. }));
    assert_eq!(
        deliver(&mut c, node(2), &b0, &tmp.join("b0"), 1_004).await,
        ControlResponse::Ack
    );
    assert!(s.out.join("d-00000.tar.gz").exists());
    assert!(s.out.join("d-00000.results.parquet").exists());
    // A duplicate completion is refused.
    let dup = deliver(&mut c, node(2), &b0, &tmp.join("b0bis"), 1_005).await;
    assert!(matches!(dup, ControlResponse::Rejected { .. }));

    let b1 = grant(&mut c, node(2), ds, 1_006).await;
    let b2 = grant(&mut c, node(2), ds, 1_006).await;
    assert_eq!(
        deliver(&mut c, node(2), &b1, &tmp.join("b1"), 1_100).await,
        ControlResponse::Ack
    );
    assert_eq!(
        deliver(&mut c, node(2), &b2, &tmp.join("b2"), 1_100).await,
        ControlResponse::Ack
    );
    assert!(c.is_finished());
    assert!(matches!(
        c.handle_request(
            node(1),
            ControlRequest::Bid {
                dataset: ds,
                stats: worker_stats()
            },
            UnixMillis(1_200)
        )
        .await,
        ControlResponse::NoWork { finished: true, .. }
    ));

    let reports = c.finalize().await.unwrap();
    assert_eq!(reports[0].ok, 25);
    assert_eq!(reports[0].shards_done, 3);
    let rows = read_results(&s.out.join("results.parquet"));
    let mut idx: Vec<u64> = rows.iter().map(|r| r.0).collect();
    idx.sort_unstable();
    assert_eq!(idx, (0..25).collect::<Vec<_>>(), "every row exactly once");
    assert!(rows.iter().all(|r| r.1 == "ok"));
    // The staging area is gone once the dataset is finalized.
    assert!(!s.out.join(".incoming").exists());
}

#[tokio::test]
async fn a_restarted_coordinator_resumes_and_failed_shards_are_reported() {
    let s = setup(20, 10);
    let ds = s.seeded.id;
    let tmp = s.out.parent().unwrap().join("w");
    let path = s.data.join("leases.redb");
    let (done_shard, held) = {
        let mut c = coordinator(&s, 1_000, Store::open(&path).unwrap());
        c.add_dataset(s.seeded.clone(), UnixMillis(0))
            .await
            .unwrap();
        let g0 = grant(&mut c, node(1), ds, 0).await;
        let g1 = grant(&mut c, node(1), ds, 0).await;
        assert_eq!(
            deliver(&mut c, node(1), &g0, &tmp.join("g0"), 10).await,
            ControlResponse::Ack
        );
        (g0, g1)
    };
    // "kill -9": a new coordinator on the same database.
    let mut store = None;
    for _ in 0..100 {
        if let Ok(st) = Store::open(&path) {
            store = Some(st);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = coordinator(&s, 1_000, store.unwrap());
    assert!(
        c.add_dataset(s.seeded.clone(), UnixMillis(20))
            .await
            .unwrap()
    );
    assert_eq!(c.phase_of(ds, done_shard.shard), Some(ShardPhase::Done));
    // The holder of the in-flight lease keeps renewing with its epoch.
    let renewed = c
        .handle_request(
            node(1),
            ControlRequest::Renew {
                dataset: ds,
                shard: held.shard,
                epoch: held.epoch,
                rows_done: 3,
                throttled: 0,
            },
            UnixMillis(500),
        )
        .await;
    assert!(matches!(renewed, ControlResponse::Renewed { .. }));
    // Then it gives the shard back failed (charged to "a" only) and two other peers let it
    // expire: the shard exhausts its retries (max_retries = 1).
    let r = c
        .handle_request(
            node(1),
            ControlRequest::Abandon {
                dataset: ds,
                shard: held.shard,
                epoch: held.epoch,
                reason: "disk full".into(),
                failed: true,
            },
            UnixMillis(600),
        )
        .await;
    assert_eq!(r, ControlResponse::Ack);
    let again = grant(&mut c, node(2), ds, 700).await;
    assert_eq!(again.shard, held.shard);
    c.handle_timeout(UnixMillis(700 + 1_000)).await;
    assert!(!c.is_finished(), "a failed give-back is not an attempt");
    let third = grant(&mut c, node(3), ds, 1_800).await;
    assert_eq!(third.shard, held.shard);
    c.handle_timeout(UnixMillis(1_800 + 1_000)).await;
    assert!(c.is_finished());
    let reports = c.finalize().await.unwrap();
    assert_eq!(reports[0].failed_shards.len(), 1);
    assert_eq!(reports[0].failed_shards[0].shard, held.shard);
    assert_eq!(reports[0].ok, 10);
    assert_eq!(reports[0].failed, 10);
    let rows = read_results(&s.out.join("results.parquet"));
    assert_eq!(rows.len(), 20);
    assert_eq!(
        rows.iter()
            .filter(|r| r.1 == "failed" && r.2.is_none())
            .count(),
        10
    );
}

#[tokio::test]
async fn an_idle_peer_copies_the_slowest_shard_and_the_first_completion_wins() {
    let s = setup(20, 10);
    let ds = s.seeded.id;
    let tmp = s.out.parent().unwrap().join("w");
    let mut c = started(&s, 10_000).await;
    let a = grant(&mut c, node(1), ds, 0).await;
    let b = grant(&mut c, node(2), ds, 0).await;
    let renew = |shard, epoch, rows_done| ControlRequest::Renew {
        dataset: ds,
        shard,
        epoch,
        rows_done,
        throttled: 0,
    };
    c.handle_request(node(1), renew(a.shard, a.epoch, 9), UnixMillis(1_000))
        .await;
    c.handle_request(node(2), renew(b.shard, b.epoch, 1), UnixMillis(1_000))
        .await;
    // Nothing is free: the idle peer gets a copy of b's shard, the slow one.
    let copy = grant(&mut c, node(3), ds, 1_100).await;
    assert!(copy.speculative);
    assert_eq!(copy.shard, b.shard);
    assert_eq!(
        deliver(&mut c, node(3), &copy, &tmp.join("c"), 1_200).await,
        ControlResponse::Ack
    );
    // The original holder learns at its next renewal, and its files are refused.
    let r = c
        .handle_request(node(2), renew(b.shard, b.epoch, 5), UnixMillis(1_300))
        .await;
    assert!(matches!(r, ControlResponse::Rejected { .. }), "{r:?}");
    let late = deliver(&mut c, node(2), &b, &tmp.join("b"), 1_300).await;
    assert!(matches!(late, ControlResponse::Rejected { .. }), "{late:?}");
    assert_eq!(
        deliver(&mut c, node(1), &a, &tmp.join("a"), 1_400).await,
        ControlResponse::Ack
    );
    let reports = c.finalize().await.unwrap();
    assert_eq!(
        reports[0].shards[copy.shard.0 as usize].done_by,
        Some(node(3))
    );
    assert_eq!(read_results(&s.out.join("results.parquet")).len(), 20);
}

async fn reopen(path: &Path) -> Store {
    for _ in 0..100 {
        if let Ok(st) = Store::open(path) {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the lease database does not reopen");
}

async fn abandon_failed(c: &mut Driver, peer: NodeId, g: &Grant, now: u64) -> ControlResponse {
    c.handle_request(
        peer,
        ControlRequest::Abandon {
            dataset: g.dataset,
            shard: g.shard,
            epoch: g.epoch,
            reason: "No space left on device".into(),
            failed: true,
        },
        UnixMillis(now),
    )
    .await
}

#[tokio::test]
async fn failed_shards_reopen_on_rerun_faulty_peers_back_off_and_storage_failure_stops_all() {
    let s = setup(20, 10);
    let ds = s.seeded.id;
    let path = s.data.join("leases.redb");
    let first_epochs = {
        let mut c = coordinator(&s, 1_000, Store::open(&path).unwrap());
        c.add_dataset(s.seeded.clone(), UnixMillis(0))
            .await
            .unwrap();
        let a = grant(&mut c, node(1), ds, 0).await;
        assert_eq!(
            abandon_failed(&mut c, node(1), &a, 1).await,
            ControlResponse::Ack
        );
        // The peer that failed backs off; the shard goes to another peer.
        let bid = ControlRequest::Bid {
            dataset: ds,
            stats: worker_stats(),
        };
        let r = c.handle_request(node(1), bid, UnixMillis(2)).await;
        assert!(
            matches!(r, ControlResponse::NoWork { retry_after_ms, .. } if retry_after_ms >= 900),
            "{r:?}"
        );
        let b = grant(&mut c, node(2), ds, 3).await;
        assert_eq!(b.shard, a.shard);
        // "a"'s local failure cost the shard nothing: one expiry leaves it open.
        c.handle_timeout(UnixMillis(1_010)).await;
        assert_eq!(c.phase_of(ds, a.shard), Some(ShardPhase::Free));
        let d = grant(&mut c, node(4), ds, 1_020).await;
        assert_eq!(d.shard, a.shard);
        c.handle_timeout(UnixMillis(2_100)).await;
        // Two distinct peers let it expire, max_retries = 1: failed.
        assert_eq!(c.phase_of(ds, a.shard), Some(ShardPhase::Failed));
        (a.epoch, d.epoch)
    };
    // Rerun, same policy: still failed; epochs continue above every one issued.
    {
        let mut c = coordinator(&s, 1_000, reopen(&path).await);
        c.add_dataset(s.seeded.clone(), UnixMillis(10))
            .await
            .unwrap();
        assert_eq!(c.phase_of(ds, ShardId(0)), Some(ShardPhase::Failed));
        let g = grant(&mut c, node(3), ds, 11).await;
        assert!(g.epoch > first_epochs.1);
    }
    // Rerun with a raised --max-retries: reopened.
    {
        let mut c = coordinator(&s, 1_000, reopen(&path).await);
        c.cfg.lease.max_retries = 2;
        c.add_dataset(s.seeded.clone(), UnixMillis(20))
            .await
            .unwrap();
        assert_eq!(c.phase_of(ds, ShardId(0)), Some(ShardPhase::Free));
    }
    // Rerun with --retry-failed (even at the old policy): reopened with a fresh budget.
    let mut c = coordinator(&s, 1_000, reopen(&path).await);
    c.cfg.retry_failed = true;
    c.add_dataset(s.seeded.clone(), UnixMillis(30))
        .await
        .unwrap();
    assert_eq!(c.phase_of(ds, ShardId(0)), Some(ShardPhase::Free));
    let g = grant(&mut c, node(4), ds, 31).await;
    assert_eq!(g.shard, ShardId(0));
    // Fail-stop: once storage failed, nothing is granted, renewed or expired.
    c.fail_storage(&s.data, None, "commit failed".into());
    let r = c
        .handle_request(
            node(4),
            ControlRequest::Renew {
                dataset: ds,
                shard: g.shard,
                epoch: g.epoch,
                rows_done: 1,
                throttled: 0,
            },
            UnixMillis(32),
        )
        .await;
    match r {
        ControlResponse::Rejected(refusal) => {
            assert_eq!(refusal.reason, RejectReason::StorageFailed);
            assert!(
                refusal.detail.contains("seeder storage failed in"),
                "{refusal}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(c.handle_timeout(UnixMillis(1 << 40)).await.is_empty());
    assert!(c.storage_failure().is_some());
}
