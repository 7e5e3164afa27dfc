//! `ldawt download --format webdataset|files|parquet` through the real binary against the
//! fixture; the webdataset and parquet outputs are read back by the `webdataset` and `pyarrow`
//! packages from PyPI (in `target/pyvenv`), as a training loader would.

use ldawt::engine::RowStatus;

use crate::common::python::{pyvenv_or_skip, read_back_all};
use crate::common::{self, archive_members, code, results, run_download, run_ldawt, text};
use crate::dataset::{LIMIT, download, member_order, sha256_hex, walk};

/// The webdataset run of [`webdataset_output_is_read_back_by_the_webdataset_package`].
const WDS_FLAGS: [&str; 6] = [
    "--format",
    "webdataset",
    "--extra-cols",
    "license",
    "--caption-col",
    "caption",
];

#[test]
fn webdataset_output_is_read_back_by_the_webdataset_package() {
    let Some(python) = pyvenv_or_skip() else {
        return;
    };
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    // (path, class, stored)
    let rows: [(&str, Option<&str>, bool); 7] = [
        ("/fx/dims-64x48/photos/7/a.png", Some("Apis"), true),
        ("/photos/1/a.jpg", Some("Bombus"), true),
        ("/fx/404/photos/2/a.jpg", Some("Apis"), false),
        ("/photos/3/a.png", Some("Apis"), true),
        ("/fx/robots-noai/photos/4/a.jpg", Some("Vespa"), false),
        ("/photos/5/a.jpg", None, true),
        ("/fx/size-1500000/photos/6/a.jpg", Some("Bombus"), true),
    ];
    let input = dir.path().join("in.parquet");
    common::write_string_parquet(
        &input,
        &[
            (
                "photo_url",
                rows.iter().map(|r| Some(fx.url(r.0))).collect(),
            ),
            (
                "taxon_name",
                rows.iter().map(|r| r.1.map(str::to_string)).collect(),
            ),
            (
                "license",
                (0..rows.len()).map(|i| Some(format!("lic-{i}"))).collect(),
            ),
            (
                "caption",
                (0..rows.len())
                    .map(|i| (i != 2).then(|| format!("a photo, row {i}")))
                    .collect(),
            ),
        ],
    );
    let out = dir.path().join("wds").join("shard-00003.tar");
    let result = run_download(&input, &out, &WDS_FLAGS, LIMIT);
    assert_eq!(code(&result), 1, "{}", text(&result));

    // Class ids in order of first appearance in the input, failed rows included.
    let classes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ldawt::engine::classes_path(&out)).unwrap()).unwrap();
    assert_eq!(
        classes["names"],
        serde_json::json!(["Apis", "Bombus", "Vespa"])
    );
    assert_eq!(classes["classes"]["Bombus"], 1);

    // Every sample's members are adjacent: KEY.<image>, KEY.json, KEY.cls.
    let order = member_order(&out);
    let keys: Vec<&str> = order.iter().map(|m| m.split_once('.').unwrap().0).collect();
    let mut seen = std::collections::HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        if i == 0 || keys[i - 1] != *k {
            assert!(
                seen.insert(*k),
                "members of {k} are not adjacent: {order:?}"
            );
        }
    }

    let results_rows = results(&ldawt::engine::results_path(&out));
    let samples = read_back_all(&python, "read_webdataset.py", &out);
    let stored: Vec<usize> = (0..rows.len()).filter(|i| rows[*i].2).collect();
    assert_eq!(samples.len(), stored.len(), "{samples:?}");
    let mut by_key: std::collections::HashMap<String, serde_json::Value> = samples
        .into_iter()
        .map(|s| (s["key"].as_str().unwrap().to_string(), s))
        .collect();
    for i in stored {
        let (path, class, _) = rows[i];
        let key = ldawt::engine::sample_key(i as u64);
        let s = by_key
            .remove(&key)
            .unwrap_or_else(|| panic!("no sample {key}"));
        let r = &results_rows[&(i as u64)];
        let body_sha = sha256_hex(&fx.expected_body(path));
        let image = if path.ends_with(".png") { "png" } else { "jpg" };
        assert_eq!(r.member.as_deref(), Some(format!("{key}.{image}").as_str()));
        let mut exts = vec![image, "json", "txt"];
        if class.is_some() {
            exts.push("cls");
        }
        exts.sort();
        assert_eq!(s["exts"], serde_json::json!(exts), "{key}");
        assert_eq!(s["sha256"], body_sha.as_str(), "{key}: image bytes");
        let meta = &s["meta"];
        assert_eq!(meta["sha256"], body_sha.as_str());
        assert_eq!(meta["index"], i as u64);
        assert_eq!(meta["url"], fx.url(path).as_str());
        assert_eq!(meta["class"], serde_json::json!(class));
        assert_eq!(meta["http_status"], 200);
        assert_eq!(meta["license"], format!("lic-{i}").as_str());
        let caption = (i != 2).then(|| format!("a photo, row {i}"));
        assert_eq!(meta["caption"], serde_json::json!(caption));
        assert_eq!(s["txt"], caption.unwrap_or_default().as_str(), "{key}");
        // Dimensions come from the image header; the fixture's filler bodies have none.
        let (w, h) = if i == 0 {
            (serde_json::json!(64), serde_json::json!(48))
        } else {
            (serde_json::Value::Null, serde_json::Value::Null)
        };
        assert_eq!((&meta["width"], &meta["height"]), (&w, &h), "{key}");
        assert_eq!(
            (&meta["original_width"], &meta["original_height"]),
            (&w, &h)
        );
        match class {
            Some(c) => {
                assert_eq!(s["cls"], classes["classes"][c], "{key}");
                assert_eq!(meta["class_id"], classes["classes"][c]);
            }
            None => assert_eq!(s["cls"], serde_json::Value::Null),
        }
    }

    // Resized samples report both sizes and carry the new encoding's extension.
    let resized = dir.path().join("wds").join("resized.tar");
    let result = run_download(
        &input,
        &resized,
        &[
            "--format",
            "webdataset",
            "--resize-mode",
            "center_crop",
            "--image-size",
            "32",
        ],
        LIMIT,
    );
    assert_eq!(code(&result), 1, "{}", text(&result));
    let samples = read_back_all(&python, "read_webdataset.py", &resized);
    assert_eq!(
        samples.len(),
        1,
        "only the decodable image is kept: {samples:?}"
    );
    let meta = &samples[0]["meta"];
    assert_eq!(
        samples[0]["exts"],
        serde_json::json!(["cls", "jpg", "json"])
    );
    assert_eq!(
        (&meta["width"], &meta["height"]),
        (&serde_json::json!(32), &serde_json::json!(32))
    );
    assert_eq!(
        (&meta["original_width"], &meta["original_height"]),
        (&serde_json::json!(64), &serde_json::json!(48))
    );

    // --resume continues a finished webdataset: its samples are copied whole, only the rows
    // not stored (the 404 and the opted-out one) are asked again.
    let before = member_order(&out);
    let requests = fx.total_requests();
    let result = run_download(
        &input,
        &out,
        &[&WDS_FLAGS[..], &["--resume"]].concat(),
        LIMIT,
    );
    assert_eq!(code(&result), 1, "{}", text(&result));
    assert_eq!(member_order(&out), before);
    assert_eq!(fx.total_requests() - requests, 2);
}
#[test]
fn files_format_writes_a_plain_directory_tree() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let paths = [
        "/photos/1/a.jpg",
        "/photos/2/a.png",
        "/fx/404/photos/3/a.jpg",
        "/photos/4/a.jpg",
    ];
    let urls: Vec<String> = paths.iter().map(|p| fx.url(p)).collect();
    let (out, result) = download(dir.path(), "tree", &urls, &[], &["--format", "files"]);
    assert_eq!(code(&result), 1, "{}", text(&result));
    assert!(out.is_dir(), "{}", text(&result));
    assert!(!dir.path().join("tree.part").exists());
    let rows = results(&ldawt::engine::results_path(&out));
    let mut files = 0;
    for (i, path) in paths.iter().enumerate() {
        let r = &rows[&(i as u64)];
        if path.contains("/404/") {
            assert_eq!(r.status, RowStatus::Failed);
            continue;
        }
        // Members are named as in the tar (`<stem>/<class>/<name>.<ext>`), relative to the
        // output's parent folder.
        let member = r.member.as_deref().unwrap();
        assert!(member.starts_with("tree/"), "{member}");
        assert_eq!(
            std::fs::read(dir.path().join(member)).unwrap(),
            fx.expected_body(path),
            "{member}"
        );
        files += 1;
    }
    let on_disk = walk(&out);
    assert_eq!(on_disk, files, "exactly the stored images, nothing else");

    // Never over an existing tree; a tar name is a mistake.
    for name in ["tree", "tree.tar"] {
        let (_, result) = download(dir.path(), name, &urls, &[], &["--format", "files"]);
        assert_eq!(code(&result), 2, "{name}: {}", text(&result));
    }
    assert_eq!(walk(&out), files, "the existing tree is untouched");
    for bad in [
        &["--format", "files", "--compression", "gzip"][..],
        &["--caption-col", "taxon_name"][..],
    ] {
        let (out, result) = download(dir.path(), "other", &urls, &[], bad);
        assert_eq!(code(&result), 2, "{bad:?}: {}", text(&result));
        assert!(!out.exists());
    }
}
#[test]
fn parquet_output_is_read_back_by_pyarrow_and_reconstruct() {
    let Some(python) = pyvenv_or_skip() else {
        return;
    };
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let paths = [
        "/fx/dims-64x48/photos/1/a.png",
        "/fx/404/photos/2/a.jpg",
        "/photos/3/a.jpg",
        "/fx/size-1300000/photos/4/a.jpg",
    ];
    let urls: Vec<String> = paths.iter().map(|p| fx.url(p)).collect();
    let license: Vec<Option<String>> = (0..paths.len()).map(|i| Some(format!("l{i}"))).collect();
    let (out, result) = download(
        dir.path(),
        "images.parquet",
        &urls,
        &[("license", license)],
        &["--format", "parquet", "--extra-cols", "license"],
    );
    assert_eq!(code(&result), 1, "{}", text(&result));
    let results_rows = results(&ldawt::engine::results_path(&out));
    assert_eq!(
        ldawt::engine::results_path(&out),
        dir.path().join("images.results.parquet")
    );
    let rows = read_back_all(&python, "read_parquet.py", &out);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        let i = row["index"].as_u64().unwrap() as usize;
        let body = fx.expected_body(paths[i]);
        let r = &results_rows[&(i as u64)];
        assert_eq!(row["image_sha256"], sha256_hex(&body).as_str(), "row {i}");
        assert_eq!(row["sha256"], sha256_hex(&body).as_str());
        assert_eq!(row["image_path"], r.member.as_deref().unwrap());
        assert_eq!(row["url"], urls[i].as_str());
        assert_eq!(row["bytes"], body.len() as u64);
        assert_eq!(row["http_status"], 200);
        assert_eq!(row["license"], format!("l{i}").as_str());
        let (w, h) = if i == 0 {
            (serde_json::json!(64), serde_json::json!(48))
        } else {
            (serde_json::Value::Null, serde_json::Value::Null)
        };
        assert_eq!(
            (&row["width"], &row["original_height"]),
            (&w, &h),
            "row {i}"
        );
    }

    // `ldawt reconstruct` reads the `{bytes, path}` struct back as images.
    let rebuilt = dir.path().join("rebuilt.tar");
    let result = run_ldawt(
        &[
            "reconstruct",
            "--input",
            out.to_str().unwrap(),
            "--output",
            rebuilt.to_str().unwrap(),
            "--label-col",
            "class",
        ],
        LIMIT,
    );
    assert_eq!(code(&result), 0, "{}", text(&result));
    let mut rebuilt_bodies: Vec<Vec<u8>> = archive_members(&rebuilt).into_values().collect();
    let mut stored: Vec<Vec<u8>> = [0, 2, 3]
        .iter()
        .map(|i| fx.expected_body(paths[*i]))
        .collect();
    rebuilt_bodies.sort();
    stored.sort();
    assert_eq!(rebuilt_bodies, stored);

    for (name, flags) in [
        ("x.tar", &["--format", "parquet"][..]),
        (
            "y.parquet",
            &["--format", "parquet", "--compression", "gzip"][..],
        ),
    ] {
        let (out, result) = download(dir.path(), name, &urls, &[], flags);
        assert_eq!(code(&result), 2, "{name}: {}", text(&result));
        assert!(!out.exists());
    }
}
