//! Nodes inside this test process, talking over real loopback sockets: a `--no-work` seeder,
//! two workers, and a "ghost" worker (a bare transport) that takes a lease and vanishes. Every
//! node holds the same swarm key; workers allow the fixture's loopback URLs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ldawt::engine::EngineConfig;
use ldawt::fixture::{self, FixtureConfig};
use ldawt::model::lease::LeaseConfig;
use ldawt::model::node_stats::NodeStats;
use ldawt::model::shard::ShardSizing;
use ldawt::model::time::{ManualClock, SystemClock, UnixMillis};
use ldawt::net::{self, NetConfig, NetError};
use ldawt::node::swarm_key::KeySource;
use ldawt::node::{self, NodeConfig, NodeOutcome, Ready};
use ldawt::protocol::control::{ControlRequest, ControlResponse, RejectReason};
use ldawt::protocol::transfer::{FileKind, TransferHeader};
use ldawt::seed::{Columns, SeedSpec};
use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::common::test_swarm_key;
use super::util::{assert_exactly_once, write_seed};

const ROWS: u64 = 120;

/// The one place an in-process node's configuration is built (every swarm test uses it).
pub fn node_config(data: &Path) -> NodeConfig {
    NodeConfig {
        data_dir: data.to_path_buf(),
        seed: None,
        out: None,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        join: Vec::new(),
        mdns: false,
        lease: LeaseConfig::default(),
        work: true,
        keep_serving: false,
        exit_when_idle: None,
        status_addr: "127.0.0.1:0".parse().unwrap(),
        engine: EngineConfig::default(),
        max_leases: Some(2),
        heartbeat: Duration::from_millis(300),
        stored_files: None,
        swarm_key: KeySource::Env(test_swarm_key()),
        allow_peers: Vec::new(),
        allow_private_urls: true,
        max_archive_bytes: None,
        retry_failed: false,
        swarm_per_host: None,
        clock: Arc::new(SystemClock),
    }
}

pub fn spawn_node(
    cfg: NodeConfig,
    stop: CancellationToken,
) -> (
    oneshot::Receiver<Ready>,
    tokio::task::JoinHandle<NodeOutcome>,
) {
    let (tx, rx) = oneshot::channel();
    let mut tx = Some(tx);
    let task = tokio::spawn(async move {
        node::run(cfg, stop, move |r: &Ready| {
            if let Some(tx) = tx.take() {
                let _ = tx.send(r.clone());
            }
        })
        .await
        .expect("node runs")
    });
    (rx, task)
}

/// A bare transport joined to `join`: a peer that only does what the test tells it.
pub fn ghost(join: &Multiaddr) -> net::Client {
    let mut cfg = NetConfig::new(Keypair::generate_ed25519());
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    cfg.bootstrap = vec![join.clone()];
    cfg.mdns = false;
    cfg.psk = Some(test_swarm_key());
    let (client, events, event_loop) = net::new(cfg).unwrap();
    tokio::spawn(event_loop.run());
    // Keep the events flowing (nobody reads them).
    tokio::spawn(async move {
        let mut events = events;
        while events.recv().await.is_some() {}
    });
    client
}

pub fn stats() -> NodeStats {
    NodeStats {
        cores: 2,
        mem_total: 4 << 30,
        mem_free: 4 << 30,
        disk_free: 1 << 40,
        works: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeder_and_two_workers_complete_a_dataset_and_fence_a_vanished_worker() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture::start(FixtureConfig::default()).await.unwrap();
    let input = tmp.path().join("birds.parquet");
    write_seed(
        &input,
        ROWS,
        |i| fx.url(&format!("/fx/slow-first-byte-100/p/{i}.jpg")),
        |i| format!("species {}", i % 5),
    );
    let out: PathBuf = tmp.path().join("out");

    // The seeder coordinates only; short leases so a vanished worker is noticed quickly.
    let mut seeder_cfg = node_config(&tmp.path().join("seeder"));
    seeder_cfg.seed = Some(SeedSpec {
        path: input,
        columns: Columns {
            url: "photo_url".into(),
            class: Some("taxon_name".into()),
            group: None,
            extra: Vec::new(),
        },
        sizing: ShardSizing::Rows(12),
    });
    seeder_cfg.out = Some(out.clone());
    seeder_cfg.work = false;
    seeder_cfg.keep_serving = true;
    seeder_cfg.lease = LeaseConfig {
        ttl: Duration::from_millis(1_500),
        max_retries: 3,
        speculative: true,
        copy_after: Duration::ZERO,
    };
    let seeder_stop = CancellationToken::new();
    let (ready, seeder) = spawn_node(seeder_cfg, seeder_stop.clone());
    let ready = tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .unwrap()
        .unwrap();
    let (dataset, _) = ready.seeded.clone().unwrap();
    let join: Multiaddr = ready.join_addrs[0].parse().unwrap();
    let seeder_peer = ready.peer_id.parse().unwrap();

    // The ghost: takes a lease over the real transport, then never renews.
    let ghost = ghost(&join);
    let mut grant = None;
    for _ in 0..100 {
        if let Ok(ControlResponse::Granted(g)) = ghost
            .request(
                seeder_peer,
                ControlRequest::Bid {
                    dataset: dataset.id,
                    stats: stats(),
                },
            )
            .await
        {
            grant = Some(g);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ghost_grant = grant.expect("the ghost gets a lease");

    // Two real workers join and do everything.
    let mut workers = Vec::new();
    for name in ["w1", "w2"] {
        let mut cfg = node_config(&tmp.path().join(name));
        cfg.join = vec![join.clone()];
        cfg.exit_when_idle = Some(Duration::from_secs(3));
        let (_, task) = spawn_node(cfg, CancellationToken::new());
        workers.push(task);
    }
    let mut summaries = Vec::new();
    for w in workers {
        let o = tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("worker finishes")
            .unwrap();
        summaries.push(o.worker.expect("worker summary"));
    }
    // Every shard is completed exactly once between them (which worker takes how many depends
    // on who connects first: a fast worker's lease cap grows with its completions).
    assert_eq!(
        summaries.iter().map(|s| s.completed).sum::<u64>(),
        10,
        "{summaries:?}"
    );

    // The ghost comes back with its stale epoch: completion and files are refused.
    let late = ghost
        .request(
            seeder_peer,
            ControlRequest::Complete {
                dataset: dataset.id,
                shard: ghost_grant.shard,
                epoch: ghost_grant.epoch,
                ok: 12,
                failed: 0,
                bytes: 1,
            },
        )
        .await
        .unwrap();
    assert!(matches!(late, ControlResponse::Rejected { .. }), "{late:?}");
    let fake = tmp.path().join("fake.tar.gz");
    std::fs::write(&fake, b"not an archive").unwrap();
    let header = TransferHeader {
        dataset: dataset.id,
        shard: ghost_grant.shard,
        epoch: ghost_grant.epoch,
        kind: FileKind::Archive,
        size: 14,
        sha256: sha256(b"not an archive"),
    };
    let sent = ghost.send_file(seeder_peer, header, &fake).await;
    assert!(matches!(sent, Err(NetError::Rejected(_))), "{sent:?}");

    seeder_stop.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(30), seeder)
        .await
        .unwrap()
        .unwrap();
    let report = &outcome.reports[0];
    assert_eq!(
        (report.ok, report.failed, report.shards_done),
        (ROWS, 0, 10)
    );
    // The ghost's shard was re-leased after its lease expired and finished by a real worker.
    let s = &report.shards[ghost_grant.shard.0 as usize];
    assert!(s.failures >= 1, "{s:?}");
    assert_ne!(
        s.done_by.as_deref(),
        Some(ghost.local_peer_id().to_string().as_str())
    );
    assert_exactly_once(&out, ROWS, ROWS);
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_serves_two_seeders_of_different_datasets() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture::start(FixtureConfig::default()).await.unwrap();
    let mut seeders = Vec::new();
    let mut joins: Vec<Multiaddr> = Vec::new();
    for (name, rows) in [("ants", 30u64), ("bees", 45u64)] {
        let input = tmp.path().join(format!("{name}.parquet"));
        write_seed(
            &input,
            rows,
            |i| fx.url(&format!("/{name}/{i}.jpg")),
            |i| format!("{name} {}", i % 3),
        );
        let mut cfg = node_config(&tmp.path().join(format!("seed-{name}")));
        cfg.seed = Some(SeedSpec {
            path: input,
            columns: Columns {
                url: "photo_url".into(),
                class: Some("taxon_name".into()),
                group: Some("taxon_name".into()),
                extra: Vec::new(),
            },
            sizing: ShardSizing::Count(3),
        });
        let out = tmp.path().join(format!("out-{name}"));
        cfg.out = Some(out.clone());
        cfg.work = false;
        let (ready, task) = spawn_node(cfg, CancellationToken::new());
        let ready = tokio::time::timeout(Duration::from_secs(30), ready)
            .await
            .unwrap()
            .unwrap();
        joins.push(ready.join_addrs[0].parse().unwrap());
        seeders.push((task, out, rows));
    }
    let mut cfg = node_config(&tmp.path().join("worker"));
    cfg.join = joins;
    cfg.exit_when_idle = Some(Duration::from_secs(3));
    let (_, worker) = spawn_node(cfg, CancellationToken::new());
    for (task, out, rows) in seeders {
        let outcome = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .unwrap()
            .unwrap();
        let r = &outcome.reports[0];
        assert_eq!((r.ok, r.shards_done), (rows, 3));
        assert_exactly_once(&out, rows, rows);
    }
    let w = tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.worker.unwrap().completed, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_mid_shard_releases_its_lease_without_costing_a_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture::start(FixtureConfig::default()).await.unwrap();
    let input = tmp.path().join("moths.parquet");
    let rows = 40u64;
    write_seed(
        &input,
        rows,
        |i| fx.url(&format!("/fx/slow-first-byte-300/m/{i}.jpg")),
        |i| format!("moth {}", i % 2),
    );
    let out = tmp.path().join("out");
    let mut cfg = node_config(&tmp.path().join("seeder"));
    cfg.seed = Some(SeedSpec {
        path: input,
        columns: Columns {
            url: "photo_url".into(),
            class: Some("taxon_name".into()),
            group: None,
            extra: Vec::new(),
        },
        sizing: ShardSizing::Rows(10),
    });
    cfg.out = Some(out.clone());
    cfg.work = false;
    // Long leases: only an explicit release can free the shard quickly.
    cfg.lease.ttl = Duration::from_secs(60);
    cfg.lease.max_retries = 0;
    let (ready, seeder) = spawn_node(cfg, CancellationToken::new());
    let ready = tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .unwrap()
        .unwrap();
    let join: Multiaddr = ready.join_addrs[0].parse().unwrap();

    let mut first = node_config(&tmp.path().join("first"));
    first.join = vec![join.clone()];
    first.engine.concurrency = 1;
    let stop_first = CancellationToken::new();
    let (first_ready, first_task) = spawn_node(first, stop_first.clone());
    let first_status = first_ready.await.unwrap().status_addr.to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = ldawt::status_client::fetch_status(&first_status)
            .await
            .unwrap();
        if s.local.leases_held > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first worker never got a lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_first.cancel();
    let first_outcome = tokio::time::timeout(Duration::from_secs(30), first_task)
        .await
        .unwrap()
        .unwrap();
    assert!(first_outcome.interrupted);
    assert!(first_outcome.worker.unwrap().abandoned >= 1);

    let mut second = node_config(&tmp.path().join("second"));
    second.join = vec![join];
    second.exit_when_idle = Some(Duration::from_secs(3));
    let (_, second_task) = spawn_node(second, CancellationToken::new());
    let outcome = tokio::time::timeout(Duration::from_secs(60), seeder)
        .await
        .unwrap()
        .unwrap();
    let r = &outcome.reports[0];
    assert_eq!(
        (r.ok, r.shards_done),
        (rows, 4),
        "max_retries = 0: a counted loss would fail a shard"
    );
    assert!(r.shards.iter().all(|s| s.failures == 0), "{:?}", r.shards);
    assert_exactly_once(&out, rows, rows);
    let _ = tokio::time::timeout(Duration::from_secs(30), second_task).await;
}

/// Leases run on the node's clock, not the wall's: with a manual clock a 2 s lease outlives
/// four seconds of real time, and lapses once the clock is moved past its expiry — the shard
/// then goes to another peer under a higher epoch and the first holder is fenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lapses_when_the_manual_clock_passes_its_ttl_and_not_before() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("one.parquet");
    write_seed(
        &input,
        4,
        |i| format!("http://127.0.0.1:9/{i}.jpg"),
        |_| "c".into(),
    );
    let clock = ManualClock::new(UnixMillis(1_700_000_000_000));
    let mut cfg = node_config(&tmp.path().join("seeder"));
    cfg.seed = Some(SeedSpec {
        path: input,
        columns: Columns {
            url: "photo_url".into(),
            class: Some("taxon_name".into()),
            group: None,
            extra: Vec::new(),
        },
        sizing: ShardSizing::Rows(4),
    });
    cfg.out = Some(tmp.path().join("out"));
    cfg.work = false;
    cfg.keep_serving = true;
    cfg.lease = LeaseConfig {
        ttl: Duration::from_secs(2),
        max_retries: 3,
        speculative: false,
        copy_after: Duration::ZERO,
    };
    cfg.clock = Arc::new(clock.clone());
    let stop = CancellationToken::new();
    let (ready, seeder) = spawn_node(cfg, stop.clone());
    let ready = tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .unwrap()
        .unwrap();
    let (dataset, _) = ready.seeded.clone().unwrap();
    let join: Multiaddr = ready.join_addrs[0].parse().unwrap();
    let seeder_peer = ready.peer_id.parse().unwrap();
    let (first, second) = (ghost(&join), ghost(&join));
    let bid = ControlRequest::Bid {
        dataset: dataset.id,
        stats: stats(),
    };
    // Each ghost's first answer (the connection comes up in the background).
    let mut answers = Vec::new();
    for g in [&first, &second] {
        let mut answer = None;
        for _ in 0..100 {
            if let Ok(a) = g.request(seeder_peer, bid.clone()).await {
                answer = Some(a);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        answers.push(answer.expect("the ghost reaches the seeder"));
    }
    let ControlResponse::Granted(grant) = answers.remove(0) else {
        panic!("the first ghost gets the only shard: {answers:?}")
    };
    assert!(
        matches!(answers[0], ControlResponse::NoWork { .. }),
        "{answers:?}"
    );
    // Twice the TTL of real time: the node's clock stands still, so the lease holds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = second.request(seeder_peer, bid.clone()).await.unwrap();
    assert!(matches!(held, ControlResponse::NoWork { .. }), "{held:?}");
    // The clock passes the expiry: the shard is free again, for the other ghost.
    clock.advance(Duration::from_secs(3));
    let mut regrant = None;
    for _ in 0..50 {
        if let Ok(ControlResponse::Granted(g)) = second.request(seeder_peer, bid.clone()).await {
            regrant = Some(g);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let regrant = regrant.expect("the lapsed shard is granted again");
    assert_eq!(regrant.shard, grant.shard);
    assert!(regrant.epoch > grant.epoch, "{regrant:?} after {grant:?}");
    let late = first
        .request(
            seeder_peer,
            ControlRequest::Renew {
                dataset: dataset.id,
                shard: grant.shard,
                epoch: grant.epoch,
                rows_done: 0,
                throttled: 0,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(&late, ControlResponse::Rejected(r) if r.reason == RejectReason::Fenced),
        "{late:?}"
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), seeder)
        .await
        .unwrap()
        .unwrap();
}
