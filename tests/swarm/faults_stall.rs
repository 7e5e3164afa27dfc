//! A stalled worker, through the real `ldawt node` binary on loopback (issue 14): a worker
//! frozen by SIGSTOP, and a worker whose only link to the seeder goes through a TCP proxy that
//! freezes (bytes stop, the connection stays open). Either way the seeder's `/status` and
//! `ldawt peers` mark the worker `stalled` within seconds, its lease expires and is granted to
//! the healthy worker, the stalled worker comes back (SIGCONT / thaw) to a fenced lease, and
//! every row ends up in the results exactly once, fetched at most once more than needed (the
//! stalled worker's partial shard), as counted at the fixture server.

use std::time::{Duration, Instant};

use super::common;
use super::fault_tools::signal;
use super::faults::{seeder_args, worker_args};
use super::processes::{NodeProc, free_port, status, wait_status};
use super::proxy::FreezableProxy;
use super::util::{assert_exactly_once, write_seed};

const ROWS: u64 = 60;
const SHARDS: u64 = 3;

/// How the stalled worker is frozen and brought back.
trait Stall {
    fn freeze(&self);
    fn thaw(&self);
}

/// SIGSTOP / SIGCONT of a process.
struct Signals(u32);

impl Stall for Signals {
    fn freeze(&self) {
        signal(self.0, "STOP").expect("SIGSTOP");
    }
    fn thaw(&self) {
        signal(self.0, "CONT").expect("SIGCONT");
    }
}

impl Stall for FreezableProxy {
    fn freeze(&self) {
        FreezableProxy::freeze(self);
    }
    fn thaw(&self) {
        FreezableProxy::thaw(self);
    }
}

/// Lines of `log` that contain every one of `needles`.
fn lines_with<'a>(log: &'a str, needles: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

/// The shard named in the first "lease granted" line of a worker's log (`shard-00001`).
fn granted_shard(log: &str) -> Option<String> {
    let line = lines_with(log, &["lease granted"]).into_iter().next()?;
    let at = line.find("shard=")? + "shard=".len();
    Some(
        line[at..]
            .split_whitespace()
            .next()?
            .trim_matches('"')
            .to_string(),
    )
}

/// Polls `pred` on the seeder's log until it holds (panics after `timeout`).
fn wait_log(node: &NodeProc, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + timeout;
    while !pred(&node.log()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The whole scenario. `route` turns the seeder's listen port into the address the stalled
/// worker dials (itself, or a proxy) and returns what freezes that worker, given its pid.
fn a_stalled_worker_is_shown_and_its_lease_moves(
    name: &str,
    route: impl FnOnce(u16) -> (u16, Box<dyn FnOnce(u32) -> Box<dyn Stall>>),
) {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("wrens.parquet");
    // 20 rows per shard at 0.3 s each on one connection: ~6 s per shard on the stalled worker.
    let path = |i: u64| format!("/fx/slow-first-byte-300/w/{i}.jpg");
    write_seed(
        &input,
        ROWS,
        |i| fx.url(&path(i)),
        |i| format!("wren {}", i % 2),
    );
    let out = tmp.path().join("out");
    let port = free_port();
    let shards = SHARDS.to_string();
    let seeder = NodeProc::start(
        &seeder_args(
            &input,
            &out,
            port,
            &["-v", "--shards", &shards, "--lease-ttl", "3"],
        ),
        tmp.path().join("seeder.err"),
    );
    let (_, join, seeder_status) = seeder.ready();
    let (dial_port, freezer) = route(port);
    let a_join = join.replacen(&format!("/tcp/{port}/"), &format!("/tcp/{dial_port}/"), 1);
    let a = NodeProc::start(
        &worker_args(
            &a_join,
            &tmp.path().join("a"),
            &[
                "-v",
                "--concurrency",
                "1",
                "--max-leases",
                "1",
                "--exit-when-idle",
                "8",
            ],
        ),
        tmp.path().join("a.err"),
    );
    let (a_id, _, a_status) = a.ready();
    wait_status(
        &a_status,
        Duration::from_secs(60),
        "the worker to stall holding a lease",
        |s| s.local.leases_held > 0,
    );
    let shard = granted_shard(&a.log()).expect("the stalled worker's grant in its log");
    // Seen connected and not stalled before the fault.
    wait_status(
        &seeder_status,
        Duration::from_secs(20),
        "the worker connected",
        |s| {
            s.peers
                .iter()
                .any(|p| p.peer_id == a_id && p.connected && !p.stalled)
        },
    );
    let stall = freezer(a.pid());
    stall.freeze();
    let frozen_at = Instant::now();
    // Stall shown: in /status … (the healthy worker joins only after the checks below, so
    // the dataset cannot finish — and the seeder exit — before the stall is seen)
    let s = wait_status(
        &seeder_status,
        Duration::from_secs(20),
        "the frozen worker marked stalled",
        |s| s.peers.iter().any(|p| p.peer_id == a_id && p.stalled),
    );
    let shown_after = frozen_at.elapsed();
    // … in `ldawt peers` …
    let peers = common::run_ldawt(
        &["peers", "--status-addr", &seeder_status],
        Duration::from_secs(20),
    );
    let text = common::text(&peers);
    assert!(
        text.contains("stalled") && text.contains("(STALLED)"),
        "`ldawt peers` marks the stalled worker:\n{text}"
    );
    // … and a --no-work seeder reports the free space of its --out.
    let free = ldawt::worker::stats::free_space(&out).unwrap();
    let shown = s.local.disk_free_bytes;
    assert!(
        shown > 0 && shown.abs_diff(free) < free / 20 + (64 << 20),
        "seeder disk figure {shown} vs statvfs of --out {free}"
    );
    let b = NodeProc::start(
        &worker_args(
            &join,
            &tmp.path().join("b"),
            &["-v", "--exit-when-idle", "8"],
        ),
        tmp.path().join("b.err"),
    );
    let (b_id, _, _) = b.ready();
    // Its lease expires (TTL 3 s) and goes to the healthy worker.
    wait_log(
        &seeder,
        Duration::from_secs(30),
        &format!("{shard} granted to the healthy worker"),
        |log| !lines_with(log, &["lease granted", &shard, &b_id]).is_empty(),
    );
    stall.thaw();
    eprintln!(
        "{name}: stall shown after {shown_after:?}, thawed after {:?}",
        frozen_at.elapsed()
    );
    // Back: no longer stalled (heard again, or its connection closed) — unless the seeder
    // already finished (the healthy worker may well have done the rest meanwhile).
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(s) = status(&seeder_status) {
        if s.peers.iter().all(|p| p.peer_id != a_id || !p.stalled) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the thawed worker is still shown stalled: {:#?}",
            s.peers
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let seeder_log = tmp.path().join("seeder.err");
    let (code, report) = seeder.wait(Duration::from_secs(90));
    let log = std::fs::read_to_string(&seeder_log).unwrap_or_default();
    assert_eq!(code, 0, "{report}\n{log}");
    assert!(
        report.contains(&format!("{SHARDS}/{SHARDS} shards done")),
        "{report}"
    );
    assert!(
        !lines_with(&log, &["peer stalled", &a_id]).is_empty(),
        "the seeder logs the stall:\n{log}"
    );
    assert_exactly_once(&out, ROWS, ROWS);
    // Every row fetched; only the stalled worker's partial shard was fetched twice.
    let per_shard = ROWS / SHARDS;
    let mut twice = 0;
    for i in 0..ROWS {
        let n = fx.requests(&path(i));
        assert!((1..=2).contains(&n), "row {i} fetched {n} times");
        twice += u64::from(n == 2);
    }
    assert!(
        twice <= per_shard && fx.total_requests() <= ROWS + per_shard,
        "{twice} rows fetched twice, {} requests for {ROWS} rows",
        fx.total_requests()
    );
    let _ = b.wait(Duration::from_secs(60));
    // The stalled worker may still hold its finished copy, kept for a seeder that is gone now
    // (it keeps finished work until a definite answer): it is killed, not awaited.
    drop(a);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(150),
        "{name} took {elapsed:?}"
    );
    eprintln!("{name}: done in {elapsed:?}");
}

#[test]
fn a_sigstopped_worker_is_shown_stalled_its_lease_moves_and_every_row_lands_once() {
    a_stalled_worker_is_shown_and_its_lease_moves("sigstop", |port| {
        (
            port,
            Box::new(|pid| Box::new(Signals(pid)) as Box<dyn Stall>),
        )
    });
}

#[test]
fn a_worker_behind_a_frozen_proxy_is_shown_stalled_its_lease_moves_and_every_row_lands_once() {
    a_stalled_worker_is_shown_and_its_lease_moves("frozen proxy", |port| {
        let proxy = FreezableProxy::start(([127, 0, 0, 1], port).into());
        let dial = proxy.addr.port();
        (dial, Box::new(move |_| Box::new(proxy) as Box<dyn Stall>))
    });
}
