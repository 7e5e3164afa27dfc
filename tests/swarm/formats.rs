//! `ldawt node --seed … --format webdataset|parquet` through the real binary: a `--no-work`
//! seeder and one `--join` worker given no dataset flag (the format, and for webdataset the
//! dataset's class table, come with the grant). The seeder verifies each delivered shard and
//! stores it; the webdataset tars are read back by the `webdataset` package and the images
//! parquets by `pyarrow` (both from `target/pyvenv`, see scripts/install-test-deps.sh), and a
//! class keeps one id across shards. `--format files` is refused at the seeder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::common;
use super::common::python::{pyvenv_or_skip, read_back};
use super::processes::{NodeArgs, free_port};
use super::util::{merged_results, write_seed};

const ROWS: u64 = 12;
/// Row 4 is gone from the server (404, final).
const GONE: u64 = 4;

/// A seeder of `ROWS` fixture rows in 3 shards with `format`, one worker without flags; waits
/// for both. Returns the seeder's report text.
fn run_swarm(tmp: &Path, format: &str) -> (PathBuf, String) {
    let fx = common::fixture();
    let input = tmp.join("bees.parquet");
    write_seed(
        &input,
        ROWS,
        |i| match i {
            GONE => fx.url(&format!("/fx/404/b/{i}.jpg")),
            _ => fx.url(&format!("/b/{i}.jpg")),
        },
        // Each shard sees another class first: per-worker ids would disagree.
        |i| format!("apis {}", (i + 1) % 3),
    );
    let out = tmp.join("out");
    let seeder = NodeArgs::seeder(&input, &out, free_port())
        .with(&["--shards", "3", "--format", format])
        .start(tmp.join("seeder.err"));
    let (_, join, key, _) = seeder.ready_with_key();
    let worker = NodeArgs::worker(&join, Some(&key), &tmp.join("w"))
        .with(&["--exit-when-idle", "5"])
        .start(tmp.join("w.err"));
    let (code, report) = seeder.wait(Duration::from_secs(180));
    // One row failed (404): the run says so with exit code 1.
    assert_eq!(code, 1, "seeder report:\n{report}\n{}", seeder_log(tmp));
    assert!(
        report.contains("11 ok, 1 failed"),
        "{report}\n{}",
        seeder_log(tmp)
    );
    let (wcode, wlog) = worker.wait(Duration::from_secs(60));
    assert_eq!(wcode, 0, "{wlog}");
    drop(fx);
    (out, report)
}

fn seeder_log(tmp: &Path) -> String {
    std::fs::read_to_string(tmp.join("seeder.err")).unwrap_or_default()
}

/// Files in `out` whose name ends with `suffix` (not the results files), sorted.
fn files_ending(out: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(suffix) && !n.ends_with(".results.parquet") && n != "results.parquet"
        })
        .collect();
    v.sort();
    v
}

/// The ok rows of the merged results: index → member.
fn ok_rows(out: &Path) -> BTreeMap<u64, String> {
    let rows = merged_results(out);
    assert_eq!(rows.len() as u64, ROWS, "every row once: {rows:?}");
    rows.into_iter()
        .filter(|r| r.1 == "ok")
        .map(|r| (r.0, r.3.unwrap()))
        .collect()
}

#[test]
fn a_webdataset_swarm_is_read_back_by_the_webdataset_package() {
    let Some(python) = pyvenv_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = run_swarm(tmp.path(), "webdataset");
    // The seeder's class table: first appearance over the whole dataset.
    let table: Value =
        serde_json::from_slice(&std::fs::read(out.join("bees.classes.json")).unwrap()).unwrap();
    assert_eq!(
        table["names"],
        serde_json::json!(["apis 1", "apis 2", "apis 0"])
    );
    let ok = ok_rows(&out);
    assert_eq!(ok.len() as u64, ROWS - 1);
    let tars = files_ending(&out, ".tar.gz");
    assert_eq!(tars.len(), 3, "{tars:?}");
    let mut keys = BTreeSet::new();
    for tar in &tars {
        let samples = read_back(&python, "read_webdataset.py", tar);
        for s in samples.as_array().unwrap() {
            let key = s["key"].as_str().unwrap().to_string();
            let index = s["meta"]["index"].as_u64().unwrap();
            assert_eq!(key, format!("{index:010}"));
            assert!(keys.insert(key.clone()), "key {key} twice in the dataset");
            assert_eq!(
                ok[&index],
                format!("{key}.jpg"),
                "the results name the sample"
            );
            assert_eq!(s["sha256"], s["meta"]["sha256"], "{key}: image bytes");
            let class = s["meta"]["class"].as_str().unwrap();
            assert_eq!(s["cls"], table["classes"][class], "{key}: one id per class");
            assert_eq!(
                s["exts"],
                serde_json::json!(["cls", "jpg", "json"]),
                "{key}"
            );
        }
    }
    assert_eq!(keys.len() as u64, ROWS - 1, "every stored row is a sample");
    assert!(!keys.contains(&format!("{GONE:010}")));
}

#[test]
fn a_parquet_swarm_is_read_back_by_pyarrow() {
    let Some(python) = pyvenv_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = run_swarm(tmp.path(), "parquet");
    let ok = ok_rows(&out);
    let files = files_ending(&out, ".parquet");
    assert_eq!(files.len(), 3, "one images parquet per shard: {files:?}");
    assert!(files_ending(&out, ".tar.gz").is_empty());
    let mut seen = BTreeSet::new();
    for f in &files {
        for row in read_back(&python, "read_parquet.py", f).as_array().unwrap() {
            let index = row["index"].as_u64().unwrap();
            assert!(seen.insert(index), "row {index} twice");
            assert_eq!(row["image_path"].as_str().unwrap(), ok[&index]);
            assert_eq!(
                row["image_sha256"], row["sha256"],
                "row {index}: image bytes"
            );
        }
    }
    assert_eq!(seen, ok.keys().copied().collect::<BTreeSet<_>>());
}

#[test]
fn a_files_seeder_is_refused_naming_why() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("s.parquet");
    write_seed(
        &input,
        2,
        |i| format!("http://127.0.0.1:9/{i}.jpg"),
        |_| "c".into(),
    );
    let o = Command::new(common::ldawt_bin())
        .args(["node", "--seed"])
        .arg(&input)
        .args(["--out"])
        .arg(tmp.path().join("out"))
        .args([
            "--format",
            "files",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--format files") && err.contains("plain directory tree"),
        "{err}"
    );
}
