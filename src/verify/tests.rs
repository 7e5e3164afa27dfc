//! Verification on real files: an honest delivery (plain and gzip) passes with the counts it
//! really holds; forged, truncated, extra-member, wrong-hash, wrong-URL, missing-row,
//! duplicated-row, traversal, link and trailing-data deliveries are refused.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::*;
use crate::archive::ArchiveWriter;
use crate::archive::Compression;
use crate::results::ResultsWriter;
use crate::results::{RowResult, RowStatus};

const TOP: &str = "d-00000";

fn seeded() -> Vec<UrlRow> {
    (10..18u64)
        .map(|i| UrlRow {
            index: i,
            url: match i {
                14 => None,
                15 => Some(format!("  http://h/photos/{i}/medium.jpg\t")),
                _ => Some(format!("http://h/photos/{i}/medium.jpg")),
            },
            class: Some(format!("c {}", i % 2)),
            extra: Vec::new(),
        })
        .collect()
}

fn body(i: u64) -> Vec<u8> {
    format!("image {i} ").repeat(100 + i as usize).into_bytes()
}

fn member(i: u64) -> String {
    format!("{TOP}/c_{}/{i}.jpg", i % 2)
}

/// The honest results: row 13 failed, row 14 (no URL) skipped, the others stored.
fn honest_results(rows: &[UrlRow]) -> Vec<RowResult> {
    rows.iter()
        .map(|r| {
            let i = r.index;
            let status = match i {
                13 => RowStatus::Failed,
                14 => RowStatus::Skipped,
                _ => RowStatus::Ok,
            };
            let ok = status == RowStatus::Ok;
            RowResult {
                index: i,
                url: r.url.as_deref().map(|u| u.trim().to_string()),
                class: r.class.clone(),
                status,
                http_status: ok.then_some(200),
                error_kind: (i == 13).then(|| "http_404".into()),
                error_message: None,
                bytes: if ok { body(i).len() as u64 } else { 0 },
                sha256: ok.then(|| hex::encode(Sha256::digest(body(i)))),
                member: ok.then(|| member(i)),
                attempts: 1,
                elapsed_ms: 1,
            }
        })
        .collect()
}

fn write_results(dir: &Path, results: &[RowResult]) -> PathBuf {
    let path = dir.join("r.results.parquet");
    let mut w = ResultsWriter::create(&path).unwrap();
    for r in results {
        w.push(r.clone()).unwrap();
    }
    w.finish().unwrap();
    path
}

/// An archive written by the engine's own writer with the members of the `ok` results, plus
/// `extra` (path, bytes).
fn write_archive(
    dir: &Path,
    gzip: bool,
    results: &[RowResult],
    extra: &[(&str, &[u8])],
) -> PathBuf {
    let name = if gzip { "a.tar.gz" } else { "a.tar" };
    let path = dir.join(name);
    let compression = if gzip {
        Compression::Gzip { level: 1 }
    } else {
        Compression::None
    };
    let mut w = ArchiveWriter::create(&path, TOP, compression, 0, false).unwrap();
    for r in results.iter().filter(|r| r.status == RowStatus::Ok) {
        w.append_bytes(r.member.as_deref().unwrap(), &body(r.index), true)
            .unwrap();
    }
    for (m, b) in extra {
        w.append_bytes(m, b, false).unwrap();
    }
    w.finish().unwrap();
    path
}

fn spec(gzip: bool) -> ShardSpec {
    ShardSpec {
        top: TOP.into(),
        gzip,
        max_member_bytes: 1 << 20,
        format: super::DeliveryFormat::Classdirs,
    }
}

/// Verifies `results` (as a results file) with the honest archive (or `archive`).
fn check(results: &[RowResult], archive: Option<PathBuf>) -> Result<Verified, Invalid> {
    let dir = tempfile::tempdir().unwrap();
    let rows = seeded();
    let r = write_results(dir.path(), results);
    let a = archive.unwrap_or_else(|| write_archive(dir.path(), true, &honest_results(&rows), &[]));
    verify_shard(&spec(true), &rows, &r, &a)
}

#[test]
fn an_honest_delivery_passes_with_the_counts_it_holds() {
    for gzip in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let rows = seeded();
        let results = honest_results(&rows);
        let r = write_results(dir.path(), &results);
        let a = write_archive(dir.path(), gzip, &results, &[]);
        let v = verify_shard(&spec(gzip), &rows, &r, &a).unwrap();
        let bytes: u64 = [10u64, 11, 12, 15, 16, 17]
            .iter()
            .map(|i| body(*i).len() as u64)
            .sum();
        assert_eq!(
            v,
            Verified {
                ok: 6,
                failed: 1,
                skipped: 1,
                bytes
            }
        );
    }
}

#[test]
fn a_forged_one_byte_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.tar.gz");
    std::fs::write(&a, b"x").unwrap();
    let e = check(&honest_results(&seeded()), Some(a)).unwrap_err();
    assert!(matches!(e, Invalid::UnreadableArchive(_)), "{e}");
}

#[test]
fn a_truncated_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for gzip in [true, false] {
        let a = write_archive(dir.path(), gzip, &honest_results(&seeded()), &[]);
        let bytes = std::fs::read(&a).unwrap();
        std::fs::write(&a, &bytes[..bytes.len() / 2]).unwrap();
        let r = write_results(dir.path(), &honest_results(&seeded()));
        let e = verify_shard(&spec(gzip), &seeded(), &r, &a).unwrap_err();
        assert!(
            matches!(
                e,
                Invalid::UnreadableArchive(_)
                    | Invalid::MemberSize { .. }
                    | Invalid::MissingMember(_)
            ),
            "{e}"
        );
    }
}

#[test]
fn an_extra_member_link_or_traversal_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let results = honest_results(&seeded());
    let a = write_archive(
        dir.path(),
        true,
        &results,
        &[(&format!("{TOP}/c_0/99.jpg"), b"x")],
    );
    let e = check(&results, Some(a)).unwrap_err();
    assert!(matches!(e, Invalid::UnexpectedMember(_)), "{e}");
    let r = write_results(dir.path(), &results);

    // Hand-made tars: a `..` member (the tar crate refuses to write one, so the name is set
    // in the raw header), and a symlink.
    let path = dir.path().join("evil.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut h = tar::Header::new_gnu();
    let name = b"../../etc/cron.d/forged";
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_size(1);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    b.into_inner().unwrap();
    let e = verify_shard(&spec(false), &seeded(), &r, &path).unwrap_err();
    assert!(matches!(e, Invalid::UnexpectedMember(_)), "{e}");

    let path = dir.path().join("link.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, format!("{TOP}/c_0/10.jpg"), "/etc/passwd")
        .unwrap();
    b.into_inner().unwrap();
    let e = verify_shard(&spec(false), &seeded(), &r, &path).unwrap_err();
    assert!(matches!(e, Invalid::UnexpectedEntry { .. }), "{e}");
}

#[test]
fn a_wrong_hash_or_size_is_refused() {
    let mut results = honest_results(&seeded());
    results[0].sha256 = Some(hex::encode([7u8; 32]));
    let dir = tempfile::tempdir().unwrap();
    let a = write_archive(dir.path(), true, &honest_results(&seeded()), &[]);
    let e = check(&results, Some(a.clone())).unwrap_err();
    assert_eq!(e, Invalid::MemberHash(member(10)));
    let mut results = honest_results(&seeded());
    results[1].bytes += 1;
    let e = check(&results, Some(a)).unwrap_err();
    assert!(matches!(e, Invalid::MemberSize { .. }), "{e}");
}

#[test]
fn results_that_do_not_match_the_seeded_rows_are_refused() {
    let honest = honest_results(&seeded());
    let mut r = honest.clone();
    r[2].url = Some("http://evil/x.jpg".into());
    assert_eq!(check(&r, None).unwrap_err(), Invalid::WrongUrl(12));
    let mut r = honest.clone();
    r[2].class = Some("other".into());
    assert_eq!(check(&r, None).unwrap_err(), Invalid::WrongClass(12));
    let mut r = honest.clone();
    r.remove(3);
    assert_eq!(
        check(&r, None).unwrap_err(),
        Invalid::MissingRows {
            first: 13,
            missing: 1
        }
    );
    let mut r = honest.clone();
    r[4] = honest[3].clone();
    assert_eq!(check(&r, None).unwrap_err(), Invalid::DuplicateRow(13));
    // More rows than the shard holds: refused from the footer, before any row is decoded.
    let mut r = honest.clone();
    r.push(honest[3].clone());
    assert!(matches!(
        check(&r, None).unwrap_err(),
        Invalid::UnreadableResults(_)
    ));
    let mut r = honest.clone();
    r[0].index = 99;
    assert_eq!(check(&r, None).unwrap_err(), Invalid::UnknownRow(99));
    let mut r = honest.clone();
    r[3].member = Some(member(13));
    assert!(matches!(
        check(&r, None).unwrap_err(),
        Invalid::BadRow { index: 13, .. }
    ));
}

#[test]
fn forged_member_names_are_refused() {
    let honest = honest_results(&seeded());
    for (bad, ok_shape) in [
        ("../../../../etc/cron.d/forged", false),
        ("/etc/cron.d/forged", false),
        ("d-00000/c_0/../../x.jpg", false),
        ("d-00000/c_0/10.jpg/x", false),
        ("d-00000/c_1/10.jpg", true),
        ("d-00000/c_0/11.jpg", true),
        ("d-00000/c_0/10.exe1234", true),
        ("other/c_0/10.jpg", false),
    ] {
        let mut r = honest.clone();
        r[0].member = Some(bad.into());
        let e = check(&r, None).unwrap_err();
        assert!(
            matches!(e, Invalid::BadMember { index: 10, .. }),
            "{bad}: {e}"
        );
        assert_eq!(rows::is_classdirs_member(TOP, bad), ok_shape, "{bad}");
    }
    // Two rows naming one member.
    let mut r = honest.clone();
    r[2].member = Some(format!("{TOP}/c_0/10_r12.jpg"));
    r[0].member = Some(format!("{TOP}/c_0/10_r12.jpg"));
    assert!(matches!(
        check(&r, None).unwrap_err(),
        Invalid::BadMember { .. }
    ));
}

#[test]
fn a_duplicate_stem_suffix_and_a_suffixed_folder_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let rows = seeded();
    let mut results = honest_results(&rows);
    results[0].member = Some(format!("{TOP}/c_0/10_r10_2.jpg"));
    let hash = crate::model::naming::fnv1a(b"c 1") as u32;
    for r in results
        .iter_mut()
        .filter(|r| r.index % 2 == 1 && r.member.is_some())
    {
        r.member = Some(format!("{TOP}/c_1_{hash:08x}/{}.jpg", r.index));
    }
    let r = write_results(dir.path(), &results);
    let a = write_archive(dir.path(), true, &results, &[]);
    assert_eq!(verify_shard(&spec(true), &rows, &r, &a).unwrap().ok, 6);
}

#[test]
fn trailing_data_and_garbage_results_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let results = honest_results(&seeded());
    let a = write_archive(dir.path(), false, &results, &[]);
    let mut bytes = std::fs::read(&a).unwrap();
    bytes.extend_from_slice(b"hidden payload");
    std::fs::write(&a, &bytes).unwrap();
    let r = write_results(dir.path(), &results);
    let e = verify_shard(&spec(false), &seeded(), &r, &a).unwrap_err();
    assert_eq!(e, Invalid::TrailingData);

    let garbage = dir.path().join("g.results.parquet");
    std::fs::write(&garbage, b"PAR1 not really PAR1").unwrap();
    let a = write_archive(dir.path(), true, &results, &[]);
    let e = verify_shard(&spec(true), &seeded(), &garbage, &a).unwrap_err();
    assert!(matches!(e, Invalid::UnreadableResults(_)), "{e}");
    assert!(
        !e.to_string().contains(&dir.path().display().to_string()),
        "{e}"
    );
    let missing = dir.path().join("none");
    assert_eq!(
        verify_shard(&spec(true), &seeded(), &missing, &a).unwrap_err(),
        Invalid::NotReceived("results file")
    );
}

#[test]
fn long_member_paths_pass_and_pax_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let label = format!("very long label {}", "x".repeat(120));
    let rows: Vec<UrlRow> = seeded()
        .into_iter()
        .map(|mut r| {
            r.class = Some(label.clone());
            r
        })
        .collect();
    let folder = crate::model::naming::safe_segment(&label);
    let mut results = honest_results(&rows);
    for r in results.iter_mut().filter(|r| r.member.is_some()) {
        r.member = Some(format!("{TOP}/{folder}/{}.jpg", r.index));
    }
    assert!(results[0].member.as_ref().unwrap().len() > 100);
    let r = write_results(dir.path(), &results);
    let a = write_archive(dir.path(), false, &results, &[]);
    assert_eq!(verify_shard(&spec(false), &rows, &r, &a).unwrap().ok, 6);

    // The same member behind a PAX header.
    let path = dir.path().join("pax.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    b.append_pax_extensions([("path", results[0].member.as_deref().unwrap().as_bytes())])
        .unwrap();
    b.into_inner().unwrap();
    let e = verify_shard(&spec(false), &rows, &r, &path).unwrap_err();
    assert!(matches!(e, Invalid::UnexpectedEntry { .. }), "{e}");
}
