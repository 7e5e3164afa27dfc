//! Bad input is refused before anything is written: exit code 2, a message naming the file and
//! column, and no output (not even the output folder).

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::common;

fn refused(args: &[&str], out_dir: &std::path::Path, expect: &[&str]) {
    let out = common::run_ldawt(args, Duration::from_secs(30));
    let text = common::text(&out);
    assert_eq!(common::code(&out), 2, "{args:?}\n{text}");
    for needle in expect {
        assert!(
            text.contains(needle),
            "{args:?}: missing {needle:?}\n{text}"
        );
    }
    assert!(!out_dir.exists(), "{args:?} left {out_dir:?} behind");
}

#[test]
fn bad_inputs_exit_2_naming_the_problem_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out_dir = d.join("out");
    let out = out_dir.join("x.tar.gz");
    let out_s = out.to_str().unwrap();
    let dl = |input: &std::path::Path| {
        vec![
            "download".to_string(),
            "--input".into(),
            input.to_str().unwrap().into(),
            "--output".into(),
            out_s.into(),
        ]
    };
    let run = |args: Vec<String>, expect: &[&str]| {
        refused(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            &out_dir,
            expect,
        )
    };

    run(
        dl(&d.join("missing.parquet")),
        &["missing.parquet", "not found"],
    );

    let no_col = d.join("nocol.parquet");
    common::write_string_parquet(
        &no_col,
        &[
            ("image", vec![Some("http://h/a.jpg".into())]),
            ("species", vec![Some("s".into())]),
        ],
    );
    run(
        dl(&no_col),
        &[
            "nocol.parquet",
            "photo_url",
            "available columns: image, species",
        ],
    );
    let mut with_url = dl(&no_col);
    with_url.extend(["--url-col".into(), "image".into()]);
    run(
        with_url,
        &["taxon_name", "available columns: image, species"],
    );

    let int_url = d.join("int.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("photo_url", DataType::Int64, true),
        Field::new("taxon_name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        ],
    )
    .unwrap();
    common::write_batches(&int_url, &[batch], None);
    run(dl(&int_url), &["int.parquet", "'photo_url'", "Int64"]);

    let empty = d.join("empty.parquet");
    common::write_string_parquet(&empty, &[("photo_url", vec![]), ("taxon_name", vec![])]);
    run(dl(&empty), &["empty.parquet", "no rows"]);

    let garbage = d.join("garbage.parquet");
    std::fs::write(&garbage, b"this is not parquet at all").unwrap();
    run(dl(&garbage), &["garbage.parquet", "not a readable parquet"]);

    let txt = d.join("list.txt");
    std::fs::write(&txt, b"http://h/a.jpg\n").unwrap();
    run(dl(&txt), &["list.txt", "unsupported input format"]);

    let csv = d.join("in.csv");
    std::fs::write(&csv, b"url,species\nhttp://h/a.jpg,s\n").unwrap();
    run(
        dl(&csv),
        &["in.csv", "photo_url", "available columns: url, species"],
    );
    let header_only = d.join("header.csv");
    std::fs::write(&header_only, b"photo_url,taxon_name\n").unwrap();
    run(dl(&header_only), &["header.csv", "no rows"]);

    let cfg = d.join("cfg.json");
    std::fs::write(
        &cfg,
        br#"{"input": "a.parquet", "output": "b.tar", "threads": 4}"#,
    )
    .unwrap();
    run(
        vec![
            "download".into(),
            "--config".into(),
            cfg.to_str().unwrap().into(),
        ],
        &["cfg.json", "threads"],
    );
}
