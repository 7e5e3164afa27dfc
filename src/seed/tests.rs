//! Seeding tests on real parquet and CSV files in a temp dir.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

use super::*;
use crate::input::UrlRow;

fn write_parquet(path: &Path, rows: &[(Option<&str>, Option<&str>)]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("photo_url", DataType::Utf8, true),
        Field::new("taxon_name", DataType::Utf8, true),
    ]));
    let urls: StringArray = rows.iter().map(|r| r.0).collect();
    let classes: StringArray = rows.iter().map(|r| r.1).collect();
    let batch =
        RecordBatch::try_new(schema.clone(), vec![Arc::new(urls), Arc::new(classes)]).unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn spec(path: &Path, sizing: ShardSizing, group: bool) -> SeedSpec {
    SeedSpec {
        path: path.to_path_buf(),
        columns: Columns {
            url: "photo_url".into(),
            class: Some("taxon_name".into()),
            group: group.then(|| "taxon_name".to_string()),
            extra: Vec::new(),
        },
        sizing,
    }
}

fn all_rows(data: &Path, seeded: &SeededDataset) -> Vec<Vec<UrlRow>> {
    let dir = DataDir::new(data).dataset(seeded.id);
    (0..seeded.shard_rows.len())
        .map(|i| rowfile::read_rows(&dir.shard_rows(ShardId(i as u32))).unwrap())
        .collect()
}

#[test]
fn contiguous_seeding_covers_every_row_once_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("birds.parquet");
    let urls: Vec<String> = (0..25).map(|i| format!("http://h/{i}.jpg")).collect();
    let mut rows: Vec<(Option<&str>, Option<&str>)> =
        urls.iter().map(|u| (Some(u.as_str()), Some("a"))).collect();
    rows[3] = (None, None);
    write_parquet(&input, &rows);
    let data = tmp.path().join("data");
    let s = seed(&spec(&input, ShardSizing::Rows(10), false), &data).unwrap();
    assert_eq!(s.shard_rows, vec![10, 10, 5]);
    assert_eq!(s.rows_total, 25);
    assert_eq!(s.archive_names[2], "birds-00002.tar.gz");
    let shards = all_rows(&data, &s);
    let indices: Vec<u64> = shards.iter().flatten().map(|r| r.index).collect();
    assert_eq!(indices, (0..25).collect::<Vec<_>>());
    assert_eq!(shards[0][3].url, None, "null URLs are kept as rows");
    assert_eq!(shards[2][4].url.as_deref(), Some("http://h/24.jpg"));
    // Reseeding finds the manifest: same id, nothing rewritten.
    let shard0 = DataDir::new(&data).dataset(s.id).shard_rows(ShardId(0));
    std::fs::remove_file(&shard0).unwrap();
    let again = seed(&spec(&input, ShardSizing::Rows(10), false), &data).unwrap();
    assert_eq!(again, s);
    assert!(!shard0.exists());
    // Other parameters, or other content, give another dataset.
    let other = seed(&spec(&input, ShardSizing::Count(2), false), &data).unwrap();
    assert_ne!(other.id, s.id);
    assert_eq!(other.shard_rows, vec![13, 12]);
}

#[test]
fn group_col_keeps_each_class_in_one_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("g.parquet");
    let mut rows = Vec::new();
    for (class, n) in [("a", 5), ("b", 3), ("c", 2), ("d", 2)] {
        for _ in 0..n {
            rows.push((Some("http://h/x.jpg"), Some(class)));
        }
    }
    rows.push((Some("http://h/null.jpg"), None));
    write_parquet(&input, &rows);
    let data = tmp.path().join("data");
    let s = seed(&spec(&input, ShardSizing::Count(2), true), &data).unwrap();
    assert_eq!(s.shard_rows.len(), 2);
    assert_eq!(s.rows_total, 13);
    let shards = all_rows(&data, &s);
    let mut seen = Vec::new();
    for class in [Some("a"), Some("b"), Some("c"), Some("d"), None] {
        let holders: Vec<usize> = shards
            .iter()
            .enumerate()
            .filter(|(_, rs)| rs.iter().any(|r| r.class.as_deref() == class))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(holders.len(), 1, "class {class:?} split across shards");
    }
    for rs in &shards {
        seen.extend(rs.iter().map(|r| r.index));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..13).collect::<Vec<_>>());
    // Grouping by a column that is not the class column gives the same cut.
    let mut other = spec(&input, ShardSizing::Count(2), true);
    other.columns.class = None;
    let s2 = seed(&other, &tmp.path().join("data2")).unwrap();
    assert_eq!(s2.shard_rows, s.shard_rows);
    let shards2 = all_rows(&tmp.path().join("data2"), &s2);
    let idx = |v: &Vec<Vec<UrlRow>>| -> Vec<Vec<u64>> {
        v.iter()
            .map(|rs| rs.iter().map(|r| r.index).collect())
            .collect()
    };
    assert_eq!(idx(&shards2), idx(&shards));
    assert!(shards2.iter().flatten().all(|r| r.class.is_none()));
}

#[test]
fn a_directory_is_one_shard_per_file_and_csv_works() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("split");
    std::fs::create_dir(&dir).unwrap();
    write_parquet(&dir.join("b.parquet"), &[(Some("u3"), Some("x"))]);
    write_parquet(
        &dir.join("a.parquet"),
        &[(Some("u1"), Some("x")), (Some("u2"), None)],
    );
    let data = tmp.path().join("data");
    let s = seed(&spec(&dir, ShardSizing::Rows(1), false), &data).unwrap();
    assert_eq!(s.shard_rows, vec![2, 1]);
    let shards = all_rows(&data, &s);
    assert_eq!(shards[1][0].url.as_deref(), Some("u3"));
    assert_eq!(shards[1][0].index, 2);

    let csv = tmp.path().join("l.csv");
    std::fs::write(&csv, "photo_url,taxon_name\nu1,x\n,y\nu3,\n").unwrap();
    let s = seed(&spec(&csv, ShardSizing::Rows(2), false), &data).unwrap();
    assert_eq!(s.shard_rows, vec![2, 1]);
    let shards = all_rows(&data, &s);
    assert_eq!(shards[0][1].url, None);
    assert_eq!(shards[1][0].class, None);
}

#[test]
fn bad_inputs_name_the_file_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("x.parquet");
    write_parquet(&input, &[(Some("u"), Some("c"))]);
    let mut sp = spec(&input, ShardSizing::Rows(5), false);
    sp.columns.url = "nope".into();
    let err = seed(&sp, tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("nope") && err.contains("x.parquet") && err.contains("photo_url"),
        "{err}"
    );
    let missing = seed(
        &spec(
            &tmp.path().join("gone.parquet"),
            ShardSizing::Rows(5),
            false,
        ),
        tmp.path(),
    );
    assert!(matches!(
        missing,
        Err(SeedError::Input(InputError::NotFound { .. }))
    ));
    let empty = tmp.path().join("e.parquet");
    write_parquet(&empty, &[]);
    assert!(matches!(
        seed(&spec(&empty, ShardSizing::Rows(5), false), tmp.path()),
        Err(SeedError::Input(InputError::Empty { .. }))
    ));
    assert!(
        !tmp.path()
            .join("datasets")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "no partial output"
    );
}

/// Seeding streams: however many shards, it holds one shard file open at a time in contiguous
/// mode (at most one pass's worth in `--group-col` mode), and every row lands in its shard.
#[test]
fn seeding_many_shards_keeps_one_shard_file_open_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("many.parquet");
    let urls: Vec<String> = (0..3_000)
        .map(|i| format!("http://127.0.0.1:9/h{}/{i}.jpg", i % 97))
        .collect();
    let classes: Vec<String> = (0..3_000).map(|i| format!("c{}", i % 300)).collect();
    let rows: Vec<(Option<&str>, Option<&str>)> = urls
        .iter()
        .zip(&classes)
        .map(|(u, c)| (Some(u.as_str()), Some(c.as_str())))
        .collect();
    write_parquet(&input, &rows);
    let data = tmp.path().join("data");
    rowfile::open_writers_peak();
    let s = seed(&spec(&input, ShardSizing::Rows(7), false), &data).unwrap();
    assert_eq!(
        rowfile::open_writers_peak(),
        1,
        "contiguous seeding held several shard files open"
    );
    assert_eq!(s.shard_rows.len(), 3_000usize.div_ceil(7));
    assert!(
        s.shard_rows[..s.shard_rows.len() - 1]
            .iter()
            .all(|n| *n == 7)
    );
    assert_eq!(*s.shard_rows.last().unwrap(), 3_000 % 7);
    let shards = all_rows(&data, &s);
    let indices: Vec<u64> = shards.iter().flatten().map(|r| r.index).collect();
    assert_eq!(indices, (0..3_000).collect::<Vec<_>>());
    assert_eq!(
        shards[427][4].url.as_deref(),
        Some(urls[427 * 7 + 4].as_str())
    );
    let dir = DataDir::new(&data).dataset(s.id);
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0, "temp files left in {}", dir.path().display());

    // Grouped: 300 classes in 300 shards, written a bounded number of files per pass.
    let g = seed(
        &spec(&input, ShardSizing::Count(300), true),
        &tmp.path().join("g"),
    )
    .unwrap();
    assert_eq!(g.rows_total, 3_000);
    assert!(rowfile::open_writers_peak() <= FILES_PER_PASS);
}
