//! `ldawt-dev transfer-bench` (the development binary) used by `scripts/bench-swarm.sh`.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::WAIT;

#[tokio::test]
async fn transfer_bench_sends_a_verified_file_and_reports_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_ldawt-dev"))
        .args([
            "transfer-bench",
            "serve",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--count",
            "1",
        ])
        .args(["--keep", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("serve prints its address");
    assert!(addr.contains("/p2p/12D3KooW"), "{addr}");
    let send = tokio::process::Command::new(env!("CARGO_BIN_EXE_ldawt-dev"))
        .args(["transfer-bench", "send", "--size-mb", "3", "--to", &addr])
        .output()
        .await
        .unwrap();
    assert!(
        send.status.success(),
        "{}",
        String::from_utf8_lossy(&send.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&send.stdout).unwrap();
    assert_eq!(report["bytes"], 3 * 1024 * 1024);
    assert!(report["mb_per_s"].as_f64().unwrap() > 0.0);
    let status = tokio::time::timeout(WAIT, serve.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "serve exits after --count files");
    let kept: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(kept.len(), 1);
    let kept = kept[0].as_ref().unwrap().path();
    assert_eq!(std::fs::metadata(&kept).unwrap().len(), 3 * 1024 * 1024);

    // An address without a peer id is refused as bad input.
    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_ldawt-dev"))
        .args(["transfer-bench", "send", "--to", "/ip4/127.0.0.1/tcp/9"])
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no /p2p/<peer id>"));
}
