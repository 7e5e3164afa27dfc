//! `ldawt split` on the real 45,606-row iNaturalist subset and on small parquets built here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
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
        eprintln!("SKIP: {SUBSET} is not on this machine");
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
    let text = ok(&run(&[
        "split",
        "--input",
        input.to_str().unwrap(),
        "--group-col",
        "taxon_name",
        "--groups",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]));
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
    ok(&run(&[
        "split",
        "--input",
        input.to_str().unwrap(),
        "--group-col",
        "taxon_name",
        "--groups",
        "7",
        "--out",
        out2.to_str().unwrap(),
    ]));
    assert_eq!(group_classes(&out2, groups), per_group);
    // Existing outputs are not clobbered without --force.
    let again = run(&[
        "split",
        "--input",
        input.to_str().unwrap(),
        "--group-col",
        "taxon_name",
        "--groups",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    bad_input(&again, &["group_1.parquet", "--force"]);
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
    bad_input(
        &run(&[
            "split",
            "--input",
            "/nonexistent/x.parquet",
            "--group-col",
            "label",
            "--groups",
            "2",
            "--out",
            o,
        ]),
        &["/nonexistent/x.parquet", "not found"],
    );
    bad_input(
        &run(&[
            "split",
            "--input",
            inp,
            "--group-col",
            "species",
            "--groups",
            "2",
            "--out",
            o,
        ]),
        &["species", "label"],
    );
    bad_input(
        &run(&[
            "split",
            "--input",
            inp,
            "--group-col",
            "score",
            "--groups",
            "2",
            "--out",
            o,
        ]),
        &["score", "Float64"],
    );
    bad_input(
        &run(&[
            "split",
            "--input",
            inp,
            "--group-col",
            "label",
            "--groups",
            "2",
            "--out",
            o,
            "--balance",
            "bytes",
            "--size-col",
            "url",
        ]),
        &["url", "integer"],
    );
    let not_parquet = dir.path().join("notes.parquet");
    std::fs::write(&not_parquet, "hello").unwrap();
    bad_input(
        &run(&[
            "split",
            "--input",
            not_parquet.to_str().unwrap(),
            "--group-col",
            "label",
            "--groups",
            "2",
            "--out",
            o,
        ]),
        &["notes.parquet"],
    );
    assert!(!out.exists(), "no output directory after refused runs");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let under_file = blocker.join("out");
    bad_input(
        &run(&[
            "split",
            "--input",
            inp,
            "--group-col",
            "label",
            "--groups",
            "2",
            "--out",
            under_file.to_str().unwrap(),
        ]),
        &["out"],
    );
}
