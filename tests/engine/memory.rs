//! Bounded memory: a 200k-row synthetic shard runs with a peak RSS that does not grow with the
//! row count (compared with a 20k-row run in the same test), measured from the child's
//! `/proc/<pid>/status` `VmHWM`.

use std::time::{Duration, Instant};

use ldawt::fixture::FixtureConfig;

use crate::common;

/// Runs `ldawt download` on `rows` synthetic URLs and returns its peak RSS in KiB.
fn peak_rss_kib(fx: &common::TestFixture, dir: &std::path::Path, rows: usize) -> u64 {
    let input = dir.join(format!("in{rows}.parquet"));
    // Row groups of 20k rows, as a writer streaming a big list would produce: the reader
    // holds one row group at a time, so both runs below see the same input granularity.
    common::write_string_parquet_grouped(
        &input,
        &[
            (
                "photo_url",
                (0..rows)
                    .map(|i| Some(fx.url(&format!("/photos/{i}/medium.jpg"))))
                    .collect(),
            ),
            (
                "taxon_name",
                (0..rows)
                    .map(|i| Some(format!("species {}", i % 500)))
                    .collect(),
            ),
        ],
        Some(20_000),
    );
    let output = dir.join(format!("out{rows}.tar"));
    let child = common::spawn_download(&input, &output, &[]);
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let start = Instant::now();
    let mut child = child;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            peak = peak.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "{rows} rows took too long"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    let out = common::wait_timeout(child, Duration::from_secs(5));
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));
    let members = common::archive_members(&output).len();
    assert_eq!(members, rows);
    std::fs::remove_file(&output).unwrap();
    peak
}

#[test]
fn a_200k_row_shard_runs_in_bounded_memory() {
    let fx = common::fixture_with(FixtureConfig {
        min_size: 200,
        max_size: 1_500,
        ..FixtureConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let small = peak_rss_kib(&fx, dir.path(), 20_000);
    let large = peak_rss_kib(&fx, dir.path(), 200_000);
    eprintln!(
        "peak RSS: 20k rows {} MiB, 200k rows {} MiB",
        small / 1024,
        large / 1024
    );
    assert!(
        large < 150 * 1024,
        "200k rows peaked at {} MiB",
        large / 1024
    );
    assert!(
        large < small + small / 2 + 16 * 1024,
        "memory grows with rows: 20k → {} MiB, 200k → {} MiB",
        small / 1024,
        large / 1024
    );
}
