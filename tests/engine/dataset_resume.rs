//! `--resume` and `--retry-failed` for `--format webdataset|files|parquet` through the real
//! binary against the fixture: a run is stopped by SIGTERM mid-way, resumed, then the failures
//! still worth a try are retried. At the end every input row is in the output exactly once
//! (read back by the `webdataset` package / pyarrow / the file system), each image was
//! requested once, and the final failures were not requested again by `--retry-failed`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use ldawt::engine::RowStatus;

use crate::common::python::{pyvenv_or_skip, read_back_all};
use crate::common::{self, code, results, run_ldawt, text};
use crate::dataset::{LIMIT, member_order, sha256_hex};

/// Rows of the dataset; row 0 fails twice with a 503 then works, row 1 is a 404.
const ROWS: usize = 120;

fn path_of(i: usize) -> String {
    match i {
        0 => "/fx/fail-first-2-503/photos/1000/a.jpg".to_string(),
        1 => "/fx/404/photos/1001/a.jpg".to_string(),
        _ => format!("/photos/{}/a.jpg", 2000 + i),
    }
}

/// What one format's output holds, read back: row index → sha256 of its image.
type Stored = BTreeMap<u64, String>;

/// Runs the three steps for `format` into `<dir>/<out>`; returns the final results and the
/// fixture (for request counts). `read` reads the final output back.
fn interrupt_resume_retry(
    format: &str,
    out: &str,
    before_resume: impl FnOnce(&Path),
    read: impl FnOnce(&Path) -> Stored,
) {
    let fx = common::slow_fixture(40);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    common::write_string_parquet(
        &input,
        &[
            (
                "photo_url",
                (0..ROWS).map(|i| Some(fx.url(&path_of(i)))).collect(),
            ),
            (
                "taxon_name",
                (0..ROWS)
                    .map(|i| Some(format!("class {}", i % 3)))
                    .collect(),
            ),
            (
                "caption",
                (0..ROWS).map(|i| Some(format!("row {i}"))).collect(),
            ),
        ],
    );
    let output = dir.path().join(out);
    let mut base = vec![
        "download",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--format",
        format,
        "--max-attempts",
        "1",
        "--concurrency",
        "2",
    ];
    if format == "webdataset" {
        base.extend(["--caption-col", "caption"]);
    }

    // 1. Stopped by SIGTERM once a part of the rows was requested.
    let child = common::spawn_ldawt(&base);
    let deadline = Instant::now() + Duration::from_secs(60);
    while fx.total_requests() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = common::interrupt(child, "TERM");
    assert_eq!(code(&first), 130, "{format}: {}", text(&first));
    let partial = results(&ldawt::engine::results_path(&output));
    let partial_ok = partial
        .values()
        .filter(|r| r.status == RowStatus::Ok)
        .count();
    assert!(
        partial_ok > 0 && partial_ok < ROWS - 2,
        "{format}: interrupted mid-run, {partial_ok} rows stored"
    );
    before_resume(&output);

    // 2. --resume finishes the rows; row 0 fails again (its second 503), the 404 stays.
    let mut resume = base.clone();
    resume.push("--resume");
    let second = run_ldawt(&resume, LIMIT);
    assert_eq!(code(&second), 1, "{format}: {}", text(&second));
    let rows = results(&ldawt::engine::results_path(&output));
    assert_eq!(rows.len(), ROWS, "{format}: every row has one result");
    assert_eq!(rows[&0].error_kind.as_deref(), Some("http_503"));
    assert_eq!(rows[&1].error_kind.as_deref(), Some("http_404"));
    for (i, r) in &partial {
        if r.status == RowStatus::Ok {
            assert_eq!(&rows[i], r, "{format}: row {i} carried over as it was");
        }
    }

    // 3. --retry-failed retries row 0 only.
    let mut retry = base.clone();
    retry.push("--retry-failed");
    let third = run_ldawt(&retry, LIMIT);
    assert_eq!(code(&third), 1, "{format}: the 404 stays: {}", text(&third));
    let rows = results(&ldawt::engine::results_path(&output));
    assert_eq!(rows.len(), ROWS);
    assert_eq!(rows[&0].status, RowStatus::Ok, "{format}: {:?}", rows[&0]);
    assert_eq!(fx.requests(&path_of(0)), 3, "{format}: 503, 503, then 200");
    assert_eq!(
        fx.requests(&path_of(1)),
        2,
        "{format}: the 404 is not retried by --retry-failed"
    );
    for i in 2..ROWS {
        assert_eq!(rows[&(i as u64)].status, RowStatus::Ok, "{format}: row {i}");
        assert_eq!(
            fx.requests(&path_of(i)),
            1,
            "{format}: row {i} downloaded once"
        );
    }

    // Exactly the stored rows, each once, with the fixture's bytes.
    let stored = read(&output);
    let want: Stored = (0..ROWS)
        .filter(|i| *i != 1)
        .map(|i| (i as u64, sha256_hex(&fx.expected_body(&path_of(i)))))
        .collect();
    assert_eq!(
        stored, want,
        "{format}: the output holds every stored row once"
    );
}

#[test]
fn webdataset_resume_and_retry_failed_store_every_sample_once() {
    let Some(python) = pyvenv_or_skip() else {
        return;
    };
    interrupt_resume_retry(
        "webdataset",
        "shard.tar",
        |_| {},
        |out| {
            // No member twice, and the samples' members adjacent.
            let order = member_order(out);
            let unique: HashSet<&String> = order.iter().collect();
            assert_eq!(unique.len(), order.len(), "a member is stored twice");
            let mut stored = Stored::new();
            for s in read_back_all(&python, "read_webdataset.py", out) {
                let index = s["meta"]["index"].as_u64().unwrap();
                assert_eq!(s["exts"], serde_json::json!(["cls", "jpg", "json", "txt"]));
                assert_eq!(s["txt"], format!("row {index}").as_str());
                // The class table is the clean run's: first appearance in input order.
                assert_eq!(s["cls"], index % 3, "sample {index}");
                let sha = s["sha256"].as_str().unwrap().to_string();
                assert!(stored.insert(index, sha).is_none(), "sample {index} twice");
            }
            let classes: serde_json::Value =
                serde_json::from_slice(&std::fs::read(ldawt::engine::classes_path(out)).unwrap())
                    .unwrap();
            assert_eq!(
                classes["names"],
                serde_json::json!(["class 0", "class 1", "class 2"])
            );
            stored
        },
    );
}

#[test]
fn files_resume_and_retry_failed_keep_the_tree_and_drop_strays() {
    interrupt_resume_retry(
        "files",
        "tree",
        |out| {
            // A file no results file records (say, of a run killed with -9) is removed.
            std::fs::write(out.join("stray.jpg"), b"stray").unwrap();
        },
        |out| {
            let rows = results(&ldawt::engine::results_path(out));
            let mut stored = Stored::new();
            let mut files = 0;
            let mut pending = vec![out.to_path_buf()];
            while let Some(d) = pending.pop() {
                for e in std::fs::read_dir(d).unwrap() {
                    let e = e.unwrap();
                    if e.file_type().unwrap().is_dir() {
                        pending.push(e.path());
                    } else {
                        files += 1;
                    }
                }
            }
            for (i, r) in rows.iter().filter(|(_, r)| r.status == RowStatus::Ok) {
                let member = r.member.as_deref().unwrap();
                let rel = member.split_once('/').unwrap().1;
                let bytes = std::fs::read(out.join(rel)).unwrap();
                stored.insert(*i, sha256_hex(&bytes));
            }
            assert_eq!(files, stored.len(), "no file beyond the stored rows");
            stored
        },
    );
}

#[test]
fn parquet_resume_and_retry_failed_rewrite_every_row_once() {
    let Some(python) = pyvenv_or_skip() else {
        return;
    };
    interrupt_resume_retry(
        "parquet",
        "images.parquet",
        |_| {},
        |out| {
            let mut stored = Stored::new();
            for row in read_back_all(&python, "read_parquet.py", out) {
                let index = row["index"].as_u64().unwrap();
                let sha = row["image_sha256"].as_str().unwrap().to_string();
                assert_eq!(row["sha256"], sha.as_str());
                assert!(stored.insert(index, sha).is_none(), "row {index} twice");
            }
            stored
        },
    );
}
