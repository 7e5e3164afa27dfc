//! Large bodies: anything over 1 MiB is spilled to a file next to the archive while it
//! downloads (memory stays bounded), then archived byte-exact; no spill file is left behind.

use std::time::Duration;

use crate::common::{self, archive_members};

#[test]
fn bodies_over_a_mebibyte_spill_to_disk_and_are_archived_exactly() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let paths = [
        "/fx/size-3000000/photos/1/original.jpg",
        "/fx/chunked/fx/size-2500000/photos/2/original.png",
        "/photos/3/medium.jpg",
    ];
    let input = dir.path().join("in.parquet");
    common::write_string_parquet(
        &input,
        &[
            ("photo_url", paths.iter().map(|p| Some(fx.url(p))).collect()),
            (
                "taxon_name",
                paths.iter().map(|_| Some("big".to_string())).collect(),
            ),
        ],
    );
    let output = dir.path().join("out").join("big.tar.gz");
    let out = common::run_download(&input, &output, &[], Duration::from_secs(60));
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));
    let members = archive_members(&output);
    assert_eq!(members["big/big/1.jpg"], fx.expected_body(paths[0]));
    assert_eq!(members["big/big/2.png"], fx.expected_body(paths[1]));
    assert_eq!(members["big/big/3.jpg"], fx.expected_body(paths[2]));
    let left: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("spill") || n.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
