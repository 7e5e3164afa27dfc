//! What the seeder accepts, on real files: a forged delivery is refused as invalid, its files
//! deleted, its shard re-leased and finished by an honest worker; transfers larger than their
//! shard or than the free disk are refused before any byte (a usual-size one that cannot fit
//! stops the seeder); an expired lease's partial file is deleted; a garbage results file in
//! `--out` does not stop finalize.

use sha2::Digest;

use super::driver::Driver;
use super::test_support::{
    coordinator, deliver, grant, header, ok_row, read_results, setup, started,
};
use super::*;
use crate::model::ids::seeded_node_id as node;
use crate::protocol::control::{ControlRequest, ControlResponse, RejectReason};
use crate::protocol::transfer::FileKind;
use crate::results::ResultsWriter;

// Peers: `node(66)` is the forger, `node(7)` the honest worker, `node(23)` a worker.

fn reason(r: &ControlResponse) -> Option<RejectReason> {
    match r {
        ControlResponse::Rejected(refusal) => Some(refusal.reason),
        _ => None,
    }
}

#[tokio::test]
async fn a_forged_delivery_is_refused_and_the_shard_goes_to_an_honest_worker() {
    let s = setup(10, 10);
    let ds = s.seeded.id;
    let tmp = s.out.parent().unwrap().join("w");
    let mut c = started(&s, 10_000).await;
    let g = grant(&mut c, node(66), ds, 0).await;
    let rows = match c
        .handle_request(
            node(66),
            ControlRequest::Rows {
                dataset: ds,
                shard: g.shard,
                epoch: g.epoch,
            },
            UnixMillis(1),
        )
        .await
    {
        ControlResponse::Rows(r) => r,
        other => panic!("{other:?}"),
    };
    // A 1-byte archive and results claiming every row ok, with a traversal member.
    std::fs::create_dir_all(&tmp).unwrap();
    let archive = tmp.join("forged.tar.gz");
    std::fs::write(&archive, b"x").unwrap();
    let results = tmp.join("forged.results.parquet");
    let mut w = ResultsWriter::create(&results).unwrap();
    for r in &rows {
        w.push(ok_row(
            r,
            200_000_000_000,
            hex::encode(sha2::Sha256::digest(b"x")),
            "../../../../etc/cron.d/forged".into(),
        ))
        .unwrap();
    }
    w.finish().unwrap();
    for (kind, p) in [(FileKind::Archive, &archive), (FileKind::Results, &results)] {
        c.accept_local_file(node(66), &header(&g, kind), p, UnixMillis(2))
            .await
            .unwrap();
    }
    let r = c
        .handle_request(
            node(66),
            ControlRequest::Complete {
                dataset: ds,
                shard: g.shard,
                epoch: g.epoch,
                ok: 10,
                failed: 0,
                bytes: 2_000_000_000_000,
            },
            UnixMillis(3),
        )
        .await;
    assert_eq!(reason(&r), Some(RejectReason::Invalid), "{r:?}");
    assert_eq!(c.invalid_deliveries().get(&node(66)), Some(&1));
    let staged = std::fs::read_dir(s.out.join(".incoming").join(ds.to_hex()))
        .unwrap()
        .count();
    assert_eq!(staged, 0, "the forged files are deleted");
    assert_eq!(c.phase_of(ds, g.shard), Some(ShardPhase::Free));
    assert!(!s.out.join(&g.archive_name).exists());

    // An honest worker gets the shard again and completes it.
    let honest = grant(&mut c, node(7), ds, 10).await;
    assert_eq!(honest.shard, g.shard);
    assert!(honest.epoch > g.epoch);
    assert_eq!(
        deliver(&mut c, node(7), &honest, &tmp.join("good"), 11).await,
        ControlResponse::Ack
    );
    assert!(c.is_finished());
    let reports = c.finalize().await.unwrap();
    let rep = &reports[0];
    assert_eq!((rep.ok, rep.failed), (10, 0));
    let honest_bytes: u64 = (0..10u64).map(|i| format!("image {i}").len() as u64).sum();
    assert_eq!(rep.bytes, honest_bytes, "bytes are the verified ones");
    assert_eq!(
        rep.shards[0].failures, 0,
        "the forgery is charged to the forger, not to the shard"
    );
    assert_eq!(rep.shards[0].done_by, Some(node(7)));
    let merged = read_results(&s.out.join("results.parquet"));
    assert_eq!(merged.len(), 10);
    assert!(
        merged.iter().all(|r| r
            .2
            .as_deref()
            .is_some_and(|m| !m.contains("..") && !m.contains("etc/"))),
        "{merged:?}"
    );
    assert!(
        !s.out.join(".incoming").exists(),
        "staging cleared at finish"
    );
}

#[tokio::test]
async fn oversized_transfers_are_refused_before_any_byte() {
    let s = setup(10, 10);
    let ds = s.seeded.id;
    let mut c = started(&s, 10_000).await;
    let g = grant(&mut c, node(23), ds, 0).await;
    let decide = async |c: &mut Driver, kind: FileKind, size: u64| {
        let mut h = header(&g, kind);
        h.size = size;
        match c.decide_file(node(23), &h, UnixMillis(1)).await {
            IntakeDecision::Accept { .. } => None,
            IntakeDecision::Reject(r) => Some(r.reason),
        }
    };
    assert_eq!(
        decide(&mut c, FileKind::Archive, 1 << 40).await,
        Some(RejectReason::NotAllowed)
    );
    assert_eq!(
        decide(&mut c, FileKind::Results, 1 << 30).await,
        Some(RejectReason::NotAllowed)
    );
    assert_eq!(decide(&mut c, FileKind::Archive, 1 << 20).await, None);
    c.cfg.intake.max_archive_bytes = Some(1_000);
    assert_eq!(
        decide(&mut c, FileKind::Archive, 1_001).await,
        Some(RejectReason::NotAllowed)
    );
    assert_eq!(decide(&mut c, FileKind::Archive, 1_000).await, None);
    // No room at all: an outsized (yet within bounds) announcement is only refused, it does
    // not stop the seeder; a shard of the usual size that cannot fit stops it (fail-stop).
    c.cfg.intake.disk_reserve = Some(u64::MAX / 2);
    c.cfg.intake.max_archive_bytes = None;
    assert_eq!(
        decide(&mut c, FileKind::Archive, 4 << 30).await,
        Some(RejectReason::StorageFailed)
    );
    assert!(c.storage_failure().is_none());
    assert_eq!(
        decide(&mut c, FileKind::Archive, 10).await,
        Some(RejectReason::StorageFailed)
    );
    let failure = c.storage_failure().expect("fail-stop").to_string();
    assert!(
        failure.contains("no room for a 10-byte archive"),
        "{failure}"
    );
    let parts: Vec<_> = std::fs::read_dir(s.out.join(".incoming").join(ds.to_hex()))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(parts.is_empty(), "nothing written: {parts:?}");
}

#[tokio::test]
async fn the_partial_file_of_an_expired_lease_is_deleted() {
    let s = setup(10, 10);
    let ds = s.seeded.id;
    let mut c = coordinator(&s, 1_000, Store::open(&s.data.join("leases.redb")).unwrap());
    c.add_dataset(s.seeded.clone(), UnixMillis(0))
        .await
        .unwrap();
    let g = grant(&mut c, node(23), ds, 0).await;
    let IntakeDecision::Accept { part_path } = c
        .decide_file(node(23), &header(&g, FileKind::Archive), UnixMillis(1))
        .await
    else {
        panic!("refused")
    };
    std::fs::write(&part_path, vec![0u8; 4096]).unwrap();
    c.handle_timeout(UnixMillis(500)).await;
    assert!(part_path.exists(), "the lease is still live");
    c.handle_timeout(UnixMillis(1_001)).await;
    assert!(
        !part_path.exists(),
        "the expired epoch's partial file is gone"
    );
}

#[tokio::test]
async fn a_garbage_results_file_in_out_does_not_stop_finalize() {
    let s = setup(20, 10);
    let ds = s.seeded.id;
    let tmp = s.out.parent().unwrap().join("w");
    let mut c = started(&s, 10_000).await;
    for (i, now) in [(0, 1), (1, 2)] {
        let g = grant(&mut c, node(23), ds, now).await;
        assert_eq!(
            deliver(&mut c, node(23), &g, &tmp.join(format!("{i}")), now).await,
            ControlResponse::Ack
        );
    }
    let bad = s.out.join("d-00001.results.parquet");
    assert!(bad.exists());
    std::fs::write(&bad, b"PAR1 garbage PAR1").unwrap();
    for _ in 0..2 {
        let reports = c.finalize().await.unwrap();
        let r = &reports[0];
        assert_eq!((r.ok, r.failed), (10, 10));
        assert_eq!(r.error_breakdown.get("results_unreadable"), Some(&10));
        assert_eq!(r.unreadable_files.len(), 1);
        assert!(
            r.unreadable_files[0].contains("d-00001.results.parquet"),
            "{:?}",
            r.unreadable_files
        );
        assert_eq!(read_results(&s.out.join("results.parquet")).len(), 20);
    }
}

/// The staged archive is a FIFO, so its verification waits until the test writes it: while it
/// waits on its blocking thread, the actor still answers a renewal at once, and a second
/// archive sent meanwhile does not replace the one being verified; the completion is then
/// committed with the verified file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_are_answered_while_a_completion_is_being_verified() {
    use std::io::Write;
    use std::sync::Arc;

    use crate::model::time::ManualClock;

    let s = setup(10, 10);
    let ds = s.seeded.id;
    let tmp = s.out.parent().unwrap().join("w");
    let c = started(&s, 10_000).await;
    let (gossip, _gossip_rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = tokio_util::sync::CancellationToken::new();
    let clock = Arc::new(ManualClock::new(UnixMillis(0)));
    let h = CoordinatorHandle::spawn(c.into_inner(), clock, gossip, cancel.clone());
    let g = match h
        .request(
            node(23),
            ControlRequest::Bid {
                dataset: ds,
                stats: super::test_support::worker_stats(),
            },
        )
        .await
    {
        ControlResponse::Granted(g) => g,
        other => panic!("{other:?}"),
    };
    let rows = match h
        .request(
            node(23),
            ControlRequest::Rows {
                dataset: ds,
                shard: g.shard,
                epoch: g.epoch,
            },
        )
        .await
    {
        ControlResponse::Rows(r) => r,
        other => panic!("{other:?}"),
    };
    let (archive, results) = super::test_support::worker_files(&tmp, &g.archive_name, &rows);
    let archive_bytes = std::fs::read(&archive).unwrap();
    std::fs::remove_file(&archive).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &archive,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    for (kind, p) in [(FileKind::Archive, &archive), (FileKind::Results, &results)] {
        h.local_file(node(23), header(&g, kind), p.clone())
            .await
            .unwrap();
    }
    let staged_archive = s
        .out
        .join(".incoming")
        .join(ds.to_hex())
        .join(format!("{:05}.e{}.archive.verifying", g.shard.0, g.epoch));
    let h2 = h.clone();
    let complete = tokio::spawn(async move {
        h2.request(
            node(23),
            ControlRequest::Complete {
                dataset: ds,
                shard: g.shard,
                epoch: g.epoch,
                ok: 0,
                failed: 0,
                bytes: 0,
            },
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let renew = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        h.request(
            node(23),
            ControlRequest::Renew {
                dataset: ds,
                shard: g.shard,
                epoch: g.epoch,
                rows_done: 10,
                throttled: 0,
            },
        ),
    )
    .await
    .expect("a renewal is not queued behind a verification");
    assert!(
        matches!(renew, ControlResponse::Renewed { .. }),
        "{renew:?}"
    );
    assert!(!complete.is_finished(), "the verification is still waiting");
    // The same lease sends another archive meanwhile: it must not be what gets promoted.
    let swapped = tmp.join("swapped.tar.gz");
    std::fs::write(&swapped, b"not what was verified").unwrap();
    h.local_file(node(23), header(&g, FileKind::Archive), swapped)
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&staged_archive)
            .unwrap();
        f.write_all(&archive_bytes).unwrap();
    })
    .await
    .unwrap();
    let done = tokio::time::timeout(std::time::Duration::from_secs(30), complete)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done, ControlResponse::Ack);
    use std::os::unix::fs::FileTypeExt;
    let stored = std::fs::symlink_metadata(s.out.join(&g.archive_name)).unwrap();
    assert!(
        stored.file_type().is_fifo(),
        "the verified file (the FIFO) is the one stored, not the later one"
    );
    cancel.cancel();
}

#[tokio::test]
async fn transfers_under_way_count_against_the_free_disk() {
    let s = setup(20, 10);
    let ds = s.seeded.id;
    let mut c = started(&s, 10_000).await;
    let g0 = grant(&mut c, node(23), ds, 0).await;
    let g1 = grant(&mut c, node(23), ds, 0).await;
    let st = rustix::fs::statvfs(&s.out).unwrap();
    let free = st.f_bavail * st.f_frsize;
    let size = (free / 4).min(1 << 30);
    assert!(size > 64 << 20, "the test needs some free disk");
    // Room for one transfer of `size` and a half, not two.
    c.cfg.intake.disk_reserve = Some(free - size - size / 2);
    let decide = async |c: &mut Driver, g: &crate::protocol::control::Grant| {
        let mut h = header(g, FileKind::Archive);
        h.size = size;
        match c.decide_file(node(23), &h, UnixMillis(1)).await {
            IntakeDecision::Accept { .. } => None,
            IntakeDecision::Reject(r) => Some(r.reason),
        }
    };
    assert_eq!(decide(&mut c, &g0).await, None);
    // Short only because another transfer holds space: busy, retried later.
    assert_eq!(decide(&mut c, &g1).await, Some(RejectReason::Busy));
    assert!(c.storage_failure().is_none());
    // The first one resuming is not counted twice.
    assert_eq!(decide(&mut c, &g0).await, None);
    // Once its lease is given back, its promise is released.
    let r = c
        .handle_request(
            node(23),
            ControlRequest::Abandon {
                dataset: ds,
                shard: g0.shard,
                epoch: g0.epoch,
                reason: "bye".into(),
                failed: false,
            },
            UnixMillis(2),
        )
        .await;
    assert_eq!(r, ControlResponse::Ack);
    assert_eq!(decide(&mut c, &g1).await, None);
}
