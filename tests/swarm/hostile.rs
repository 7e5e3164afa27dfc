//! Hostile peers built on the project's own `net` layer, driven against a real in-process
//! worker node over loopback: a rogue seeder whose grants name files outside the worker's
//! data dir.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ldawt::input::UrlRow;
use ldawt::model::ids::{DatasetId, Epoch, ShardId};
use ldawt::model::time::UnixMillis;
use ldawt::net::{self, Event, NetConfig};
use ldawt::protocol::control::{ControlRequest, ControlResponse, Grant};
use ldawt::protocol::gossip::Gossip;
use libp2p::identity::Keypair;
use tokio_util::sync::CancellationToken;

use super::kit::{
    finished, insider, node_config, seeder_config, spawn_node, start_seeder, worker_config,
};
use super::util::{assert_exactly_once, fixture_seed};

/// What the rogue seeder saw the worker do.
#[derive(Debug, Default)]
struct Seen {
    bids: u32,
    rows_requests: u32,
    abandons: Vec<String>,
}

/// Every file under `dir` (recursively) whose name starts with `prefix`.
fn files_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name().to_string_lossy().starts_with(prefix) {
                found.push(p);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_seeder_cannot_make_a_worker_write_outside_its_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = ldawt::fixture::start(ldawt::fixture::FixtureConfig::default())
        .await
        .unwrap();
    // The worker's data dir sits two levels down, so `../../x.tar` from its work dir would land
    // in `tmp` itself; an absolute name points into an existing directory of `tmp`.
    let worker_data = tmp.path().join("nodes").join("worker");
    let abs_dir = tmp.path().join("abs");
    std::fs::create_dir_all(&abs_dir).unwrap();
    let names = [
        "../../x.tar".to_string(),
        "/abs/x.tar".to_string(),
        abs_dir.join("x.tar").display().to_string(),
        "../../../../../../x.tar.gz".to_string(),
    ];

    let mut cfg = NetConfig::new(Keypair::generate_ed25519());
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    cfg.mdns = false;
    // The rogue holds the swarm key (an insider): the defence is the worker's, not the key's.
    cfg.psk = Some(super::common::test_swarm_key());
    let (rogue, mut events, rogue_loop) = net::new(cfg).unwrap();
    tokio::spawn(rogue_loop.run());
    let mut addr = None;
    for _ in 0..50 {
        if let Some(a) = rogue.listen_addrs().await.unwrap().first() {
            addr = Some(a.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let join = addr.expect("the rogue listens");
    let dataset = DatasetId([7; 16]);

    let mut wcfg = node_config(&worker_data);
    wcfg.join = vec![join];
    let stop_worker = CancellationToken::new();
    let (_, worker) = spawn_node(wcfg, stop_worker.clone());

    let mut seen = Seen::default();
    let mut epoch = 0u64;
    let mut announce = tokio::time::interval(Duration::from_millis(200));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Each grant ends in a give-back (defended) or a fetch of its rows (writing would follow).
    while seen.abandons.len() < 2 * names.len() && (seen.rows_requests as usize) < names.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker did not give every hostile grant back in time: {seen:?}"
        );
        tokio::select! {
            _ = announce.tick() => {
                let _ = rogue.publish(Gossip::Dataset {
                    dataset,
                    name: "rogue".into(),
                    shards_total: 1000,
                    shards_done: 0,
                    shards_open: 1000,
                    shards_failed: 0,
                    rows_total: 2000,
                    sent_at: UnixMillis(0),
                }).await;
            }
            ev = events.recv() => {
                let Some(Event::Request { request, reply, .. }) = ev else { continue };
                let answer = match request {
                    ControlRequest::Bid { .. } => {
                        seen.bids += 1;
                        epoch += 1;
                        ControlResponse::Granted(Grant {
                            dataset,
                            shard: ShardId(epoch as u32),
                            epoch: Epoch(epoch),
                            expires_at: UnixMillis(u64::MAX / 2),
                            ttl_ms: 60_000,
                            rows: 2,
                            archive_name: names[(epoch as usize - 1) % names.len()].clone(),
                            speculative: false,
                            settings: None,
                        })
                    }
                    ControlRequest::Rows { .. } => {
                        seen.rows_requests += 1;
                        ControlResponse::Rows((0..2).map(|i| UrlRow {
                            index: i,
                            url: Some(fx.url(&format!("/p/{i}.jpg"))),
                            class: None,
                            extra: Vec::new(),
                        }).collect())
                    }
                    ControlRequest::Abandon { reason, .. } => {
                        seen.abandons.push(reason);
                        ControlResponse::Ack
                    }
                    _ => ControlResponse::Ack,
                };
                let _ = reply.send(answer);
            }
        }
    }
    if seen.rows_requests > 0 {
        // Let a vulnerable worker write what it fetched before looking.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    stop_worker.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
    rogue.shutdown().await;

    let strays: Vec<PathBuf> = files_named(tmp.path(), "x.tar")
        .into_iter()
        .chain(files_named(tmp.path(), "x.results"))
        .chain(files_named(tmp.path(), "x.overview"))
        .collect();
    assert!(strays.is_empty(), "hostile names were written: {strays:?}");
    assert!(!Path::new("/abs/x.tar").exists());
    assert_eq!(
        seen.rows_requests, 0,
        "a refused grant fetches nothing: {seen:?}"
    );
    assert!(
        seen.abandons.iter().all(|r| r.contains("refused grant")),
        "{seen:?}"
    );
    // The work dir holds no shard directory either: nothing was created for a refused grant.
    let work = worker_data.join("work").join(dataset.to_hex());
    assert!(
        !work.exists() || std::fs::read_dir(&work).unwrap().next().is_none(),
        "work dirs were created for refused grants"
    );
}

/// Inflated stats: a peer claiming a huge machine.
fn boastful_stats() -> ldawt::model::node_stats::NodeStats {
    ldawt::model::node_stats::NodeStats {
        cores: 256,
        mem_total: 1 << 42,
        mem_free: 1 << 42,
        disk_free: 1 << 50,
        bytes_per_s: 1e12,
        works: true,
        ..Default::default()
    }
}

/// Bids with inflated stats and renews every lease it gets with `rows_done = 0`, until
/// `stop`; returns the most leases it held at once and how many it was granted.
async fn hoard(
    client: ldawt::net::Client,
    seeder: libp2p::PeerId,
    dataset: DatasetId,
    stop: CancellationToken,
) -> (usize, u32) {
    let mut held: Vec<Grant> = Vec::new();
    let (mut most, mut granted) = (0usize, 0u32);
    while !stop.is_cancelled() {
        let bid = ControlRequest::Bid {
            dataset,
            stats: boastful_stats(),
        };
        if let Ok(ControlResponse::Granted(g)) = client.request(seeder, bid).await {
            granted += 1;
            held.push(g);
        }
        most = most.max(held.len());
        let mut kept = Vec::new();
        for g in held.drain(..) {
            let renew = ControlRequest::Renew {
                dataset,
                shard: g.shard,
                epoch: g.epoch,
                rows_done: 0,
                throttled: 0,
            };
            match client.request(seeder, renew).await {
                Ok(ControlResponse::Rejected(_)) => {}
                _ => kept.push(g),
            }
        }
        held = kept;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    (most, granted)
}

/// Takes every lease it can and gives it back at once as failed.
async fn fail_everything(
    client: ldawt::net::Client,
    seeder: libp2p::PeerId,
    dataset: DatasetId,
    stop: CancellationToken,
) -> u32 {
    let mut failed = 0;
    while !stop.is_cancelled() {
        let bid = ControlRequest::Bid {
            dataset,
            stats: boastful_stats(),
        };
        if let Ok(ControlResponse::Granted(g)) = client.request(seeder, bid).await {
            let abandon = ControlRequest::Abandon {
                dataset,
                shard: g.shard,
                epoch: g.epoch,
                reason: "sabotage".into(),
                failed: true,
            };
            if let Ok(ControlResponse::Ack) = client.request(seeder, abandon).await {
                failed += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoarders_hold_at_most_their_cap_saboteurs_fail_no_shard_and_an_honest_worker_finishes() {
    use ldawt::model::lease::{INITIAL_PEER_CAP, LeaseConfig};
    use ldawt::model::shard::ShardSizing;

    let tmp = tempfile::tempdir().unwrap();
    let fx = ldawt::fixture::start(ldawt::fixture::FixtureConfig::default())
        .await
        .unwrap();
    let rows = 120u64;
    let input = fixture_seed(&fx, tmp.path(), "wasps", rows, "/w", ("wasp", 4));
    let out = tmp.path().join("out");
    let mut cfg = seeder_config(
        &tmp.path().join("seeder"),
        input,
        &out,
        ShardSizing::Rows(12),
    );
    // Default retries (3); short leases so stalls are revoked within seconds.
    cfg.lease = LeaseConfig {
        ttl: Duration::from_millis(1_000),
        max_retries: 3,
        speculative: false,
        copy_after: Duration::ZERO,
    };
    let seeder = start_seeder(cfg).await;
    let (join, seeder_peer, dataset) = (seeder.join.clone(), seeder.peer, seeder.dataset);

    // Two hoarders and one saboteur start first, alone with the seeder.
    let stop = CancellationToken::new();
    let mut hoarders = Vec::new();
    for _ in 0..2 {
        let c = insider(join.clone()).await;
        hoarders.push(tokio::spawn(hoard(c, seeder_peer, dataset, stop.clone())));
    }
    let saboteur = insider(join.clone()).await;
    let saboteur = tokio::spawn(fail_everything(
        saboteur,
        seeder_peer,
        dataset,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Then an honest worker joins.
    let honest = worker_config(&tmp.path().join("honest"), vec![join]);
    let (_, honest) = spawn_node(honest, CancellationToken::new());

    let outcome = finished(
        seeder.task,
        Duration::from_secs(150),
        "the dataset finishes despite hoarders and a saboteur",
    )
    .await;
    stop.cancel();
    let mut most = Vec::new();
    for h in hoarders {
        most.push(h.await.unwrap());
    }
    let sabotaged = saboteur.await.unwrap();
    let r = &outcome.reports[0];
    assert_eq!((r.ok, r.shards_done), (rows, 10), "{r:?}");
    assert!(r.failed_shards.is_empty(), "{:?}", r.failed_shards);
    for (held, granted) in &most {
        assert!(
            *held <= INITIAL_PEER_CAP as usize,
            "a hoarder held {held} leases at once (cap {INITIAL_PEER_CAP}); {most:?}"
        );
        assert!(*granted >= 1, "each hoarder got its cap's worth: {most:?}");
    }
    assert!(sabotaged >= 1, "the saboteur got leases to fail");
    // One failure per distinct peer: no shard counts more failures than there are hostile
    // identities, whatever the saboteur repeated.
    assert!(r.shards.iter().all(|s| s.failures <= 3), "{:?}", r.shards);
    let honest = tokio::time::timeout(Duration::from_secs(30), honest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(honest.worker.unwrap().completed, 10);
    assert_exactly_once(&out, rows, rows);
}
