//! `ldawt download` through the real binary against the fixture: every misbehaviour class gives
//! the right per-row outcome and the run completes; names are unique; stored bytes are exact.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use ldawt::engine::RowStatus;

use crate::common::{self, archive_members, results};

const LONG_CLASS: &str = "Pseudobombax ellipticum var. very long cultivar name used to exceed the hundred byte tar name field";

#[test]
fn every_misbehaviour_gets_the_right_outcome_and_the_run_completes() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    // (path or URL, class, expected status, expected error kind)
    let cases: Vec<(Option<String>, &str, RowStatus, Option<&str>)> = vec![
        (
            Some(fx.url("/photos/1/medium.jpg")),
            "Abaeis nicippe",
            RowStatus::Ok,
            None,
        ),
        (
            Some(fx.url("/fx/404/photos/2/medium.jpg")),
            "b",
            RowStatus::Failed,
            Some("http_404"),
        ),
        (
            Some(fx.url("/fx/403/photos/2b/medium.jpg")),
            "b",
            RowStatus::Failed,
            Some("http_403"),
        ),
        (
            Some(fx.url("/fx/500/photos/3/medium.jpg")),
            "b",
            RowStatus::Failed,
            Some("http_500"),
        ),
        (
            Some(fx.url("/fx/fail-first-1-429/fx/retry-after-1/photos/4/medium.jpg")),
            "c",
            RowStatus::Ok,
            None,
        ),
        (
            Some(fx.url("/fx/fail-first-2-503/photos/5/medium.jpg")),
            "c",
            RowStatus::Ok,
            None,
        ),
        (
            Some(fx.url("/fx/slow-first-byte-4000/photos/6/medium.jpg")),
            "d",
            RowStatus::Failed,
            Some("timeout_first_byte"),
        ),
        (
            Some(fx.url("/fx/trickle-2500/fx/size-5000/photos/7/medium.jpg")),
            "d",
            RowStatus::Failed,
            Some("timeout_idle"),
        ),
        (
            Some(fx.url("/fx/longer-than-announced/photos/8/medium.jpg")),
            "e",
            RowStatus::Failed,
            Some("truncated"),
        ),
        (
            Some(fx.url("/fx/shorter-than-announced/photos/9/medium.jpg")),
            "e",
            RowStatus::Failed,
            Some("connection_broken"),
        ),
        (
            Some(fx.url("/fx/reset-mid-body/fx/size-80000/photos/14/medium.jpg")),
            "e",
            RowStatus::Failed,
            Some("connection_broken"),
        ),
        (
            Some(fx.url("/fx/no-content-type/photos/10/medium.jpg")),
            "f",
            RowStatus::Ok,
            None,
        ),
        (
            Some(fx.url("/fx/content-type-text%2Fplain/photos/11/medium.jpg")),
            "f",
            RowStatus::Failed,
            Some("not_image"),
        ),
        (
            Some(fx.url("/fx/html-200/photos/15/medium.jpg")),
            "f",
            RowStatus::Failed,
            Some("not_image"),
        ),
        (
            Some(fx.url("/fx/redirect/photos/12/medium.jpg")),
            "g",
            RowStatus::Ok,
            None,
        ),
        (
            Some(fx.url("/fx/redirect-loop/photos/13/medium.jpg")),
            "g",
            RowStatus::Failed,
            Some("too_many_redirects"),
        ),
        (
            Some(fx.url("/fx/size-150000/photos/16/medium.jpg")),
            "h",
            RowStatus::Failed,
            Some("too_large"),
        ),
        (
            Some(fx.url("/fx/chunked/fx/size-150000/photos/17/medium.jpg")),
            "h",
            RowStatus::Failed,
            Some("too_large"),
        ),
        (
            Some(fx.url("/fx/chunked/photos/18/medium.jpg")),
            "h",
            RowStatus::Ok,
            None,
        ),
        (
            Some(fx.url("/fx/content-type-image%2Fpng/media/abc")),
            "i",
            RowStatus::Ok,
            None,
        ),
        (None, "j", RowStatus::Skipped, Some("empty_url")),
        (
            Some("not a url".to_string()),
            "j",
            RowStatus::Failed,
            Some("invalid_url"),
        ),
        (
            Some("ftp://127.0.0.1/x.jpg".to_string()),
            "j",
            RowStatus::Failed,
            Some("invalid_url"),
        ),
        // The same photo twice in one class: two members, never one overwriting the other.
        (
            Some(fx.url("/photos/1/medium.jpg")),
            "Abaeis nicippe",
            RowStatus::Ok,
            None,
        ),
        (
            Some(fx.url("/photos/1/medium.jpg?size=2")),
            "Abaeis nicippe",
            RowStatus::Ok,
            None,
        ),
        // A hostile class name stays inside the archive.
        (
            Some(fx.url("/photos/19/medium.jpg")),
            "../../etc",
            RowStatus::Ok,
            None,
        ),
        // A member path longer than a tar header's 100-byte name field.
        (
            Some(fx.url("/photos/20/medium.jpg")),
            LONG_CLASS,
            RowStatus::Ok,
            None,
        ),
    ];
    // The truncated-JPEG check needs the cut body not to end in zero padding.
    let full = fx.expected_body("/photos/8/medium.jpg");
    let cut = &full[..full.len() - full.len() / 4];
    assert_ne!(
        cut[cut.len() - 1],
        0,
        "pick another path for the truncation case"
    );

    let input = dir.path().join("in.parquet");
    common::write_string_parquet(
        &input,
        &[
            ("photo_url", cases.iter().map(|c| c.0.clone()).collect()),
            (
                "taxon_name",
                cases.iter().map(|c| Some(c.1.to_string())).collect(),
            ),
        ],
    );
    let output = dir.path().join("out").join("shard.tar.gz");
    let out = common::run_download(
        &input,
        &output,
        &[
            "--max-attempts",
            "3",
            "--first-byte-timeout",
            "1",
            "--idle-timeout",
            "1",
            "--max-file-size",
            "100000",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(
        common::code(&out),
        1,
        "some rows fail → exit 1\n{}",
        common::text(&out)
    );
    let rows = results(&dir.path().join("out").join("shard.results.parquet"));
    assert_eq!(rows.len(), cases.len());
    // The run's page sits beside its overview and shows the same figures.
    let page = std::fs::read_to_string(dir.path().join("out").join("shard.report.html"))
        .expect("download writes shard.report.html");
    let ok = cases.iter().filter(|c| c.2 == RowStatus::Ok).count();
    assert!(page.contains(&format!("<b id=\"ok\">{ok}</b>")), "{page}");
    assert!(page.contains(&format!("<b id=\"rows\">{}</b>", cases.len())));
    assert!(page.contains("http_404") && page.contains("timeout_first_byte"));
    let members = archive_members(&output);
    for (i, (url, _, status, kind)) in cases.iter().enumerate() {
        let r = &rows[&(i as u64)];
        assert_eq!(r.status, *status, "row {i} {url:?}: {r:?}");
        assert_eq!(r.error_kind.as_deref(), *kind, "row {i} {url:?}: {r:?}");
        if *status == RowStatus::Ok {
            let member = r.member.as_ref().unwrap();
            let path = common::url_path(url.as_ref().unwrap());
            assert_eq!(members[member], fx.expected_body(path), "row {i} bytes");
            assert_eq!(r.bytes, members[member].len() as u64);
        } else {
            assert!(r.member.is_none());
        }
    }
    // Retryable failures were retried up to the limit; final ones were not.
    assert_eq!(rows[&3].attempts, 3, "500 is retried");
    assert_eq!(fx.requests("/fx/500/photos/3/medium.jpg"), 3);
    assert_eq!(rows[&1].attempts, 1, "404 is final");
    assert_eq!(fx.requests("/fx/404/photos/2/medium.jpg"), 1);
    assert_eq!(rows[&4].attempts, 2, "429 then ok");
    assert!(
        rows[&4].elapsed_ms >= 1000,
        "Retry-After: 1 honoured: {:?}",
        rows[&4]
    );
    assert_eq!(rows[&5].attempts, 3, "503, 503, ok");
    assert_eq!(rows[&15].attempts, 1, "a redirect loop is final");
    // Names: LDAWT's layout, unique, safe.
    let m = |i: u64| rows[&i].member.clone().unwrap();
    assert_eq!(m(0), "shard/Abaeis_nicippe/1.jpg");
    assert_eq!(m(23), "shard/Abaeis_nicippe/1_r23.jpg");
    assert_eq!(m(24), "shard/Abaeis_nicippe/1_r24.jpg");
    assert_eq!(m(19), "shard/i/abc.png", "extension from Content-Type");
    let hostile = m(25);
    let parts: Vec<&str> = hostile.split('/').collect();
    assert_eq!(parts.len(), 3, "{hostile}");
    assert!(
        parts
            .iter()
            .all(|p| *p != ".." && *p != "." && !p.is_empty()),
        "{hostile}"
    );
    assert!(
        m(26).len() > 100 && m(26).contains("very_long_cultivar"),
        "{}",
        m(26)
    );
    let unique: HashSet<_> = rows.values().filter_map(|r| r.member.clone()).collect();
    assert_eq!(unique.len(), members.len());
    // The overview counts each row once.
    let overview: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out").join("shard.overview.json")).unwrap(),
    )
    .unwrap();
    let ok = rows.values().filter(|r| r.status == RowStatus::Ok).count() as u64;
    let failed = rows
        .values()
        .filter(|r| r.status == RowStatus::Failed)
        .count() as u64;
    assert_eq!(overview["download_summary"]["successful_downloads"], ok);
    assert_eq!(overview["download_summary"]["failed_downloads"], failed);
    assert_eq!(overview["error_breakdown"]["not_image"], 2);
    assert_eq!(overview["script_inputs"]["url_column"], "photo_url");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".part") || n.contains("spill"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn csv_input_ldawt_aliases_config_file_and_plain_tar() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    let mut text = String::from("id,image,species\n");
    for i in 0..50 {
        text.push_str(&format!(
            "{i},{},sp {}\n",
            fx.url(&format!("/photos/{i}/large.JPG")),
            i % 3
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let out_tar = dir.path().join("a.tar");
    let out = common::run_ldawt(
        &[
            "download",
            "--input_path",
            csv.to_str().unwrap(),
            "--output_tar",
            out_tar.to_str().unwrap(),
            "--url",
            "image",
            "--label",
            "species",
            "--concurrent_downloads",
            "7",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));
    let raw = std::fs::read(&out_tar).unwrap();
    assert_eq!(&raw[257..262], b"ustar", "a plain tar for .tar");
    let members = archive_members(&out_tar);
    assert_eq!(members.len(), 50);
    assert!(
        members.contains_key("a/sp_1/1.jpg"),
        "{:?}",
        members.keys().take(3).collect::<Vec<_>>()
    );

    // The same through an LDAWT JSON config file.
    let config = dir.path().join("cfg.json");
    let out_gz = dir.path().join("b.tar.gz");
    std::fs::write(
        &config,
        serde_json::json!({
            "input": csv, "output": out_gz, "url": "image", "label": "species",
            "concurrent_downloads": 5, "timeout": 10, "max_file_size": 500_000_000u64,
            "rate_limit": 15.0, "rate_capacity": 30, "enable_rate_limiting": true,
            "max_retry_attempts": 2, "retry_delay": 1.5
        })
        .to_string(),
    )
    .unwrap();
    let out = common::run_ldawt(
        &["download", "--config", config.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));
    let gz = archive_members(&out_gz);
    let names = |m: &BTreeMap<String, Vec<u8>>| -> HashMap<String, usize> {
        m.iter()
            .map(|(k, v)| (k.split_once('/').unwrap().1.to_string(), v.len()))
            .collect()
    };
    assert_eq!(names(&gz), names(&members));
    assert_eq!(std::fs::read(&out_gz).unwrap()[..2], [0x1F, 0x8B]);
    // Standard tools read it too (images are stored, headers deflated, in one gzip member).
    match std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&out_gz)
        .output()
    {
        Ok(listing) => {
            assert!(
                listing.status.success(),
                "{}",
                String::from_utf8_lossy(&listing.stderr)
            );
            let files = String::from_utf8_lossy(&listing.stdout)
                .lines()
                .filter(|l| !l.ends_with('/'))
                .count();
            assert_eq!(files, 50);
        }
        Err(_) => common::skip("(partial) no tar command to cross-check the gzip archive"),
    }
}

#[test]
fn archive_digest_is_opt_in_and_matches_the_file() {
    use sha2::{Digest, Sha256};
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let urls: Vec<Option<String>> = (0..30)
        .map(|i| Some(fx.url(&format!("/photos/{i}/medium.jpg"))))
        .collect();
    let classes: Vec<Option<String>> = (0..30).map(|i| Some(format!("sp {}", i % 4))).collect();
    common::write_string_parquet(&input, &[("photo_url", urls), ("taxon_name", classes)]);
    for (name, flag) in [
        ("plain.tar.gz", None),
        ("hashed.tar.gz", Some("--archive-sha256")),
    ] {
        let output = dir.path().join(name);
        let mut args = vec![
            "download",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ];
        args.extend(flag);
        let out = common::run_ldawt(&args, Duration::from_secs(60));
        assert_eq!(common::code(&out), 0, "{}", common::text(&out));
        let overview_path = dir.path().join(name.replace(".tar.gz", ".overview.json"));
        let overview: serde_json::Value =
            serde_json::from_slice(&std::fs::read(overview_path).unwrap()).unwrap();
        let recorded = &overview["archive"]["sha256"];
        match flag {
            None => assert!(recorded.is_null(), "{overview}"),
            Some(_) => {
                let actual = hex::encode(Sha256::digest(std::fs::read(&output).unwrap()));
                assert_eq!(recorded.as_str(), Some(actual.as_str()), "{overview}");
            }
        }
    }
}
