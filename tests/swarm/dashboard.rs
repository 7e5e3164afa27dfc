//! The live dashboard (`GET /` on the status endpoint) rendered by a real browser: a seeder
//! finishes a small dataset from the fixture server and keeps serving; headless Chromium loads
//! the page, runs its script against the live `/status`, and the rendered DOM must show the
//! dataset's real figures. The screenshot is kept as a test artefact
//! (`target/test-artifacts/dashboard.png`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ldawt::protocol::status::NodeStatus;

use super::common;
use super::processes::lone_seeder_command;
use super::util::write_seed;

const ROWS: u64 = 24;

/// Kills the child on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("which").arg(name).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

/// `GET path` on `addr` with a plain socket; the body.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Runs headless Chromium on `url` with `extra` flags; its stdout.
fn browse(browser: &Path, profile: &Path, url: &str, extra: &[&str]) -> String {
    let child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromium");
    let out = common::wait_timeout(child, Duration::from_secs(90));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        common::text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_dashboard_renders_a_finished_dataset_in_a_real_browser() {
    let Some(browser) = chromium() else {
        common::skip("chromium is not installed (scripts/install-test-deps.sh installs it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let fx = common::fixture();
    let input = tmp.path().join("owls.parquet");
    write_seed(
        &input,
        ROWS,
        |i| match i {
            3 => fx.url("/fx/404/o/3.jpg"),
            _ => fx.url(&format!("/o/{i}.jpg")),
        },
        |i| format!("owl {}", i % 3),
    );
    let out = tmp.path().join("out");
    let mut child = lone_seeder_command(&input, &out, 3, &["--keep-serving"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ldawt node");
    let stdout = child.stdout.take().expect("stdout");
    let _seeder = Killed(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).expect("a `status: http://` line");
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            break url
                .trim_start_matches("http://")
                .trim_end_matches("/status")
                .to_string();
        }
    };
    // Wait until the seeder has stored every shard.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        assert!(Instant::now() < deadline, "the dataset did not finish");
        if let Some(s) =
            http_get(&addr, "/status").and_then(|b| serde_json::from_str::<NodeStatus>(&b).ok())
            && s.datasets.first().is_some_and(|d| d.shards_done == 3)
        {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let d = &status.datasets[0];
    assert_eq!((d.rows_ok, d.rows_failed), (ROWS - 1, 1));

    let url = format!("http://{addr}/");
    let profile = tmp.path().join("chromium-profile");
    let dom = browse(
        &browser,
        &profile,
        &url,
        &["--virtual-time-budget=6000", "--dump-dom"],
    );
    assert!(
        dom.contains("data-loaded=\"1\""),
        "the script never rendered /status:\n{dom}"
    );
    let dataset_row = dom
        .split("<tr")
        .find(|r| r.contains(&format!("data-id=\"{}\"", d.dataset_id)))
        .unwrap_or_else(|| panic!("no row for the dataset:\n{dom}"));
    for figure in [
        ">owls<",
        "3 / 3",
        &format!(">{}<", ROWS - 1),
        &format!(">{ROWS}<"),
    ] {
        assert!(
            dataset_row.contains(figure),
            "dataset row lacks {figure:?}: {dataset_row}"
        );
    }
    assert!(
        dom.contains(&format!("ldawt node --join {}", status.listen_addrs[0])),
        "the join line is shown"
    );
    let failures = dom
        .split("id=\"failures\"")
        .nth(1)
        .and_then(|t| t.split("</tbody>").next())
        .unwrap_or_default();
    assert!(failures.contains(">owls<"), "failures: {failures}");
    assert!(dom.contains(&format!("data-peer=\"{}\"", status.peer_id)));

    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let png = artefacts.join("dashboard.png");
    let _ = std::fs::remove_file(&png);
    browse(
        &browser,
        &profile,
        &url,
        &[
            "--virtual-time-budget=6000",
            &format!("--screenshot={}", png.display()),
        ],
    );
    let shot = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(shot.starts_with(b"\x89PNG"), "a PNG screenshot");
    assert!(shot.len() > 10_000, "a real rendering, not a blank page");
}
