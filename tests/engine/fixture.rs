//! The fixture itself: deterministic bytes, per-path misbehaviour, request counting, and the
//! hidden `ldawt fixture-server` process printing its address first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ldawt::fixture::FixtureConfig;

use crate::common;

/// A one-shot raw HTTP/1.1 GET: (status line, head, body).
fn raw_get(addr: &str, path: &str, extra: &str) -> (String, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let status = head.lines().next().unwrap().to_string();
    (status, head, all[end..].to_vec())
}

#[test]
fn serves_deterministic_bytes_and_misbehaves_per_path() {
    let fx = common::fixture();
    let addr = fx.addr().to_string();
    let (status, head, body) = raw_get(&addr, "/photos/1/medium.jpg", "");
    assert!(status.contains("200"), "{head}");
    assert!(head.contains("Content-Type: image/jpeg"), "{head}");
    assert_eq!(body, fx.expected_body("/photos/1/medium.jpg"));
    assert!((2_000..=20_000).contains(&body.len()));

    let p = "/fx/fail-first-2-429/fx/retry-after-3/photos/2/medium.jpg";
    for _ in 0..2 {
        let (status, head, _) = raw_get(&addr, p, "");
        assert!(status.contains("429"), "{head}");
        assert!(head.contains("Retry-After: 3"), "{head}");
    }
    let (status, _, body) = raw_get(&addr, p, "");
    assert!(status.contains("200"));
    assert_eq!(body, fx.expected_body("/photos/2/medium.jpg"));
    assert_eq!(fx.requests(p), 3);

    let (status, head, body) = raw_get(&addr, "/fx/html-200/a.jpg", "");
    assert!(status.contains("200") && head.contains("text/html"));
    assert!(body.starts_with(b"<html>"));
    let (status, head, _) = raw_get(&addr, "/fx/redirect/fx/404/a.jpg", "");
    assert!(
        status.contains("302") && head.contains("Location: /fx/404/a.jpg"),
        "{head}"
    );
    let (status, head, body) = raw_get(&addr, "/x/b.png", "Range: bytes=0-0\r\n");
    assert!(status.contains("206"), "{head}");
    let total = fx.expected_body("/x/b.png").len();
    assert!(
        head.contains(&format!("Content-Range: bytes 0-0/{total}")),
        "{head}"
    );
    assert_eq!(body, [0x89]);
    let (_, head, body) = raw_get(&addr, "/fx/longer-than-announced/fx/size-1000/c.jpg", "");
    assert!(head.contains("Content-Length: 750"), "{head}");
    assert_eq!(body.len(), 1000);
    assert_eq!(fx.total_requests(), 8);
}

#[test]
fn first_byte_delay_is_applied() {
    let fx = common::fixture_with(FixtureConfig {
        first_byte_delay: Duration::from_millis(150),
        ..FixtureConfig::default()
    });
    let start = std::time::Instant::now();
    let (status, _, _) = raw_get(&fx.addr().to_string(), "/a/b.jpg", "");
    assert!(status.contains("200"));
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[test]
fn fixture_server_process_prints_its_address_first() {
    let mut child = std::process::Command::new(common::ldawt_bin())
        .args([
            "fixture-server",
            "--listen",
            "127.0.0.1:0",
            "--min-size",
            "500",
        ])
        .args(["--max-size", "900"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().to_string();
    let (status, _, body) = raw_get(&addr, "/photos/9/medium.jpg", "");
    let cfg = FixtureConfig {
        min_size: 500,
        max_size: 900,
        ..FixtureConfig::default()
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(status.contains("200"));
    assert_eq!(
        body,
        ldawt::fixture::expected_body(&cfg, "/photos/9/medium.jpg")
    );
}
