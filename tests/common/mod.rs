//! Shared helpers for the integration tests: start the HTTP fixture (from sync or async tests),
//! write parquet inputs, take real iNaturalist rows from `../shared/data/subset_50k.parquet`
//! with their hosts rewritten to the fixture, and run the `ldawt` binary with a timeout.
//! Other helpers add their own `tests/common/<name>.rs` files next to this one.
#![allow(dead_code)]

pub mod python;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use ldawt::engine::RowResult;
use ldawt::fixture::{self, FixtureConfig, FixtureHandle};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// A fixture server with its own small tokio runtime, usable from plain `#[test]`s and from
/// async tests alike. Derefs to the [`FixtureHandle`].
pub struct TestFixture {
    handle: Option<FixtureHandle>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Deref for TestFixture {
    type Target = FixtureHandle;
    fn deref(&self) -> &FixtureHandle {
        self.handle.as_ref().expect("fixture running")
    }
}

impl Drop for TestFixture {
    fn drop(&mut self) {
        drop(self.handle.take());
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Starts a fixture with `cfg` on 127.0.0.1 (a free port) in a dedicated runtime.
pub fn fixture_with(cfg: FixtureConfig) -> TestFixture {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("fixture")
        .build()
        .expect("fixture runtime");
    let handle = runtime
        .block_on(async { tokio::spawn(fixture::start(cfg)).await })
        .expect("fixture task")
        .expect("fixture start");
    TestFixture {
        handle: Some(handle),
        runtime: Some(runtime),
    }
}

/// Starts a fixture with small bodies (2–20 KB).
pub fn fixture() -> TestFixture {
    fixture_with(FixtureConfig::default())
}

/// A fixture that waits `ms` before the first byte of every answer (so a run can be
/// interrupted half-way).
pub fn slow_fixture(ms: u64) -> TestFixture {
    fixture_with(FixtureConfig {
        first_byte_delay: Duration::from_millis(ms),
        ..FixtureConfig::default()
    })
}

/// Writes a parquet file whose columns are all nullable strings.
pub fn write_string_parquet(path: &Path, columns: &[(&str, Vec<Option<String>>)]) {
    write_string_parquet_grouped(path, columns, None);
}

/// Like [`write_string_parquet`], with row groups of at most `row_group_rows` rows.
pub fn write_string_parquet_grouped(
    path: &Path,
    columns: &[(&str, Vec<Option<String>>)],
    row_group_rows: Option<usize>,
) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, _)| Field::new(*name, DataType::Utf8, true))
        .collect();
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|(_, values)| Arc::new(StringArray::from(values.clone())) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch");
    write_batches(path, &[batch], row_group_rows);
}

/// Every record batch of a parquet file.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect()
}

/// Writes record batches to a parquet file, optionally capping the row-group size.
pub fn write_batches(path: &Path, batches: &[RecordBatch], row_group_rows: Option<usize>) {
    let file = File::create(path).expect("create parquet");
    let mut props = parquet::file::properties::WriterProperties::builder();
    if let Some(rows) = row_group_rows {
        props = props.set_max_row_group_row_count(Some(rows));
    }
    let schema = batches[0].schema();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props.build())).expect("writer");
    for b in batches {
        writer.write(b).expect("write batch");
    }
    writer.close().expect("close parquet");
}

/// `../shared/data/<name>` seen from the repository (CI clones the repo with `shared/` beside
/// it); ancestors are searched so git worktrees find it too. `None` when it is absent.
pub fn shared_data(name: &str) -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    repo.ancestors()
        .map(|dir| dir.join("shared").join("data").join(name))
        .find(|p| p.exists())
}

/// The first `n` (photo_url path, taxon_name) pairs of the real iNaturalist subset, or `None`
/// (the caller prints a SKIP) when the shared data is missing.
pub fn inat_paths(n: usize) -> Option<Vec<(String, String)>> {
    let path = shared_data("subset_50k.parquet")?;
    let file = File::open(path).expect("open subset_50k");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
    let mask = parquet::arrow::ProjectionMask::columns(
        builder.parquet_schema(),
        ["photo_url", "taxon_name"],
    );
    let reader = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()
        .expect("reader");
    let mut out = Vec::with_capacity(n);
    for batch in reader {
        let batch = batch.expect("batch");
        let urls = string_column(&batch, "photo_url");
        let classes = string_column(&batch, "taxon_name");
        for i in 0..batch.num_rows() {
            if out.len() == n {
                return Some(out);
            }
            let url = urls.value(i);
            let path = url_path(url);
            out.push((path.to_string(), classes.value(i).to_string()));
        }
    }
    Some(out)
}

fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .expect("string column")
}

/// The path (and query) part of an absolute URL.
pub fn url_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    after_scheme
        .find('/')
        .map(|i| &after_scheme[i..])
        .unwrap_or("/")
}

/// Writes `<dir>/<name>` with columns `photo_url` (hosts rewritten to `base_url`) and
/// `taxon_name` from the first `n` real iNaturalist rows. `None` when the shared data is absent.
pub fn inat_parquet(dir: &Path, name: &str, n: usize, base_url: &str) -> Option<PathBuf> {
    let rows = inat_paths(n)?;
    let path = dir.join(name);
    write_string_parquet(
        &path,
        &[
            (
                "photo_url",
                rows.iter()
                    .map(|(p, _)| Some(format!("{base_url}{p}")))
                    .collect(),
            ),
            (
                "taxon_name",
                rows.iter().map(|(_, c)| Some(c.clone())).collect(),
            ),
        ],
    );
    Some(path)
}

/// Writes a seed parquet of `rows` rows: `photo_url` = `url(i)`, `taxon_name` = `class(i)`.
pub fn write_seed(
    path: &Path,
    rows: u64,
    url: impl Fn(u64) -> String,
    class: impl Fn(u64) -> String,
) {
    write_string_parquet(
        path,
        &[
            ("photo_url", (0..rows).map(|i| Some(url(i))).collect()),
            ("taxon_name", (0..rows).map(|i| Some(class(i))).collect()),
        ],
    );
}

/// Writes `<dir>/<name>.parquet`, a seed of `rows` fixture images: row `i` is
/// `<fixture>/<url_prefix>/<i>.jpg` (the prefix may name a fixture behaviour, such as
/// `/fx/size-200000/b`), its class `<class> <i % classes>`. Returns its path.
pub fn fixture_seed(
    fx: &FixtureHandle,
    dir: &Path,
    name: &str,
    rows: u64,
    url_prefix: &str,
    (class, classes): (&str, u64),
) -> PathBuf {
    let path = dir.join(format!("{name}.parquet"));
    write_seed(
        &path,
        rows,
        |i| fx.url(&format!("{url_prefix}/{i}.jpg")),
        |i| format!("{class} {}", i % classes),
    );
    path
}

/// A test that cannot run its tool or data here. Under CI (`CI` set, as `.ci/run` runs) a skip
/// is a failure: the run must not pass with the test silently left out. Locally it prints the
/// reason; the caller then returns.
pub fn skip(reason: impl std::fmt::Display) {
    if std::env::var_os("CI").is_some() {
        panic!("this test cannot run its tool here, and CI allows no skip: {reason}");
    }
    eprintln!("SKIP: {reason}");
}
/// The swarm key of in-process test nodes (every node of a test shares it).
pub fn test_swarm_key() -> ldawt::net::PreSharedKey {
    ldawt::net::PreSharedKey::new([0x5a; 32])
}

/// Writes `key` as a swarm key file at `path` (mode 0600).
pub fn write_swarm_key(path: &Path, key: ldawt::net::PreSharedKey) {
    std::fs::write(path, key.to_key_file()).expect("write swarm key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// The `ldawt` binary built for these tests.
pub fn ldawt_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ldawt")
}

/// Starts `ldawt <args>` with piped stdout/stderr and no progress bars.
pub fn spawn_ldawt(args: &[&str]) -> Child {
    Command::new(ldawt_bin())
        .args(args)
        .arg("--no-progress")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ldawt")
}

/// Waits for `child` for at most `timeout`, killing it (and failing the test) if it overruns.
pub fn wait_timeout(mut child: Child, timeout: Duration) -> Output {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if start.elapsed() > timeout => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "ldawt did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Sends `signal` (`TERM`, `INT`…) to `child` and waits (30 s at most) for it to exit.
pub fn interrupt(child: Child, signal: &str) -> Output {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {}", child.id());
    wait_timeout(child, Duration::from_secs(30))
}

/// Runs `ldawt <args>` to completion within `timeout`.
pub fn run_ldawt(args: &[&str], timeout: Duration) -> Output {
    wait_timeout(spawn_ldawt(args), timeout)
}

/// `ldawt download --input <input> --output <output> <extra>`'s arguments.
pub fn download_args<'a>(input: &'a Path, output: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "download",
        "--input",
        input.to_str().expect("a UTF-8 input path"),
        "--output",
        output.to_str().expect("a UTF-8 output path"),
    ];
    args.extend_from_slice(extra);
    args
}

/// Runs `ldawt download` of `input` into `output` with `extra` flags, within `timeout`.
pub fn run_download(input: &Path, output: &Path, extra: &[&str], timeout: Duration) -> Output {
    run_ldawt(&download_args(input, output, extra), timeout)
}

/// Starts `ldawt download` of `input` into `output` with `extra` flags (see [`spawn_ldawt`]).
pub fn spawn_download(input: &Path, output: &Path, extra: &[&str]) -> Child {
    spawn_ldawt(&download_args(input, output, extra))
}

/// The process exit code (`-1` when killed by a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// stdout + stderr as text, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every regular member of a tar or tar.gz: path → bytes (each name once, asserted).
pub fn archive_members(path: &Path) -> BTreeMap<String, Vec<u8>> {
    read_tar(path, true)
}

/// Every entry of a tar or tar.gz, directories (`name/`, no bytes) included: path → bytes.
pub fn archive_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    read_tar(path, false)
}

fn read_tar(path: &Path, regular_only: bool) -> BTreeMap<String, Vec<u8>> {
    let mut raw = Vec::new();
    std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        .read_to_end(&mut raw)
        .unwrap();
    let reader: Box<dyn Read> = if raw.starts_with(&[0x1F, 0x8B]) {
        Box::new(flate2::read::GzDecoder::new(raw.as_slice()))
    } else {
        Box::new(raw.as_slice())
    };
    let mut archive = tar::Archive::new(reader);
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if regular_only && entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        let twice = out.insert(name.clone(), bytes).is_some();
        assert!(!(regular_only && twice), "member {name} twice");
    }
    out
}

/// How many rows of a results file were stored (`ok`).
pub fn ok_rows(path: &Path) -> usize {
    results(path)
        .values()
        .filter(|r| r.status == ldawt::engine::RowStatus::Ok)
        .count()
}

/// The results file, by row index.
pub fn results(path: &Path) -> BTreeMap<u64, RowResult> {
    let mut out = BTreeMap::new();
    ldawt::results::read_results(path, |r| {
        assert!(out.insert(r.index, r).is_none(), "a row recorded twice");
    })
    .unwrap();
    out
}
