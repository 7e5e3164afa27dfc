//! Interruption and `--resume`: SIGTERM mid-run leaves a valid archive and results (exit 130);
//! the resumed run downloads only what is missing, and ends with exactly the members (and
//! bytes) of one clean run.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common;

#[test]
fn interrupted_then_resumed_equals_one_clean_run() {
    let Some(mut rows) = common::inat_paths(2500) else {
        common::skip("../shared/data/subset_50k.parquet not found");
        return;
    };
    // Duplicates (same photo, same class) exercise the `_r<index>` names across runs.
    let dups: Vec<_> = rows[..20].to_vec();
    rows.extend(dups);
    let fx = common::slow_fixture(25);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    common::write_string_parquet(
        &input,
        &[
            (
                "photo_url",
                rows.iter().map(|(p, _)| Some(fx.url(p))).collect(),
            ),
            (
                "taxon_name",
                rows.iter().map(|(_, c)| Some(c.clone())).collect(),
            ),
        ],
    );
    let resumed = dir.path().join("r").join("shard.tar.gz");
    let child = common::spawn_download(&input, &resumed, &["--concurrency", "8"]);
    std::thread::sleep(Duration::from_millis(2500));
    let out = common::interrupt(child, "TERM");
    assert_eq!(common::code(&out), 130, "{}", common::text(&out));
    let partial_ok = common::ok_rows(&dir.path().join("r").join("shard.results.parquet"));
    assert!(
        partial_ok > 0 && partial_ok < rows.len(),
        "interrupted mid-run: {partial_ok}"
    );
    assert_eq!(
        common::archive_members(&resumed).len(),
        partial_ok,
        "the partial archive is valid"
    );
    let requests_before = fx.total_requests();

    let out = common::run_download(
        &input,
        &resumed,
        &["--concurrency", "64", "--resume"],
        Duration::from_secs(90),
    );
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));
    assert_eq!(
        fx.total_requests(),
        rows.len() as u64,
        "nothing downloaded twice (first run {requests_before} requests)"
    );

    let clean = dir.path().join("c").join("shard.tar.gz");
    let out = common::run_download(
        &input,
        &clean,
        &["--concurrency", "64"],
        Duration::from_secs(90),
    );
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));

    let a = common::archive_members(&resumed);
    let b = common::archive_members(&clean);
    assert_eq!(a.len(), rows.len());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a == b, "same bytes under the same names");
    let ra = common::results(&dir.path().join("r").join("shard.results.parquet"));
    let rb = common::results(&dir.path().join("c").join("shard.results.parquet"));
    let members = |r: &BTreeMap<u64, ldawt::engine::RowResult>| {
        r.iter()
            .map(|(i, r)| (*i, r.member.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        members(&ra),
        members(&rb),
        "every row has the same member in both runs"
    );
    assert!(
        ra.values()
            .any(|r| r.member.as_deref().is_some_and(|m| m.contains("_r2500")))
    );
}

#[test]
fn resuming_with_a_changed_input_is_refused_and_keeps_the_previous_outputs() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let write = |first: &str| {
        let mut urls: Vec<Option<String>> = (0..20)
            .map(|i| Some(fx.url(&format!("/photos/{i}/medium.jpg"))))
            .collect();
        urls[3] = Some(fx.url(first));
        common::write_string_parquet(
            &input,
            &[
                ("photo_url", urls),
                (
                    "taxon_name",
                    (0..20).map(|_| Some("c".to_string())).collect(),
                ),
            ],
        );
    };
    write("/photos/3/medium.jpg");
    let output = dir.path().join("s.tar");
    let args = common::download_args(&input, &output, &[]);
    let out = common::run_ldawt(&args, Duration::from_secs(60));
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));
    let before = std::fs::read(&output).unwrap();

    write("/photos/333/medium.jpg");
    let mut resume = args.to_vec();
    resume.push("--resume");
    let out = common::run_ldawt(&resume, Duration::from_secs(60));
    assert_eq!(common::code(&out), 2, "{}", common::text(&out));
    assert!(
        common::text(&out).contains("row 3"),
        "{}",
        common::text(&out)
    );
    assert_eq!(
        std::fs::read(&output).unwrap(),
        before,
        "the previous archive is untouched"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
