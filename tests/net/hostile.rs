//! Hostile peers against a real `ldawt node` seeder (the binary, on loopback), built with the
//! project's own `net` layer (see `harness::spawn_rogue`), one test per attack of issue 8:
//!
//! - attack 2: a node without the swarm key, or with another key, never completes a handshake
//!   and never receives rows (a node with the right key does, so the test can fail);
//! - `--allow-peer`: a keyed node outside the seeder's allow list is refused, and so is a node
//!   whose own allow list names someone else;
//! - attack 8: a silent insider announcing the seeder's dataset id (and one of its own) costs
//!   the honest worker seconds, and never becomes the dataset's seeder in its table;
//! - attack 9: ~2,000 idle TCP connections to each of the seeder's libp2p and status ports,
//!   under `ulimit -n 1024`: `/healthz` still answers and an honest worker finishes the dataset.

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use ldawt::model::ids::DatasetId;
use ldawt::model::time::UnixMillis;
use ldawt::net::PreSharedKey;
use ldawt::protocol::status::NodeStatus;
use ldawt::protocol::swarm::{ControlRequest, ControlResponse, Gossip, NodeStats};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};

use crate::common;
use crate::harness::{hold_every_request, spawn_rogue};
use crate::node_proc::{NodeProc, Ready, http_get_code};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn write_seed(path: &Path, rows: u64, url: impl Fn(u64) -> String) {
    common::write_string_parquet(
        path,
        &[
            ("photo_url", (0..rows).map(|i| Some(url(i))).collect()),
            (
                "taxon_name",
                (0..rows)
                    .map(|i| Some(format!("species {}", i % 3)))
                    .collect(),
            ),
        ],
    );
}

/// A `--no-work --keep-serving` seeder of `rows` rows in `shards` shards, with `extra` flags.
fn seeder(dir: &Path, input: &Path, shards: u32, extra: &[&str], nofile: Option<u64>) -> NodeProc {
    let mut args = s(&[
        "node",
        "--seed",
        input.to_str().unwrap(),
        "--class-col",
        "taxon_name",
        "--out",
        dir.join("out").to_str().unwrap(),
        "--shards",
        &shards.to_string(),
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--status-addr",
        "127.0.0.1:0",
        "--no-work",
        "--heartbeat",
        "0.3",
    ]);
    args.extend(s(extra));
    NodeProc::start_with_nofile(&args, dir.join("seeder.err"), nofile)
}

/// An honest worker joining `ready` with its key, allowed to fetch from the loopback fixture.
fn worker(dir: &Path, name: &str, ready: &Ready, extra: &[&str]) -> NodeProc {
    let mut args = s(&[
        "node",
        "--join",
        &ready.join,
        "--swarm-key",
        ready
            .key
            .as_deref()
            .expect("the seeder printed its key file"),
        "--allow-private-urls",
        "--data-dir",
        dir.join(name).to_str().unwrap(),
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--status-addr",
        "127.0.0.1:0",
        "--heartbeat",
        "0.3",
    ]);
    args.extend(s(extra));
    NodeProc::start(&args, dir.join(format!("{name}.err")))
}

fn status(addr: &str) -> Option<NodeStatus> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(ldawt::status_client::fetch_status(addr)).ok()
}

fn wait_status(
    addr: &str,
    limit: Duration,
    what: &str,
    ok: impl Fn(&NodeStatus) -> bool,
) -> NodeStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = status(addr)
            && ok(&st)
        {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:#?}",
            status(addr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dataset_of(st: &NodeStatus) -> DatasetId {
    let bytes = hex::decode(&st.datasets[0].dataset_id).expect("hex dataset id");
    DatasetId(bytes.try_into().expect("16 bytes"))
}

fn bid(dataset: DatasetId) -> ControlRequest {
    ControlRequest::Bid {
        dataset,
        stats: NodeStats {
            cores: 2,
            mem_total: 4 << 30,
            mem_free: 4 << 30,
            disk_free: 1 << 40,
            free_slots: 1,
            works: true,
            ..Default::default()
        },
    }
}

fn key_of(path: &str) -> PreSharedKey {
    ldawt::node::swarm_key::load(Path::new(path)).expect("the seeder's key file")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn nodes_without_the_swarm_key_never_complete_a_handshake_nor_get_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("birds.parquet");
    write_seed(&input, 40, |i| fx.url(&format!("/b/{i}.jpg")));
    let seeder = seeder(tmp.path(), &input, 4, &[], None);
    let ready = seeder.ready();
    let st = wait_status(&ready.status, Duration::from_secs(30), "the dataset", |s| {
        !s.datasets.is_empty()
    });
    let dataset = dataset_of(&st);
    let join: Multiaddr = ready.join.parse().unwrap();
    let seeder_peer: PeerId = ready.peer_id.parse().unwrap();
    let right_key = key_of(ready.key.as_deref().unwrap());

    let rt = runtime();
    let (strangers, insider) = rt.block_on(async {
        let mut strangers = Vec::new();
        for (what, psk) in [
            ("no key", None),
            ("another key", Some(PreSharedKey::new([0x42; 32]))),
        ] {
            let rogue = spawn_rogue(psk, Vec::new(), None).await;
            let dialed = rogue.client.dial(join.clone()).await;
            assert!(dialed.is_err(), "a node with {what} completed a handshake");
            let asked = rogue.client.request(seeder_peer, bid(dataset)).await;
            assert!(
                asked.is_err(),
                "a node with {what} got an answer: {asked:?}"
            );
            let rows = rogue
                .client
                .request(
                    seeder_peer,
                    ControlRequest::Rows {
                        dataset,
                        shard: ldawt::model::ids::ShardId(0),
                        epoch: 1,
                    },
                )
                .await;
            assert!(rows.is_err(), "a node with {what} got rows: {rows:?}");
            strangers.push(rogue.peer_id());
            let mut events = rogue.stop().await;
            while let Ok(e) = events.try_recv() {
                assert!(
                    !matches!(e, ldawt::net::Event::PeerConnected { .. }),
                    "a node with {what} saw a connection: {e:?}"
                );
            }
        }
        // The same requests with the right key are answered: the refusals above are the key's.
        let insider = spawn_rogue(Some(right_key), Vec::new(), None).await;
        insider
            .client
            .dial(join.clone())
            .await
            .expect("the key opens the swarm");
        let granted = insider.client.request(seeder_peer, bid(dataset)).await;
        let Ok(ControlResponse::Granted(g)) = granted else {
            panic!("a keyed node is granted a lease: {granted:?}");
        };
        let rows = insider
            .client
            .request(
                seeder_peer,
                ControlRequest::Rows {
                    dataset,
                    shard: g.shard,
                    epoch: g.epoch,
                },
            )
            .await;
        assert!(matches!(rows, Ok(ControlResponse::Rows { .. })), "{rows:?}");
        let id = insider.peer_id();
        insider.stop().await;
        (strangers, id)
    });
    let st = status(&ready.status).expect("seeder status");
    for p in &strangers {
        assert!(
            !st.peers.iter().any(|x| x.peer_id == p.to_string()),
            "the seeder lists the stranger {p}: {:?}",
            st.peers
        );
    }
    assert!(st.peers.iter().any(|x| x.peer_id == insider.to_string()));
}

#[test]
fn peers_outside_an_allow_list_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("ants.parquet");
    write_seed(&input, 20, |i| fx.url(&format!("/a/{i}.jpg")));
    let allowed = Keypair::generate_ed25519();
    let allowed_id = allowed.public().to_peer_id().to_string();
    let seeder = seeder(tmp.path(), &input, 2, &["--allow-peer", &allowed_id], None);
    let ready = seeder.ready();
    let st = wait_status(&ready.status, Duration::from_secs(30), "the dataset", |s| {
        !s.datasets.is_empty()
    });
    let dataset = dataset_of(&st);
    let join: Multiaddr = ready.join.parse().unwrap();
    let seeder_peer: PeerId = ready.peer_id.parse().unwrap();
    let key = key_of(ready.key.as_deref().unwrap());
    runtime().block_on(async {
        // A node with the key but not on the seeder's list.
        let outsider = spawn_rogue(Some(key), Vec::new(), None).await;
        let _ = outsider.client.dial(join.clone()).await;
        let asked = outsider.client.request(seeder_peer, bid(dataset)).await;
        assert!(asked.is_err(), "an outsider got an answer: {asked:?}");
        outsider.stop().await;
        // A node whose own list names someone else refuses the seeder.
        let picky = spawn_rogue(Some(key), vec![PeerId::random()], Some(allowed.clone())).await;
        assert!(picky.client.dial(join.clone()).await.is_err());
        let asked = picky.client.request(seeder_peer, bid(dataset)).await;
        assert!(
            asked.is_err(),
            "a node that does not allow the seeder reached it: {asked:?}"
        );
        picky.stop().await;
        // The allowed peer gets work.
        let member = spawn_rogue(Some(key), vec![seeder_peer], Some(allowed)).await;
        member
            .client
            .dial(join.clone())
            .await
            .expect("the allowed peer connects");
        let granted = member.client.request(seeder_peer, bid(dataset)).await;
        assert!(
            matches!(granted, Ok(ControlResponse::Granted(_))),
            "{granted:?}"
        );
        member.stop().await;
    });
}

#[test]
fn a_silent_rogue_announcer_costs_seconds_and_never_takes_the_dataset_over() {
    const SHARDS: u32 = 12;
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("moths.parquet");
    write_seed(&input, 120, |i| fx.url(&format!("/m/{i}.jpg")));
    let seeder = seeder(tmp.path(), &input, SHARDS, &[], None);
    let ready = seeder.ready();
    let st = wait_status(&ready.status, Duration::from_secs(30), "the dataset", |s| {
        !s.datasets.is_empty()
    });
    let dataset = dataset_of(&st);
    let key = key_of(ready.key.as_deref().unwrap());
    // One lease at a time: the worker cannot sidestep a silent seeder by bidding wider.
    let w = worker(
        tmp.path(),
        "w",
        &ready,
        &["--max-leases", "1", "--exit-when-idle", "4"],
    );
    let wr = w.ready();
    // The worker knows the dataset from its seeder before the rogue shows up.
    wait_status(
        &wr.status,
        Duration::from_secs(30),
        "the dataset on the worker",
        |s| s.datasets.iter().any(|d| d.seeder == ready.peer_id),
    );
    let rt = runtime();
    let started = Instant::now();
    let rogue_id = rt.block_on(async {
        let mut rogue = spawn_rogue(Some(key), Vec::new(), None).await;
        let id = rogue.peer_id();
        rogue
            .client
            .dial(ready.join.parse().unwrap())
            .await
            .expect("the insider joins");
        rogue
            .client
            .dial(wr.join.parse().unwrap())
            .await
            .expect("and reaches the worker");
        let events = std::mem::replace(&mut rogue.events, tokio::sync::mpsc::channel(1).1);
        let held = hold_every_request(events);
        let client = rogue.client.clone();
        // Announces the seeder's dataset and one of its own, every 300 ms, answering nothing.
        tokio::spawn(async move {
            for n in 0..400u32 {
                for id in [dataset, DatasetId([0xee; 16])] {
                    let _ = client
                        .publish(Gossip::Dataset {
                            dataset: id,
                            name: "rogue".into(),
                            shards_total: 50,
                            shards_done: 0,
                            shards_open: 50,
                            shards_failed: 0,
                            rows_total: 500 + u64::from(n),
                            sent_at: UnixMillis(u64::from(n)),
                        })
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        std::mem::forget(rogue);
        let _ = held;
        id
    });
    let (code, out) = w.wait(Duration::from_secs(120));
    let elapsed = started.elapsed();
    assert_eq!(code, 0, "{out}");
    let st = wait_status(
        &ready.status,
        Duration::from_secs(10),
        "every shard done",
        |s| s.datasets[0].shards_done == SHARDS,
    );
    assert_eq!(st.datasets[0].shards_failed, 0);
    // Sequential bids with a 120 s wait each stalled here before; now a silent node costs a
    // few 5 s bid timeouts at most.
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    let worker_log = std::fs::read_to_string(tmp.path().join("w.err")).unwrap_or_default();
    assert!(
        !worker_log.contains(&format!("seeder={rogue_id}"))
            || !worker_log.contains("lease granted"),
        "{worker_log}"
    );
    drop(rt);
}

#[test]
fn a_seeder_under_a_connection_flood_keeps_serving_healthz_and_workers() {
    const SHARDS: u32 = 6;
    const FLOOD: usize = 2_000;
    if !Path::new("/bin/sh").exists() {
        panic!("/bin/sh is needed to lower the seeder's open-file limit");
    }
    ldawt::node::rlimit::raise_nofile();
    let (soft, _) = ldawt::node::rlimit::nofile();
    if soft < (2 * FLOOD + 512) as u64 {
        let why = format!(
            "this test needs {} open files, the limit is {soft}",
            2 * FLOOD + 512
        );
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIP: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("wasps.parquet");
    write_seed(&input, 60, |i| fx.url(&format!("/w/{i}.jpg")));
    let seeder = seeder(tmp.path(), &input, SHARDS, &[], Some(1024));
    let ready = seeder.ready();
    wait_status(&ready.status, Duration::from_secs(30), "the dataset", |s| {
        !s.datasets.is_empty()
    });
    let p2p_port = ready
        .join
        .split('/')
        .nth(4)
        .and_then(|p| p.parse::<u16>().ok())
        .expect("tcp port in the join address");
    let p2p: std::net::SocketAddr = format!("127.0.0.1:{p2p_port}").parse().unwrap();
    let http: std::net::SocketAddr = ready.status.parse().unwrap();
    // The flood: idle connections, opened by 8 threads, kept open for the rest of the test.
    let mut flood: Vec<TcpStream> = Vec::new();
    let opened = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..(2 * FLOOD / 8) {
                        let target = if (i + t) % 2 == 0 { p2p } else { http };
                        if let Ok(c) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                            mine.push(c);
                        }
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    flood.extend(opened);
    assert!(
        flood.len() >= FLOOD,
        "only {} flood connections opened",
        flood.len()
    );
    // /healthz answers again within seconds, while every flood socket stays open.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answered = false;
    while Instant::now() < deadline {
        if http_get_code(&ready.status, "/healthz") == Some(200) {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        answered,
        "/healthz did not answer under the flood; seeder log:\n{}",
        seeder.log()
    );
    // An honest worker joins during the flood and finishes the dataset.
    let w = worker(tmp.path(), "w", &ready, &["--exit-when-idle", "4"]);
    let (code, out) = w.wait(Duration::from_secs(120));
    assert_eq!(code, 0, "{out}");
    let st = wait_status(
        &ready.status,
        Duration::from_secs(20),
        "every shard done",
        |s| s.datasets[0].shards_done == SHARDS,
    );
    assert_eq!(st.datasets[0].shards_failed, 0);
    assert_eq!(http_get_code(&ready.status, "/healthz"), Some(200));
    drop(flood);
}
