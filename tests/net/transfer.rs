//! The archive transfer stream: verified delivery, refusal, corruption, resumption.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ldawt::model::ids::{DatasetId, Epoch, ShardId};
use ldawt::net::{Event, FileDecision, NetError};
use ldawt::protocol::control::{Refusal, RejectReason};
use ldawt::protocol::transfer::{FileKind, TransferHeader};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::harness::{TestNode, WAIT, connect, spawn_node};

const MB: usize = 1 << 20;

fn random_file(dir: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, [u8; 32]) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, Sha256::digest(&bytes).into())
}

fn header(size: u64, sha256: [u8; 32]) -> TransferHeader {
    TransferHeader {
        dataset: DatasetId([9; 16]),
        shard: ShardId(3),
        epoch: Epoch(5),
        kind: FileKind::Archive,
        size,
        sha256,
    }
}

/// What the receiving application saw.
#[derive(Debug, Default)]
struct Seen {
    offers: usize,
    verified: Vec<PathBuf>,
}

/// A receiving application: accepts every file into `<dir>/incoming.part` (or refuses with
/// `refuse`), checks and moves verified files to `<dir>/stored`, answers `verdict`.
fn receiver_app(
    mut events: mpsc::Receiver<Event>,
    dir: PathBuf,
    refuse: Option<Refusal>,
    verdict: Result<(), Refusal>,
) -> JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        while let Some(event) = events.recv().await {
            match event {
                Event::IncomingFile { decide, .. } => {
                    seen.offers += 1;
                    let decision = match &refuse {
                        Some(refusal) => FileDecision::Reject(refusal.clone()),
                        None => FileDecision::Accept {
                            part_path: dir.join("incoming.part"),
                        },
                    };
                    decide.send(decision).unwrap();
                }
                Event::FileReceived {
                    header,
                    part_path,
                    verdict: answer,
                    ..
                } => {
                    let bytes = std::fs::read(&part_path).unwrap();
                    assert_eq!(bytes.len() as u64, header.size);
                    let sha: [u8; 32] = Sha256::digest(&bytes).into();
                    assert_eq!(sha, header.sha256, "net only reports verified files");
                    let stored = dir.join("stored");
                    std::fs::rename(&part_path, &stored).unwrap();
                    seen.verified.push(stored);
                    answer.send(verdict.clone()).unwrap();
                }
                _ => {}
            }
        }
        seen
    })
}

struct Pair {
    sender: TestNode,
    receiver: TestNode,
    dir: tempfile::TempDir,
}

async fn pair() -> Pair {
    let mut sender = spawn_node().await;
    let mut receiver = spawn_node().await;
    connect(&mut sender, &mut receiver).await;
    Pair {
        sender,
        receiver,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// Sends `src` (announced as `size` bytes with `sha`) from the pair's sender to its receiver.
async fn send(p: &Pair, size: usize, sha: [u8; 32], src: &Path) -> Result<(), NetError> {
    p.sender
        .client
        .send_file(p.receiver.peer_id(), header(size as u64, sha), src)
        .await
}

fn take_events(node: &mut TestNode) -> mpsc::Receiver<Event> {
    std::mem::replace(&mut node.events, mpsc::channel(1).1)
}

async fn finish(p: Pair, app: JoinHandle<Seen>) -> Seen {
    p.sender.stop().await;
    p.receiver.stop().await;
    tokio::time::timeout(WAIT, app).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_50_mb_file_arrives_verified_by_sha256() {
    let mut p = pair().await;
    let recv_dir = p.dir.path().join("recv");
    std::fs::create_dir(&recv_dir).unwrap();
    let app = receiver_app(take_events(&mut p.receiver), recv_dir.clone(), None, Ok(()));
    let (src, sha) = random_file(p.dir.path(), "archive.tar.gz", 50 * MB, 1);
    send(&p, 50 * MB, sha, &src)
        .await
        .expect("transfer succeeds");
    assert_eq!(
        std::fs::read(recv_dir.join("stored")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    let sent = p.sender.client.metrics();
    assert_eq!(sent.transfer_bytes_sent, 50 * MB as u64);
    assert_eq!(sent.transfers_sent, 1);
    assert_eq!(p.receiver.client.metrics().transfers_received, 1);
    let seen = finish(p, app).await;
    assert_eq!((seen.offers, seen.verified.len()), (1, 1));
}

#[tokio::test]
async fn refusals_before_and_after_the_bytes_reach_the_sender() {
    let mut p = pair().await;
    let app = receiver_app(
        take_events(&mut p.receiver),
        p.dir.path().to_path_buf(),
        Some(Refusal::new(
            RejectReason::Fenced,
            "stale epoch 5, current is 6",
        )),
        Ok(()),
    );
    let (src, sha) = random_file(p.dir.path(), "a.bin", MB, 2);
    let err = send(&p, MB, sha, &src).await.unwrap_err();
    assert!(
        matches!(&err, NetError::Rejected(r)
            if r.reason == RejectReason::Fenced && r.detail.contains("stale epoch 5")),
        "{err}"
    );
    assert_eq!(p.sender.client.metrics().transfer_bytes_sent, 0);
    let seen = finish(p, app).await;
    assert_eq!(seen.offers, 1);

    let mut p = pair().await;
    let app = receiver_app(
        take_events(&mut p.receiver),
        p.dir.path().to_path_buf(),
        None,
        Err(Refusal::new(RejectReason::Fenced, "shard already done")),
    );
    let (src, sha) = random_file(p.dir.path(), "a.bin", MB, 2);
    let err = send(&p, MB, sha, &src).await.unwrap_err();
    assert!(
        matches!(&err, NetError::Rejected(r) if r.detail == "shard already done"),
        "{err}"
    );
    finish(p, app).await;
}

#[tokio::test]
async fn corrupted_data_is_rejected_and_the_partial_copy_deleted() {
    let mut p = pair().await;
    let recv_dir = p.dir.path().join("recv");
    let app = receiver_app(take_events(&mut p.receiver), recv_dir.clone(), None, Ok(()));
    let (src, sha) = random_file(p.dir.path(), "a.bin", 3 * MB, 3);
    let mut wrong = sha;
    wrong[0] ^= 1;
    let err = send(&p, 3 * MB, wrong, &src).await.unwrap_err();
    assert!(
        matches!(&err, NetError::Mismatch(r) if r.contains("sha256")),
        "{err}"
    );
    assert!(err.is_retryable());
    assert!(!recv_dir.join("incoming.part").exists());

    // A corrupted prefix left by an earlier attempt fails verification once, then the retry
    // starts from zero and succeeds.
    let mut garbage = std::fs::read(&src).unwrap();
    garbage.truncate(MB);
    garbage[100] ^= 0xff;
    std::fs::write(recv_dir.join("incoming.part"), &garbage).unwrap();
    let err = send(&p, 3 * MB, sha, &src).await.unwrap_err();
    assert!(matches!(err, NetError::Mismatch(_)), "{err}");
    send(&p, 3 * MB, sha, &src)
        .await
        .expect("retry from zero succeeds");
    assert_eq!(
        std::fs::read(recv_dir.join("stored")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    let m = p.sender.client.metrics();
    assert_eq!(m.transfer_bytes_sent, (3 * MB + 2 * MB + 3 * MB) as u64);
    assert_eq!(m.transfer_bytes_resumed, MB as u64);
    let seen = finish(p, app).await;
    assert_eq!((seen.offers, seen.verified.len()), (3, 1));
}

#[tokio::test]
async fn a_transfer_resumes_from_the_receivers_partial_copy() {
    let mut p = pair().await;
    let recv_dir = p.dir.path().join("recv");
    std::fs::create_dir(&recv_dir).unwrap();
    let app = receiver_app(take_events(&mut p.receiver), recv_dir.clone(), None, Ok(()));
    let size = 30 * MB;
    let (src, sha) = random_file(p.dir.path(), "a.bin", size, 4);
    let bytes = std::fs::read(&src).unwrap();
    std::fs::write(recv_dir.join("incoming.part"), &bytes[..(20 * MB + 17)]).unwrap();
    send(&p, size, sha, &src)
        .await
        .expect("resumed transfer succeeds");
    let m = p.sender.client.metrics();
    assert_eq!(m.transfer_bytes_resumed, (20 * MB + 17) as u64);
    assert_eq!(
        m.transfer_bytes_sent,
        (10 * MB - 17) as u64,
        "only the rest is sent"
    );
    assert_eq!(std::fs::read(recv_dir.join("stored")).unwrap(), bytes);
    finish(p, app).await;
}

#[tokio::test]
async fn an_interrupted_transfer_is_resumed_by_the_retry() {
    let mut p = pair().await;
    let recv_dir = p.dir.path().join("recv");
    std::fs::create_dir(&recv_dir).unwrap();
    let app = receiver_app(take_events(&mut p.receiver), recv_dir.clone(), None, Ok(()));
    let size = 100 * MB;
    let (src, sha) = random_file(p.dir.path(), "a.bin", size, 5);
    let part = recv_dir.join("incoming.part");

    // Cut the first attempt once a few MB have landed by killing the sending task: its stream
    // is dropped mid-file.
    let client = p.sender.client.clone();
    let (to, path) = (p.receiver.peer_id(), src.clone());
    let first =
        tokio::spawn(async move { client.send_file(to, header(size as u64, sha), &path).await });
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < 4 * MB as u64 {
        assert!(tokio::time::Instant::now() < deadline, "no data arrived");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    first.abort();
    assert!(
        first.await.unwrap_err().is_cancelled(),
        "the transfer was cut mid-way"
    );
    // Wait until the receiver has given up on the broken stream and flushed what it got.
    let deadline = tokio::time::Instant::now() + WAIT;
    while p.receiver.client.metrics().transfers_failed == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "receiver noticed the cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < size as u64, "kept {kept} bytes");
    let sent_before = p.sender.client.metrics().transfer_bytes_sent;

    send(&p, size, sha, &src)
        .await
        .expect("the retry completes");
    let m = p.sender.client.metrics();
    assert_eq!(m.transfer_bytes_resumed, kept);
    assert_eq!(
        m.transfer_bytes_sent - sent_before,
        size as u64 - kept,
        "the retry sent only the missing bytes"
    );
    assert_eq!(
        std::fs::read(recv_dir.join("stored")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    let seen = finish(p, app).await;
    assert_eq!((seen.offers, seen.verified.len()), (2, 1));
}

#[tokio::test]
async fn inbound_transfers_beyond_the_bound_wait_for_a_slot() {
    let mut sender = spawn_node().await;
    let mut one_slot = crate::harness::tuning();
    one_slot.max_inbound_transfers = 1;
    let mut receiver =
        crate::harness::spawn_node_with(None, "/ip4/127.0.0.1/tcp/0", Vec::new(), one_slot).await;
    connect(&mut sender, &mut receiver).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, sha_a) = random_file(dir.path(), "a.bin", MB, 10);
    let (b, sha_b) = random_file(dir.path(), "b.bin", MB, 11);
    let to = receiver.peer_id();
    let spawn_send = |path: PathBuf, sha: [u8; 32]| {
        let client = sender.client.clone();
        tokio::spawn(async move { client.send_file(to, header(MB as u64, sha), &path).await })
    };
    let first = spawn_send(a, sha_a);
    let held = crate::harness::wait_for(&mut receiver.events, "first offer", |e| match e {
        Event::IncomingFile { decide, header, .. } => Some((decide, header)),
        _ => None,
    })
    .await;
    let second = spawn_send(b, sha_b);
    // While the only slot is held, the second offer does not reach the application.
    let early = tokio::time::timeout(Duration::from_millis(800), async {
        loop {
            if let Some(Event::IncomingFile { .. }) = receiver.events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(
        early.is_err(),
        "a second transfer got a slot while the only one was busy"
    );
    held.0
        .send(FileDecision::Accept {
            part_path: dir.path().join("first.part"),
        })
        .unwrap();
    let mut offers = vec![held.1.sha256];
    let mut stored = 0;
    while stored < 2 {
        match tokio::time::timeout(WAIT, receiver.events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Event::IncomingFile { decide, header, .. } => {
                offers.push(header.sha256);
                let part = dir.path().join("second.part");
                decide
                    .send(FileDecision::Accept { part_path: part })
                    .unwrap();
            }
            Event::FileReceived { verdict, .. } => {
                stored += 1;
                verdict.send(Ok(())).unwrap();
            }
            _ => {}
        }
    }
    first.await.unwrap().expect("first transfer");
    second.await.unwrap().expect("second transfer");
    assert_eq!(
        offers,
        vec![sha_a, sha_b],
        "offers came one after the other"
    );
    sender.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn many_small_transfers_in_parallel_all_succeed_first_time() {
    let mut p = pair().await;
    let recv_dir = p.dir.path().join("recv");
    std::fs::create_dir(&recv_dir).unwrap();
    let mut events = take_events(&mut p.receiver);
    let app_dir = recv_dir.clone();
    let app = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(event) = events.recv().await {
            match event {
                Event::IncomingFile { decide, header, .. } => {
                    n += 1;
                    let part = app_dir.join(format!("{}-{n}.part", hex::encode(header.sha256)));
                    tokio::spawn(async move {
                        decide
                            .send(FileDecision::Accept { part_path: part })
                            .unwrap();
                    });
                }
                Event::FileReceived { verdict, .. } => {
                    tokio::spawn(async move {
                        verdict.send(Ok(())).unwrap();
                    });
                }
                _ => {}
            }
        }
    });
    let mut sends = Vec::new();
    for i in 0..40u64 {
        let size = 100_000 + (i as usize * 48_611) % 1_900_000;
        let (src, sha) = random_file(p.dir.path(), &format!("f{i}.bin"), size, 100 + i);
        let client = p.sender.client.clone();
        let to = p.receiver.peer_id();
        sends.push(tokio::spawn(async move {
            client.send_file(to, header(size as u64, sha), &src).await
        }));
    }
    let mut failures = Vec::new();
    for s in sends {
        if let Err(e) = s.await.unwrap() {
            failures.push(e.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 40 failed: {failures:?}",
        failures.len()
    );
    assert_eq!(p.sender.client.metrics().transfers_sent, 40);
    app.abort();
    p.sender.stop().await;
    p.receiver.stop().await;
}
