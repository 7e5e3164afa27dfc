//! Real DNS: `ldawt download` runs inside a network namespace whose `/etc/resolv.conf` points at
//! a small DNS server the test runs in that namespace (a thread moved there with setns). The
//! zone answers `*.ok.test` and, after a delay, `*.slow.test` with the address of a fixture
//! server in the namespace; `*.dead.test` is NXDOMAIN, `*.fail.test` SERVFAIL and
//! `*.mute.test` never answers. Each row gets the right status and error kind, and the dead
//! host's 200 rows cost one lookup, counted at the server. Needs root (skips with a reason
//! otherwise, fails when `CI` is set).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ldawt::engine::RowStatus;

use crate::common::{self, results};
use crate::netns::{KillOnDrop, LoneNs, TestNet, enter_netns};

/// Where the test DNS server listens inside the namespace.
const DNS_ADDR: &str = "127.0.0.53:53";
/// How long `*.slow.test` answers take.
const SLOW: Duration = Duration::from_millis(400);

/// A UDP DNS server for the test zone, counting the queries per name.
struct ZoneServer {
    counts: Arc<Mutex<HashMap<String, u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ZoneServer {
    /// Starts serving inside `ns`; names that resolve get `answer`.
    fn start(ns: &LoneNs, answer: Ipv4Addr) -> Self {
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (counts, stop) = (Arc::clone(&counts), Arc::clone(&stop));
            let name = ns.name.clone();
            std::thread::spawn(move || {
                let socket = enter_netns(&name).and_then(|()| {
                    let addr: SocketAddr = DNS_ADDR.parse().unwrap();
                    UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))
                });
                let socket = match socket {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                serve(&socket, answer, &counts, &stop);
            })
        };
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the DNS server thread reports")
            .expect("the DNS server starts");
        ZoneServer {
            counts,
            stop,
            thread: Some(thread),
        }
    }

    /// Queries received for `name` (any type).
    fn queries(&self, name: &str) -> u64 {
        self.counts.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

impl Drop for ZoneServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The question of a DNS query: (lower-case name, type, end of the question section).
fn question(buf: &[u8]) -> Option<(String, u16, usize)> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *buf.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(buf.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*buf.get(i)?, *buf.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

/// A response to `query` with `rcode` and, for an A query, one A record.
fn response(query: &[u8], qend: usize, rcode: u8, a: Option<Ipv4Addr>) -> Vec<u8> {
    let mut out = Vec::with_capacity(qend + 16);
    out.extend_from_slice(&query[..2]); // id
    out.push(0x80 | (query[2] & 0x01)); // QR, RD copied
    out.push(0x80 | rcode); // RA, rcode
    out.extend_from_slice(&[0, 1, 0, u8::from(a.is_some()), 0, 0, 0, 0]);
    out.extend_from_slice(&query[12..qend]);
    if let Some(ip) = a {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    out
}

fn serve(
    socket: &UdpSocket,
    answer: Ipv4Addr,
    counts: &Mutex<HashMap<String, u64>>,
    stop: &AtomicBool,
) {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(180) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let query = &buf[..n];
        let Some((name, qtype, qend)) = question(query) else {
            continue;
        };
        *counts.lock().unwrap().entry(name.clone()).or_default() += 1;
        let a = (qtype == 1).then_some(answer);
        let reply = if name.ends_with(".ok.test") || name.ends_with(".slow.test") {
            response(query, qend, 0, a)
        } else if name.ends_with(".dead.test") {
            response(query, qend, 3, None) // NXDOMAIN
        } else if name.ends_with(".fail.test") {
            response(query, qend, 2, None) // SERVFAIL
        } else if name.ends_with(".mute.test") {
            continue;
        } else {
            response(query, qend, 5, None) // REFUSED
        };
        if name.ends_with(".slow.test") {
            let Ok(s) = socket.try_clone() else { continue };
            std::thread::spawn(move || {
                std::thread::sleep(SLOW);
                let _ = s.send_to(&reply, from);
            });
        } else {
            let _ = socket.send_to(&reply, from);
        }
    }
}

/// Why the test cannot run, or `None`.
fn unavailable() -> Option<String> {
    TestNet::unavailable()
}

#[test]
fn dns_outcomes_become_row_kinds_and_a_dead_host_is_asked_once() {
    if let Some(reason) = unavailable() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but the DNS namespace test cannot run: {reason}"
        );
        eprintln!("SKIP dns_outcomes_become_row_kinds…: {reason}");
        return;
    }
    let mut ns = LoneNs::create("fd").expect("namespace");
    let resolver_ip = DNS_ADDR.split(':').next().unwrap();
    ns.set_resolv_conf(&format!(
        "nameserver {resolver_ip}\noptions timeout:1 attempts:1\n"
    ))
    .expect("resolv.conf");
    let fixture_ip = Ipv4Addr::new(127, 0, 0, 1);
    let dns = ZoneServer::start(&ns, fixture_ip);

    // The fixture, inside the namespace.
    let mut fixture = KillOnDrop(
        ns.command(common::ldawt_bin())
            .args(["fixture-server", "--listen", "127.0.0.1:0"])
            .args(["--min-size", "2000", "--max-size", "20000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the fixture in the namespace"),
    );
    let mut line = String::new();
    BufReader::new(fixture.0.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("fixture address");
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("fixture printed {line:?}"));

    // (host, rows, expected status, expected kind)
    let plan: [(&str, usize, RowStatus, Option<&str>); 5] = [
        ("img.ok.test", 3, RowStatus::Ok, None),
        ("img.slow.test", 2, RowStatus::Ok, None),
        (
            "www.dead.test",
            200,
            RowStatus::Failed,
            Some("dns_nxdomain"),
        ),
        ("www.fail.test", 20, RowStatus::Failed, Some("dns_servfail")),
        ("www.mute.test", 3, RowStatus::Failed, Some("dns_timeout")),
    ];
    let mut urls = Vec::new();
    let mut expected = Vec::new();
    for (host, n, status, kind) in plan {
        for i in 0..n {
            urls.push(Some(format!("http://{host}:{port}/photos/{i}/a.jpg")));
            expected.push((host, status, kind));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    common::write_string_parquet(
        &input,
        &[
            ("photo_url", urls.clone()),
            ("taxon_name", vec![Some("c".to_string()); urls.len()]),
        ],
    );
    let output = dir.path().join("out").join("shard.tar");
    let child = ns
        .command(common::ldawt_bin())
        .args(["download", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--max-attempts", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ldawt download in the namespace");
    let started = Instant::now();
    let out = common::wait_timeout(child, Duration::from_secs(90));
    let took = started.elapsed();
    assert_eq!(
        common::code(&out),
        1,
        "some rows fail\n{}",
        common::text(&out)
    );

    let rows = results(&dir.path().join("out").join("shard.results.parquet"));
    assert_eq!(rows.len(), urls.len());
    for (i, (host, status, kind)) in expected.iter().enumerate() {
        let r = &rows[&(i as u64)];
        assert_eq!(r.status, *status, "row {i} ({host}): {r:?}");
        assert_eq!(r.error_kind.as_deref(), *kind, "row {i} ({host}): {r:?}");
    }
    for r in rows.values() {
        match r.error_kind.as_deref() {
            Some("dns_nxdomain") => {
                assert_eq!(r.attempts, 1, "NXDOMAIN is final: {r:?}");
                let message = r.error_message.as_deref().unwrap_or_default();
                assert!(message.contains("www.dead.test: no such host"), "{message}");
            }
            Some("dns_servfail" | "dns_timeout") => {
                assert_eq!(r.attempts, 3, "retryable: {r:?}")
            }
            _ => {}
        }
    }

    // Negative caching and coalescing, counted at the server: one lookup (an A query, perhaps
    // an AAAA one) for the 200 rows of the dead host, one for the 3 rows of the good one, and
    // a handful for 20 SERVFAIL rows × 3 attempts (failures are kept 5 s).
    eprintln!(
        "queries at the server: {:?}; run took {took:?}",
        dns.counts.lock().unwrap()
    );
    let dead = dns.queries("www.dead.test");
    assert!((1..=2).contains(&dead), "www.dead.test asked {dead} times");
    let ok = dns.queries("img.ok.test");
    assert!((1..=2).contains(&ok), "img.ok.test asked {ok} times");
    let fail = dns.queries("www.fail.test");
    assert!(
        (1..=8).contains(&fail),
        "www.fail.test asked {fail} times for 60 attempts"
    );
    assert!(dns.queries("www.mute.test") >= 1, "the mute host was asked");
    assert!(
        took < Duration::from_secs(60),
        "DNS failures must not stall the run: {took:?}"
    );
}
