//! `ldawt split` on the real 45,606-row iNaturalist subset and on small parquets built here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::util::{bad_input, ok, read_parquet, run, write_parquet};

const SUBSET: &str = "/work/shared/data/subset_50k.parquet";

fn subset() -> Option<&'static Path> {
    let p = Path::new(SUBSET);
    if p.exists() {
        Some(p)
    } else {
        crate::common::skip(format!("{SUBSET} is not on this machine"));
        None
    }
}

/// Class → row count of a parquet file, plus its column names.
fn classes_of(path: &Path, col: &str) -> (BTreeMap<Option<String>, u64>, Vec<String>, u64) {
    let mut counts = BTreeMap::new();
    let mut names = Vec::new();
    let mut rows = 0;
    for b in read_parquet(path) {
        names = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let c = b.column_by_name(col).expect("class column");
        let c = c.as_string::<i32>();
        for i in 0..c.len() {
            let k = (!c.is_null(i)).then(|| c.value(i).to_string());
            *counts.entry(k).or_insert(0) += 1;
        }
        rows += b.num_rows() as u64;
    }
    (counts, names, rows)
}

fn group_classes(dir: &Path, n: usize) -> Vec<BTreeMap<Option<String>, u64>> {
    (1..=n)
        .map(|g| classes_of(&dir.join(format!("group_{g}.parquet")), "taxon_name").0)
        .collect()
}

#[test]
fn split_subset_is_a_balanced_partition_of_classes() {
    let Some(input) = subset() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("groups");
    let groups = 7;
    let text = ok(&split(
        input.to_str().unwrap(),
        "taxon_name",
        "7",
        out.to_str().unwrap(),
        &[],
    ));
    assert!(text.contains("balance: largest/smallest"), "{text}");
    let (all, input_cols, input_rows) = classes_of(input, "taxon_name");
    assert_eq!(input_rows, 45_606);
    let per_group = group_classes(&out, groups);
    // Row counts sum to the input; every column kept; classes disjoint and complete.
    let mut seen = BTreeSet::new();
    let mut loads = Vec::new();
    for g in 1..=groups {
        let (counts, cols, rows) =
            classes_of(&out.join(format!("group_{g}.parquet")), "taxon_name");
        assert_eq!(cols, input_cols, "group {g} must keep every column");
        for (class, n) in &counts {
            assert!(
                seen.insert(class.clone()),
                "class {class:?} is in two groups"
            );
            assert_eq!(all[class], *n, "class {class:?} must be whole in group {g}");
        }
        loads.push(rows);
    }
    assert_eq!(loads.iter().sum::<u64>(), input_rows);
    assert_eq!(seen.len(), all.len());
    // LPT bound: max - min <= the largest class.
    let biggest = *all.values().max().unwrap();
    let (max, min) = (*loads.iter().max().unwrap(), *loads.iter().min().unwrap());
    assert!(
        max - min <= biggest,
        "loads {loads:?}, biggest class {biggest}"
    );
    assert!(text.contains(&format!("{max}/{min}")), "{text}");
    // Deterministic: a second run gives the same assignment.
    let out2 = dir.path().join("again");
    ok(&split(
        input.to_str().unwrap(),
        "taxon_name",
        "7",
        out2.to_str().unwrap(),
        &[],
    ));
    assert_eq!(group_classes(&out2, groups), per_group);
    // Existing outputs are not clobbered without --force.
    let again = split(
        input.to_str().unwrap(),
        "taxon_name",
        "7",
        out.to_str().unwrap(),
        &[],
    );
    bad_input(&again, &["group_1.parquet", "--force"]);
}

/// `ldawt split --input <input> --group-col <col> --groups <groups> --out <out> <extra>`.
fn split(input: &str, col: &str, groups: &str, out: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "split",
        "--input",
        input,
        "--group-col",
        col,
        "--groups",
        groups,
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn small_input(path: &Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("url", DataType::Utf8, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("bytes", DataType::Int64, true),
        Field::new("score", DataType::Float64, true),
    ]));
    let labels = [
        Some("a"),
        None,
        Some("b"),
        Some("a"),
        None,
        Some("c"),
        Some("c"),
        Some("c"),
    ];
    let sizes = [10, 20, 500, 10, 20, 1, 1, 1];
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(
                (0..8)
                    .map(|i| Some(format!("http://h/{i}")))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(labels.to_vec())),
            Arc::new(Int64Array::from(sizes.to_vec())),
            Arc::new(Float64Array::from(vec![0.5; 8])),
        ],
    )
    .unwrap();
    write_parquet(path, &batch);
}

#[test]
fn split_keeps_null_classes_and_balances_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("small.parquet");
    small_input(&input);
    let out = dir.path().join("o");
    let args = |balance: &str, out: &Path| {
        vec![
            "split".to_string(),
            "--input".into(),
            input.display().to_string(),
            "--group-col".into(),
            "label".into(),
            "--groups".into(),
            "2".into(),
            "--out".into(),
            out.display().to_string(),
            "--balance".into(),
            balance.into(),
            "--size-col".into(),
            "bytes".into(),
        ]
    };
    let a = args("rows", &out);
    let text = ok(&run(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(text.contains("2 rows with a null class"), "{text}");
    let (g1, _, r1) = classes_of(&out.join("group_1.parquet"), "label");
    let (g2, _, r2) = classes_of(&out.join("group_2.parquet"), "label");
    assert_eq!(r1 + r2, 8, "no row dropped, null classes included");
    assert!(g1.contains_key(&None) ^ g2.contains_key(&None));
    // LPT on rows: c(3) → 1; null(2) (null sorts first) → 2; a(2) → 2; b(1) → 1: (4, 4).
    assert_eq!((r1, r2), (4, 4));
    // bytes: b=500 alone on one side, everything else on the other.
    let outb = dir.path().join("b");
    let b = args("bytes", &outb);
    ok(&run(&b.iter().map(String::as_str).collect::<Vec<_>>()));
    let (b1, _, rb1) = classes_of(&outb.join("group_1.parquet"), "label");
    assert_eq!(
        b1.keys().cloned().collect::<Vec<_>>(),
        vec![Some("b".to_string())]
    );
    assert_eq!(rb1, 1);
}

#[test]
fn split_rejects_bad_input_with_exit_2_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("small.parquet");
    small_input(&input);
    let inp = input.to_str().unwrap();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    let not_parquet = dir.path().join("notes.parquet");
    std::fs::write(&not_parquet, "hello").unwrap();
    let not_parquet = not_parquet.to_str().unwrap();
    // `split --input I --group-col C --groups 2 --out O EXTRA…`: what stderr must name.
    let cases: [(&str, &str, &[&str], &[&str]); 5] = [
        (
            "/nonexistent/x.parquet",
            "label",
            &[],
            &["/nonexistent/x.parquet", "not found"],
        ),
        (inp, "species", &[], &["species", "label"]),
        (inp, "score", &[], &["score", "Float64"]),
        (
            inp,
            "label",
            &["--balance", "bytes", "--size-col", "url"],
            &["url", "integer"],
        ),
        (not_parquet, "label", &[], &["notes.parquet"]),
    ];
    for (input, col, extra, needles) in cases {
        bad_input(&split(input, col, "2", o, extra), needles);
    }
    assert!(!out.exists(), "no output directory after refused runs");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let under_file = blocker.join("out");
    bad_input(
        &split(inp, "label", "2", under_file.to_str().unwrap(), &[]),
        &["out"],
    );
}

/// Peak resident memory (VmHWM, KiB) of a running process, polled until it exits.
fn run_and_peak_rss_kib(args: &[&str]) -> (std::process::ExitStatus, u64) {
    let mut child = std::process::Command::new(crate::util::bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let start = std::time::Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0);
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak);
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(300),
            "split took too long"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Writes `rows` iNaturalist-like rows (40,000 classes, some null) in 100k-row row groups;
/// returns the bytes of cell text written.
fn write_big_input(path: &Path, rows: usize) -> usize {
    const BATCH: usize = 100_000;
    let schema = Arc::new(Schema::new(vec![
        Field::new("photo_url", DataType::Utf8, false),
        Field::new("taxon_name", DataType::Utf8, true),
        Field::new("photo_id", DataType::Int64, false),
    ]));
    let file = std::fs::File::create(path).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(BATCH))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    let mut text_bytes = 0usize;
    for start in (0..rows).step_by(BATCH) {
        let end = (start + BATCH).min(rows);
        let urls: Vec<String> = (start..end)
            .map(|i| {
                format!(
                    "https://inaturalist-open-data.s3.amazonaws.com/photos/{i}/medium.jpg?v={}",
                    i * 7919
                )
            })
            .collect();
        let classes: Vec<Option<String>> = (start..end)
            .map(|i| (i % 997 != 0).then(|| format!("Species number {}", (i * 31) % 40_000)))
            .collect();
        text_bytes += urls.iter().map(String::len).sum::<usize>()
            + classes.iter().flatten().map(String::len).sum::<usize>();
        let ids: Vec<i64> = (start..end).map(|i| i as i64).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(urls)),
                Arc::new(StringArray::from(classes)),
                Arc::new(Int64Array::from(ids)),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
    }
    w.close().unwrap();
    text_bytes
}

#[test]
fn split_streams_a_large_input_in_bounded_memory() {
    // Same shape (row groups, classes), 4x the rows: a streaming split's peak memory must not
    // follow the row count, and must stay well below the table's own size.
    let dir = tempfile::tempdir().unwrap();
    let peak_for = |rows: usize| {
        let input = dir.path().join(format!("in_{rows}.parquet"));
        let text_bytes = write_big_input(&input, rows);
        let out = dir.path().join(format!("out_{rows}"));
        let (status, peak_kib) = run_and_peak_rss_kib(&[
            "split",
            "--input",
            input.to_str().unwrap(),
            "--group-col",
            "taxon_name",
            "--groups",
            "8",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(status.success());
        let total: usize = (1..=8)
            .map(|g| {
                read_parquet(&out.join(format!("group_{g}.parquet")))
                    .iter()
                    .map(RecordBatch::num_rows)
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(total, rows);
        std::fs::remove_dir_all(&out).unwrap();
        std::fs::remove_file(&input).unwrap();
        eprintln!(
            "split of {rows} rows ({text_bytes} bytes of text): peak RSS {} MiB",
            peak_kib >> 10
        );
        (peak_kib * 1024, text_bytes)
    };
    let (small, _) = peak_for(500_000);
    let (big, big_text) = peak_for(2_000_000);
    assert!(small > 0 && big > 0, "VmHWM was never read");
    // Holding the table would make the peak grow about 4x; buffers bounded by a fixed budget
    // keep it nearly flat (measured: 99 MiB then 128 MiB, and 144 MiB at 4M rows).
    assert!(
        (big as f64) < 2.0 * small as f64,
        "peak RSS grew from {small} to {big} bytes with 4x the rows: not streaming"
    );
    assert!(
        (big as f64) < 0.75 * big_text as f64,
        "peak RSS {big} is not well below the {big_text} bytes of cell text"
    );
}

#[test]
fn split_into_more_groups_than_classes_writes_no_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("small.parquet");
    small_input(&input); // 4 classes, one of them null
    let out = dir.path().join("o");
    let result = split(
        input.to_str().unwrap(),
        "label",
        "10",
        out.to_str().unwrap(),
        &[],
    );
    let text = ok(&result);
    let err = crate::util::stderr(&result);
    assert!(
        err.contains("--groups 10 but only 4 classes") && err.contains("wrote 4 group files"),
        "{err}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "group_1.parquet",
            "group_2.parquet",
            "group_3.parquet",
            "group_4.parquet"
        ],
        "{text}"
    );
    let rows: u64 = names
        .iter()
        .map(|n| classes_of(&out.join(n), "label").2)
        .inspect(|r| assert!(*r > 0, "no empty group"))
        .sum();
    assert_eq!(rows, 8);
    // A CSV input gets a clear message, not a raw parquet "Corrupt footer".
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "url,label\nhttp://h/1.jpg,a\n").unwrap();
    let text = bad_input(
        &split(
            csv.to_str().unwrap(),
            "label",
            "2",
            dir.path().join("c").to_str().unwrap(),
            &[],
        ),
        &["rows.csv", "CSV", "parquet"],
    );
    assert!(!text.contains("Corrupt footer"), "{text}");
}
