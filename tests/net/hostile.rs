//! Hostile peers against a real `ldawt node` seeder (the binary, on loopback), built with the
//! project's own `net` layer (see `harness::spawn_rogue`), one test per attack of issue 8:
//!
//! - attack 2: a node without the swarm key, or with another key, never completes a handshake
//!   and never receives rows (a node with the right key does, so the test can fail);
//! - `--allow-peer`: a keyed node outside the seeder's allow list is refused, and so is a node
//!   whose own allow list names someone else;
//! - a worker without a key refuses to start; `--open` says so;
//! - attack 10's wiring (ignored until the engine enforces the address check).
//!
//! Attacks 8 (silent announcer) and 9 (connection flood) are in `hostile_load`; the helpers
//! here are shared with it.

use std::path::Path;
use std::time::Duration;

use ldawt::model::ids::{DatasetId, Epoch};
use ldawt::model::node_stats::NodeStats;
use ldawt::net::PreSharedKey;
use ldawt::protocol::control::{ControlRequest, ControlResponse};
use ldawt::protocol::status::NodeStatus;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};

use crate::common;
use crate::harness::spawn_rogue;
use crate::node_proc::{NodeArgs, NodeProc, Ready, poll_until};

pub(crate) fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Writes a seed of `rows` rows, `url(i)` each, in 3 classes.
pub(crate) fn write_seed(path: &Path, rows: u64, url: impl Fn(u64) -> String) {
    common::write_seed(path, rows, url, |i| format!("species {}", i % 3));
}

/// A `--no-work` seeder of `input` into `<dir>/out` in `shards` shards, with `extra` flags.
pub(crate) fn seeder(
    dir: &Path,
    input: &Path,
    shards: u32,
    extra: &[&str],
    nofile: Option<u64>,
) -> NodeProc {
    let args = NodeArgs::seeder(input, &dir.join("out"), 0)
        .with(&["--shards", &shards.to_string()])
        .with(extra);
    NodeProc::start_with_nofile(args.args(), dir.join("seeder.err"), nofile)
}

/// An honest worker joining `ready` with its key, allowed to fetch from the loopback fixture.
pub(crate) fn worker(dir: &Path, name: &str, ready: &Ready, extra: &[&str]) -> NodeProc {
    let key = ready
        .key
        .as_deref()
        .expect("the seeder printed its key file");
    NodeArgs::worker(&ready.join, Some(key), &dir.join(name))
        .with(extra)
        .start(dir.join(format!("{name}.err")))
}

pub(crate) fn status(addr: &str) -> Option<NodeStatus> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(ldawt::status_client::fetch_status(addr)).ok()
}

/// Polls `addr`'s status (in-process client) until `ok` holds (panics after `limit`).
pub(crate) fn wait_status(
    addr: &str,
    limit: Duration,
    what: &str,
    ok: impl Fn(&NodeStatus) -> bool,
) -> NodeStatus {
    poll_until(limit, &format!("{what} on {addr}"), || status(addr), ok)
}

/// A started seeder's start-up lines once its status shows the dataset: (start-up lines, the
/// dataset, its `--join` address, its peer id).
fn announced(seeder: &NodeProc) -> (Ready, DatasetId, Multiaddr, PeerId) {
    let ready = seeder.ready_info();
    let st = wait_status(&ready.status, Duration::from_secs(30), "the dataset", |s| {
        !s.datasets.is_empty()
    });
    let join = ready.join.parse().unwrap();
    let peer = ready.peer_id.parse().unwrap();
    (ready, dataset_of(&st), join, peer)
}

pub(crate) fn dataset_of(st: &NodeStatus) -> DatasetId {
    let bytes = hex::decode(&st.datasets[0].dataset_id).expect("hex dataset id");
    DatasetId(bytes.try_into().expect("16 bytes"))
}

pub(crate) fn bid(dataset: DatasetId) -> ControlRequest {
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

pub(crate) fn key_of(path: &str) -> PreSharedKey {
    ldawt::node::swarm_key::load(Path::new(path)).expect("the seeder's key file")
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
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
    let input = common::fixture_seed(&fx, tmp.path(), "birds", 40, "/b", ("species", 3));
    let seeder = seeder(tmp.path(), &input, 4, &[], None);
    let (ready, dataset, join, seeder_peer) = announced(&seeder);
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
                        epoch: Epoch(1),
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
    let st = wait_status(
        &ready.status,
        Duration::from_secs(10),
        "the insider listed",
        |s| s.peers.iter().any(|x| x.peer_id == insider.to_string()),
    );
    for p in &strangers {
        assert!(
            !st.peers.iter().any(|x| x.peer_id == p.to_string()),
            "the seeder lists the stranger {p}: {:?}",
            st.peers
        );
    }
}

#[test]
fn peers_outside_an_allow_list_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = common::fixture_seed(&fx, tmp.path(), "ants", 20, "/a", ("species", 3));
    let allowed = Keypair::generate_ed25519();
    let allowed_id = allowed.public().to_peer_id().to_string();
    let seeder = seeder(tmp.path(), &input, 2, &["--allow-peer", &allowed_id], None);
    let (ready, dataset, join, seeder_peer) = announced(&seeder);
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
/// Attack 10's wiring: a worker without `--allow-private-urls` does not fetch a remote
/// seeder's rows that point at loopback. Needs the engine's address check
/// (`FetchConfig::block_private_addresses`, enforced in `src/fetch/`).
#[test]
fn a_remote_seeders_loopback_rows_are_blocked_without_allow_private_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = common::fixture_seed(&fx, tmp.path(), "probe", 10, "/internal", ("species", 3));
    let seeder = seeder(tmp.path(), &input, 1, &[], None);
    let ready = seeder.ready_info();
    // No --allow-private-urls: the worker must refuse the loopback rows itself.
    let w = NodeArgs::new()
        .join(&ready.join, Some(ready.key.as_deref().unwrap()))
        .data_dir(&tmp.path().join("w"))
        .listen(0)
        .with(&["--exit-when-idle", "5", "--max-attempts", "1"])
        .start(tmp.path().join("w.err"));
    let (code, report) = seeder.wait(Duration::from_secs(120));
    assert_ne!(code, 0, "{report}");
    assert!(report.contains("0 ok, 10 failed"), "{report}");
    assert!(report.contains("blocked_address"), "{report}");
    let reached: u64 = (0..10)
        .map(|i| fx.requests(&format!("/internal/{i}.jpg")))
        .sum();
    assert_eq!(reached, 0, "the worker never reached the internal server");
    drop(w);
}

#[test]
fn a_worker_without_a_key_refuses_to_start_and_open_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("w");
    let base = [
        "node",
        "--join",
        "/ip4/127.0.0.1/tcp/9",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--status-addr",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let o = common::run_ldawt(&base, Duration::from_secs(30));
    assert_eq!(common::code(&o), 2, "{}", common::text(&o));
    let t = common::text(&o);
    assert!(
        t.contains("no swarm key") && t.contains("--swarm-key") && t.contains("LDAWT_SWARM_KEY"),
        "{t}"
    );
    assert!(!data.exists(), "a refused worker creates nothing");
    let missing = [&base[..], &["--swarm-key", "/nonexistent/swarm.key"]].concat();
    let o = common::run_ldawt(&missing, Duration::from_secs(30));
    assert_eq!(common::code(&o), 2, "{}", common::text(&o));
    assert!(common::text(&o).contains("/nonexistent/swarm.key"));
    // --open starts, warns, and prints an `--open` join line.
    let mut args = s(&base);
    args.extend(s(&["--open", "--exit-when-idle", "1"]));
    let node = NodeProc::start(&args, tmp.path().join("open.err"));
    node.wait_line("WARNING: open swarm (--open)", Duration::from_secs(30));
    let join = node.wait_line("--join ", Duration::from_secs(30));
    assert!(join.trim_end().ends_with(" --open"), "{join}");
    let (code, _) = node.wait(Duration::from_secs(60));
    assert_eq!(code, 0);
    assert!(node_log_warns(&tmp.path().join("open.err")));
}

fn node_log_warns(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains("open swarm (--open)")
}
