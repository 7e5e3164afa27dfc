//! A seeder's everyday defaults through the real binary: the class column defaults like
//! `ldawt download`'s (with a warning when the seed has none), and a second dataset seeded into
//! an `--out` that holds another dataset's results is refused instead of overwriting them.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::common;
use super::util::write_seed;

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
    let input = tmp.path().join("wasps.parquet");
    write_seed(
        &input,
        6,
        |i| fx.url(&format!("/w/{i}.jpg")),
        |i| format!("Vespa {}", i % 2),
    );
    let out = tmp.path().join("out");
    let (o, text) = seed(&input, &out, "1", &[]);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let m = members(&out);
    assert_eq!(m.len(), 6, "{m:?}");
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
