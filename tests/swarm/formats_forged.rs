//! A hostile worker against an in-process seeder of a `--format webdataset` dataset, over
//! loopback: forged webdataset shards (an image whose bytes are not the results' sha256, a
//! path-traversal member, a `.cls` that is not the dataset's id, a `.json` that does not parse,
//! an extra member) are refused as invalid; a consistent shard built the same way is accepted
//! (so each refusal is the forgery's), and an honest worker finishes the dataset. Likewise for
//! `--format parquet`: an images parquet whose bytes are not the results' is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ldawt::archive::ArchiveWriter;
use ldawt::engine::{Compression, OutputFormat};
use ldawt::fixture::{self, FixtureConfig};
use ldawt::input::UrlRow;
use ldawt::model::ids::NodeId;
use ldawt::model::shard::ShardSizing;
use ldawt::net::Client;
use ldawt::node::NodeConfig;
use ldawt::protocol::control::{ControlResponse, Grant, RejectReason};
use ldawt::results::ResultsWriter;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::kit::{
    self, Seeder, claimed_row, deliver, finished, forgery_leases, insider, rows_of, spawn_node,
    start_seeder, take_lease, worker_config,
};
use super::util::{fixture_seed, merged_results};

const ROWS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Consistent (made-up bodies, right names, right ids): accepted.
    Consistent,
    /// One image's bytes are not its row's sha256.
    WrongHash,
    /// One row's member is `../KEY.jpg`, and the tar holds it.
    Traversal,
    /// One `.cls` holds another class's id.
    WrongClassId,
    /// One `.json` is not JSON.
    BadJson,
    /// A member no row names.
    ExtraMember,
}

fn seeder_config(tmp: &Path, input: PathBuf, out: &Path, format: OutputFormat) -> NodeConfig {
    let mut cfg = kit::seeder_config(&tmp.join("seeder"), input, out, ShardSizing::Rows(5));
    cfg.engine.format = format;
    cfg.lease = forgery_leases();
    cfg
}

/// An insider's lease of `seeder`'s dataset, with its rows.
async fn lease(evil: &Client, seeder: &Seeder) -> (Grant, Vec<UrlRow>) {
    let g = take_lease(evil, seeder.peer, seeder.dataset).await;
    let rows = rows_of(evil, seeder.peer, &g).await;
    (g, rows)
}

/// A webdataset shard of made-up bodies for `rows`, spoiled by `variant`.
fn build(dir: &Path, g: &Grant, rows: &[UrlRow], table: &Value, v: Variant) -> [PathBuf; 2] {
    std::fs::create_dir_all(dir).unwrap();
    let archive = dir.join(&g.archive_name);
    let results = dir.join("r.results.parquet");
    let mut a =
        ArchiveWriter::create(&archive, "x", Compression::Gzip { level: 1 }, 0, false).unwrap();
    let mut w = ResultsWriter::create(&results).unwrap();
    for (n, r) in rows.iter().enumerate() {
        let spoil = n == 1;
        let key = format!("{:010}", r.index);
        let body = format!("made-up image {}", r.index).repeat(40).into_bytes();
        let sha = hex::encode(Sha256::digest(&body));
        let member = if v == Variant::Traversal && spoil {
            format!("../{key}.jpg")
        } else {
            format!("{key}.jpg")
        };
        // The tar crate refuses to write `..`: the traversal name is patched in below.
        let written = member.replace("../", "zz/");
        let stored = if v == Variant::WrongHash && spoil {
            body.iter().map(|b| b ^ 1).collect()
        } else {
            body.clone()
        };
        a.append_bytes(&written, &stored, false).unwrap();
        let class = r.class.clone().unwrap();
        let json = serde_json::json!({"key": key, "index": r.index, "sha256": sha, "class": class});
        let json = if v == Variant::BadJson && spoil {
            b"{not json".to_vec()
        } else {
            serde_json::to_vec(&json).unwrap()
        };
        a.append_bytes(&format!("{key}.json"), &json, false)
            .unwrap();
        let mut id = table["classes"][&class].as_u64().unwrap();
        if v == Variant::WrongClassId && spoil {
            id += 1;
        }
        a.append_bytes(&format!("{key}.cls"), id.to_string().as_bytes(), false)
            .unwrap();
        w.push(claimed_row(r, body.len(), sha, member)).unwrap();
    }
    if v == Variant::ExtraMember {
        a.append_bytes("payload.sh", b"#!/bin/sh", false).unwrap();
    }
    a.finish().unwrap();
    w.finish().unwrap();
    if v == Variant::Traversal {
        traverse(&archive);
    }
    [archive, results]
}

/// Rewrites the `zz/` member and folder names of the tar.gz at `path` to `../` (same length;
/// header checksums recomputed), as a forger's own tar writer would have written them.
fn traverse(path: &Path) {
    use std::io::{Read, Write};
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    let mut at = 0;
    while at + 512 <= tar.len() {
        let block = &mut tar[at..at + 512];
        if block.iter().all(|b| *b == 0) {
            break;
        }
        let size = usize::from_str_radix(
            std::str::from_utf8(&block[124..135])
                .unwrap()
                .trim_matches(char::from(0))
                .trim(),
            8,
        )
        .unwrap();
        if block.starts_with(b"zz/") {
            block[..3].copy_from_slice(b"../");
            block[148..156].copy_from_slice(b"        ");
            let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
            block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_webdataset_shards_are_refused_and_a_consistent_one_is_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture::start(FixtureConfig::default()).await.unwrap();
    let input = fixture_seed(&fx, tmp.path(), "wasps", ROWS, "/w", ("vespa", 3));
    let out = tmp.path().join("out");
    let seeder = start_seeder(seeder_config(
        tmp.path(),
        input,
        &out,
        OutputFormat::Webdataset,
    ))
    .await;
    let table: Value =
        serde_json::from_slice(&std::fs::read(out.join("wasps.classes.json")).unwrap()).unwrap();
    assert_eq!(
        table["names"],
        serde_json::json!(["vespa 0", "vespa 1", "vespa 2"])
    );
    let mut forgers = Vec::new();
    let mut consistent_by = None;
    for v in [
        Variant::WrongHash,
        Variant::Traversal,
        Variant::WrongClassId,
        Variant::BadJson,
        Variant::ExtraMember,
        Variant::Consistent,
    ] {
        let evil = insider(seeder.join.clone()).await;
        let (g, rows) = lease(&evil, &seeder).await;
        let [archive, results] = build(&tmp.path().join(format!("{v:?}")), &g, &rows, &table, v);
        let answer = deliver(&evil, seeder.peer, &g, [&archive, &results], 1).await;
        let me = NodeId(evil.local_peer_id());
        match (&answer, v) {
            (ControlResponse::Ack, Variant::Consistent) => consistent_by = Some(me),
            (ControlResponse::Rejected(r), Variant::Consistent) => {
                panic!("a consistent webdataset shard was refused: {r}")
            }
            (ControlResponse::Rejected(r), _) => {
                assert_eq!(r.reason, RejectReason::Invalid, "{v:?}: {r}");
                let why = match v {
                    Variant::WrongHash => "does not have its row's sha256",
                    Variant::Traversal => "not KEY.<ext>",
                    Variant::WrongClassId => "not the dataset's id",
                    Variant::BadJson => "not JSON",
                    _ => "'payload.sh' is not a stored row's",
                };
                assert!(r.to_string().contains(why), "{v:?}: {r}");
                forgers.push(me);
            }
            (other, _) => panic!("{v:?} was accepted: {other:?}"),
        }
    }

    let honest = worker_config(&tmp.path().join("honest"), vec![seeder.join]);
    let (_, worker) = spawn_node(honest, CancellationToken::new());
    let outcome = finished(seeder.task, Duration::from_secs(120), "the seeder finishes").await;
    let report = &outcome.reports[0];
    assert_eq!((report.ok, report.shards_done), (ROWS, 6), "{report:?}");
    assert!(
        report
            .shards
            .iter()
            .all(|s| s.done_by.as_ref().is_some_and(|p| !forgers.contains(p))),
        "no forger's shard was stored: {:?}",
        report.shards
    );
    assert!(
        report.shards.iter().any(|s| s.done_by == consistent_by),
        "{:?}",
        report.shards
    );
    let merged = merged_results(&out);
    assert_eq!(merged.len() as u64, ROWS);
    assert!(
        merged
            .iter()
            .all(|r| r.3.as_deref().is_some_and(|m| !m.contains('/'))),
        "a forged member reached the merged results"
    );
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
}

/// An images parquet for `rows` (made-up bodies) and its results; with `spoil`, one row's
/// stored bytes differ from the sha256 its result records.
fn build_parquet(dir: &Path, g: &Grant, rows: &[UrlRow], spoil: bool) -> [PathBuf; 2] {
    use std::sync::Arc;

    use arrow_array::{
        ArrayRef, BinaryArray, RecordBatch, StringArray, StructArray, UInt64Array, new_null_array,
    };
    use arrow_schema::{DataType, Field};
    use ldawt::model::naming::{safe_segment, url_stem};

    std::fs::create_dir_all(dir).unwrap();
    let archive = dir.join(&g.archive_name);
    let results = dir.join("r.results.parquet");
    let top = ldawt::engine::archive_stem(&archive);
    let mut w = ResultsWriter::create(&results).unwrap();
    let (mut bodies, mut paths) = (Vec::new(), Vec::new());
    for (n, r) in rows.iter().enumerate() {
        let body = format!("made-up image {}", r.index).repeat(40).into_bytes();
        let member = format!(
            "{top}/{}/{}_r{}.jpg",
            safe_segment(r.class.as_deref().unwrap()),
            url_stem(r.url.as_deref().unwrap()),
            r.index
        );
        w.push(claimed_row(
            r,
            body.len(),
            hex::encode(Sha256::digest(&body)),
            member.clone(),
        ))
        .unwrap();
        let stored: Vec<u8> = if spoil && n == 2 {
            body.iter().map(|b| b ^ 1).collect()
        } else {
            body
        };
        bodies.push(stored);
        paths.push(member);
    }
    w.finish().unwrap();
    let schema = ldawt::engine::images_schema(&[]);
    let image = StructArray::from(vec![
        (
            Arc::new(Field::new("bytes", DataType::Binary, true)),
            Arc::new(BinaryArray::from_iter_values(bodies.iter())) as ArrayRef,
        ),
        (
            Arc::new(Field::new("path", DataType::Utf8, true)),
            Arc::new(StringArray::from_iter_values(paths.iter())) as ArrayRef,
        ),
    ]);
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(image),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.index))),
    ];
    for f in schema.fields().iter().skip(2) {
        cols.push(match f.name().as_str() {
            "bytes" => Arc::new(UInt64Array::from_iter_values(
                bodies.iter().map(|b| b.len() as u64),
            )),
            _ => new_null_array(f.data_type(), rows.len()),
        });
    }
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let file = std::fs::File::create(&archive).unwrap();
    let mut pw = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    pw.write(&batch).unwrap();
    pw.close().unwrap();
    [archive, results]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_images_parquet_is_refused_and_a_consistent_one_is_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture::start(FixtureConfig::default()).await.unwrap();
    let input = fixture_seed(&fx, tmp.path(), "ants", 10, "/a", ("formica", 2));
    let out = tmp.path().join("out");
    let seeder = start_seeder(seeder_config(
        tmp.path(),
        input,
        &out,
        OutputFormat::Parquet,
    ))
    .await;
    for spoil in [true, false] {
        let evil = insider(seeder.join.clone()).await;
        let (g, rows) = lease(&evil, &seeder).await;
        assert!(g.archive_name.ends_with(".parquet"), "{}", g.archive_name);
        let [archive, results] =
            build_parquet(&tmp.path().join(format!("p{spoil}")), &g, &rows, spoil);
        let answer = deliver(&evil, seeder.peer, &g, [&archive, &results], 1).await;
        match (&answer, spoil) {
            (ControlResponse::Rejected(r), true) => {
                assert_eq!(r.reason, RejectReason::Invalid, "{r}");
                assert!(r.to_string().contains("sha256"), "{r}");
            }
            (ControlResponse::Ack, false) => {
                assert!(
                    out.join(&g.archive_name).exists(),
                    "stored as {}",
                    g.archive_name
                )
            }
            (other, _) => panic!("spoiled={spoil}: {other:?}"),
        }
    }
    let honest = worker_config(&tmp.path().join("honest"), vec![seeder.join]);
    let (_, worker) = spawn_node(honest, CancellationToken::new());
    let outcome = finished(seeder.task, Duration::from_secs(120), "the seeder finishes").await;
    assert_eq!(outcome.reports[0].ok, 10, "{:?}", outcome.reports[0]);
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
}
