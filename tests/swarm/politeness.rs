//! The seeder owns its dataset's engine settings: real `ldawt node` processes (a `--no-work`
//! seeder and workers started with no engine flag at all) against one fixture host.
//!
//! - `--swarm-per-host 4`: the requests in flight at the server, summed over both workers and
//!   all their leases, never exceed 4 (counted by the server itself), and every row is ok.
//! - The budget is per host: with host A's rows in some shards and host B's in others, a
//!   lease on A's shards gets the whole budget of A while another lease fetches from B with
//!   the whole budget of B, and neither server sees more than the budget.
//! - `--resize-mode`, `--image-size`, `--user-agent-token`, `--extra-cols` given to the seeder
//!   only reach the worker: the stored images are resized, the server saw the contact token,
//!   the shard results carry the extra column (the seeder's rows carry its cells).

use std::path::Path;
use std::time::Duration;

use super::common;
use super::processes::{NodeArgs, NodeProc, free_port};
use super::util::{archive_members, assert_exactly_once, fixture_seed, write_seed};

/// A `--no-work` seeder of `input` into `out` with 3 s leases and `extra` flags.
fn seeder(tmp: &Path, input: &Path, out: &Path, extra: &[&str]) -> NodeProc {
    NodeArgs::seeder(input, out, free_port())
        .with(&["--lease-ttl", "3"])
        .with(extra)
        .start(tmp.join("seeder.err"))
}

/// A worker joining `join` with no engine flag (only access and housekeeping).
fn worker(tmp: &Path, name: &str, join: &str, key: &str) -> NodeProc {
    NodeArgs::worker(join, Some(key), &tmp.join(name))
        .with(&["--exit-when-idle", "10"])
        .start(tmp.join(format!("{name}.err")))
}

/// `GET /fx-stats` of the fixture at `addr`.
fn fixture_stats(addr: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("fixture reachable");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let path = ldawt::fixture::STATS_PATH;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).expect("JSON stats")
}

#[test]
fn two_workers_never_exceed_the_swarm_per_host_budget_at_the_server() {
    const ROWS: u64 = 160;
    const BUDGET: u64 = 4;
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    // Slow answers, so requests pile up at the server if anything lets them.
    let input = fixture_seed(
        &fx,
        tmp.path(),
        "birds",
        ROWS,
        "/fx/slow-first-byte-150/p",
        ("species", 4),
    );
    let out = tmp.path().join("out");
    let seeder = seeder(
        tmp.path(),
        &input,
        &out,
        &["--shards", "8", "--swarm-per-host", &BUDGET.to_string()],
    );
    let workers = run_two_workers(tmp.path(), seeder);
    assert_exactly_once(&out, ROWS, ROWS);
    // Read at the server's stats endpoint (as a benchmark with the fixture in another process
    // would), checked against the handle's own counters.
    let stats = fixture_stats(&fx.addr().to_string());
    let peak = stats["max_in_flight"].as_u64().expect("max_in_flight");
    assert_eq!(peak, fx.max_in_flight());
    eprintln!(
        "peak requests in flight at the server: {peak} (budget {BUDGET}); peak connections: {}",
        stats["max_connections"]
    );
    assert!(
        peak <= BUDGET,
        "the server answered {peak} requests at once; the swarm's budget is {BUDGET}"
    );
    assert!(
        peak >= 2,
        "the budget was never used ({peak} in flight at most): the test shows nothing"
    );
    // The budget was shared: each worker completed shards.
    each_worker_completed_shards(workers);
}

#[test]
fn a_worker_on_one_hosts_shards_gets_that_hosts_whole_budget() {
    const ROWS: u64 = 160;
    const BUDGET: u64 = 4;
    let tmp = tempfile::tempdir().unwrap();
    let (fa, fb) = (common::fixture(), common::fixture());
    let input = tmp.path().join("birds.parquet");
    // Shards 0 and 1 (rows 0..80) are host A's, shards 2 and 3 host B's.
    write_seed(
        &input,
        ROWS,
        |i| {
            let fx = if i < ROWS / 2 { &fa } else { &fb };
            fx.url(&format!("/fx/slow-first-byte-150/p/{i}.jpg"))
        },
        |i| format!("species {}", i % 4),
    );
    let out = tmp.path().join("out");
    let seeder = seeder(
        tmp.path(),
        &input,
        &out,
        &[
            "--shards",
            "4",
            "--swarm-per-host",
            &BUDGET.to_string(),
            "-v",
        ],
    );
    let workers = run_two_workers(tmp.path(), seeder);
    assert_exactly_once(&out, ROWS, ROWS);
    for (name, fx) in [("A", &fa), ("B", &fb)] {
        let peak = fixture_stats(&fx.addr().to_string())["max_in_flight"]
            .as_u64()
            .expect("max_in_flight");
        eprintln!("peak requests in flight at host {name}: {peak} (budget {BUDGET})");
        assert!(
            peak <= BUDGET,
            "host {name} answered {peak} requests at once"
        );
    }
    // The first two grants (one on each host's shards) both carry the whole budget. A
    // host-blind budget refuses a second lease while the first holds the whole budget, and
    // splits it in two once both workers bid. (Later grants may split a host between both
    // workers once both want it.)
    let log = std::fs::read_to_string(tmp.path().join("seeder.err")).unwrap_or_default();
    let grants: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("lease granted"))
        .collect();
    assert!(grants.len() >= 4, "{log}");
    for g in &grants[..2] {
        assert!(
            g.contains(&format!("per_host={BUDGET}")),
            "a first grant below the budget: {g}\nall grants: {grants:#?}"
        );
    }
    let host_of = |g: &str| g.contains("shard=shard-00000") || g.contains("shard=shard-00001");
    assert_ne!(
        host_of(grants[0]),
        host_of(grants[1]),
        "the first two grants are on one host: {grants:#?}"
    );
    each_worker_completed_shards(workers);
}

#[test]
fn a_seeders_dataset_settings_reach_workers_started_without_flags() {
    const ROWS: u64 = 12;
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("birds.parquet");
    common::write_string_parquet(
        &input,
        &[
            (
                "photo_url",
                (0..ROWS)
                    .map(|i| Some(fx.url(&format!("/fx/dims-120x80/p/{i}.jpg"))))
                    .collect(),
            ),
            (
                "taxon_name",
                (0..ROWS)
                    .map(|i| Some(format!("species {}", i % 2)))
                    .collect(),
            ),
            (
                "note",
                (0..ROWS)
                    .map(|i| Some(format!("bird number {i}")))
                    .collect(),
            ),
        ],
    );
    let out = tmp.path().join("out");
    let seeder = seeder(
        tmp.path(),
        &input,
        &out,
        &[
            "--shards",
            "2",
            "--extra-cols",
            "note",
            "--resize-mode",
            "center_crop",
            "--image-size",
            "32",
            "--user-agent-token",
            "seeder@example.org",
        ],
    );
    let (_, join, key, _) = seeder.ready_with_key();
    let w = worker(tmp.path(), "w1", &join, &key);
    let (code, report) = seeder.wait(Duration::from_secs(180));
    assert_eq!(code, 0, "seeder report:\n{report}\nworker:\n{}", w.log());
    assert_exactly_once(&out, ROWS, ROWS);
    let ua = fx
        .user_agent("/p/0.jpg")
        .or_else(|| fx.user_agent("/fx/dims-120x80/p/0.jpg"));
    assert!(
        ua.as_deref()
            .is_some_and(|u| u.contains("seeder@example.org")),
        "the worker did not send the seeder's contact token: {ua:?}"
    );
    // Every stored image was cropped to 32×32 by the worker, as the seeder asked.
    let members = archive_members(&out);
    assert_eq!(members.len() as u64, ROWS);
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".tar.gz") {
            continue;
        }
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap());
        let mut tar = tar::Archive::new(gz);
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            if !e.header().entry_type().is_file() {
                continue;
            }
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            let img = image::load_from_memory(&bytes).expect("an image");
            assert_eq!((img.width(), img.height()), (32, 32), "{}", path.display());
        }
    }
    // The seeder's rows carried the extra column, and the worker wrote it into the results.
    let mut captions = Vec::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with("-00000.results.parquet") {
            continue;
        }
        use arrow_array::Array;
        use arrow_array::cast::AsArray;
        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for b in reader {
            let b = b.unwrap();
            let c = b
                .column_by_name("note")
                .unwrap_or_else(|| panic!("no note column in {}", path.display()))
                .as_string::<i32>()
                .clone();
            captions.extend((0..c.len()).map(|i| c.value(i).to_string()));
        }
    }
    assert!(
        captions.contains(&"bird number 0".to_string()),
        "{captions:?}"
    );
    let (code, _) = w.wait(Duration::from_secs(60));
    assert_eq!(code, 0);
}

#[test]
fn slow_downs_reported_by_a_worker_lower_the_shares_the_seeder_grants() {
    const ROWS: u64 = 80;
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("birds.parquet");
    // The first shard's images answer 429 once, slowly: its lease lasts past its first
    // renewal, which reports them.
    write_seed(
        &input,
        ROWS,
        |i| {
            if i < ROWS / 4 {
                fx.url(&format!(
                    "/fx/fail-first-1-429/fx/slow-first-byte-400/p/{i}.jpg"
                ))
            } else {
                fx.url(&format!("/fx/slow-first-byte-200/p/{i}.jpg"))
            }
        },
        |i| format!("species {}", i % 4),
    );
    let out = tmp.path().join("out");
    let seeder = seeder(
        tmp.path(),
        &input,
        &out,
        &["--shards", "4", "--swarm-per-host", "8", "-v"],
    );
    let (_, join, key, _) = seeder.ready_with_key();
    let w = worker(tmp.path(), "w1", &join, &key);
    let (code, report) = seeder.wait(Duration::from_secs(240));
    let log = std::fs::read_to_string(tmp.path().join("seeder.err")).unwrap();
    assert_eq!(code, 0, "seeder report:\n{report}\nworker:\n{}", w.log());
    assert_exactly_once(&out, ROWS, ROWS);
    assert!(
        log.contains("told to slow down"),
        "the worker's 429s never reached the seeder:\n{log}"
    );
    // The per-host cap of each grant, in order: the first is the whole budget, a later one
    // is lower because the swarm slowed down.
    let caps: Vec<u32> = log
        .lines()
        .filter(|l| l.contains("lease granted"))
        .filter_map(|l| {
            l.split("per_host=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    eprintln!("per-host caps granted, in order: {caps:?}");
    assert_eq!(caps.first(), Some(&8), "{caps:?}\n{log}");
    assert!(
        caps.iter().skip(1).any(|c| *c < 8),
        "no grant after the slow-downs was smaller: {caps:?}"
    );
    assert!(fx.max_in_flight() <= 8, "{}", fx.max_in_flight());
    let (code, _) = w.wait(Duration::from_secs(60));
    assert_eq!(code, 0);
}

/// Waits for the workers `w1`, `w2` (60 s each) and checks that each exited 0 having
/// completed at least one shard (from its summary line): the budget was shared.
fn each_worker_completed_shards(workers: Vec<NodeProc>) {
    for (name, w) in ["w1", "w2"].iter().zip(workers) {
        let (code, summary) = w.wait(Duration::from_secs(60));
        assert_eq!(code, 0, "{name}: {summary}");
        let done: u64 = summary
            .lines()
            .find_map(|l| l.split("worker: ").nth(1)?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} printed no worker summary: {summary}"));
        assert!(done > 0, "{name} completed no shard: {summary}");
    }
}

/// Joins two workers `w1`, `w2` to `seeder`, waits for the seeder to finish the dataset (240 s
/// at most) and checks that it exited 0; returns the workers, still to be waited for.
fn run_two_workers(dir: &std::path::Path, seeder: NodeProc) -> Vec<NodeProc> {
    let (_, join, key, _) = seeder.ready_with_key();
    let workers: Vec<NodeProc> = ["w1", "w2"]
        .iter()
        .map(|n| worker(dir, n, &join, &key))
        .collect();
    let (code, report) = seeder.wait(Duration::from_secs(240));
    let logs: Vec<String> = workers.iter().map(NodeProc::log).collect();
    assert_eq!(code, 0, "seeder report:\n{report}\nworkers:\n{logs:#?}");
    workers
}
