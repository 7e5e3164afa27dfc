//! What the coordinator's unit tests share: a seeded dataset on real files, a coordinator
//! driven step by step over it, an honest worker's files, and readers of the final results.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::Digest;

use super::driver::Driver;
use super::*;
use crate::input::UrlRow;
use crate::model::ids::{DatasetId, NodeId};
use crate::model::node_stats::NodeStats;
use crate::model::shard::ShardSizing;
use crate::protocol::control::{ControlRequest, ControlResponse, Grant};
use crate::protocol::transfer::{FileKind, TransferHeader};
use crate::results::{ResultsWriter, RowResult, RowStatus};
use crate::seed::{Columns, SeedSpec};

pub(super) fn worker_stats() -> NodeStats {
    NodeStats {
        cores: 4,
        mem_total: 8 << 30,
        mem_free: 8 << 30,
        disk_free: 1 << 40,
        works: true,
        ..Default::default()
    }
}

pub(super) struct Setup {
    _tmp: tempfile::TempDir,
    pub(super) out: PathBuf,
    pub(super) data: PathBuf,
    pub(super) seeded: SeededDataset,
}

pub(super) fn setup(rows: u64, shard_rows: u64) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("d.csv");
    let mut text = String::from("photo_url,taxon_name\n");
    for i in 0..rows {
        text.push_str(&format!("http://h/{i}.jpg,c{}\n", i % 3));
    }
    std::fs::write(&csv, text).unwrap();
    let data = tmp.path().join("data");
    let seeded = crate::seed::seed(
        &SeedSpec {
            path: csv,
            columns: Columns {
                url: "photo_url".into(),
                class: Some("taxon_name".into()),
                group: None,
                extra: Vec::new(),
            },
            sizing: ShardSizing::Rows(shard_rows),
        },
        &data,
    )
    .unwrap();
    Setup {
        out: tmp.path().join("out"),
        data,
        seeded,
        _tmp: tmp,
    }
}

pub(super) fn coordinator(s: &Setup, ttl_ms: u64, store: Store) -> Driver {
    std::fs::create_dir_all(&s.out).unwrap();
    Driver::new(Coordinator::new(config(s, ttl_ms), store))
}

/// The tests' seeder settings for `s`: lease TTL `ttl_ms`, one retry, tail copies at once.
pub(super) fn config(s: &Setup, ttl_ms: u64) -> CoordinatorConfig {
    CoordinatorConfig {
        out: s.out.clone(),
        data_dir: s.data.clone(),
        lease: LeaseConfig {
            ttl: Duration::from_millis(ttl_ms),
            max_retries: 1,
            speculative: true,
            copy_after: Duration::ZERO,
        },
        stored: None,
        intake: IntakeLimits::default(),
        retry_failed: false,
        local_peer: None,
        settings: None,
        swarm_per_host: None,
    }
}

/// What an honest worker would produce for `rows` of the shard archived as `archive_name`: a
/// real archive and a results file (every row ok, sizes and hashes true).
pub(super) fn worker_files(dir: &Path, archive_name: &str, rows: &[UrlRow]) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let archive = dir.join(archive_name);
    let top = crate::archive::archive_stem(&archive);
    let mut a = crate::archive::ArchiveWriter::create(
        &archive,
        &top,
        crate::archive::Compression::Gzip { level: 1 },
        0,
        false,
    )
    .unwrap();
    let results = crate::archive::results_path(&archive);
    let mut w = ResultsWriter::create(&results).unwrap();
    for r in rows {
        let body = format!("image {}", r.index).into_bytes();
        let folder = crate::model::naming::safe_segment(r.class.as_deref().unwrap());
        let member = format!("{top}/{folder}/{}.jpg", r.index);
        a.append_bytes(&member, &body, true).unwrap();
        w.push(ok_row(
            r,
            body.len() as u64,
            hex::encode(sha2::Sha256::digest(&body)),
            member,
        ))
        .unwrap();
    }
    a.finish().unwrap();
    w.finish().unwrap();
    (archive, results)
}

/// The result of row `r` stored as `member`, `bytes` long with hash `sha256` (hex), at the
/// first attempt — what an honest worker reports, or what a forger claims.
pub(super) fn ok_row(r: &UrlRow, bytes: u64, sha256: String, member: String) -> RowResult {
    RowResult {
        index: r.index,
        url: r.url.clone(),
        class: r.class.clone(),
        status: RowStatus::Ok,
        http_status: Some(200),
        error_kind: None,
        error_message: None,
        bytes,
        sha256: Some(sha256),
        member: Some(member),
        attempts: 1,
        elapsed_ms: 1,
    }
}

/// The holder of `g` reports every row stored, `bytes` in all.
pub(super) fn complete_request(g: &Grant, bytes: u64) -> ControlRequest {
    ControlRequest::Complete {
        dataset: g.dataset,
        shard: g.shard,
        epoch: g.epoch,
        ok: g.rows,
        failed: 0,
        bytes,
    }
}

pub(super) fn header(g: &Grant, kind: FileKind) -> TransferHeader {
    TransferHeader {
        dataset: g.dataset,
        shard: g.shard,
        epoch: g.epoch,
        kind,
        size: 0,
        sha256: [0; 32],
    }
}

/// [`coordinator`] with lease TTL `ttl_ms` over a fresh store in `s`'s data dir, with `s`'s
/// dataset added at time 0.
pub(super) async fn started(s: &Setup, ttl_ms: u64) -> Driver {
    let mut c = coordinator(s, ttl_ms, Store::open(&s.data.join("leases.redb")).unwrap());
    c.add_dataset(s.seeded.clone(), UnixMillis(0))
        .await
        .unwrap();
    c
}

pub(super) async fn grant(c: &mut Driver, peer: NodeId, ds: DatasetId, now: u64) -> Grant {
    match c
        .handle_request(
            peer,
            ControlRequest::Bid {
                dataset: ds,
                stats: worker_stats(),
            },
            UnixMillis(now),
        )
        .await
    {
        ControlResponse::Granted(g) => g,
        other => panic!("expected a grant, got {other:?}"),
    }
}

pub(super) async fn deliver(
    c: &mut Driver,
    peer: NodeId,
    g: &Grant,
    dir: &Path,
    now: u64,
) -> ControlResponse {
    let rows = match c
        .handle_request(
            peer,
            ControlRequest::Rows {
                dataset: g.dataset,
                shard: g.shard,
                epoch: g.epoch,
            },
            UnixMillis(now),
        )
        .await
    {
        ControlResponse::Rows(r) => r,
        other => return other,
    };
    assert_eq!(rows.len() as u64, g.rows);
    let (a, r) = worker_files(dir, &g.archive_name, &rows);
    for (kind, p) in [(FileKind::Archive, a), (FileKind::Results, r)] {
        if let Err(refusal) = c
            .accept_local_file(peer, &header(g, kind), &p, UnixMillis(now))
            .await
        {
            return ControlResponse::Rejected(refusal);
        }
    }
    c.handle_request(peer, complete_request(g, 13), UnixMillis(now))
        .await
}

pub(super) fn read_results(path: &Path) -> Vec<(u64, String, Option<String>)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let idx = b
            .column_by_name("index")
            .unwrap()
            .as_primitive::<UInt64Type>()
            .clone();
        let st = b
            .column_by_name("status")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let mem = b
            .column_by_name("member")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for i in 0..b.num_rows() {
            out.push((
                idx.value(i),
                st.value(i).to_string(),
                (!mem.is_null(i)).then(|| mem.value(i).to_string()),
            ));
        }
    }
    out
}
