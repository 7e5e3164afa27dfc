//! The archive transfer stream: verified delivery, refusal, corruption, resumption.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ldawt::model::ids::{DatasetId, ShardId};
use ldawt::net::{Event, FileDecision, NetError};
use ldawt::protocol::swarm::{FileKind, TransferHeader};
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
        epoch: 5,
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
    refuse: Option<String>,
    verdict: Result<(), String>,
) -> JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        while let Some(event) = events.recv().await {
            match event {
                Event::IncomingFile { decide, .. } => {
                    seen.offers += 1;
                    let decision = match &refuse {
                        Some(reason) => FileDecision::Reject {
                            reason: reason.clone(),
                        },
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
    p.sender
        .client
        .send_file(p.receiver.peer_id(), header(50 * MB as u64, sha), &src)
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
        Some("stale epoch 5, current is 6".into()),
        Ok(()),
    );
    let (src, sha) = random_file(p.dir.path(), "a.bin", MB, 2);
    let err = p
        .sender
        .client
        .send_file(p.receiver.peer_id(), header(MB as u64, sha), &src)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NetError::Rejected(r) if r.contains("stale epoch 5")),
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
        Err("shard already done".into()),
    );
    let (src, sha) = random_file(p.dir.path(), "a.bin", MB, 2);
    let err = p
        .sender
        .client
        .send_file(p.receiver.peer_id(), header(MB as u64, sha), &src)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NetError::Rejected(r) if r == "shard already done"),
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
    let err = p
        .sender
        .client
        .send_file(p.receiver.peer_id(), header(3 * MB as u64, wrong), &src)
        .await
        .unwrap_err();
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
    let err = p
        .sender
        .client
        .send_file(p.receiver.peer_id(), header(3 * MB as u64, sha), &src)
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Mismatch(_)), "{err}");
    p.sender
        .client
        .send_file(p.receiver.peer_id(), header(3 * MB as u64, sha), &src)
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
    p.sender
        .client
        .send_file(p.receiver.peer_id(), header(size as u64, sha), &src)
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

    p.sender
        .client
        .send_file(p.receiver.peer_id(), header(size as u64, sha), &src)
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
