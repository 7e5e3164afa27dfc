//! `ldawt node --seed … --retry-failed` on a finished dataset, through the real binary: the
//! rows that failed with a retryable kind in DONE shards (here a 503 with `--max-attempts 1`)
//! are re-opened as retry rounds, fetched again and stored beside the original archives
//! (`<stem>-r1.tar.gz`); `results.parquet` ends with one row per input row, the newest
//! outcome, pointing at the archive that holds it. The fixture counts requests: no `ok` row
//! and no final failure (404) is requested twice.

use std::path::Path;
use std::process::{Command, Stdio};

use super::common;
use super::util::{assert_exactly_once, merged_results, write_seed};

const ROWS: u64 = 10;

fn path_of(i: u64) -> String {
    match i {
        1 | 6 => format!("/fx/fail-first-1/r/{i}.jpg"),
        3 => format!("/fx/404/r/{i}.jpg"),
        _ => format!("/r/{i}.jpg"),
    }
}

/// Runs a seeder that works alone to completion; (exit code, output).
fn seeder(input: &Path, out: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(common::ldawt_bin())
        .args(["node", "--seed"])
        .arg(input)
        .args(["--class-col", "taxon_name", "--out"])
        .arg(out)
        .args([
            "--shards",
            "2",
            "--max-attempts",
            "1",
            "--allow-private-urls",
        ])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
        .args(["--status-addr", "127.0.0.1:0", "--no-progress"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run ldawt node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), text)
}

#[test]
fn retry_failed_on_a_finished_dataset_fetches_only_the_retryable_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("moths.parquet");
    write_seed(
        &input,
        ROWS,
        |i| fx.url(&path_of(i)),
        |i| format!("moth {}", i % 2),
    );
    let out = tmp.path().join("out");

    let (code, text) = seeder(&input, &out, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("7 ok, 3 failed"), "{text}");
    let first: Vec<_> = merged_results(&out);
    assert!(first.iter().any(|r| r.0 == 1 && r.1 == "failed"));

    let (code, text) = seeder(&input, &out, &["--retry-failed"]);
    // The 404 is final: still failed, so still exit code 1.
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("9 ok, 1 failed"), "{text}");

    for i in 0..ROWS {
        let want = match i {
            1 | 6 => 2,
            _ => 1,
        };
        assert_eq!(fx.requests(&path_of(i)), want, "requests of row {i}");
    }
    let merged = merged_results(&out);
    assert_exactly_once(&out, ROWS, ROWS - 1);
    for i in [1, 6] {
        let r = merged.iter().find(|r| r.0 == i).unwrap();
        assert_eq!(r.1, "ok", "{r:?}");
        let archive = r.2.as_deref().unwrap();
        assert!(archive.ends_with("-r1.tar.gz"), "{r:?}");
        assert!(out.join(archive).exists(), "{archive}");
        let stem = archive.trim_end_matches(".tar.gz");
        assert!(
            r.3.as_deref().unwrap().starts_with(&format!("{stem}/")),
            "{r:?}"
        );
    }
    // The original archives and results are still there, untouched by the round.
    let originals = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            let n = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .into_owned();
            n.ends_with(".tar.gz") && !n.contains("-r1")
        })
        .count();
    assert_eq!(originals, 2);
    let r3 = merged.iter().find(|r| r.0 == 3).unwrap();
    assert_eq!(r3.1, "failed");

    // A third run has nothing left to retry: nothing is requested.
    let before = fx.total_requests();
    let (code, text) = seeder(&input, &out, &["--retry-failed"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("9 ok, 1 failed"), "{text}");
    assert_eq!(fx.total_requests(), before, "nothing fetched again");
}
