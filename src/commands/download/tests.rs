//! Tests of `ldawt download`'s flags merged over an LDAWT config file.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::*;
use crate::commands::cli::{Cli, Command};

fn options(v: &[&str]) -> DownloadOptions {
    let mut full = vec!["ldawt", "download"];
    full.extend_from_slice(v);
    match Cli::try_parse_from(full).unwrap().command {
        Command::Download(a) => *a.options,
        _ => unreachable!(),
    }
}

#[test]
fn the_config_file_fills_in_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ldawt.json");
    std::fs::write(
        &cfg,
        r#"{"input": "a.parquet", "output": "b.tar.gz", "url": "image", "label": "species",
            "concurrent_downloads": 5, "timeout": 10, "max_retry_attempts": 2,
            "per_host": 3, "resume": true, "rate_limit": 15}"#,
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let r = resolve(options(&["--config", cfg])).unwrap();
    assert_eq!(
        (r.input, r.output),
        (PathBuf::from("a.parquet"), PathBuf::from("b.tar.gz"))
    );
    assert_eq!(
        (r.url_col.as_str(), r.class_col.as_deref()),
        ("image", Some("species"))
    );
    assert_eq!((r.engine.concurrency, r.engine.fetch.per_host), (5, 3));
    assert_eq!(r.engine.fetch.total_timeout, Duration::from_secs(10));
    assert_eq!(r.engine.max_attempts, 2);
    assert!(r.resume);

    let r = resolve(options(&[
        "--config",
        cfg,
        "--output",
        "c.tar",
        "--url-col",
        "u",
        "--no-class",
        "--concurrency",
        "9",
        "--timeout",
        "4",
    ]))
    .unwrap();
    assert_eq!(r.output, PathBuf::from("c.tar"));
    assert_eq!((r.url_col.as_str(), r.class_col), ("u", None));
    assert_eq!(r.engine.concurrency, 9);
    assert_eq!(r.engine.fetch.total_timeout, Duration::from_secs(4));
}

#[test]
fn a_bad_config_file_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.json");
    std::fs::write(&cfg, r#"{"input": "a.parquet", "threads": 4}"#).unwrap();
    let Err(e) = resolve(options(&["--config", cfg.to_str().unwrap()])) else {
        panic!("an unknown key was accepted");
    };
    assert_eq!(exit::code_for(&e), exit::BAD_INPUT);
    let text = e.to_string();
    assert!(
        text.contains("cfg.json") && text.contains("threads"),
        "{text}"
    );
}
