//! `ldawt download` image options through the real binary against the fixture's real images
//! of chosen dimensions: the header-only filters and `--resize-mode`.

use ldawt::engine::RowStatus;

use crate::common::{self, archive_members, code, results, text};
use crate::dataset::{download, recorded_dims, sha256_hex};

#[test]
fn image_filters_skip_rows_by_their_header_dimensions() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    // (path, kind when filtered; None = stored)
    let cases = [
        ("/fx/dims-200x150/photos/1/a.jpg", None),
        ("/fx/dims-120x120/photos/2/a.png", None),
        ("/fx/dims-99x300/photos/3/a.jpg", Some("image_too_small")),
        (
            "/fx/dims-1100x1000/photos/4/a.png",
            Some("image_area_too_large"),
        ),
        (
            "/fx/dims-400x100/photos/5/a.jpg",
            Some("aspect_ratio_too_large"),
        ),
        // Over the 1 MiB spill threshold: read from the spill file.
        ("/fx/size-1200000/photos/6/a.jpg", Some("image_undecodable")),
        ("/fx/dims-150x450/photos/7/a.jpg", None),
    ];
    let urls: Vec<String> = cases.iter().map(|(p, _)| fx.url(p)).collect();
    let filters = [
        "--min-image-size",
        "100",
        "--max-image-area",
        "1000000",
        "--max-aspect-ratio",
        "3",
    ];
    let (out, result) = download(dir.path(), "filtered.tar", &urls, &[], &filters);
    assert_eq!(
        code(&result),
        0,
        "filtered rows are not failures: {}",
        text(&result)
    );
    let rows = results(&ldawt::engine::results_path(&out));
    let members = archive_members(&out);
    for (i, (path, kind)) in cases.iter().enumerate() {
        let r = &rows[&(i as u64)];
        match kind {
            None => {
                assert_eq!(r.status, RowStatus::Ok, "{path}: {r:?}");
                assert_eq!(
                    members[r.member.as_deref().unwrap()],
                    fx.expected_body(path)
                );
            }
            Some(kind) => {
                assert_eq!(r.status, RowStatus::Skipped, "{path}: {r:?}");
                assert_eq!(r.error_kind.as_deref(), Some(*kind), "{path}");
                assert_eq!(r.member, None);
            }
        }
    }
    assert_eq!(members.len(), 3);
    let dims = recorded_dims(&ldawt::engine::results_path(&out));
    assert_eq!(dims[&0], Some([200, 150, 200, 150]));
    assert_eq!(dims[&3], None, "filtered rows store nothing");
    let message = rows[&3].error_message.clone().unwrap();
    assert!(message.contains("1100x1000"), "{message}");
    let summary = String::from_utf8_lossy(&result.stdout);
    assert!(summary.contains("image_too_small"), "{summary}");
    let overview: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ldawt::engine::overview_path(&out)).unwrap())
            .unwrap();
    assert_eq!(
        overview["dataset_options"]["filters"]["max_image_area"],
        1_000_000
    );

    // Without filters nothing is decoded and everything is stored.
    let (out, result) = download(dir.path(), "plain.tar", &urls, &[], &[]);
    assert_eq!(code(&result), 0, "{}", text(&result));
    assert_eq!(archive_members(&out).len(), cases.len());

    for bad in [["--max-aspect-ratio", "0.5"], ["--max-aspect-ratio", "NaN"]] {
        let (_, result) = download(dir.path(), "bad.tar", &urls, &[], &bad);
        assert_eq!(code(&result), 2, "{bad:?}: {}", text(&result));
    }
}
#[test]
fn resize_modes_store_re_encoded_images_of_the_asked_size() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let paths = [
        "/fx/dims-200x150/photos/1/a.jpg",
        "/fx/dims-40x30/photos/2/a.png",
        "/fx/dims-90x300/photos/3/a.png",
        "/photos/4/not-decodable.jpg",
    ];
    let urls: Vec<String> = paths.iter().map(|p| fx.url(p)).collect();
    // (flags, expected dimensions per decodable row, format)
    type Run<'a> = (&'a [&'a str], [(u32, u32); 3], image::ImageFormat);
    let runs: [Run; 3] = [
        (
            &[
                "--resize-mode",
                "border",
                "--image-size",
                "64",
                "--encode-quality",
                "80",
            ],
            [(64, 64), (64, 64), (64, 64)],
            image::ImageFormat::Jpeg,
        ),
        (
            &[
                "--resize-mode",
                "keep_ratio",
                "--image-size",
                "64",
                "--resize-only-if-bigger",
                "--encode-format",
                "png",
            ],
            [(85, 64), (40, 30), (64, 213)],
            image::ImageFormat::Png,
        ),
        (
            &[
                "--resize-mode",
                "center_crop",
                "--image-size",
                "48",
                "--encode-format",
                "webp",
                "--encode-quality",
                "70",
            ],
            [(48, 48), (48, 48), (48, 48)],
            image::ImageFormat::WebP,
        ),
    ];
    for (n, (flags, dims, format)) in runs.iter().enumerate() {
        let (out, result) = download(dir.path(), &format!("resized{n}.tar"), &urls, &[], flags);
        assert_eq!(code(&result), 0, "{flags:?}: {}", text(&result));
        let rows = results(&ldawt::engine::results_path(&out));
        let members = archive_members(&out);
        assert_eq!(members.len(), 3, "{flags:?}");
        for (i, want) in dims.iter().enumerate() {
            let r = &rows[&(i as u64)];
            assert_eq!(r.status, RowStatus::Ok, "{flags:?} row {i}: {r:?}");
            let member = r.member.as_deref().unwrap();
            let ext = match format {
                image::ImageFormat::Png => ".png",
                image::ImageFormat::WebP => ".webp",
                _ => ".jpg",
            };
            assert!(member.ends_with(ext), "{member}");
            let bytes = &members[member];
            assert_eq!(r.bytes, bytes.len() as u64);
            assert_eq!(r.sha256.as_deref(), Some(sha256_hex(bytes).as_str()));
            assert_eq!(image::guess_format(bytes).unwrap(), *format, "{member}");
            let img = image::load_from_memory(bytes).unwrap();
            assert_eq!((img.width(), img.height()), *want, "{flags:?} {member}");
        }
        let recorded = recorded_dims(&ldawt::engine::results_path(&out));
        let originals = [(200, 150), (40, 30), (90, 300)];
        for (i, (want, orig)) in dims.iter().zip(originals).enumerate() {
            let expected = [want.0, want.1, orig.0, orig.1];
            assert_eq!(recorded[&(i as u64)], Some(expected), "{flags:?} row {i}");
        }
        let r = &rows[&3];
        assert_eq!(r.status, RowStatus::Skipped);
        assert_eq!(r.error_kind.as_deref(), Some("image_undecodable"));
    }
    let (_, result) = download(dir.path(), "bad.tar", &urls, &[], &["--image-size", "64"]);
    assert_eq!(code(&result), 2, "{}", text(&result));
}
