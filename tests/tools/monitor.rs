//! `ldawt monitor` through the binary: a real node status endpoint (the library's
//! `status_server`) serving a known document, a dead endpoint, alerts, the JSON-lines log,
//! SIGTERM/SIGINT, and refused arguments.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ldawt::protocol::status::{DatasetProgress, NodeStatus, PeerStatus, STATUS_VERSION};
use serde_json::Value;

use crate::util::{bad_input, bin, free_port, ok, run};

/// The runtime and the document's sender: both must stay alive while the endpoint serves.
type Endpoint = (
    tokio::runtime::Runtime,
    tokio::sync::watch::Sender<NodeStatus>,
);

/// Serves a known status document on 127.0.0.1 from this test process; returns what keeps it
/// alive and the address.
fn status_endpoint() -> (Endpoint, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let status = NodeStatus {
        version: STATUS_VERSION,
        peer_id: "12D3KooWTestNode".into(),
        local: PeerStatus {
            leases_held: 3,
            images_per_s: 12.5,
            mb_per_s: 1.25,
            shards_done: 7,
            ..Default::default()
        },
        peers: vec![
            PeerStatus {
                peer_id: "a".into(),
                connected: true,
                ..Default::default()
            },
            PeerStatus {
                peer_id: "b".into(),
                connected: false,
                ..Default::default()
            },
        ],
        datasets: vec![DatasetProgress {
            shards_done: 4,
            shards_total: 10,
            ..Default::default()
        }],
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::watch::channel(status);
    let addr = rt
        .block_on(ldawt::status_server::serve(
            "127.0.0.1:0".parse().unwrap(),
            rx,
            String::new,
            tokio_util::sync::CancellationToken::new(),
        ))
        .unwrap();
    ((rt, tx), addr.to_string())
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn monitor_reads_a_node_and_logs_json_lines_with_alerts() {
    let (_endpoint, addr) = status_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("monitor.log");
    let out = ok(&run(&[
        "monitor",
        "--node",
        &addr,
        "--count",
        "3",
        "--interval",
        "0.2",
        "--json",
        "--log-file",
        log.to_str().unwrap(),
        "--disk-path",
        dir.path().to_str().unwrap(),
        "--alert-fds",
        "0",
    ]));
    let lines = json_lines(&out);
    let samples: Vec<&Value> = lines.iter().filter(|v| v["type"] == "sample").collect();
    let alerts: Vec<&Value> = lines.iter().filter(|v| v["type"] == "alert").collect();
    assert_eq!(samples.len(), 3, "{out}");
    for s in &samples {
        let node = &s["node"];
        assert_eq!(node["reachable"], true, "{s}");
        assert_eq!(
            (
                node["peers"].as_u64(),
                node["peers_connected"].as_u64(),
                node["leases_held"].as_u64()
            ),
            (Some(2), Some(1), Some(3))
        );
        assert_eq!(
            (
                node["dataset_shards_done"].as_u64(),
                node["dataset_shards_total"].as_u64()
            ),
            (Some(4), Some(10))
        );
        assert_eq!(node["images_per_s"], 12.5);
        // The pid is found from the port: this test process serves the endpoint.
        assert_eq!(s["pid"].as_u64(), Some(u64::from(std::process::id())));
        assert!(s["fds"].as_u64().unwrap() > 0);
        assert!(s["mem_total_bytes"].as_u64().unwrap() > 0);
        assert!(s["disk_total_bytes"].as_u64().unwrap() > 0);
        let pct = s["disk_used_percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&pct));
        assert!(
            s["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a.as_str().unwrap().starts_with("fds "))
        );
    }
    // The alert is announced once, not on every sample.
    assert_eq!(alerts.len(), 1, "{out}");
    assert!(alerts[0]["message"].as_str().unwrap().contains("> 0"));
    // The log holds the same JSON lines; a second run appends.
    assert_eq!(
        json_lines(&std::fs::read_to_string(&log).unwrap()).len(),
        lines.len()
    );
    let text = ok(&run(&[
        "monitor",
        "--node",
        &addr,
        "--count",
        "1",
        "--interval",
        "0.2",
        "--log-file",
        log.to_str().unwrap(),
    ]));
    assert!(
        text.contains(&format!(
            "node {addr}: 2 peers (1 connected), 3 leases, 12.5 img/s"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    assert_eq!(
        json_lines(&std::fs::read_to_string(&log).unwrap()).len(),
        lines.len() + 1
    );
}

#[test]
fn monitor_keeps_going_when_no_node_answers() {
    let addr = format!("127.0.0.1:{}", free_port());
    let text = ok(&run(&[
        "monitor",
        "--node",
        &addr,
        "--count",
        "2",
        "--interval",
        "0.1",
    ]));
    let samples: Vec<&str> = text.lines().filter(|l| l.contains("cpu ")).collect();
    assert_eq!(samples.len(), 2, "{text}");
    assert!(
        samples
            .iter()
            .all(|l| l.contains(&format!("node {addr}: not answering"))),
        "{text}"
    );
    assert_eq!(
        text.matches(&format!("ALERT node {addr} not answering"))
            .count(),
        1,
        "{text}"
    );
}

fn stops_on(signal: &str) {
    let mut child = Command::new(bin())
        .args(["monitor", "--interval", "0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("cpu "), "{first}");
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "monitor ignored SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(code.success(), "{code:?} {err}");
    assert!(err.contains(&format!("(SIG{signal})")), "{err}");
}

#[test]
fn monitor_stops_cleanly_on_sigterm_and_sigint() {
    stops_on("TERM");
    stops_on("INT");
}

#[test]
fn monitor_refuses_bad_arguments_with_exit_2() {
    bad_input(
        &run(&["monitor", "--count", "1", "--disk-path", "/nonexistent/out"]),
        &["/nonexistent/out"],
    );
    bad_input(
        &run(&[
            "monitor",
            "--count",
            "1",
            "--log-file",
            "/nonexistent/dir/m.log",
        ]),
        &["/nonexistent/dir/m.log"],
    );
    bad_input(
        &run(&["monitor", "--count", "1", "--interval", "0"]),
        &["--interval"],
    );
    bad_input(
        &run(&["monitor", "--count", "1", "--node", "localhost"]),
        &["localhost", "host:port"],
    );
}
