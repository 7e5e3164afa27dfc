//! Many hosts with bounded connections: `ldawt download` over 2,000 distinct loopback hosts
//! (`127.a.b.c`, all served by one fixture listening on 0.0.0.0), each with a second row 2,000
//! rows later, so every host has a queued row it would like to keep its connection for. The
//! established connections, counted at the server from `/proc/net/tcp` while the run goes,
//! stay under the engine's total cap (concurrency + the idle cap + the requests closing)
//! instead of one idle connection per host; no row fails to connect. And a host's rows far
//! apart in the list still share one connection: a fetch task goes on with its host's next
//! queued row.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ldawt::fetch::hosts::IDLE_CONNECTIONS_CAP;
use ldawt::fixture::FixtureConfig;
use ldawt::fixture::bench::loopback_host;

use crate::common;
use crate::proxy::FreezableProxy;

/// Established TCP connections whose local port is `port` (the server's side), IPv4.
fn established_at(port: u16) -> usize {
    let Ok(text) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let port_hex = format!(":{port:04X}");
    text.lines()
        .skip(1)
        .filter(|line| {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1).unwrap_or("");
            let state = cols.nth(1).unwrap_or("");
            local.ends_with(&port_hex) && state == "01"
        })
        .count()
}

#[test]
fn two_thousand_hosts_hold_a_bounded_number_of_connections_and_none_fails_connect() {
    let fx = common::fixture_with(FixtureConfig {
        listen: SocketAddr::from(([0, 0, 0, 0], 0)),
        ..FixtureConfig::default()
    });
    let port = fx.addr().port();
    let (hosts, rows, concurrency) = (2_000u32, 4_000u32, 128usize);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hosts.parquet");
    let urls: Vec<Option<String>> = (0..rows)
        .map(|i| {
            let host = loopback_host(i % hosts);
            Some(format!("http://{host}:{port}/photos/{i}/medium.jpg"))
        })
        .collect();
    let distinct: HashSet<&str> = urls
        .iter()
        .flatten()
        .map(|u| u.split('/').nth(2).unwrap())
        .collect();
    assert_eq!(distinct.len(), hosts as usize);
    common::write_string_parquet(
        &input,
        &[
            ("photo_url", urls),
            (
                "taxon_name",
                (0..rows).map(|i| Some(format!("c{}", i % 7))).collect(),
            ),
        ],
    );
    let output = dir.path().join("out.tar");

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let poller = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        std::thread::spawn(move || {
            // Bounded: the run itself is bounded by `wait_timeout` below.
            for _ in 0..20_000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                peak.fetch_max(established_at(port), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let child = common::spawn_download(
        &input,
        &output,
        &["--concurrency", &concurrency.to_string()],
    );
    let out = common::wait_timeout(child, Duration::from_secs(180));
    done.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));

    let results = common::results(&dir.path().join("out.results.parquet"));
    assert_eq!(results.len(), rows as usize);
    let failed: Vec<_> = results
        .values()
        .filter(|r| r.error_kind.is_some())
        .map(|r| (r.index, r.error_kind.clone(), r.error_message.clone()))
        .take(5)
        .collect();
    assert!(failed.is_empty(), "rows failed: {failed:?}");

    // In flight (≤ concurrency) + kept for later rows (≤ concurrency + the idle cap), with a
    // margin for connections being set up (the HTTP pool also parks a connection it dialed
    // for a request that meanwhile got an idle one): well below one per host.
    let bound = 2 * concurrency + IDLE_CONNECTIONS_CAP + 128;
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak > 0,
        "the poller saw no connection at the server (port {port})"
    );
    assert!(
        peak <= bound,
        "{peak} connections established at the server at once (bound {bound}, {hosts} hosts)"
    );
    eprintln!("many hosts: peak {peak} established connections for {hosts} hosts (bound {bound})");
}

/// 40 hosts (each a counting proxy on its own loopback port in front of one slow fixture),
/// each with two rows 40 rows apart, fetched one at a time: the second row of a host comes
/// seconds after the first, past the pool's 3 s idle timeout, so a connection parked for it
/// would be gone. The rows of a host are fetched back to back instead, on one connection.
#[test]
fn a_host_s_rows_far_apart_in_the_list_share_one_connection() {
    let fx = common::slow_fixture(100);
    let hosts = 40usize;
    let proxies: Vec<FreezableProxy> = (0..hosts)
        .map(|_| FreezableProxy::start(fx.addr()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hosts.parquet");
    let urls: Vec<Option<String>> = (0..2 * hosts)
        .map(|i| {
            let port = proxies[i % hosts].addr.port();
            Some(format!("http://127.0.0.1:{port}/photos/{i}/medium.jpg"))
        })
        .collect();
    let rows = urls.len();
    let classes = (0..rows).map(|i| Some(format!("c{}", i % 3))).collect();
    common::write_string_parquet(&input, &[("photo_url", urls), ("taxon_name", classes)]);
    let output = dir.path().join("out.tar");
    let out = common::run_download(
        &input,
        &output,
        &["--concurrency", "1"],
        Duration::from_secs(120),
    );
    assert_eq!(common::code(&out), 0, "{}", common::text(&out));
    let results = common::results(&dir.path().join("out.results.parquet"));
    assert_eq!(results.len(), rows);
    assert!(
        results.values().all(|r| r.error_kind.is_none()),
        "a row failed: {:?}",
        results.values().find(|r| r.error_kind.is_some())
    );
    let per_host: Vec<u64> = proxies.iter().map(FreezableProxy::connections).collect();
    let total: u64 = per_host.iter().sum();
    // One connection per host; a stray extra one (the pool dialing while the connection is
    // on its way back) is tolerated, two per host (one per row) is the failure.
    assert!(
        total <= hosts as u64 + 2,
        "{total} connections for {hosts} hosts of 2 rows each: {per_host:?}"
    );
}
