//! Per-host adaptive slow-down through the real binary: after a host answers 429, ldawt sends
//! it fewer requests at once (AIMD on the per-host limit) instead of hammering it at the cap.

use std::time::Duration;

use ldawt::engine::RowStatus;

use crate::common;

#[test]
fn a_throttling_host_gets_fewer_requests_at_once() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<String> = (0..160)
        .map(|i| format!("/fx/fail-first-1-429/fx/slow-first-byte-150/photos/{i}/medium.jpg"))
        .collect();
    let input = dir.path().join("in.parquet");
    common::write_string_parquet(
        &input,
        &[
            ("photo_url", paths.iter().map(|p| Some(fx.url(p))).collect()),
            (
                "taxon_name",
                paths.iter().map(|_| Some("c".to_string())).collect(),
            ),
        ],
    );
    let output = dir.path().join("s.tar");
    let out = common::run_download(
        &input,
        &output,
        &[
            "--concurrency",
            "64",
            "--per-host",
            "64",
            "--max-attempts",
            "3",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));
    let rows = common::results(&dir.path().join("s.results.parquet"));
    assert!(
        rows.values()
            .all(|r| r.status == RowStatus::Ok && r.attempts == 2)
    );
    let first: Vec<u64> = paths.iter().map(|p| fx.concurrency_seen(p)[0]).collect();
    let retries: Vec<u64> = paths.iter().map(|p| fx.concurrency_seen(p)[1]).collect();
    let (first_max, retry_max) = (*first.iter().max().unwrap(), *retries.iter().max().unwrap());
    eprintln!(
        "requests in flight at the host: first wave up to {first_max}, retries up to {retry_max}"
    );
    assert!(
        first_max >= 56,
        "the first wave runs at the cap: {first_max}"
    );
    assert!(
        retry_max <= 44,
        "after 429s the host gets fewer requests at once: {retry_max}"
    );
}
