//! A busy link stays up: one sender pushes several 4 MB files at once, round after round, for
//! a bounded time while its runtime is also kept busy by CPU-bound tasks (a worker saturated by
//! its downloads); every transfer completes and neither side sees the connection close.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ldawt::model::ids::{DatasetId, Epoch, ShardId};
use ldawt::net::{Event, FileDecision};
use ldawt::protocol::transfer::{FileKind, TransferHeader};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::harness::{connect, spawn_node};

const MB: usize = 1 << 20;

/// Accepts every file into `<dir>/<shard>.part` and approves it; counts disconnects.
fn receiver(
    mut events: mpsc::Receiver<Event>,
    dir: std::path::PathBuf,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut disconnects = 0;
        while let Some(event) = events.recv().await {
            match event {
                Event::IncomingFile { header, decide, .. } => {
                    let part_path = dir.join(format!("{}.part", header.shard.0));
                    let _ = decide.send(FileDecision::Accept { part_path });
                }
                Event::FileReceived {
                    part_path, verdict, ..
                } => {
                    let _ = std::fs::remove_file(&part_path);
                    let _ = verdict.send(Ok(()));
                }
                Event::PeerDisconnected { .. } => disconnects += 1,
                _ => {}
            }
        }
        disconnects
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_sender_keeps_its_connection_through_concurrent_transfers() {
    let mut sender = spawn_node().await;
    let mut receiver_node = spawn_node().await;
    connect(&mut sender, &mut receiver_node).await;
    let dir = tempfile::tempdir().unwrap();
    let recv_dir = dir.path().join("recv");
    std::fs::create_dir(&recv_dir).unwrap();
    let events = std::mem::replace(&mut receiver_node.events, mpsc::channel(1).1);
    let app = receiver(events, recv_dir);

    let mut bytes = vec![0u8; 4 * MB];
    fastrand::Rng::with_seed(7).fill(&mut bytes);
    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    let src = dir.path().join("archive.tar");
    std::fs::write(&src, &bytes).unwrap();

    // CPU hogs on the same runtime, yielding only now and then.
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..200_000u64 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
                    }
                    tokio::task::yield_now().await;
                }
                x
            })
        })
        .collect();

    let started = Instant::now();
    let (mut round, mut sent) = (0u32, 0usize);
    while started.elapsed() < Duration::from_secs(8) && round < 50 {
        let sends = (0..4u32).map(|k| {
            let header = TransferHeader {
                dataset: DatasetId([3; 16]),
                shard: ShardId(round * 4 + k),
                epoch: Epoch(1),
                kind: FileKind::Archive,
                size: bytes.len() as u64,
                sha256: sha,
            };
            let (client, peer, src) = (sender.client.clone(), receiver_node.peer_id(), src.clone());
            async move { client.send_file(peer, header, &src).await }
        });
        for (k, r) in futures::future::join_all(sends)
            .await
            .into_iter()
            .enumerate()
        {
            r.unwrap_or_else(|e| panic!("round {round}, transfer {k}: {e}"));
            sent += 1;
        }
        round += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        h.await.unwrap();
    }
    assert!(sent >= 4, "at least one round of transfers");
    let sender_events = sender.stop().await;
    drop(sender_events);
    receiver_node.stop().await;
    let disconnects = tokio::time::timeout(Duration::from_secs(20), app)
        .await
        .unwrap()
        .unwrap();
    // The receiver sees the sender leave once, at the end (`stop`), never before.
    assert!(
        disconnects <= 1,
        "{disconnects} disconnects during {sent} transfers"
    );
    eprintln!(
        "busy link: {sent} transfers of 4 MB in {:?}, no disconnect",
        started.elapsed()
    );
}
