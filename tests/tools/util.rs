//! Shared helpers of the toolbox tests: running the `ldawt` binary with a time limit, reading
//! parquet files back, and small assertions on exit codes and messages.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;

pub use crate::common::read_parquet;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ldawt")
}

/// Runs `ldawt ARGS` with extra env vars, killing it after `limit`.
pub fn run_env(args: &[&str], envs: &[(&str, &str)], limit: Duration) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("LDAWT_PASSWORD")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    crate::common::wait_timeout(cmd.spawn().expect("spawn ldawt"), limit)
}

/// Runs `ldawt ARGS` with a 120 s limit.
pub fn run(args: &[&str]) -> Output {
    run_env(args, &[], Duration::from_secs(120))
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "expected success, got {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts exit code 2 with a message mentioning every `needle`; returns stderr.
pub fn bad_input(o: &Output, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit 2\nstdout: {}\nstderr: {err}",
        stdout(o)
    );
    for n in needles {
        assert!(err.contains(n), "stderr should mention {n:?}: {err}");
    }
    err
}

/// Writes `batch` to `path` as parquet.
pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    crate::common::write_batches(path, std::slice::from_ref(batch), None);
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits until something listens on 127.0.0.1:`port` (true) or `limit` passes (false).
pub fn wait_port(port: u16, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// True when `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
