//! Issue 3's discovery test across real interfaces: the HTTP fixture in one namespace, a
//! `--no-work` seeder and two workers in three others, peers found by mDNS only (no `--join`).
//! The workers must do every shard, so the dataset completes only if discovery, leases, row
//! fetches and archive transfers all work over the bridge. `ldawt peers --json` inside the
//! seeder's namespace must list both workers. Namespaces are removed at the end.
//!
//! The three nodes share a swarm key; a fifth namespace holds an intruder with another key,
//! found by mDNS like the others, which must never complete a handshake nor do a shard.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use arrow_array::{Array, StringArray, UInt64Array};
use ldawt::protocol::status::NodeStatus;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::{self, inat_parquet, ldawt_bin};
use crate::netns::{KillOnDrop, TestNet, namespaces_with_prefix};

const ROWS: usize = 240;
const SHARD_ROWS: usize = 20;

fn node(net: &TestNet, i: usize, dir: &Path, extra: &[&str]) -> KillOnDrop {
    let log = File::create(dir.join(format!("node-{i}.log"))).unwrap();
    let child = net
        .command(i, ldawt_bin())
        .args([
            "--no-progress",
            "-v",
            "node",
            "--listen",
            "/ip4/0.0.0.0/tcp/4001",
        ])
        .args(extra)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start ldawt node in a namespace");
    KillOnDrop(child)
}

/// `ldawt peers --json` inside namespace `i`; `None` while the node does not answer yet.
fn peers_json(net: &TestNet, i: usize) -> Option<NodeStatus> {
    let out = net
        .command(i, ldawt_bin())
        .args(["peers", "--json"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// (index, status) of every row of `results.parquet`.
fn results(path: &Path) -> Vec<(u64, String)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let index = batch.column_by_name("index").unwrap();
        let index = index.as_any().downcast_ref::<UInt64Array>().unwrap();
        let status = batch.column_by_name("status").unwrap();
        let status = status.as_any().downcast_ref::<StringArray>().unwrap();
        for r in 0..batch.num_rows() {
            rows.push((index.value(r), status.value(r).to_string()));
        }
    }
    rows
}

fn logs(dir: &Path) -> String {
    (1..5)
        .map(|i| {
            let text =
                std::fs::read_to_string(dir.join(format!("node-{i}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("--- node {i} ---\n{}", tail.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_dataset_completes_with_mdns_discovery_across_namespaces() {
    if let Some(why) = TestNet::unavailable() {
        common::skip(format!("swarm namespace test: {why}"));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::create(5).expect("create namespaces");
    let prefix = net.hub.trim_end_matches("-hub").to_string();
    let fixture_addr = format!("{}:8080", net.addr(0));
    let Some(data) = inat_parquet(dir, "inat.parquet", ROWS, &format!("http://{fixture_addr}"))
    else {
        common::skip("swarm namespace test: ../shared/data/subset_50k.parquet is missing");
        return;
    };
    let mut fixture = KillOnDrop(
        net.command(0, ldawt_bin())
            .args(["fixture-server", "--listen", &fixture_addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    BufReader::new(fixture.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(
        first.trim(),
        fixture_addr,
        "fixture listening in its namespace"
    );

    let out = dir.join("out");
    let (out_s, data_s) = (out.to_str().unwrap(), data.to_str().unwrap());
    let seed_dir = dir.join("seed-data");
    let key = dir.join("swarm.key");
    crate::common::write_swarm_key(&key, crate::common::test_swarm_key());
    let key_s = key.to_str().unwrap();
    let _seeder = node(
        &net,
        1,
        dir,
        &[
            "--seed",
            data_s,
            "--url-col",
            "photo_url",
            "--class-col",
            "taxon_name",
            "--out",
            out_s,
            "--shard-rows",
            &SHARD_ROWS.to_string(),
            "--no-work",
            "--keep-serving",
            "--data-dir",
            seed_dir.to_str().unwrap(),
            "--swarm-key",
            key_s,
        ],
    );
    let workers: Vec<KillOnDrop> = (2..4)
        .map(|i| {
            let w = dir.join(format!("worker-{i}"));
            let data_dir = dir.join(format!("worker-{i}-data"));
            node(
                &net,
                i,
                dir,
                &[
                    "--out",
                    w.to_str().unwrap(),
                    "--data-dir",
                    data_dir.to_str().unwrap(),
                    "--swarm-key",
                    key_s,
                    "--allow-private-urls",
                ],
            )
        })
        .collect();
    // The intruder: a worker with a key of its own.
    let wrong_key = dir.join("wrong.key");
    crate::common::write_swarm_key(&wrong_key, ldawt::net::PreSharedKey::new([0x11; 32]));
    let intruder_out = dir.join("intruder");
    let _intruder = node(
        &net,
        4,
        dir,
        &[
            "--out",
            intruder_out.to_str().unwrap(),
            "--data-dir",
            dir.join("intruder-data").to_str().unwrap(),
            "--swarm-key",
            wrong_key.to_str().unwrap(),
            "--allow-private-urls",
        ],
    );

    let started = Instant::now();
    let deadline = started + Duration::from_secs(180);
    let mut worker_ids = BTreeSet::new();
    let status = loop {
        assert!(
            Instant::now() < deadline,
            "the dataset did not complete in time\n{}",
            logs(dir)
        );
        std::thread::sleep(Duration::from_millis(500));
        let Some(status) = peers_json(&net, 1) else {
            continue;
        };
        for p in status.peers.iter().filter(|p| p.connected) {
            worker_ids.insert(p.peer_id.clone());
        }
        let done = status
            .datasets
            .first()
            .is_some_and(|d| d.shards_total > 0 && d.shards_done == d.shards_total);
        if done && out.join("results.parquet").exists() {
            break status;
        }
    };
    let elapsed = started.elapsed();
    let dataset = &status.datasets[0];
    assert_eq!(dataset.shards_total as usize, ROWS / SHARD_ROWS);
    assert_eq!(dataset.rows_total as usize, ROWS);
    assert_eq!(
        worker_ids.len(),
        2,
        "the seeder saw both workers: {worker_ids:?}"
    );
    let workers_in_status: Vec<_> = status
        .peers
        .iter()
        .filter(|p| p.role.contains("worker"))
        .collect();
    assert!(
        workers_in_status.len() >= 2,
        "ldawt peers lists both workers: {:?}",
        status.peers
    );

    // The intruder found the others by mDNS but never got through a handshake.
    let intruder_log = std::fs::read_to_string(dir.join("node-4.log")).unwrap_or_default();
    let intruder_id = intruder_log
        .lines()
        .find_map(|l| l.strip_prefix("ldawt node "))
        .map(str::trim)
        .expect("the intruder started")
        .to_string();
    assert!(
        !status.peers.iter().any(|p| p.peer_id == intruder_id),
        "the seeder never met the intruder {intruder_id}: {:?}",
        status.peers
    );
    assert!(
        !intruder_log.contains("lease granted") && !intruder_log.contains("peer connected"),
        "the intruder connected or got work:\n{intruder_log}"
    );
    let rows = results(&out.join("results.parquet"));
    let indices: BTreeSet<u64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(rows.len(), ROWS, "one result row per input row");
    assert_eq!(
        indices,
        (0..ROWS as u64).collect(),
        "every row exactly once"
    );
    let ok = rows.iter().filter(|r| r.1 == "ok").count();
    assert_eq!(ok, ROWS, "every image stored: {:?}", &rows[..3]);
    let archives = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name().to_string_lossy().ends_with(".tar.gz")
                || e.file_name().to_string_lossy().ends_with(".tar")
        })
        .count();
    assert_eq!(
        archives,
        ROWS / SHARD_ROWS,
        "one archive per shard in --out"
    );
    eprintln!(
        "{ROWS} rows in {} shards completed by 2 mDNS-discovered workers in {elapsed:?}",
        ROWS / SHARD_ROWS
    );

    drop(workers);
    drop(_seeder);
    drop(fixture);
    drop(net);
    assert!(
        namespaces_with_prefix(&prefix).is_empty(),
        "namespaces removed"
    );
}
