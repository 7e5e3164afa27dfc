//! Fault injection through the real `ldawt node` binary on loopback (issue 14): five seeder
//! `kill -9`/restart cycles inside one shard's life with the epoch high-water mark read from
//! redb after each kill; a worker whose data dir is a small tmpfs beside a healthy worker; a
//! seeder whose `--out` fills up (fail-stop with exit code 4; down longer than the lease TTL
//! while workers hold finished shards; a rerun with more space finishes exactly once and no
//! image is downloaded twice). Mounts need root: locally these tests say why they skip, under `CI`
//! they fail.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ldawt::model::ids::Epoch;
use ldawt::model::lease::ShardPhase;
use ldawt::store::Store;

use super::common;
use super::fault_tools::tmpfs_or_skip;
use super::node_proc::NodeArgs;
use super::processes::{NodeProc, free_port, wait_status};
use super::util::{assert_exactly_once, fixture_seed};

/// The tests' swarm key written beside `dir` (as `<dir>.key`, inside the test's own temporary
/// directory, so it goes with it); returns its path.
fn swarm_key_file(dir: &Path) -> String {
    let path = dir.with_extension("key");
    if !path.exists() {
        common::write_swarm_key(&path, common::test_swarm_key());
    }
    path.display().to_string()
}

/// A `--no-work` seeder of `input` on a fixed loopback port (so restarts keep the join line),
/// holding the tests' swarm key, with `extra` flags.
pub(super) fn seeder_args(input: &Path, out: &Path, port: u16, extra: &[&str]) -> Vec<String> {
    let key = swarm_key_file(out);
    NodeArgs::seeder(input, out, port)
        .with(&["--swarm-key", &key, "--allow-private-urls"])
        .with(extra)
        .args()
        .to_vec()
}

/// A worker joining `join` with the tests' swarm key, keeping its state in `data`.
pub(super) fn worker_args(join: &str, data: &Path, extra: &[&str]) -> Vec<String> {
    let key = swarm_key_file(data);
    NodeArgs::worker(join, Some(&key), data)
        .with(extra)
        .args()
        .to_vec()
}

/// Starts a [`seeder_args`] seeder on a free port with its stderr in `<tmp>/seeder.err`;
/// returns it and its join address.
fn start_seeder(tmp: &Path, input: &Path, out: &Path, extra: &[&str]) -> (NodeProc, String) {
    let seeder = NodeProc::start(
        &seeder_args(input, out, free_port(), extra),
        tmp.join("seeder.err"),
    );
    let (_, join, _) = seeder.ready();
    (seeder, join)
}

/// What the lease database says after a kill: the epoch high-water mark, every epoch present
/// (holders and completions), and whether any shard failed.
fn read_leases(db: &Path) -> (Epoch, BTreeSet<Epoch>, bool) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut store = None;
        for _ in 0..100 {
            if let Ok(s) = Store::open(db) {
                store = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let store = store.expect("the lease database opens once the seeder is dead");
        let id = store.list().await.unwrap()[0].seeded.id;
        let (_, shards) = store.load(id).await.unwrap().unwrap();
        let mark = store.next_epoch(id).await.unwrap();
        let epochs = shards
            .iter()
            .flat_map(|s| {
                s.entry
                    .holders
                    .iter()
                    .map(|h| h.epoch)
                    .chain(s.entry.done_epoch)
            })
            .collect();
        let failed = shards.iter().any(|s| s.entry.phase == ShardPhase::Failed);
        (mark, epochs, failed)
    })
}

#[test]
fn five_seeder_kill_9_cycles_inside_one_shard_fail_nothing_and_epochs_only_grow() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let rows = 200u64;
    // Two shards of 100 rows at ~0.4 s each with one connection: ~40 s per shard, longer than
    // the five kill/restart cycles (~35 s).
    let input = fixture_seed(
        &fx,
        tmp.path(),
        "owls",
        rows,
        "/fx/slow-first-byte-400/o",
        ("owl", 3),
    );
    let out = tmp.path().join("out");
    let data = tmp.path().join("seeder-data");
    let data_s = data.display().to_string();
    let port = free_port();
    // --max-retries 1: before the fix, two restarts charged the shard two failures.
    let args = seeder_args(
        &input,
        &out,
        port,
        &[
            "--data-dir",
            &data_s,
            "--shards",
            "2",
            "--lease-ttl",
            "3",
            "--max-retries",
            "1",
        ],
    );
    let mut seeder = NodeProc::start(&args, tmp.path().join("seeder-0.err"));
    let (_, join, _) = seeder.ready();
    let worker = NodeProc::start(
        &worker_args(
            &join,
            &tmp.path().join("w"),
            &[
                "--concurrency",
                "1",
                "--max-leases",
                "1",
                "--exit-when-idle",
                "20",
            ],
        ),
        tmp.path().join("w.err"),
    );
    let (_, _, worker_status) = worker.ready();
    wait_status(
        &worker_status,
        Duration::from_secs(60),
        "the worker holding a lease",
        |s| s.local.leases_held > 0,
    );
    let db = data.join("leases.redb");
    let mut last_mark = Epoch(0);
    let mut seen: BTreeSet<Epoch> = BTreeSet::new();
    for cycle in 1..=5 {
        std::thread::sleep(Duration::from_secs(2));
        seeder.kill9();
        let (mark, epochs, failed) = read_leases(&db);
        assert!(!failed, "cycle {cycle}: a shard failed");
        assert!(
            mark >= last_mark,
            "cycle {cycle}: mark went down {last_mark} → {mark}"
        );
        for e in &epochs {
            assert!(
                *e < mark,
                "cycle {cycle}: epoch {e} at or above the mark {mark}"
            );
            if !seen.contains(e) {
                assert!(
                    *e >= last_mark,
                    "cycle {cycle}: epoch {e} reissued (mark was {last_mark})"
                );
            }
        }
        seen.extend(epochs);
        last_mark = mark;
        // Down for longer than the lease TTL (3 s).
        std::thread::sleep(Duration::from_secs(4));
        seeder = NodeProc::start(&args, tmp.path().join(format!("seeder-{cycle}.err")));
        seeder.wait_line("resumed", Duration::from_secs(60));
    }
    let log = seeder.log();
    let (code, report) = seeder.wait(Duration::from_secs(240));
    assert_eq!(code, 0, "seeder report:\n{report}\nlog:\n{log}");
    assert!(report.contains("2/2 shards done"), "{report}");
    let (mark, epochs, failed) = read_leases(&db);
    assert!(!failed);
    assert!(mark >= last_mark && epochs.iter().all(|e| *e < mark));
    let (code, w) = worker.wait(Duration::from_secs(90));
    assert_eq!(code, 0, "{w}");
    assert_exactly_once(&out, rows, rows);
}

#[test]
fn a_worker_on_a_small_tmpfs_says_why_it_does_not_bid_and_a_healthy_one_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(small) = tmpfs_or_skip("small tmpfs worker", &tmp.path().join("small"), "30m") else {
        return;
    };
    let fx = common::fixture();
    let rows = 60u64;
    let input = fixture_seed(
        &fx,
        tmp.path(),
        "bees",
        rows,
        "/fx/size-200000/b",
        ("bee", 3),
    );
    let out = tmp.path().join("out");
    let (seeder, join) = start_seeder(
        tmp.path(),
        &input,
        &out,
        &["--shards", "4", "--lease-ttl", "3"],
    );
    let idle = ["--exit-when-idle", "6"];
    let small_worker = NodeProc::start(
        &worker_args(&join, &small.path.join("data"), &idle),
        tmp.path().join("small.err"),
    );
    small_worker.ready();
    // Let the small worker see the offer first: it must not take it.
    std::thread::sleep(Duration::from_secs(2));
    let healthy = NodeProc::start(
        &worker_args(&join, &tmp.path().join("healthy"), &idle),
        tmp.path().join("healthy.err"),
    );
    let (code, report) = seeder.wait(Duration::from_secs(180));
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("4/4 shards done"), "{report}");
    assert_exactly_once(&out, rows, rows);
    let (_, _) = healthy.wait(Duration::from_secs(60));
    let log = small_worker.log();
    let (_, _) = small_worker.wait(Duration::from_secs(60));
    assert!(
        log.contains("not bidding") && log.contains("free on"),
        "the small worker never said why it sat idle:\n{log}"
    );
    assert_eq!(
        log.matches("not bidding").count(),
        1,
        "the reason is logged once:\n{log}"
    );
    assert!(!log.contains("lease granted"), "{log}");
}

#[test]
fn a_seeder_whose_out_fills_up_stops_with_code_4_and_a_rerun_finishes_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = tmpfs_or_skip(
        "seeder --out on a small tmpfs",
        &tmp.path().join("outfs"),
        "12m",
    ) else {
        return;
    };
    let fx = common::fixture();
    let rows = 80u64;
    // ~400 kB per image, ~32 MB in all: far more than the 12 MB --out (which also holds the
    // lease database: the seeder's data dir defaults to <out>/.ldawt).
    let input = fixture_seed(
        &fx,
        tmp.path(),
        "moths",
        rows,
        "/fx/size-400000/m",
        ("moth", 4),
    );
    let out = disk.path.join("out");
    let args = seeder_args(
        &input,
        &out,
        free_port(),
        &["--shards", "8", "--lease-ttl", "5"],
    );
    let seeder = NodeProc::start(&args, tmp.path().join("seeder-1.err"));
    let (_, join, _) = seeder.ready();
    let mut workers = Vec::new();
    for name in ["w1", "w2"] {
        let w = NodeProc::start(
            &worker_args(&join, &tmp.path().join(name), &["--exit-when-idle", "30"]),
            tmp.path().join(format!("{name}.err")),
        );
        w.ready();
        workers.push(w);
    }
    let log_before = seeder.log();
    let (code, report) = seeder.wait(Duration::from_secs(180));
    let log = std::fs::read_to_string(tmp.path().join("seeder-1.err")).unwrap_or(log_before);
    assert_eq!(code, 4, "exit code 4 on a storage failure\n{report}\n{log}");
    assert!(
        log.contains("seeder storage failed in") && log.contains("free)"),
        "the error names the directory and its free space:\n{log}"
    );
    // Down for longer than the lease TTL (5 s) while the workers hold finished shards; then
    // more space and the same command: the run resumes and the workers deliver what they kept.
    std::thread::sleep(Duration::from_secs(7));
    disk.resize("200m").unwrap();
    let seeder = NodeProc::start(&args, tmp.path().join("seeder-2.err"));
    seeder.wait_line("resumed", Duration::from_secs(60));
    let log2 = seeder.log();
    let (code, report) = seeder.wait(Duration::from_secs(240));
    assert_eq!(code, 0, "rerun:\n{report}\n{log2}");
    assert!(report.contains("8/8 shards done"), "{report}");
    assert_exactly_once(&out, rows, rows);
    // Finished work was kept across the outage: no image was downloaded twice.
    let logs: String = ["seeder-1.err", "seeder-2.err", "w1.err", "w2.err"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(tmp.path().join(f)).unwrap_or_default();
            format!("--- {f}\n{text}\n")
        })
        .collect();
    assert_eq!(
        fx.total_requests(),
        rows,
        "shards were downloaded again\n{logs}"
    );
    for w in workers {
        let _ = w.wait(Duration::from_secs(90));
    }
}

#[test]
fn a_worker_whose_disk_fills_mid_shard_gives_it_back_with_the_cause_and_a_healthy_one_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    // Big enough to bid (a worker wants ~250 MB free), too small for one 300 MB shard.
    let Some(small) = tmpfs_or_skip(
        "worker disk filling mid-shard",
        &tmp.path().join("small"),
        "260m",
    ) else {
        return;
    };
    let fx = common::fixture();
    let rows = 240u64;
    let input = fixture_seed(
        &fx,
        tmp.path(),
        "crows",
        rows,
        "/fx/size-2500000/c",
        ("crow", 2),
    );
    let out = tmp.path().join("out");
    let (seeder, join) = start_seeder(
        tmp.path(),
        &input,
        &out,
        &["--shards", "2", "--lease-ttl", "3"],
    );
    let small_worker = NodeProc::start(
        &worker_args(
            &join,
            &small.path.join("data"),
            &["--exit-when-idle", "8", "--max-leases", "1"],
        ),
        tmp.path().join("small.err"),
    );
    let (small_id, _, small_status) = small_worker.ready();
    wait_status(
        &small_status,
        Duration::from_secs(60),
        "the small worker taking a shard",
        |s| s.local.leases_held > 0,
    );
    let healthy = NodeProc::start(
        &worker_args(
            &join,
            &tmp.path().join("healthy"),
            // A few rows at a time, so progress reaches the seeder within its 3-TTL stall
            // window even on a loaded machine (128 parallel 2.5 MB bodies may show none).
            &["--exit-when-idle", "8", "--concurrency", "4"],
        ),
        tmp.path().join("healthy.err"),
    );
    let seeder_log_path = tmp.path().join("seeder.err");
    let (code, report) = seeder.wait(Duration::from_secs(300));
    let seeder_log = std::fs::read_to_string(seeder_log_path).unwrap_or_default();
    assert_eq!(code, 0, "{report}\n{seeder_log}");
    assert!(report.contains("2/2 shards done"), "{report}");
    assert_exactly_once(&out, rows, rows);
    let _ = healthy.wait(Duration::from_secs(60));
    let log = small_worker.log();
    let _ = small_worker.wait(Duration::from_secs(60));
    let cause_shown = |l: &str| l.contains("disk nearly full") || l.contains("No space left");
    assert!(
        cause_shown(&log),
        "the small worker gave its shard back with the cause:\n{log}\nseeder:\n{report}\n{seeder_log}"
    );
    assert!(
        seeder_log
            .lines()
            .any(|l| l.contains("given back failed") && l.contains(&small_id) && cause_shown(l)),
        "the seeder logs the give-back, the peer and the cause:\n{seeder_log}"
    );
}
