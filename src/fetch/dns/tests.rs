//! Tests of the resolver against a small DNS server on loopback: error mapping, IP literals
//! and the guard, coalescing of concurrent lookups, negative caching and the lookup cap.

use super::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};

/// A resolver asking only the server at `addr`, with a 2 s timeout and no retry.
fn resolver_for(addr: SocketAddr) -> CachingResolver {
    let mut conn = ConnectionConfig::udp();
    conn.port = addr.port();
    let ns = NameServerConfig::new(addr.ip(), true, vec![conn]);
    let config = ResolverConfig::from_name_servers(vec![ns]);
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    builder.options_mut().timeout = Duration::from_secs(2);
    builder.options_mut().attempts = 1;
    CachingResolver::from_builder(builder, false, Duration::from_secs(5)).expect("resolver")
}

/// What the loopback test server saw.
#[derive(Default)]
struct Seen {
    /// Distinct (name, query id) pairs: one per query, retransmissions not counted.
    queries: Mutex<HashSet<(String, u16)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Seen {
    fn queries(&self, name: &str) -> usize {
        lock(&self.queries)
            .iter()
            .filter(|(n, _)| n == name)
            .count()
    }
}

/// A UDP DNS server on loopback answering every name after `delay`: `dead.test` with
/// NXDOMAIN, anything else with 192.0.2.1 for A queries (an empty answer otherwise).
async fn test_server(delay: Duration) -> (SocketAddr, Arc<Seen>) {
    let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let (sock, seen2) = (Arc::clone(&socket), Arc::clone(&seen));
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let q = buf[..n].to_vec();
            let Some((name, qtype, qend)) = question(&q) else {
                continue;
            };
            let id = u16::from_be_bytes([q[0], q[1]]);
            if !lock(&seen2.queries).insert((name.clone(), id)) {
                continue; // a retransmission: the first copy will be answered
            }
            let now = seen2.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            seen2.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let (sock, seen3) = (Arc::clone(&sock), Arc::clone(&seen2));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let (rcode, a) = match (name.as_str(), qtype) {
                    ("dead.test", _) => (3, false),
                    (_, 1) => (0, true),
                    _ => (0, false),
                };
                let mut r = Vec::with_capacity(qend + 16);
                r.extend_from_slice(&q[..2]);
                r.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1, 0, u8::from(a), 0, 0, 0, 0]);
                r.extend_from_slice(&q[12..qend]);
                if a {
                    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                    r.extend_from_slice(&[192, 0, 2, 1]);
                }
                seen3.in_flight.fetch_sub(1, Ordering::SeqCst);
                let _ = sock.send_to(&r, from).await;
            });
        }
    });
    (addr, seen)
}

/// (lower-case name, type, end of the question) of a query.
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_of_one_name_share_one_query_and_failures_are_cached() {
    let (addr, seen) = test_server(Duration::from_millis(200)).await;
    let r = resolver_for(addr);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let r = r.clone();
            let name = if i % 2 == 0 { "img.test" } else { "IMG.test." };
            tokio::spawn(async move { r.lookup(name).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(
            t.await.unwrap().expect("resolves"),
            vec![IpAddr::from([192, 0, 2, 1])]
        );
    }
    // One lookup: an A query and at most an AAAA one.
    assert!((1..=2).contains(&seen.queries("img.test")));
    for _ in 0..20 {
        let err = r.lookup("dead.test").await.expect_err("NXDOMAIN");
        assert_eq!(err.kind, ResolveFailure::NxDomain);
        assert_eq!(err.kind.failure().kind(), "dns_nxdomain");
    }
    assert!((1..=2).contains(&seen.queries("dead.test")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_of_many_names_are_capped() {
    let (addr, seen) = test_server(Duration::from_millis(100)).await;
    let r = resolver_for(addr);
    let n = MAX_CONCURRENT_LOOKUPS * 3;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let r = r.clone();
            tokio::spawn(async move { r.lookup(&format!("h{i}.test")).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    let max = seen.max_in_flight.load(Ordering::SeqCst);
    // Each lookup may ask A and AAAA at once.
    assert!(
        max <= 2 * MAX_CONCURRENT_LOOKUPS,
        "{max} queries in flight at once"
    );
    assert!(max > 1, "lookups did run concurrently");
}

#[test]
fn hickory_errors_map_to_row_failures() {
    let (a, ttl) = classify(&NetError::Timeout);
    assert!(matches!(a, Answer::Failed(ResolveFailure::Timeout, _)));
    assert_eq!(ttl, TRANSIENT_TTL);
    let (a, _) = classify(&NetError::Dns(DnsError::ResponseCode(
        ResponseCode::ServFail,
    )));
    assert!(matches!(a, Answer::Failed(ResolveFailure::ServFail, _)));
    let nx = hickory_resolver::net::NoRecords::new(
        hickory_resolver::proto::op::Query::default(),
        ResponseCode::NXDomain,
    );
    let (a, ttl) = classify(&NetError::Dns(DnsError::NoRecordsFound(nx)));
    assert!(matches!(a, Answer::Failed(ResolveFailure::NxDomain, _)));
    assert_eq!(ttl, negative_ttl(None));
    assert_eq!(ResolveFailure::NxDomain.failure().kind(), "dns_nxdomain");
    assert_eq!(ResolveFailure::Blocked.failure().kind(), "blocked_address");
}

#[tokio::test]
async fn ip_literals_skip_dns_and_are_filtered_when_blocking() {
    let open = CachingResolver::new(false, Duration::from_secs(5)).expect("resolver");
    assert_eq!(
        open.lookup("127.0.0.1").await.expect("literal"),
        vec![IpAddr::from([127, 0, 0, 1])]
    );
    let guarded = CachingResolver::new(true, Duration::from_secs(5)).expect("resolver");
    let err = guarded.lookup("127.0.0.1").await.expect_err("blocked");
    assert_eq!(err.kind, ResolveFailure::Blocked);
    assert!(guarded.lookup("8.8.8.8").await.is_ok());
}
