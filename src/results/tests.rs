//! Unit tests of the per-row results file: round trips, order, redaction, extra cells.

use super::*;

/// A result for row `index` with `status` and nothing else (no URL, class, bytes or attempt).
fn bare_row(index: u64, status: RowStatus) -> RowResult {
    RowResult {
        index,
        url: None,
        class: None,
        status,
        http_status: None,
        error_kind: None,
        error_message: None,
        bytes: 0,
        sha256: None,
        member: None,
        attempts: 0,
        elapsed_ms: 0,
    }
}

#[test]
fn results_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.results.parquet");
    let mut w = ResultsWriter::create(&path).unwrap();
    let rows: Vec<RowResult> = (0..20_000u64)
        .map(|i| RowResult {
            index: i,
            url: Some(format!("http://h/{i}.jpg")),
            class: (i % 3 != 0).then(|| "c".to_string()),
            status: if i % 2 == 0 {
                RowStatus::Ok
            } else {
                RowStatus::Failed
            },
            http_status: (i % 5 != 0).then_some(200),
            error_kind: (i % 2 == 1).then(|| "http_404".to_string()),
            error_message: None,
            bytes: i * 10,
            sha256: Some("ab".into()),
            member: Some(format!("s/c/{i}.jpg")),
            attempts: 1,
            elapsed_ms: 3,
        })
        .collect();
    for r in rows.clone() {
        w.push(r).unwrap();
    }
    w.finish().unwrap();
    assert!(!part_path(&path).exists());
    let mut back = Vec::new();
    read_results(&path, |r| back.push(r)).unwrap();
    assert_eq!(back, rows);
}

#[test]
fn extra_cells_and_dims_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.results.parquet");
    let layout = ResultsLayout {
        dims: true,
        extra: vec!["license".into()],
    };
    let mut w = ResultsWriter::create_with(&path, layout).unwrap();
    let row = |i: u64| bare_row(i, RowStatus::Ok);
    let extras = [
        RowExtras {
            cells: vec![Some("cc0".into())],
            dims: Some([32, 24, 640, 480]),
        },
        RowExtras::default(),
    ];
    for (i, e) in extras.iter().enumerate() {
        w.push_with(row(i as u64), e.clone()).unwrap();
    }
    w.finish().unwrap();
    let mut back = Vec::new();
    read_results_with(&path, &["license".into(), "absent".into()], |_, e| {
        back.push(e)
    })
    .unwrap();
    assert_eq!(back[0].cells, vec![Some("cc0".into()), None]);
    assert_eq!(back[0].dims, Some([32, 24, 640, 480]));
    assert_eq!(
        back[1],
        RowExtras {
            cells: vec![None, None],
            dims: None
        }
    );
}

#[test]
fn redacted_results_carry_only_kind_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.results.parquet");
    let mut w = ResultsWriter::create(&path).unwrap();
    w.redact_error_messages(true);
    w.push(RowResult {
        index: 0,
        url: Some("http://10.0.0.9:8080/a.jpg".into()),
        class: None,
        status: RowStatus::Failed,
        http_status: Some(502),
        error_kind: Some("http_502".into()),
        error_message: Some("connection to 10.0.0.9:8080 refused by internal-db".into()),
        bytes: 0,
        sha256: None,
        member: None,
        attempts: 1,
        elapsed_ms: 1,
    })
    .unwrap();
    w.finish().unwrap();
    let mut got = Vec::new();
    read_results(&path, |r| got.push(r)).unwrap();
    assert_eq!(got[0].error_message.as_deref(), Some("http_502 (HTTP 502)"));
}

#[test]
fn rows_are_written_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.results.parquet");
    let mut w = ResultsWriter::create(&path).unwrap();
    let row = |index: u64| bare_row(index, RowStatus::Skipped);
    // Completion order: each block of 64 finishes backwards; row 7 finishes last.
    let n = 3 * REORDER_WINDOW as u64 / 2;
    for block in (0..n).step_by(64) {
        for i in (block..(block + 64).min(n)).rev().filter(|i| *i != 7) {
            w.push(row(i)).unwrap();
        }
        if block == 64 * 8 {
            w.push(row(7)).unwrap();
        }
    }
    w.finish().unwrap();
    let mut back = Vec::new();
    read_results(&path, |r| back.push(r.index)).unwrap();
    assert_eq!(back, (0..n).collect::<Vec<_>>());
}
