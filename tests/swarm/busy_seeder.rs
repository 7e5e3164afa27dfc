//! Attack 11 (and the fault it stands for): a seeder whose transfer slots are all taken answers
//! an upload `busy`. The worker must keep its finished shard and deliver it later — not treat
//! the refusal as a lost lease, throw the archive away and download the rows again. Driven
//! against a real in-process worker by a seeder built on the project's `net` layer that
//! refuses the first uploads as busy; the fixture counts the requests per row.

use std::time::Duration;

use ldawt::input::UrlRow;
use ldawt::model::ids::{DatasetId, Epoch, ShardId};
use ldawt::model::time::UnixMillis;
use ldawt::net::{self, Event, FileDecision, NetConfig};
use ldawt::protocol::control::{ControlRequest, ControlResponse, Grant, Refusal, RejectReason};
use ldawt::protocol::gossip::Gossip;
use ldawt::protocol::transfer::FileKind;
use libp2p::identity::Keypair;
use tokio_util::sync::CancellationToken;

use super::kit::{node_config, spawn_node};

const ROWS: u64 = 5;
/// Upload offers answered `busy` before the seeder accepts.
const BUSY_OFFERS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_seeder_never_makes_a_worker_throw_a_finished_shard_away() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = ldawt::fixture::start(ldawt::fixture::FixtureConfig::default())
        .await
        .unwrap();
    let mut cfg = NetConfig::new(Keypair::generate_ed25519());
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    cfg.mdns = false;
    cfg.psk = Some(super::common::test_swarm_key());
    let (seeder, mut events, seeder_loop) = net::new(cfg).unwrap();
    tokio::spawn(seeder_loop.run());
    let mut join = None;
    for _ in 0..50 {
        if let Some(a) = seeder.listen_addrs().await.unwrap().first() {
            join = Some(a.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut wcfg = node_config(&tmp.path().join("worker"));
    wcfg.join = vec![join.expect("the seeder listens")];
    let stop_worker = CancellationToken::new();
    let (_, worker) = spawn_node(wcfg, stop_worker.clone());

    let dataset = DatasetId([11; 16]);
    let incoming = tmp.path().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let (mut granted, mut rows_served, mut busy, mut stored) = (0u32, 0u32, 0u32, Vec::new());
    let mut completed = None;
    let mut announce = tokio::time::interval(Duration::from_millis(200));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while completed.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no completion: granted {granted}, rows {rows_served}, busy {busy}, stored {stored:?}"
        );
        tokio::select! {
            _ = announce.tick() => {
                let _ = seeder.publish(Gossip::Dataset {
                    dataset,
                    name: "busy".into(),
                    shards_total: 1,
                    shards_done: 0,
                    shards_open: u32::from(granted == 0),
                    shards_failed: 0,
                    rows_total: ROWS,
                    sent_at: UnixMillis(0),
                }).await;
            }
            ev = events.recv() => match ev {
                Some(Event::Request { request, reply, .. }) => {
                    let answer = match request {
                        ControlRequest::Bid { .. } if granted == 0 => {
                            granted += 1;
                            ControlResponse::Granted(Grant {
                                dataset,
                                shard: ShardId(0),
                                epoch: Epoch(1),
                                expires_at: UnixMillis(u64::MAX / 2),
                                ttl_ms: 60_000,
                                rows: ROWS,
                                archive_name: "busy-00000.tar.gz".into(),
                                speculative: false,
                                settings: None,
                            })
                        }
                        ControlRequest::Bid { .. } => ControlResponse::NoWork {
                            retry_after_ms: 1_000,
                            finished: false,
                        },
                        ControlRequest::Rows { .. } => {
                            rows_served += 1;
                            ControlResponse::Rows((0..ROWS).map(|i| UrlRow {
                                index: i,
                                url: Some(fx.url(&format!("/b/{i}.jpg"))),
                                class: Some("bee".into()),
                                extra: Vec::new(),
                            }).collect())
                        }
                        ControlRequest::Renew { .. } => ControlResponse::Renewed {
                            expires_at: UnixMillis(u64::MAX / 2),
                        },
                        ControlRequest::Complete { epoch, .. } => {
                            completed = Some(epoch);
                            ControlResponse::Ack
                        }
                        ControlRequest::Abandon { reason, .. } => {
                            panic!("the worker gave its finished shard back: {reason}")
                        }
                    };
                    let _ = reply.send(answer);
                }
                Some(Event::IncomingFile { header, decide, .. }) => {
                    let decision = if busy < BUSY_OFFERS {
                        busy += 1;
                        FileDecision::Reject(Refusal::new(
                            RejectReason::Busy,
                            "every transfer slot is taken; retry later",
                        ))
                    } else {
                        FileDecision::Accept {
                            part_path: incoming.join(format!("{:?}.part", header.kind)),
                        }
                    };
                    let _ = decide.send(decision);
                }
                Some(Event::FileReceived { header, verdict, .. }) => {
                    stored.push(header.kind);
                    let _ = verdict.send(Ok(()));
                }
                Some(_) => {}
                None => panic!("the seeder's transport stopped"),
            }
        }
    }
    stop_worker.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("the worker stops")
        .unwrap();
    seeder.shutdown().await;

    assert_eq!(completed, Some(Epoch(1)));
    assert_eq!(
        busy, BUSY_OFFERS,
        "the worker offered again after each busy answer"
    );
    assert!(stored.contains(&FileKind::Archive) && stored.contains(&FileKind::Results));
    assert_eq!(rows_served, 1, "the rows were fetched once");
    for i in 0..ROWS {
        assert_eq!(
            fx.requests(&format!("/b/{i}.jpg")),
            1,
            "row {i} was downloaded once: the finished shard was kept"
        );
    }
    let summary = outcome.worker.expect("worker summary");
    assert_eq!((summary.completed, summary.lost), (1, 0), "{summary:?}");
}
