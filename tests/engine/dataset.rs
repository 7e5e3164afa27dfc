//! Dataset-builder options of `ldawt download` through the real binary against the fixture:
//! `X-Robots-Tag` opt-outs and the honest User-Agent, `--respect-robots-txt`, `--verify-hash`,
//! `--extra-cols`, `--retry-failed`; and the helpers the output-format
//! (`dataset_formats.rs`) and image (`dataset_images.rs`) tests share.

use std::path::Path;
use std::time::Duration;

use ldawt::engine::RowStatus;

use crate::common::{self, archive_members, code, results, run_download, run_ldawt, text};

pub(crate) const LIMIT: Duration = Duration::from_secs(60);

/// Writes `photo_url`/`taxon_name` (plus `more` columns) and runs `ldawt download` into
/// `<dir>/<out>` with `args`; returns the output path and the process output.
pub(crate) fn download(
    dir: &Path,
    out: &str,
    urls: &[String],
    more: &[(&str, Vec<Option<String>>)],
    args: &[&str],
) -> (std::path::PathBuf, std::process::Output) {
    let input = dir.join(format!("{out}.in.parquet"));
    let mut columns: Vec<(&str, Vec<Option<String>>)> = vec![
        ("photo_url", urls.iter().cloned().map(Some).collect()),
        (
            "taxon_name",
            (0..urls.len())
                .map(|i| Some(format!("class {}", i % 2)))
                .collect(),
        ),
    ];
    columns.extend(more.iter().cloned());
    common::write_string_parquet(&input, &columns);
    let output = dir.join(out);
    let mut all = vec![
        "download",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let result = run_ldawt(&all, LIMIT);
    (output, result)
}
#[test]
fn x_robots_tag_opt_outs_are_honoured_and_the_user_agent_is_honest() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    // (path, opted out by default)
    let cases = [
        ("/photos/1/a.jpg", false),
        ("/fx/robots-noai/photos/2/a.jpg", true),
        ("/fx/robots-ldawt%3A%20noimageindex/photos/3/a.jpg", true),
        ("/fx/robots-%2A%3A%20noindex/photos/4/a.jpg", true),
        ("/fx/robots-nofollow%2C%20NoImageAI/photos/5/a.jpg", true),
        (
            "/fx/robots-otherbot%3A%20noai%2C%20noindex/photos/6/a.jpg",
            false,
        ),
        (
            "/fx/robots-nofollow/fx/robots-noarchive/photos/7/a.jpg",
            false,
        ),
        (
            "/fx/robots-unavailable_after%3A%2025%20Jun%202030/photos/8/a.jpg",
            false,
        ),
    ];
    let urls: Vec<String> = cases.iter().map(|(p, _)| fx.url(p)).collect();
    let (out, result) = download(dir.path(), "default.tar", &urls, &[], &[]);
    assert_eq!(code(&result), 0, "{}", text(&result));
    let rows = results(&ldawt::engine::results_path(&out));
    let members = archive_members(&out);
    for (i, (path, opted_out)) in cases.iter().enumerate() {
        let r = &rows[&(i as u64)];
        if *opted_out {
            assert_eq!(r.status, RowStatus::Skipped, "{path}: {r:?}");
            assert_eq!(r.error_kind.as_deref(), Some("opted_out"), "{path}");
            assert!(r.error_message.as_deref().unwrap().contains("X-Robots-Tag"));
            assert_eq!(r.attempts, 1, "{path}: an opt-out is not retried");
            assert_eq!(r.member, None);
            assert_eq!(fx.requests(path), 1);
        } else {
            assert_eq!(r.status, RowStatus::Ok, "{path}: {r:?}");
            let member = r.member.as_deref().unwrap();
            assert_eq!(members[member], fx.expected_body(path), "{path}");
        }
    }
    assert_eq!(members.len(), 4, "only the four allowed images are stored");
    let summary = String::from_utf8_lossy(&result.stdout);
    assert!(summary.contains("opted_out"), "{summary}");
    let ua = fx.user_agent(cases[0].0).unwrap();
    assert_eq!(
        ua,
        format!(
            "ldawt/{} (+https://github.com/ldawt/ldawt)",
            env!("CARGO_PKG_VERSION")
        )
    );

    // A narrower list, and the user's contact in the User-Agent.
    let (out, result) = download(
        dir.path(),
        "narrow.tar",
        &urls,
        &[],
        &[
            "--disallowed-header-directives",
            "NoIndex",
            "--user-agent-token",
            "datasets@example.org",
        ],
    );
    assert_eq!(code(&result), 0, "{}", text(&result));
    let rows = results(&ldawt::engine::results_path(&out));
    let opted: Vec<u64> = rows
        .values()
        .filter(|r| r.error_kind.as_deref() == Some("opted_out"))
        .map(|r| r.index)
        .collect();
    assert_eq!(opted, vec![3], "only the `*: noindex` row");
    let ua = fx.user_agent(cases[0].0).unwrap();
    assert!(
        ua.ends_with("(+https://github.com/ldawt/ldawt; datasets@example.org)"),
        "{ua}"
    );

    // Disabled: everything is stored.
    let (out, result) = download(
        dir.path(),
        "off.tar",
        &urls,
        &[],
        &["--disallowed-header-directives", ""],
    );
    assert_eq!(code(&result), 0, "{}", text(&result));
    let rows = results(&ldawt::engine::results_path(&out));
    assert!(rows.values().all(|r| r.status == RowStatus::Ok), "{rows:?}");

    // A token that cannot go into a header is refused before anything is written.
    let (out, result) = download(
        dir.path(),
        "bad.tar",
        &urls,
        &[],
        &["--user-agent-token", "me (x)"],
    );
    assert_eq!(code(&result), 2, "{}", text(&result));
    assert!(String::from_utf8_lossy(&result.stderr).contains("--user-agent-token"));
    assert!(!out.exists());
}
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

pub(crate) fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}
#[test]
fn verify_hash_drops_bodies_that_differ_from_the_list() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    // A body over the 1 MiB spill threshold is hashed from its spill file.
    let big = "/fx/size-1500000/photos/9/big.jpg";
    let paths = [
        "/photos/1/a.jpg",
        "/photos/2/a.jpg",
        "/photos/3/a.jpg",
        "/photos/4/a.jpg",
        big,
        "/fx/size-1400000/photos/10/big.jpg",
        "/photos/5/a.jpg",
    ];
    let urls: Vec<String> = paths.iter().map(|p| fx.url(p)).collect();
    let body = |i: usize| fx.expected_body(paths[i]);
    // (listed digest, expected outcome)
    let listed = |hash: &dyn Fn(&[u8]) -> String| -> Vec<(Option<String>, Option<&str>)> {
        vec![
            (Some(hash(&body(0))), None),
            (Some(hash(&body(0))), Some("hash_mismatch")),
            (None, None),
            (Some(hash(&body(3)).to_uppercase()), None),
            (Some(hash(&body(4))), None),
            (Some(hash(&body(4))), Some("hash_mismatch")),
            (Some("not-a-digest".to_string()), Some("hash_mismatch")),
        ]
    };
    for (algorithm, cases) in [("sha256", listed(&sha256_hex)), ("md5", listed(&md5_hex))] {
        let (out, result) = download(
            dir.path(),
            &format!("{algorithm}.tar"),
            &urls,
            &[("digest", cases.iter().map(|c| c.0.clone()).collect())],
            &["--verify-hash", &format!("digest:{algorithm}")],
        );
        assert_eq!(code(&result), 1, "two rows fail: {}", text(&result));
        let rows = results(&ldawt::engine::results_path(&out));
        let members = archive_members(&out);
        for (i, (_, kind)) in cases.iter().enumerate() {
            let r = &rows[&(i as u64)];
            match kind {
                None => {
                    assert_eq!(r.status, RowStatus::Ok, "{algorithm} row {i}: {r:?}");
                    assert_eq!(r.sha256.as_deref(), Some(sha256_hex(&body(i)).as_str()));
                    assert_eq!(members[r.member.as_deref().unwrap()], body(i));
                }
                Some(kind) => {
                    assert_eq!(r.status, RowStatus::Failed, "{algorithm} row {i}: {r:?}");
                    assert_eq!(r.error_kind.as_deref(), Some(*kind));
                    assert_eq!(r.member, None);
                    assert!(
                        r.error_message.as_deref().unwrap().contains("'digest'"),
                        "{r:?}"
                    );
                }
            }
        }
        assert_eq!(
            members.len(),
            4,
            "{algorithm}: mismatched bodies are not stored"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("spill"))
            .collect();
        assert!(leftovers.is_empty(), "spill files left: {leftovers:?}");
    }

    // A column that is not in the input is refused up front.
    let (out, result) = download(
        dir.path(),
        "missing.tar",
        &urls,
        &[],
        &["--verify-hash", "nope"],
    );
    assert_eq!(code(&result), 2, "{}", text(&result));
    assert!(String::from_utf8_lossy(&result.stderr).contains("nope"));
    assert!(!out.exists());
    let (_, result) = download(
        dir.path(),
        "algo.tar",
        &urls,
        &[],
        &["--verify-hash", "digest:crc32"],
    );
    assert_eq!(code(&result), 2, "{}", text(&result));
}
/// Each row's cells of `cols` in a results file, by row index.
pub(crate) fn extra_cells(
    path: &Path,
    cols: &[&str],
) -> std::collections::BTreeMap<u64, Vec<Option<String>>> {
    let cols: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
    let mut out = std::collections::BTreeMap::new();
    ldawt::results::read_results_with(path, &cols, |r, more| {
        out.insert(r.index, more.cells);
    })
    .unwrap();
    out
}

/// Each row's `[width, height, original_width, original_height]` in a results file.
pub(crate) fn recorded_dims(path: &Path) -> std::collections::BTreeMap<u64, Option<[u32; 4]>> {
    let mut out = std::collections::BTreeMap::new();
    ldawt::results::read_results_with(path, &[], |r, more| {
        out.insert(r.index, more.dims);
    })
    .unwrap();
    out
}
#[test]
fn extra_cols_are_carried_into_the_results_and_through_resume() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let paths = [
        "/photos/1/a.jpg",
        "/fx/404/photos/2/a.jpg",
        "/photos/3/a.jpg",
    ];
    let urls: Vec<String> = paths.iter().map(|p| fx.url(p)).collect();
    let license = vec![Some("cc-by".to_string()), Some("cc0".to_string()), None];
    let author = vec![Some("ann".to_string()), None, Some("bob".to_string())];
    let more = [("license", license.clone()), ("author", author.clone())];
    let args = ["--extra-cols", "author,license"];
    let (out, result) = download(dir.path(), "extra.tar", &urls, &more, &args);
    assert_eq!(code(&result), 1, "{}", text(&result));
    let results_file = ldawt::engine::results_path(&out);
    let expect: std::collections::BTreeMap<u64, Vec<Option<String>>> = (0..3)
        .map(|i| (i as u64, vec![author[i].clone(), license[i].clone()]))
        .collect();
    assert_eq!(extra_cells(&results_file, &["author", "license"]), expect);
    // The parquet schema really has the columns, after the fixed ones.
    let file = std::fs::File::open(&results_file).unwrap();
    let schema = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .schema()
        .clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(&names[names.len() - 2..], &["author", "license"]);

    // --resume keeps the carried rows' cells.
    let input = dir.path().join("extra.tar.in.parquet");
    let result = run_download(
        &input,
        &out,
        &["--extra-cols", "author,license", "--resume"],
        LIMIT,
    );
    assert_eq!(code(&result), 1, "{}", text(&result));
    assert_eq!(extra_cells(&results_file, &["author", "license"]), expect);
    assert_eq!(
        fx.requests(paths[0]),
        1,
        "row 0 was carried, not fetched again"
    );

    // Bad lists are refused before anything is written.
    for bad in ["nope", "url", "author,,license", "author,author"] {
        let (out, result) = download(dir.path(), "bad.tar", &urls, &more, &["--extra-cols", bad]);
        assert_eq!(code(&result), 2, "{bad}: {}", text(&result));
        assert!(!out.exists());
    }
}
/// Regular members of a tar, in archive order.
pub(crate) fn member_order(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(file);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type() == tar::EntryType::Regular)
        .map(|e| e.path().unwrap().to_string_lossy().into_owned())
        .collect()
}
/// Regular files below `dir`.
pub(crate) fn walk(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            n += walk(&e.path());
        } else {
            n += 1;
        }
    }
    n
}
#[test]
fn respect_robots_txt_skips_disallowed_rows_without_requesting_them() {
    use ldawt::fixture::FixtureConfig;
    let robots = "# ours\nUser-agent: otherbot\nDisallow: /\n\nUser-agent: LDAWT\nDisallow: /private/\nAllow: /private/ok/\n";
    let with = |status: u16, text: &str| {
        common::fixture_with(FixtureConfig {
            robots_txt: Some((status, text.to_string())),
            ..FixtureConfig::default()
        })
    };
    let (site, down, missing) = (with(200, robots), with(503, "down"), with(404, "none"));
    let dir = tempfile::tempdir().unwrap();
    // (fixture, path, allowed)
    let cases = [
        (&site, "/photos/1/a.jpg", true),
        (&site, "/private/2/a.jpg", false),
        (&site, "/private/ok/3/a.jpg", true),
        (&site, "/private/4/a.jpg", false),
        (&down, "/photos/5/a.jpg", false),
        (&missing, "/photos/6/a.jpg", true),
    ];
    let urls: Vec<String> = cases.iter().map(|(fx, p, _)| fx.url(p)).collect();
    let (out, result) = download(
        dir.path(),
        "robots.tar",
        &urls,
        &[],
        &["--respect-robots-txt", "--concurrency", "8"],
    );
    assert_eq!(code(&result), 0, "{}", text(&result));
    let rows = results(&ldawt::engine::results_path(&out));
    for (i, (fx, path, allowed)) in cases.iter().enumerate() {
        let r = &rows[&(i as u64)];
        if *allowed {
            assert_eq!(r.status, RowStatus::Ok, "{path}: {r:?}");
            assert_eq!(fx.requests(path), 1);
        } else {
            assert_eq!(r.status, RowStatus::Skipped, "{path}: {r:?}");
            assert_eq!(r.error_kind.as_deref(), Some("robots_disallowed"));
            assert_eq!(r.attempts, 0);
            assert_eq!(fx.requests(path), 0, "{path} was requested");
        }
    }
    for fx in [&site, &down, &missing] {
        assert_eq!(
            fx.requests("/robots.txt"),
            1,
            "robots.txt fetched once per site"
        );
    }

    // Without the flag robots.txt is neither fetched nor obeyed.
    let (out, result) = download(dir.path(), "ignored.tar", &urls[..2], &[], &[]);
    assert_eq!(code(&result), 0, "{}", text(&result));
    let rows = results(&ldawt::engine::results_path(&out));
    assert!(rows.values().all(|r| r.status == RowStatus::Ok), "{rows:?}");
    assert_eq!(site.requests("/robots.txt"), 1);
}
#[test]
fn retry_failed_retries_only_retryable_failures_and_keeps_the_rest() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let paths = [
        "/photos/1/a.jpg",
        "/fx/404/photos/2/a.jpg",
        "/fx/fail-first-1-503/photos/3/a.jpg",
        "/fx/robots-noai/photos/4/a.jpg",
        "/fx/fail-first-1-429/photos/5/a.jpg",
    ];
    let urls: Vec<String> = paths.iter().map(|p| fx.url(p)).collect();
    let (out, result) = download(
        dir.path(),
        "retry.tar",
        &urls,
        &[],
        &["--max-attempts", "1"],
    );
    assert_eq!(code(&result), 1, "{}", text(&result));
    let first = results(&ldawt::engine::results_path(&out));
    assert_eq!(first[&2].error_kind.as_deref(), Some("http_503"));
    assert_eq!(first[&4].error_kind.as_deref(), Some("http_429"));

    let input = dir.path().join("retry.tar.in.parquet");
    let result = run_download(
        &input,
        &out,
        &["--max-attempts", "1", "--retry-failed"],
        LIMIT,
    );
    assert_eq!(code(&result), 1, "the 404 stays failed: {}", text(&result));
    let rows = results(&ldawt::engine::results_path(&out));
    assert_eq!(rows.len(), paths.len());
    // Requested once: the stored image and the final outcomes; twice: the retryable failures.
    for (i, n) in [1, 1, 2, 1, 2].iter().enumerate() {
        assert_eq!(fx.requests(paths[i]), *n, "{}", paths[i]);
    }
    assert_eq!(rows[&0], first[&0], "the stored row is carried as it was");
    assert_eq!(rows[&1], first[&1]);
    assert_eq!(rows[&3], first[&3]);
    for i in [2u64, 4] {
        assert_eq!(rows[&i].status, RowStatus::Ok, "{:?}", rows[&i]);
    }
    let members = archive_members(&out);
    assert_eq!(members.len(), 3);
    for i in [0usize, 2, 4] {
        let member = rows[&(i as u64)].member.as_deref().unwrap();
        assert_eq!(members[member], fx.expected_body(paths[i]));
    }
    let summary = String::from_utf8_lossy(&result.stdout);
    assert!(summary.contains("http_404"), "{summary}");
}
