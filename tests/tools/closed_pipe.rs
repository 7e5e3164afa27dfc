//! Commands whose stdout is closed before they print (`ldawt split … | head -0`, a reader that
//! went away) finish their work and exit as usual instead of panicking (exit 101) on the first
//! line, as `println!` did.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{code, text, wait_timeout};
use crate::util::bin;

/// Runs `ldawt <args>` with a stdout pipe whose read end is already closed.
fn run_with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let child = Command::new(bin())
        .args(args)
        .arg("--no-progress")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ldawt");
    wait_timeout(child, Duration::from_secs(120))
}

fn assert_no_panic(out: &Output, want_code: i32) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{}", text(out));
    assert_eq!(code(out), want_code, "{}", text(out));
}

#[test]
fn split_with_a_closed_stdout_writes_its_groups_and_exits_0() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/inat_sample_200.parquet");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("groups");
    let out = run_with_closed_stdout(&[
        "split",
        "--input",
        sample.to_str().unwrap(),
        "--group-col",
        "taxon_name",
        "--groups",
        "3",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_no_panic(&out, 0);
    for g in 1..=3 {
        let group = out_dir.join(format!("group_{g}.parquet"));
        assert!(
            group.is_file(),
            "{} missing\n{}",
            group.display(),
            text(&out)
        );
    }
}

#[test]
fn compare_with_a_closed_stdout_keeps_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let (left, right) = (dir.path().join("l"), dir.path().join("r"));
    std::fs::create_dir_all(&left).unwrap();
    std::fs::create_dir_all(&right).unwrap();
    for i in 0..50 {
        std::fs::write(left.join(format!("{i}.jpg")), b"x").unwrap();
    }
    let same = run_with_closed_stdout(&["compare", left.to_str().unwrap(), left.to_str().unwrap()]);
    assert_no_panic(&same, 0);
    let differ =
        run_with_closed_stdout(&["compare", left.to_str().unwrap(), right.to_str().unwrap()]);
    let with_reader =
        crate::util::run(&["compare", left.to_str().unwrap(), right.to_str().unwrap()]);
    assert_ne!(code(&with_reader), 0, "{}", text(&with_reader));
    assert_no_panic(&differ, code(&with_reader));
}
