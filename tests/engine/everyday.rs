//! What a new user meets with `ldawt download` (issue 12): logs without colour codes when
//! redirected, no silent overwrite of a previous run, a summary that lists failed rows and
//! says what an interruption left undone, results in input order, and class folders named by
//! the same rule as `reconstruct`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::common;

fn download_args<'a>(input: &'a Path, output: &'a Path) -> Vec<&'a str> {
    vec![
        "download",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `n` rows: every third one a 404, the rest images of class `c<i % 2>`.
fn mixed_input(fx: &common::TestFixture, path: &Path, n: usize) {
    common::write_string_parquet(
        path,
        &[
            (
                "photo_url",
                (0..n)
                    .map(|i| {
                        Some(if i % 3 == 0 {
                            fx.url(&format!("/fx/404/photos/{i}/medium.jpg"))
                        } else {
                            fx.url(&format!("/photos/{i}/medium.jpg"))
                        })
                    })
                    .collect(),
            ),
            (
                "taxon_name",
                (0..n).map(|i| Some(format!("c{}", i % 2))).collect(),
            ),
        ],
    );
}

#[test]
fn logs_redirected_to_a_file_carry_no_colour_codes() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    mixed_input(&fx, &input, 6);
    let output = dir.path().join("s.tar");
    // An LDAWT config key that ldawt ignores: logged at info level.
    let config = dir.path().join("ldawt.json");
    std::fs::write(&config, br#"{"rate_limit": 5}"#).unwrap();
    let mut args = vec!["-v"];
    args.extend(download_args(&input, &output));
    args.extend(["--config", config.to_str().unwrap()]);
    let child = std::process::Command::new(common::ldawt_bin())
        .args(&args)
        .arg("--no-progress")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = common::wait_timeout(child, Duration::from_secs(60));
    assert_eq!(common::code(&out), 1, "{}", common::text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("INFO"),
        "-v logs at info: {}",
        common::text(&out)
    );
    assert!(
        !out.stderr.contains(&0x1b),
        "no ESC byte in redirected logs: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_rerun_without_resume_is_refused_and_force_replaces() {
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    mixed_input(&fx, &input, 6);
    let output = dir.path().join("out").join("s.tar.gz");
    let args = download_args(&input, &output);
    let out = common::run_ldawt(&args, Duration::from_secs(60));
    assert_eq!(common::code(&out), 1, "{}", common::text(&out));
    let before = std::fs::read(&output).unwrap();
    let out = common::run_ldawt(&args, Duration::from_secs(60));
    assert_eq!(common::code(&out), 2, "{}", common::text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(output.to_str().unwrap())
            && err.contains("--resume")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&output).unwrap(), before, "left untouched");
    let mut force = args.clone();
    force.push("--force");
    let out = common::run_ldawt(&force, Duration::from_secs(60));
    assert_eq!(common::code(&out), 1, "{}", common::text(&out));
    assert!(stdout(&out).contains("ok            4"), "{}", stdout(&out));
}

#[test]
fn the_summary_lists_failed_rows_and_results_are_in_input_order() {
    // Slow first rows: they finish after the rows dispatched behind them.
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let n = 90;
    common::write_string_parquet(
        &input,
        &[
            (
                "photo_url",
                (0..n)
                    .map(|i| {
                        Some(match i {
                            0..5 => fx.url(&format!("/fx/slow-first-byte-600/photos/{i}/m.jpg")),
                            _ if i % 3 == 0 => fx.url(&format!("/fx/404/photos/{i}/m.jpg")),
                            _ => fx.url(&format!("/photos/{i}/m.jpg")),
                        })
                    })
                    .collect(),
            ),
            (
                "taxon_name",
                (0..n).map(|_| Some("c".to_string())).collect(),
            ),
        ],
    );
    let output = dir.path().join("s.tar");
    let out = common::run_ldawt(&download_args(&input, &output), Duration::from_secs(60));
    assert_eq!(common::code(&out), 1, "{}", common::text(&out));
    let text = stdout(&out);
    // Rows 6, 9, …, 87 fail: 28 of them, the first 20 listed with index, kind and URL.
    assert!(text.contains("Failed rows (first 20 of 28"), "{text}");
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("row ") && l.contains("http_404"))
        .collect();
    assert_eq!(listed.len(), 20, "{text}");
    assert!(listed[0].contains("row 6 ") && listed[0].contains("/fx/404/photos/6/m.jpg"));
    assert!(listed[19].contains("row 63 "), "{text}");
    assert!(!text.contains("not attempted"), "{text}");

    let mut order = Vec::new();
    ldawt::results::read_results(&dir.path().join("s.results.parquet"), |r| {
        order.push(r.index)
    })
    .unwrap();
    assert_eq!(order, (0..n as u64).collect::<Vec<_>>(), "input order");
}

#[test]
fn an_interrupted_summary_counts_rows_never_attempted_and_resume_counts_carried_rows() {
    let fx = common::slow_fixture(40);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let n = 600;
    common::write_string_parquet(
        &input,
        &[
            (
                "photo_url",
                (0..n)
                    .map(|i| Some(fx.url(&format!("/photos/{i}/medium.jpg"))))
                    .collect(),
            ),
            (
                "taxon_name",
                (0..n).map(|_| Some("c".to_string())).collect(),
            ),
        ],
    );
    let output = dir.path().join("s.tar");
    let mut args = download_args(&input, &output);
    args.extend(["--concurrency", "4"]);
    let child = common::spawn_ldawt(&args);
    std::thread::sleep(Duration::from_millis(1500));
    let out = common::interrupt(child, "INT");
    assert_eq!(common::code(&out), 130, "{}", common::text(&out));
    let text = stdout(&out);
    let ok: u64 = field(&text, "ok");
    let never: u64 = field(&text, "not attempted");
    assert!(ok > 0 && never > 0, "{text}");
    assert_eq!(ok + never, n as u64, "{text}");
    assert!(text.contains("--resume"), "{text}");

    args.push("--resume");
    let out = common::run_ldawt(&args, Duration::from_secs(90));
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));
    let text = stdout(&out);
    assert_eq!(field(&text, "carried over"), ok, "{text}");
    assert_eq!(field(&text, "ok"), n as u64, "{text}");
    assert!(!text.contains("not attempted"), "{text}");
}

/// The number after `label` on a summary line.
fn field(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let rest = l.trim_start().strip_prefix(label)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no '{label}' line in:\n{text}"))
}

/// Second-level folders of an archive (`<stem>/<folder>/…`).
fn folders(archive: &Path) -> BTreeSet<String> {
    common::archive_members(archive)
        .keys()
        .filter_map(|m| m.split('/').nth(1).map(str::to_string))
        .filter(|f| !f.is_empty())
        .collect()
}

#[test]
fn download_and_reconstruct_name_class_folders_the_same() {
    let labels = [Some("Abaeis mexicana"), None, Some("O'Neil")];
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("urls.parquet");
    common::write_string_parquet(
        &input,
        &[
            (
                "photo_url",
                (0..3)
                    .map(|i| Some(fx.url(&format!("/photos/{i}/medium.jpg"))))
                    .collect(),
            ),
            (
                "taxon_name",
                labels.iter().map(|l| l.map(str::to_string)).collect(),
            ),
        ],
    );
    let downloaded = dir.path().join("d.tar");
    let out = common::run_ldawt(&download_args(&input, &downloaded), Duration::from_secs(60));
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));

    let images = dir.path().join("images.parquet");
    let png = {
        let img = image::RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 3]));
        let mut c = std::io::Cursor::new(Vec::new());
        img.write_to(&mut c, image::ImageFormat::Png).unwrap();
        c.into_inner()
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("image", DataType::Binary, false),
        Field::new("label", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(BinaryArray::from_iter_values([&png, &png, &png])) as ArrayRef,
            Arc::new(StringArray::from(labels.to_vec())),
        ],
    )
    .unwrap();
    common::write_batches(&images, &[batch], None);
    let rebuilt = dir.path().join("r.tar");
    let out = common::run_ldawt(
        &[
            "reconstruct",
            "--input",
            images.to_str().unwrap(),
            "--output",
            rebuilt.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));
    let expected: BTreeSet<String> = ["Abaeis_mexicana", "unlabeled", "ONeil"]
        .map(str::to_string)
        .into();
    assert_eq!(folders(&downloaded), expected);
    assert_eq!(folders(&rebuilt), expected);
}

#[test]
fn size_on_a_folder_without_lists_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a list").unwrap();
    let out = common::run_ldawt(
        &["size", "--input", dir.path().to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(common::code(&out), 2, "{}", common::text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(dir.path().to_str().unwrap()) && err.contains("no .parquet"),
        "{err}"
    );
    assert!(!err.contains("no rows"), "{err}");
}

#[test]
fn help_lists_global_flags_after_the_subcommand_options() {
    for sub in ["download", "reconstruct", "compare", "upload"] {
        let out = common::run_ldawt(&[sub, "--help"], Duration::from_secs(10));
        assert_eq!(common::code(&out), 0, "{}", common::text(&out));
        let text = stdout(&out);
        let own = text.find("\nOptions:").expect("options");
        let global = text.find("\nGlobal options:").expect("global heading");
        let verbose = text.find("--verbose").expect("--verbose");
        let last_own = text.find("--help").expect("--help");
        assert!(
            own < last_own && last_own < global && global < verbose,
            "{sub}:\n{text}"
        );
    }
}

#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    // `script` (util-linux) runs ldawt with stderr on a pseudo-terminal.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "script (util-linux) is required under CI"
        );
        eprintln!("SKIP: no `script` command to give ldawt a terminal");
        return;
    }
    let fx = common::fixture();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    mixed_input(&fx, &input, 3);
    let config = dir.path().join("ldawt.json");
    std::fs::write(&config, br#"{"rate_limit": 5}"#).unwrap();
    let on_terminal = |no_color: Option<&str>, name: &str| -> Vec<u8> {
        let output = dir.path().join(name);
        let line = format!(
            "{} -v download --no-progress --input {} --output {} --config {}",
            common::ldawt_bin(),
            input.display(),
            output.display(),
            config.display()
        );
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = common::wait_timeout(cmd.spawn().unwrap(), Duration::from_secs(60));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("INFO"), "{text}");
        out.stdout
    };
    assert!(
        on_terminal(None, "a.tar").contains(&0x1b),
        "colour on a terminal"
    );
    let plain = on_terminal(Some("1"), "b.tar");
    assert!(
        !plain.contains(&0x1b),
        "NO_COLOR: {:?}",
        String::from_utf8_lossy(&plain)
    );
}
