//! `ldawt size` through the binary: HEAD sizes, the ranged-GET fallback (206 `Content-Range`,
//! or a 200's length when ranges are ignored), retries, unresolved URLs with reasons,
//! per-class totals, folder input and `--json`.

use std::time::Duration;

use crate::common;

#[test]
fn sizes_come_from_head_or_range_and_unresolved_urls_are_explained() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lists");
    std::fs::create_dir(&data).unwrap();
    let paths = [
        "/photos/1/medium.jpg",
        "/fx/no-head/photos/2/medium.jpg",
        "/fx/no-head/fx/no-range/photos/3/medium.jpg",
        "/fx/fail-first-1-503/photos/6/medium.jpg",
        "/fx/404/photos/4/medium.jpg",
        "/fx/no-head/fx/no-range/fx/chunked/photos/5/medium.jpg",
    ];
    let size = |p: &str| fx.expected_body(p).len() as u64;
    let mut urls: Vec<Option<String>> = paths.iter().map(|p| Some(fx.url(p))).collect();
    urls.push(None);
    let classes = ["a", "a", "b", "b", "b", "a", "a"]
        .map(|c| Some(c.to_string()))
        .to_vec();
    common::write_string_parquet(
        &data.join("one.parquet"),
        &[("photo_url", urls), ("taxon_name", classes)],
    );
    std::fs::write(
        data.join("two.csv"),
        format!(
            "photo_url,taxon_name\n{},c\n",
            fx.url("/photos/9/medium.jpg")
        ),
    )
    .unwrap();

    let out = common::run_ldawt(
        &[
            "size",
            "--input",
            data.to_str().unwrap(),
            "--class-col",
            "taxon_name",
            "--json",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(
        common::code(&out),
        1,
        "some unresolved → exit 1\n{}",
        common::text(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = size(paths[0])
        + size(paths[1])
        + size(paths[2])
        + size(paths[3])
        + size("/photos/9/medium.jpg");
    assert_eq!(report["total_bytes"], expected, "{report:#}");
    assert_eq!(report["rows"], 8);
    assert_eq!(report["resolved"], 5);
    assert_eq!(report["unresolved_count"], 3);
    let reasons: Vec<String> = report["unresolved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| format!("{} {}", u["row"], u["reason"]))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("4 ") && r.contains("HTTP 404")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("5 ") && r.contains("no length")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("6 ") && r.contains("empty URL")),
        "{reasons:?}"
    );
    assert_eq!(
        report["per_class"]["a"]["bytes"],
        size(paths[0]) + size(paths[1])
    );
    assert_eq!(report["per_class"]["a"]["unresolved"], 2);
    assert_eq!(report["per_class"]["c"]["resolved"], 1);
    assert_eq!(fx.requests(paths[0]), 1, "HEAD was enough");
    assert_eq!(fx.requests(paths[1]), 2, "HEAD refused, then a ranged GET");
    assert_eq!(
        fx.requests(paths[3]),
        2,
        "HEAD answered 503, the ranged GET got the size"
    );

    let text = common::run_ldawt(
        &["size", "--directory", data.to_str().unwrap()],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains(&format!("{expected} bytes")), "{stdout}");
    assert!(stdout.contains("Unresolved URLs: 3"), "{stdout}");

    let missing = common::run_ldawt(
        &["size", "--input", dir.path().join("nope").to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(common::code(&missing), 2, "{}", common::text(&missing));
}
