//! A seeder's everyday defaults through the real binary: the class column defaults like
//! `ldawt download`'s (with a warning when the seed has none), and a second dataset seeded into
//! an `--out` that holds another dataset's results is refused instead of overwriting them.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::common;
use super::util::{fixture_seed, write_seed};

/// Runs a lone seeder on `input` into `out` in `shards` shards with `extra` flags, to completion.
fn seed(input: &Path, out: &Path, shards: &str, extra: &[&str]) -> (Output, String) {
    let child = Command::new(common::ldawt_bin())
        .args(["node", "--seed"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .args([
            "--shards",
            shards,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
        ])
        .args(["--status-addr", "127.0.0.1:0", "--no-progress"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ldawt node");
    let o = common::wait_timeout(child, Duration::from_secs(120));
    let text = common::text(&o);
    (o, text)
}

/// Member paths of the one archive in `out`.
fn members(out: &Path) -> Vec<String> {
    let archive = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("an archive in --out");
    common::archive_members(&archive).into_keys().collect()
}

#[test]
fn without_class_col_a_seeder_uses_taxon_name_like_download() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = fixture_seed(&fx, tmp.path(), "wasps", 6, "/w", ("Vespa", 2));
    let out = tmp.path().join("out");
    let (o, text) = seed(&input, &out, "1", &[]);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let m = members(&out);
    assert_eq!(m.len(), 6, "{m:?}");
    // The dataset's page sits beside its overview.
    let page = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(page.contains("<b id=\"ok\">6</b>"), "{page}");
    assert!(
        page.contains("Vespa_0") || page.contains("Vespa 0"),
        "{page}"
    );
    assert!(
        m.iter()
            .all(|p| p.contains("/Vespa_0/") || p.contains("/Vespa_1/")),
        "{m:?}"
    );
}

#[test]
fn a_seed_without_any_class_column_warns_and_uses_unlabeled() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("plain.parquet");
    common::write_string_parquet(
        &input,
        &[(
            "photo_url",
            (0..4)
                .map(|i| Some(fx.url(&format!("/p/{i}.jpg"))))
                .collect(),
        )],
    );
    let out = tmp.path().join("out");
    let (o, text) = seed(&input, &out, "1", &[]);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("has no class column"), "{text}");
    assert!(members(&out).iter().all(|p| p.contains("/unlabeled/")));
}

#[test]
fn a_second_dataset_into_the_same_out_is_refused_and_the_first_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("ants.parquet");
    write_seed(
        &input,
        4,
        |i| fx.url(&format!("/a/{i}.jpg")),
        |_| "ant".into(),
    );
    let out = tmp.path().join("out");
    let (o, text) = seed(&input, &out, "1", &[]);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let before = std::fs::read(out.join("results.parquet")).unwrap();
    // Same file, other settings: another dataset id.
    let (o, text) = seed(&input, &out, "2", &[]);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(
        text.contains("already holds the results of another dataset"),
        "{text}"
    );
    assert_eq!(std::fs::read(out.join("results.parquet")).unwrap(), before);
    // The same dataset again is a resume, not a conflict.
    let (o, text) = seed(&input, &out, "1", &[]);
    assert_eq!(o.status.code(), Some(0), "{text}");
}

/// Runs `ldawt peers --json` against `addr`.
fn status(addr: &str) -> Option<ldawt::protocol::status::NodeStatus> {
    let out = common::run_ldawt(
        &["peers", "--json", "--status-addr", addr],
        Duration::from_secs(20),
    );
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn ctrl_c_on_a_seeder_gives_its_own_leases_back_and_a_rerun_charges_nothing() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("slow.parquet");
    write_seed(
        &input,
        8,
        |i| fx.url(&format!("/fx/slow-first-byte-1500/s/{i}.jpg")),
        |_| "snail".into(),
    );
    let out = tmp.path().join("out");
    let args = |out: &Path| -> Vec<String> {
        [
            "node",
            "--seed",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--shards",
            "2",
            "--lease-ttl",
            "4",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--status-addr",
            "127.0.0.1:0",
            "--no-progress",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut child = Command::new(common::ldawt_bin())
        .args(args(&out))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ldawt node");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("a status line")
            .expect("stdout is text");
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            break url
                .trim_start_matches("http://")
                .trim_end_matches("/status")
                .to_string();
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while status(&addr).is_none_or(|s| s.local.leases_held == 0) {
        assert!(std::time::Instant::now() < deadline, "no lease taken");
        std::thread::sleep(Duration::from_millis(100));
    }
    super::fault_tools::signal(child.id(), "INT").unwrap();
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let o = common::wait_timeout(child, Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(130), "{}", common::text(&o));

    // The same command again: nothing was left leased, so nothing expires or is charged.
    let rerun = Command::new(common::ldawt_bin())
        .args(args(&out))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ldawt node");
    let o = common::wait_timeout(rerun, Duration::from_secs(120));
    let text = common::text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains(", resumed"), "{text}");
    assert!(
        !text.contains("lease expired"),
        "a lease of the interrupted run expired: {text}"
    );
    let overview = std::fs::read_to_string(out.join("overview.json")).unwrap();
    assert!(!overview.contains("lease expired"), "{overview}");
}

#[test]
fn the_offline_demo_runs_a_seeder_and_two_workers_on_the_embedded_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let child = Command::new(common::ldawt_bin())
        .args(["demo", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ldawt demo");
    let o = common::wait_timeout(child, Duration::from_secs(240));
    let text = common::text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("live dashboard is at http://"), "{text}");
    assert!(
        text.contains("PEER") && text.contains("worker"),
        "the peers table: {text}"
    );
    let rows = super::util::merged_results(&dir.join("out"));
    assert_eq!(rows.len(), 200, "{text}");
    assert!(rows.iter().all(|r| r.1 == "ok"), "{text}");
    assert!(dir.join("out").join("report.html").exists());
    // A second demo into the same folder is refused, naming it.
    let again = common::run_ldawt(
        &["demo", "--dir", dir.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(again.status.code(), Some(2), "{}", common::text(&again));
}
