//! Real `ldawt node` processes on loopback: a `--no-work` seeder and two `--join` workers.
//! One worker is killed with SIGKILL while it holds a lease, then the seeder is killed with
//! SIGKILL mid-run and restarted with the same command; the run still ends with every row
//! accounted for exactly once. `ldawt peers --json` shows all three nodes.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ldawt::protocol::status::NodeStatus;

use super::common;
use super::util::{assert_exactly_once, fixture_seed, write_seed};

const ROWS: u64 = 160;
const SHARDS: u32 = 16;

pub(super) use crate::node_proc::{NodeArgs, NodeProc, poll_until};

pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(super) fn status(addr: &str) -> Option<NodeStatus> {
    let out = common::run_ldawt(
        &["peers", "--json", "--status-addr", addr],
        Duration::from_secs(20),
    );
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Polls `addr`'s status through `ldawt peers --json` until `pred` holds (panics after
/// `timeout`).
pub(super) fn wait_status(
    addr: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&NodeStatus) -> bool,
) -> NodeStatus {
    poll_until(timeout, &format!("{what} on {addr}"), || status(addr), pred)
}

/// The `--no-work` seeder of these tests: `SHARDS` shards, 3 s leases, on loopback `port`.
fn seeder_args(input: &Path, out: &Path, port: u16) -> Vec<String> {
    NodeArgs::seeder(input, out, port)
        .with(&["--shards", &SHARDS.to_string(), "--lease-ttl", "3"])
        .args()
        .to_vec()
}

#[test]
fn seeder_and_joined_workers_survive_kill_9_of_a_worker_and_of_the_seeder() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = fixture_seed(
        &fx,
        tmp.path(),
        "birds",
        ROWS,
        "/fx/slow-first-byte-400/p",
        ("species", 4),
    );
    let out = tmp.path().join("out");
    let port = free_port();
    let args = seeder_args(&input, &out, port);
    let seeder = NodeProc::start(&args, tmp.path().join("seeder.err"));
    let (_, join, key, seeder_status) = seeder.ready_with_key();
    assert!(
        join.starts_with(&format!("/ip4/127.0.0.1/tcp/{port}/p2p/12D3")),
        "{join}"
    );
    // The seeder created its swarm key in its data dir, readable by its owner only.
    assert_eq!(Path::new(&key), out.join(".ldawt").join("swarm.key"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }

    let mut workers = Vec::new();
    let mut worker_status = Vec::new();
    let mut ids = Vec::new();
    for name in ["w1", "w2"] {
        let args = NodeArgs::worker(&join, Some(&key), &tmp.path().join(name)).with(&[
            "--exit-when-idle",
            "15",
            "--concurrency",
            "2",
            "--max-leases",
            "1",
        ]);
        let w = args.start(tmp.path().join(format!("{name}.err")));
        let (id, _, st) = w.ready();
        ids.push(id);
        worker_status.push(st);
        workers.push(w);
    }

    // `ldawt peers --json` on the seeder lists both workers, with their resources.
    let s = wait_status(
        &seeder_status,
        Duration::from_secs(60),
        "both workers seen",
        |s| {
            ids.iter()
                .all(|id| s.peers.iter().any(|p| &p.peer_id == id && p.cores > 0))
        },
    );
    assert!(s.roles.contains(&"seeder".to_string()));
    assert_eq!(s.datasets.len(), 1);
    assert_eq!(s.datasets[0].shards_total, SHARDS);

    // kill -9 of worker 1 while it holds a lease.
    wait_status(
        &worker_status[0],
        Duration::from_secs(60),
        "w1 holding a lease",
        |s| s.local.leases_held > 0,
    );
    workers.remove(0).kill9();

    // kill -9 of the seeder once some shards are done, then the same command again.
    wait_status(
        &seeder_status,
        Duration::from_secs(90),
        "3 shards done",
        |s| s.datasets.first().is_some_and(|d| d.shards_done >= 3),
    );
    seeder.kill9();
    std::thread::sleep(Duration::from_millis(500));
    let seeder = NodeProc::start(&args, tmp.path().join("seeder2.err"));
    seeder.wait_line("resumed", Duration::from_secs(60));
    // The restarted seeder reuses its key, so the surviving worker's key still fits.
    seeder.wait_line("(reused,", Duration::from_secs(60));
    let (code, report) = seeder.wait(Duration::from_secs(240));
    assert_eq!(code, 0, "seeder report:\n{report}");
    assert!(
        report.contains(&format!("{SHARDS}/{SHARDS} shards done")),
        "{report}"
    );

    let (code, w2) = workers.remove(0).wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{w2}");
    assert_exactly_once(&out, ROWS, ROWS);
}

#[test]
fn bad_seeds_exit_2_naming_the_problem_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let missing = tmp.path().join("missing.parquet");
    let o = common::run_ldawt(
        &[
            "node",
            "--seed",
            missing.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(common::code(&o), 2, "{}", common::text(&o));
    assert!(common::text(&o).contains("missing.parquet"));
    let input = tmp.path().join("in.parquet");
    common::write_string_parquet(
        &input,
        &[("photo_url", vec![Some("http://127.0.0.1:9/a.jpg".into())])],
    );
    let o = common::run_ldawt(
        &[
            "node",
            "--seed",
            input.to_str().unwrap(),
            "--class-col",
            "species",
            "--out",
            out.to_str().unwrap(),
            "--status-addr",
            "127.0.0.1:0",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(common::code(&o), 2, "{}", common::text(&o));
    let t = common::text(&o);
    assert!(t.contains("species") && t.contains("photo_url"), "{t}");
    assert!(!out.exists(), "nothing is created for a bad seed");
}

#[test]
fn a_seeder_uploads_each_stored_archive_to_webdav() {
    if Command::new("rclone").arg("version").output().is_err() {
        common::skip("rclone is not installed (scripts/install-test-deps.sh installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("dav");
    std::fs::create_dir(&served).unwrap();
    let port = free_port();
    let mut rclone = Command::new("rclone")
        .args(["serve", "webdav", "--addr", &format!("127.0.0.1:{port}")])
        .arg(&served)
        .args([
            "--user",
            "ldawt",
            "--pass",
            "pw-123",
            "--config",
            "/dev/null",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rclone");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "rclone did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let fx = common::fixture();
    let input = fixture_seed(&fx, tmp.path(), "wasps", 30, "/w", ("wasp", 2));
    let out = tmp.path().join("out");
    let url = format!("http://127.0.0.1:{port}/run1");
    let (o, text) = lone_seeder(
        &input,
        &out,
        3,
        &["--upload-to", &url, "--upload-user", "ldawt"],
        &[("LDAWT_PASSWORD", "pw-123"), ("NETRC", "/dev/null")],
    );
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("uploaded 8 file(s)"), "{text}");
    for i in 0..3 {
        for name in [
            format!("wasps-0000{i}.tar.gz"),
            format!("wasps-0000{i}.results.parquet"),
        ] {
            let local = std::fs::read(out.join(&name)).unwrap();
            let remote = std::fs::read(served.join("run1").join(&name)).unwrap_or_default();
            assert_eq!(local, remote, "{name} uploaded intact");
        }
    }
    assert!(served.join("run1/results.parquet").exists());
    assert!(served.join("run1/overview.json").exists());

    // Wrong credentials: exit 2 before anything is seeded or created.
    let out2 = tmp.path().join("out2");
    let o = Command::new(common::ldawt_bin())
        .args([
            "node",
            "--seed",
            input.to_str().unwrap(),
            "--out",
            out2.to_str().unwrap(),
            "--status-addr",
            "127.0.0.1:0",
            "--upload-to",
            &url,
            "--upload-user",
            "ldawt",
        ])
        .env("LDAWT_PASSWORD", "wrong")
        .env("NETRC", "/dev/null")
        .output()
        .expect("run ldawt node");
    let _ = rclone.kill();
    let _ = rclone.wait();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("401") || err.to_lowercase().contains("credential"),
        "{err}"
    );
    assert!(
        !out2.exists(),
        "nothing is created when the upload target refuses us"
    );
}

#[test]
fn a_run_with_failed_rows_exits_1_and_lists_them() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("moths.parquet");
    // Rows 2, 5 and 8 are gone from the server (404, final: no retry).
    write_seed(
        &input,
        10,
        |i| match i {
            2 | 5 | 8 => fx.url(&format!("/fx/404/m/{i}.jpg")),
            _ => fx.url(&format!("/m/{i}.jpg")),
        },
        |i| format!("moth {}", i % 2),
    );
    let out = tmp.path().join("out");
    let (o, text) = lone_seeder(&input, &out, 2, &[], &[]);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("7 ok, 3 failed"), "{text}");
    for i in [2, 5, 8] {
        assert!(text.contains(&format!("row {i}: ")), "{text}");
    }
    assert!(out.join("results.parquet").exists());
}

/// `ldawt node --seed INPUT` alone on loopback (no mDNS, free ports) in `shards` shards,
/// with `extra` flags.
pub(super) fn lone_seeder_command(
    input: &Path,
    out: &Path,
    shards: u32,
    extra: &[&str],
) -> Command {
    let args = NodeArgs::new()
        .seed(input, out)
        .with(&["--shards", &shards.to_string()])
        .listen(0)
        .with(&["--no-progress"])
        .with(extra);
    let mut cmd = Command::new(common::ldawt_bin());
    cmd.args(args.args()).stdin(Stdio::null());
    cmd
}

/// Runs [`lone_seeder_command`] to completion with `env`; returns its output and
/// stdout+stderr as text.
fn lone_seeder(
    input: &Path,
    out: &Path,
    shards: u32,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Output, String) {
    let mut cmd = lone_seeder_command(input, out, shards, extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run ldawt node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o, text)
}

#[test]
fn a_seeder_whose_stdout_is_closed_still_finishes_with_its_real_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = fixture_seed(&fx, tmp.path(), "bees", 12, "/b", ("bee", 3));
    let out = tmp.path().join("out");
    let mut child = lone_seeder_command(&input, &out, 2, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ldawt node");
    // Nobody reads the report: every write to stdout fails with a broken pipe.
    drop(child.stdout.take());
    let out_status = common::wait_timeout(child, Duration::from_secs(120));
    assert_eq!(out_status.status.code(), Some(0));
    assert!(out.join("results.parquet").exists());
}
