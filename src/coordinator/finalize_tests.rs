//! Finalize over many shards on real files: a seeded parquet of a few thousand rows cut into
//! hundreds of shards, each done shard's results file written as a worker delivers it, merged
//! into `results.parquet` one shard at a time.

use std::fs::File;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{FINAL_ROW_GROUP_ROWS, write_final_files};
use crate::engine::{RowResult, RowStatus, archive_stem, results_path};
use crate::model::ids::{ShardId, seeded_node_id};
use crate::model::lease::{ShardEntry, ShardPhase};
use crate::model::shard::ShardSizing;
use crate::results::ResultsWriter;
use crate::seed::{Columns, SeedSpec, rowfile, seed};
use crate::store::ShardRecord;

const ROWS: u64 = 3_000;

#[test]
fn finalize_merges_hundreds_of_shards_into_one_file_with_every_row_once() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("many.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new(
        "photo_url",
        DataType::Utf8,
        true,
    )]));
    let urls: StringArray = (0..ROWS)
        .map(|i| Some(format!("http://127.0.{}.1:9/{i}.jpg", i % 50)))
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(urls)]).unwrap();
    let mut w = ArrowWriter::try_new(File::create(&input).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let data = tmp.path().join("data");
    let spec = SeedSpec {
        path: input,
        columns: Columns {
            url: "photo_url".into(),
            class: None,
            group: None,
            extra: Vec::new(),
        },
        sizing: ShardSizing::Rows(7),
    };
    let seeded = seed(&spec, &data).unwrap();
    let n = seeded.shard_rows.len();
    assert_eq!(n, 429);
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Shard 5 failed for good; shard 9 is done but its results file lacks its last row.
    let (failed_shard, short_shard) = (5usize, 9usize);
    let mut entries = Vec::new();
    let mut records = Vec::new();
    for i in 0..n {
        let mut e = ShardEntry::new(seeded.shard_rows[i]);
        if i == failed_shard {
            e.phase = ShardPhase::Failed;
            e.failures = 4;
            e.last_error = Some("lease expired".into());
        } else {
            e.phase = ShardPhase::Done;
            e.done_by = Some(seeded_node_id(9));
            let archive = out.join(&seeded.archive_names[i]);
            let stem = archive_stem(&archive);
            let rows = rowfile::read_rows(
                &crate::layout::DataDir::new(&data)
                    .dataset(seeded.id)
                    .shard_rows(ShardId(i as u32)),
            )
            .unwrap();
            let mut w = ResultsWriter::create(&results_path(&archive)).unwrap();
            let keep = if i == short_shard {
                rows.len() - 1
            } else {
                rows.len()
            };
            for r in rows.into_iter().take(keep) {
                let ok = r.index % 10 != 3;
                w.push(RowResult {
                    index: r.index,
                    url: r.url,
                    class: None,
                    status: if ok { RowStatus::Ok } else { RowStatus::Failed },
                    http_status: Some(if ok { 200 } else { 404 }),
                    error_kind: (!ok).then(|| "http_404".to_string()),
                    error_message: None,
                    bytes: 10,
                    sha256: None,
                    member: ok.then(|| format!("{stem}/unlabeled/{}.jpg", r.index)),
                    attempts: 1,
                    elapsed_ms: 1,
                })
                .unwrap();
            }
            w.finish().unwrap();
        }
        records.push(ShardRecord::new(e.clone()));
        entries.push(e);
    }
    let report = write_final_files(&out, &data, &seeded, &entries, &records).unwrap();
    assert_eq!(report.shards_total as usize, n);
    assert_eq!(report.shards_done as usize, n - 1);
    assert_eq!(report.failed_shards.len(), 1);
    assert!(
        report.unreadable_files.is_empty(),
        "{:?}",
        report.unreadable_files
    );

    let file = File::open(out.join("results.parquet")).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let groups = builder.metadata().row_groups().to_vec();
    assert!(
        groups
            .iter()
            .all(|g| g.num_rows() as usize <= FINAL_ROW_GROUP_ROWS)
    );
    let mut index = Vec::new();
    let mut status = Vec::new();
    let mut kind = Vec::new();
    for b in builder.build().unwrap() {
        let b = b.unwrap();
        index.extend(
            b.column(0)
                .as_primitive::<UInt64Type>()
                .values()
                .iter()
                .copied(),
        );
        let st = b.column(3).as_string::<i32>();
        let ek = b.column(6).as_string::<i32>();
        for r in 0..b.num_rows() {
            status.push(st.value(r).to_string());
            kind.push(ek.is_valid(r).then(|| ek.value(r).to_string()));
        }
    }
    assert_eq!(
        index,
        (0..ROWS).collect::<Vec<_>>(),
        "every row once, in order"
    );
    let failed_range = (failed_shard as u64 * 7)..(failed_shard as u64 * 7 + 7);
    let missing = short_shard as u64 * 7 + 6;
    for (i, (st, k)) in status.iter().zip(&kind).enumerate() {
        let i = i as u64;
        let (want_st, want_k) = if failed_range.contains(&i) {
            ("failed", Some("shard_failed"))
        } else if i == missing {
            ("failed", Some("missing_result"))
        } else if i % 10 == 3 {
            ("failed", Some("http_404"))
        } else {
            ("ok", None)
        };
        assert_eq!((st.as_str(), k.as_deref()), (want_st, want_k), "row {i}");
    }
    assert_eq!(report.ok + report.failed, ROWS);
    // The page is built from the same single pass over the results files.
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        page.contains(&format!("<b id=\"ok\">{}</b>", report.ok)),
        "report.html disagrees with results.parquet ({} ok)",
        report.ok
    );
}
