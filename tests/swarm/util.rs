//! Checks shared by the swarm tests: the merged results and the archives' members (the seed
//! writers are `common`'s, re-exported here).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub use crate::common::{fixture_seed, write_seed};

/// One row of the seeder's `results.parquet`: index, status, archive, member.
pub type MergedRow = (u64, String, Option<String>, Option<String>);

/// Reads `<out>/results.parquet`.
pub fn merged_results(out: &Path) -> Vec<MergedRow> {
    let file = File::open(out.join("results.parquet")).expect("results.parquet exists");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut rows = Vec::new();
    for batch in reader {
        let b = batch.expect("batch");
        let idx = b
            .column_by_name("index")
            .expect("index")
            .as_primitive::<UInt64Type>();
        let st = b
            .column_by_name("status")
            .expect("status")
            .as_string::<i32>();
        let ar = b
            .column_by_name("archive")
            .expect("archive")
            .as_string::<i32>();
        let mem = b
            .column_by_name("member")
            .expect("member")
            .as_string::<i32>();
        for i in 0..b.num_rows() {
            let opt =
                |a: &arrow_array::StringArray| (!a.is_null(i)).then(|| a.value(i).to_string());
            rows.push((idx.value(i), st.value(i).to_string(), opt(ar), opt(mem)));
        }
    }
    rows
}

/// Every member of every `*.tar.gz` in `out` (archive name, member path).
pub fn archive_members(out: &Path) -> Vec<(String, String)> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir(out).expect("out dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".tar.gz") {
            continue;
        }
        for member in crate::common::archive_members(&path).into_keys() {
            members.push((name.clone(), member));
        }
    }
    members
}

/// Asserts: rows `0..n` each exactly once, `ok` rows as expected, every ok row's member present
/// in its archive, and no member stored twice.
pub fn assert_exactly_once(out: &Path, n: u64, expected_ok: u64) {
    let rows = merged_results(out);
    let mut idx: Vec<u64> = rows.iter().map(|r| r.0).collect();
    idx.sort_unstable();
    assert_eq!(
        idx,
        (0..n).collect::<Vec<_>>(),
        "every input row exactly once"
    );
    let ok: Vec<&MergedRow> = rows.iter().filter(|r| r.1 == "ok").collect();
    assert_eq!(ok.len() as u64, expected_ok, "rows stored");
    let members = archive_members(out);
    let unique: BTreeSet<&(String, String)> = members.iter().collect();
    assert_eq!(
        unique.len(),
        members.len(),
        "an archive member is duplicated"
    );
    assert_eq!(
        members.len() as u64,
        expected_ok,
        "archives hold exactly the ok rows"
    );
    for r in ok {
        let key = (r.2.clone().expect("archive"), r.3.clone().expect("member"));
        assert!(
            unique.contains(&key),
            "row {} points at a missing member {key:?}",
            r.0
        );
    }
}
