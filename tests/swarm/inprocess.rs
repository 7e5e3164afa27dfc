//! Nodes inside this test process, talking over real loopback sockets: a `--no-work` seeder,
//! two workers, and a "ghost" worker (a bare transport) that takes a lease and vanishes. Every
//! node holds the same swarm key; workers allow the fixture's loopback URLs.

use std::path::PathBuf;
use std::time::Duration;

use ldawt::fixture::{self, FixtureConfig};
use ldawt::model::ids::NodeId;
use ldawt::model::lease::LeaseConfig;
use ldawt::model::shard::ShardSizing;
use ldawt::net::NetError;
use ldawt::protocol::control::{ControlRequest, ControlResponse};
use ldawt::protocol::transfer::{FileKind, TransferHeader};
use libp2p::Multiaddr;
use tokio_util::sync::CancellationToken;

use super::kit::{
    finished, insider, node_config, seeder_config, spawn_node, start_seeder, start_seeder_until,
    take_lease, worker_config,
};
use super::util::{assert_exactly_once, fixture_seed, write_seed};

const ROWS: u64 = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeder_and_two_workers_complete_a_dataset_and_fence_a_vanished_worker() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture::start(FixtureConfig::default()).await.unwrap();
    let input = fixture_seed(
        &fx,
        tmp.path(),
        "birds",
        ROWS,
        "/fx/slow-first-byte-100/p",
        ("species", 5),
    );
    let out: PathBuf = tmp.path().join("out");

    // The seeder coordinates only; short leases so a vanished worker is noticed quickly.
    let mut seeder_cfg = seeder_config(
        &tmp.path().join("seeder"),
        input,
        &out,
        ShardSizing::Rows(12),
    );
    seeder_cfg.keep_serving = true;
    seeder_cfg.lease = LeaseConfig {
        ttl: Duration::from_millis(1_500),
        max_retries: 3,
        speculative: true,
        copy_after: Duration::ZERO,
    };
    let seeder_stop = CancellationToken::new();
    let seeder = start_seeder_until(seeder_cfg, seeder_stop.clone()).await;
    let (dataset, join, seeder_peer) = (seeder.dataset, seeder.join.clone(), seeder.peer);

    // The ghost: takes a lease over the real transport, then never renews.
    let ghost = insider(join.clone()).await;
    let ghost_grant = take_lease(&ghost, seeder_peer, dataset).await;

    // Two real workers join and do everything.
    let mut workers = Vec::new();
    for name in ["w1", "w2"] {
        let cfg = worker_config(&tmp.path().join(name), vec![join.clone()]);
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
                dataset,
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
        dataset,
        shard: ghost_grant.shard,
        epoch: ghost_grant.epoch,
        kind: FileKind::Archive,
        size: 14,
        sha256: sha256(b"not an archive"),
    };
    let sent = ghost.send_file(seeder_peer, header, &fake).await;
    assert!(matches!(sent, Err(NetError::Rejected(_))), "{sent:?}");

    seeder_stop.cancel();
    let outcome = finished(seeder.task, Duration::from_secs(30), "the seeder stops").await;
    let report = &outcome.reports[0];
    assert_eq!(
        (report.ok, report.failed, report.shards_done),
        (ROWS, 0, 10)
    );
    // The ghost's shard was re-leased after its lease expired and finished by a real worker.
    let s = &report.shards[ghost_grant.shard.0 as usize];
    assert!(s.failures >= 1, "{s:?}");
    assert_ne!(s.done_by, Some(NodeId(ghost.local_peer_id())));
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
        let out = tmp.path().join(format!("out-{name}"));
        let data = tmp.path().join(format!("seed-{name}"));
        let mut cfg = seeder_config(&data, input, &out, ShardSizing::Count(3));
        if let Some(seed) = cfg.seed.as_mut() {
            seed.columns.group = Some("taxon_name".into());
        }
        let ready = start_seeder(cfg).await;
        joins.push(ready.join);
        seeders.push((ready.task, out, rows));
    }
    let (_, worker) = spawn_node(
        worker_config(&tmp.path().join("worker"), joins),
        CancellationToken::new(),
    );
    for (task, out, rows) in seeders {
        let outcome = finished(task, Duration::from_secs(120), "each seeder finishes").await;
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
    let rows = 40u64;
    let input = fixture_seed(
        &fx,
        tmp.path(),
        "moths",
        rows,
        "/fx/slow-first-byte-300/m",
        ("moth", 2),
    );
    let out = tmp.path().join("out");
    let mut cfg = seeder_config(
        &tmp.path().join("seeder"),
        input,
        &out,
        ShardSizing::Rows(10),
    );
    // Long leases: only an explicit release can free the shard quickly.
    cfg.lease.ttl = Duration::from_secs(60);
    cfg.lease.max_retries = 0;
    let seeder = start_seeder(cfg).await;
    let join = seeder.join.clone();

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

    let second = worker_config(&tmp.path().join("second"), vec![join]);
    let (_, second_task) = spawn_node(second, CancellationToken::new());
    let outcome = finished(seeder.task, Duration::from_secs(60), "the seeder finishes").await;
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
