//! Finished work survives a worker's own death (issue 14), through the real binary on
//! loopback: the seeder is killed (-9) while a worker downloads, so the worker finishes its
//! shards with nowhere to deliver them; then the worker is killed (-9) too. Both come back
//! with the same commands: the worker keeps the finished shards in its data dir, offers them
//! to the restarted seeder under their old leases (the restart grace keeps those alive), and
//! nothing is downloaded twice — counted at the fixture server.

use std::path::Path;
use std::time::{Duration, Instant};

use super::common;
use super::faults::{seeder_args, worker_args};
use super::processes::{NodeProc, free_port, wait_status};
use super::util::{assert_exactly_once, fixture_seed};

/// `finished.json` markers under a worker's data dir.
fn finished_markers(data: &Path) -> usize {
    let work = data.join("work");
    std::fs::read_dir(work)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|ds| std::fs::read_dir(ds.path()).into_iter().flatten().flatten())
        .filter(|shard| shard.path().join("finished.json").is_file())
        .count()
}

#[test]
fn a_restarted_worker_offers_the_shards_it_finished_before_dying_and_nothing_is_fetched_twice() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let rows = 12u64;
    // 6 rows per shard at 0.6 s each on one connection: ~4 s per shard.
    let input = fixture_seed(
        &fx,
        tmp.path(),
        "larks",
        rows,
        "/fx/slow-first-byte-600/l",
        ("lark", 2),
    );
    let out = tmp.path().join("out");
    let seeder_data = tmp.path().join("seeder-data");
    let seeder_data_s = seeder_data.display().to_string();
    let port = free_port();
    let args = seeder_args(
        &input,
        &out,
        port,
        &[
            "-v",
            "--data-dir",
            &seeder_data_s,
            "--shards",
            "2",
            "--lease-ttl",
            "10",
        ],
    );
    let seeder = NodeProc::start(&args, tmp.path().join("seeder-1.err"));
    let (_, join, _) = seeder.ready();
    let data = tmp.path().join("w");
    let w_args = worker_args(
        &join,
        &data,
        &["-v", "--concurrency", "1", "--exit-when-idle", "10"],
    );
    let worker = NodeProc::start(&w_args, tmp.path().join("w-1.err"));
    let (w_id, _, w_status) = worker.ready();
    wait_status(
        &w_status,
        Duration::from_secs(60),
        "the worker holding both shards",
        |s| s.local.leases_held >= 2,
    );
    // The seeder dies; the worker finishes both shards with nowhere to deliver them.
    seeder.kill9();
    let deadline = Instant::now() + Duration::from_secs(60);
    while finished_markers(&data) < 2 {
        assert!(
            Instant::now() < deadline,
            "the worker never finished its shards:\n{}",
            worker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(fx.total_requests(), rows, "every row fetched once so far");
    // Then the worker dies too, holding two finished shards.
    worker.kill9();
    let seeder = NodeProc::start(&args, tmp.path().join("seeder-2.err"));
    seeder.wait_line("resumed", Duration::from_secs(60));
    let worker = NodeProc::start(&w_args, tmp.path().join("w-2.err"));
    let (w_id2, _, _) = worker.ready();
    assert_eq!(w_id2, w_id, "the worker keeps its identity");
    let log_path = tmp.path().join("seeder-2.err");
    let (code, report) = seeder.wait(Duration::from_secs(90));
    let seeder_log = std::fs::read_to_string(log_path).unwrap_or_default();
    let w_log = worker.log();
    assert_eq!(code, 0, "{report}\n{seeder_log}\nworker:\n{w_log}");
    assert!(report.contains("2/2 shards done"), "{report}");
    assert_exactly_once(&out, rows, rows);
    assert_eq!(
        fx.total_requests(),
        rows,
        "a shard was downloaded again\nworker:\n{w_log}\nseeder:\n{seeder_log}"
    );
    assert!(
        w_log
            .matches("offering a shard finished before the restart")
            .count()
            == 2,
        "the restarted worker offers both kept shards:\n{w_log}"
    );
    let _ = worker.wait(Duration::from_secs(60));
    assert_eq!(
        finished_markers(&data),
        0,
        "delivered shards are cleaned up"
    );
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(150), "took {elapsed:?}");
    eprintln!("worker restart with kept shards: done in {elapsed:?}");
}
