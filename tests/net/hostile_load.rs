//! Hostile peers that cost time and resources, against a real `ldawt node` seeder:
//!
//! - attack 8: a silent insider announcing the seeder's dataset id (and one of its own) costs
//!   the honest worker seconds, and never becomes the dataset's seeder in its table;
//! - attack 9: ~2,000 idle TCP connections to each of the seeder's libp2p and status ports,
//!   under `ulimit -n 1024`: `/healthz` still answers and an honest worker finishes the dataset.

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use ldawt::model::ids::DatasetId;
use ldawt::model::time::UnixMillis;
use ldawt::protocol::gossip::Gossip;

use crate::common;
use crate::harness::{hold_every_request, spawn_rogue};
use crate::hostile::{dataset_of, key_of, runtime, seeder, wait_status, worker, write_seed};
use crate::node_proc::http_get_code;

#[test]
fn a_silent_rogue_announcer_costs_seconds_and_never_takes_the_dataset_over() {
    const SHARDS: u32 = 12;
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("moths.parquet");
    // Slow rows (0.5 s to the first byte): the dataset must still be in progress when the
    // rogue shows up, however fast this machine is.
    write_seed(&input, 120, |i| {
        fx.url(&format!("/fx/slow-first-byte-500/m/{i}.jpg"))
    });
    let seeder = seeder(tmp.path(), &input, SHARDS, &[], None);
    let ready = seeder.ready_info();
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
        &["--max-leases", "1", "--exit-when-idle", "15"],
    );
    let wr = w.ready_info();
    // The worker knows the dataset from its seeder before the rogue shows up.
    wait_status(
        &wr.status,
        Duration::from_secs(30),
        "the dataset on the worker",
        |s| s.datasets.iter().any(|d| d.seeder == ready.peer_id),
    );
    let rt = runtime();
    let started = Instant::now();
    let rogue = rt.block_on(async {
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
        // Announces the seeder's dataset and one of its own (an id that sorts before every
        // other, so the worker meets it first), every 300 ms, answering nothing.
        tokio::spawn(async move {
            for n in 0..400u32 {
                for id in [dataset, DatasetId([0x00; 16])] {
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
        (id, held)
    });
    let (rogue_id, held) = rogue;
    // The rogue's announcements reach the worker (its own dataset shows up there), but the
    // seeder's dataset stays bound to the seeder.
    let hex = hex::encode(dataset.0);
    let rogue_hex = hex::encode([0x00; 16]);
    let st = wait_status(
        &wr.status,
        Duration::from_secs(20),
        "the rogue's dataset on the worker",
        |s| s.datasets.iter().any(|d| d.dataset_id == rogue_hex),
    );
    let bound: Vec<_> = st.datasets.iter().filter(|d| d.dataset_id == hex).collect();
    assert_eq!(bound.len(), 1, "{:?}", st.datasets);
    assert_eq!(
        bound[0].seeder, ready.peer_id,
        "the rogue {rogue_id} took the dataset over"
    );
    let (code, report) = seeder.wait(Duration::from_secs(120));
    let elapsed = started.elapsed();
    assert_eq!(code, 0, "{report}\nworker:\n{}", w.log());
    assert!(
        report.contains(&format!("{SHARDS}/{SHARDS} shards done")),
        "{report}"
    );
    // Sequential bids with a 120 s wait each stalled here before; now a silent node costs a
    // few 5 s bid timeouts at most.
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    let (code, out) = w.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{out}");
    // The rogue's dataset sorts first among the offers: the worker did bid there and waited.
    assert!(
        held.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "the worker never bid on the rogue"
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
    let input = common::fixture_seed(&fx, tmp.path(), "wasps", 60, "/w", ("species", 3));
    let seeder = seeder(tmp.path(), &input, SHARDS, &["--keep-serving"], Some(1024));
    let ready = seeder.ready_info();
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
    let joined = Instant::now();
    let w = worker(tmp.path(), "w", &ready, &["--exit-when-idle", "8"]);
    let (code, out) = w.wait(Duration::from_secs(120));
    assert_eq!(code, 0, "{out}");
    eprintln!(
        "the worker joined the flooded seeder and finished in {:?}",
        joined.elapsed()
    );
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
