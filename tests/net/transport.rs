//! Dialing, gossip, control requests and connection failures between in-process nodes.

use std::time::{Duration, Instant};

use ldawt::input::UrlRow;
use ldawt::model::ids::{DatasetId, Epoch, ShardId};
use ldawt::model::node_stats::NodeStats;
use ldawt::model::time::UnixMillis;
use ldawt::net::{Client, Event, NetError};
use ldawt::protocol::codec::{CodecError, encode};
use ldawt::protocol::control::{ControlRequest, ControlResponse, MAX_CONTROL_RESPONSE_BYTES};
use ldawt::protocol::gossip::Gossip;
use libp2p::PeerId;
use tokio::sync::mpsc;

use crate::harness::{
    TestNode, WAIT, connect, connected_pair, spawn_node, spawn_node_with, tuning, wait_for,
};

fn heartbeat(nonce: u64) -> Gossip {
    Gossip::Heartbeat {
        stats: NodeStats {
            cores: 3,
            ..Default::default()
        },
        nonce,
        sent_at: UnixMillis(nonce),
    }
}

fn rows_request() -> ControlRequest {
    ControlRequest::Rows {
        dataset: DatasetId([1; 16]),
        shard: ShardId(4),
        epoch: Epoch(2),
    }
}

/// Publishes numbered heartbeats from `client` every 200 ms until aborted.
fn keep_publishing(client: Client, base: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for i in 0..200 {
            client.publish(heartbeat(base + i)).await.expect("publish");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

async fn wait_for_gossip_from(events: &mut mpsc::Receiver<Event>, sender: PeerId, base: u64) {
    wait_for(events, "gossip", |e| match e {
        Event::Gossip {
            from,
            message: Gossip::Heartbeat { nonce, .. },
        } if from == sender && nonce >= base => Some(()),
        _ => None,
    })
    .await;
}

fn take_events(node: &mut TestNode) -> mpsc::Receiver<Event> {
    std::mem::replace(&mut node.events, mpsc::channel(1).1)
}

#[tokio::test]
async fn lone_node_publishes_and_reports_its_addresses() {
    let lone = spawn_node().await;
    lone.client
        .publish(heartbeat(1))
        .await
        .expect("publishing with no peer is fine");
    let addrs = lone.client.listen_addrs().await.unwrap();
    assert!(!addrs.is_empty());
    for a in &addrs {
        assert!(a.to_string().starts_with("/ip4/127.0.0.1/tcp/"), "{a}");
        assert!(
            a.to_string().ends_with(&format!("/p2p/{}", lone.peer_id())),
            "{a}"
        );
    }
    assert!(lone.client.connected_peers().await.unwrap().is_empty());
    lone.stop().await;
}

#[tokio::test]
async fn gossip_flows_every_way_across_three_nodes() {
    let mut hub = spawn_node().await;
    let mut b = spawn_node().await;
    let mut c = spawn_node().await;
    connect(&mut b, &mut hub).await;
    let hub_id = hub.peer_id();
    let (listen_addrs, agent) = wait_for(&mut b.events, "identify", |e| match e {
        Event::PeerIdentified {
            peer,
            listen_addrs,
            agent,
        } if peer == hub_id => Some((listen_addrs, agent)),
        _ => None,
    })
    .await;
    assert!(agent.starts_with("ldawt/"), "{agent}");
    let hub_listen = hub.addr.to_string();
    assert!(
        listen_addrs
            .iter()
            .any(|a| hub_listen.starts_with(&a.to_string())),
        "{listen_addrs:?} should contain {hub_listen}"
    );
    connect(&mut c, &mut hub).await;
    let peers = b.client.connected_peers().await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].0, hub.peer_id());
    assert!(peers[0].1[0].to_string().starts_with("/ip4/127.0.0.1/tcp/"));

    // b → hub and b → c (c is reached only through the hub).
    let publisher = keep_publishing(b.client.clone(), 1000);
    wait_for_gossip_from(&mut hub.events, b.peer_id(), 1000).await;
    wait_for_gossip_from(&mut c.events, b.peer_id(), 1000).await;
    publisher.abort();
    // hub → b and c.
    let publisher = keep_publishing(hub.client.clone(), 2000);
    wait_for_gossip_from(&mut b.events, hub.peer_id(), 2000).await;
    wait_for_gossip_from(&mut c.events, hub.peer_id(), 2000).await;
    publisher.abort();
    assert!(hub.client.metrics().gossip_published >= 1);
    assert!(c.client.metrics().gossip_received >= 2);
    for n in [hub, b, c] {
        n.stop().await;
    }
}

#[tokio::test]
async fn control_request_carries_a_20_mb_rows_response() {
    let (mut seeder, worker) = connected_pair().await;
    let rows: Vec<UrlRow> = (0..150_000u64)
        .map(|i| UrlRow {
            index: i,
            url: Some(format!(
                "http://127.0.0.1:9/photos/{i:09}/original-{:0>80}.jpg",
                i * 7
            )),
            class: Some(format!("Species number {}", i % 977)),
            extra: Vec::new(),
        })
        .collect();
    let expected = ControlResponse::Rows(rows);
    let encoded = encode(&expected, MAX_CONTROL_RESPONSE_BYTES).unwrap().len();
    assert!(encoded > 20_000_000, "response is {encoded} bytes");
    let answer = expected.clone();
    let worker_id = worker.peer_id();
    let mut events = take_events(&mut seeder);
    let app = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Request {
                peer,
                request,
                reply,
            } = event
            {
                assert_eq!(peer, worker_id);
                assert_eq!(request, rows_request());
                reply.send(answer.clone()).unwrap();
            }
        }
    });
    let got = worker
        .client
        .request(seeder.peer_id(), rows_request())
        .await
        .expect("rows response");
    assert!(got == expected, "the 20 MB response arrived intact");
    assert_eq!(seeder.client.metrics().control_requests_served, 1);
    app.abort();
    worker.stop().await;
    seeder.stop().await;
}

#[tokio::test]
async fn a_dropped_reply_answers_rejected_and_oversize_requests_are_refused() {
    let (mut seeder, worker) = connected_pair().await;
    let mut events = take_events(&mut seeder);
    let app = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Request { reply, .. } = event {
                drop(reply);
            }
        }
    });
    let got = worker
        .client
        .request(seeder.peer_id(), rows_request())
        .await
        .unwrap();
    match got {
        ControlResponse::Rejected(r) => assert!(r.detail.contains("dropped"), "{r}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    let oversize = ControlRequest::Abandon {
        dataset: DatasetId([0; 16]),
        shard: ShardId(0),
        epoch: Epoch(1),
        reason: "x".repeat(2 << 20),
        failed: false,
    };
    let err = worker
        .client
        .request(seeder.peer_id(), oversize)
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetError::Codec(CodecError::TooLarge { .. })),
        "{err}"
    );
    // The refused request never reached the seeder; the connection is still usable.
    let again = worker
        .client
        .request(seeder.peer_id(), rows_request())
        .await
        .unwrap();
    assert!(matches!(again, ControlResponse::Rejected { .. }));
    assert_eq!(seeder.client.metrics().control_requests_served, 2);
    app.abort();
    worker.stop().await;
    seeder.stop().await;
}

#[tokio::test]
async fn a_peer_that_disappears_mid_request_gives_an_error_not_a_hang() {
    let mut slow = tuning();
    slow.app_reply_timeout = Duration::from_secs(60);
    slow.idle_timeout = Duration::from_secs(60);
    let mut seeder = spawn_node_with(None, "/ip4/127.0.0.1/tcp/0", Vec::new(), slow.clone()).await;
    let mut worker = spawn_node_with(None, "/ip4/127.0.0.1/tcp/0", Vec::new(), slow).await;
    connect(&mut worker, &mut seeder).await;
    let seeder_id = seeder.peer_id();
    let client = worker.client.clone();
    let started = Instant::now();
    let pending = tokio::spawn(async move { client.request(seeder_id, rows_request()).await });
    // The seeder's application receives the request, holds the reply, and the node dies.
    let held_reply = wait_for(&mut seeder.events, "the request", |e| match e {
        Event::Request { reply, .. } => Some(reply),
        _ => None,
    })
    .await;
    seeder.stop().await;
    let result = tokio::time::timeout(WAIT, pending)
        .await
        .expect("the request ends instead of hanging")
        .unwrap();
    drop(held_reply);
    assert!(result.is_err(), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "ended by the disconnect, not by the 60 s timeouts"
    );
    worker.stop().await;
}

#[tokio::test]
async fn dialing_a_closed_port_fails_with_the_address() {
    let node = spawn_node().await;
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{free_port}").parse().unwrap();
    let err = node.client.dial(addr).await.unwrap_err();
    assert!(matches!(err, NetError::Dial(_)), "{err}");
    assert!(err.to_string().contains(&free_port.to_string()), "{err}");
    node.stop().await;
}

#[tokio::test]
async fn a_restarted_bootstrap_peer_is_redialed() {
    let seeder = spawn_node().await;
    let seeder_addr = seeder.addr.clone();
    let seeder_id = seeder.peer_id();
    let keypair = seeder.keypair.clone();
    let port = seeder_addr
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    let mut worker = spawn_node_with(
        None,
        "/ip4/127.0.0.1/tcp/0",
        vec![seeder_addr.clone()],
        tuning(),
    )
    .await;
    let is_seeder_connected = |e: Event| match e {
        Event::PeerConnected { peer, .. } if peer == seeder_id => Some(()),
        _ => None,
    };
    wait_for(&mut worker.events, "first connection", is_seeder_connected).await;
    seeder.stop().await;
    wait_for(&mut worker.events, "disconnection", |e| match e {
        Event::PeerDisconnected { peer } if peer == seeder_id => Some(()),
        _ => None,
    })
    .await;
    // Let a few redials fail while the seeder is down, then bring it back on the same port.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let seeder = spawn_node_with(Some(keypair), &listen, Vec::new(), tuning()).await;
    wait_for(&mut worker.events, "reconnection", is_seeder_connected).await;
    let peers = worker.client.connected_peers().await.unwrap();
    assert_eq!(
        peers.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![seeder_id]
    );
    worker.stop().await;
    seeder.stop().await;
}

async fn wait_for_request(
    events: &mut mpsc::Receiver<Event>,
    expected: ControlRequest,
) -> tokio::sync::oneshot::Sender<ControlResponse> {
    wait_for(events, "a request", |e| match e {
        Event::Request { reply, request, .. } if request == expected => Some(reply),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn inbound_requests_are_answered_concurrently() {
    let (mut seeder, worker) = connected_pair().await;
    let to = seeder.peer_id();
    let renew = |epoch: u64| ControlRequest::Renew {
        dataset: DatasetId([2; 16]),
        shard: ShardId(1),
        epoch: Epoch(epoch),
        rows_done: 0,
        throttled: 0,
    };
    let spawn_request = |epoch: u64| {
        let client = worker.client.clone();
        tokio::spawn(async move { client.request(to, renew(epoch)).await })
    };
    let slow = spawn_request(1);
    let held = wait_for_request(&mut seeder.events, renew(1)).await;
    let fast = spawn_request(2);
    let reply_fast = wait_for_request(&mut seeder.events, renew(2)).await;
    reply_fast.send(ControlResponse::Ack).unwrap();
    assert_eq!(fast.await.unwrap().unwrap(), ControlResponse::Ack);
    assert!(
        !slow.is_finished(),
        "the first request is still waiting for its answer"
    );
    let renewed = ControlResponse::Renewed {
        expires_at: UnixMillis(5),
    };
    held.send(renewed.clone()).unwrap();
    assert_eq!(slow.await.unwrap().unwrap(), renewed);
    worker.stop().await;
    seeder.stop().await;
}

#[tokio::test]
async fn a_busy_listen_port_is_refused_naming_the_address() {
    let first = spawn_node().await;
    let port = first
        .addr
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    let listen: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let mut cfg = ldawt::net::NetConfig::new(libp2p::identity::Keypair::generate_ed25519());
    cfg.listen = vec![listen.clone()];
    cfg.mdns = false;
    match ldawt::net::new(cfg) {
        Err(e @ NetError::Listen { .. }) => {
            assert!(e.to_string().contains(&listen.to_string()), "{e}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a second node silently shared port {port}"),
    }
    first.stop().await;
}

/// Answers every request `seeder` receives with `Ack` until aborted.
fn ack_every_request(seeder: &mut TestNode) -> tokio::task::JoinHandle<()> {
    let mut events = take_events(seeder);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Request { reply, .. } = event {
                let _ = reply.send(ControlResponse::Ack);
            }
        }
    })
}

/// Sends `per_client` concurrent rows requests from each of `clients` to `to`; returns the
/// answers that were not `Ack`.
async fn burst_of_requests(clients: &[Client], per_client: usize, to: PeerId) -> Vec<String> {
    let burst: Vec<_> = clients
        .iter()
        .flat_map(|c| std::iter::repeat_n(c.clone(), per_client))
        .map(|client| tokio::spawn(async move { client.request(to, rows_request()).await }))
        .collect();
    let mut failures = Vec::new();
    for r in burst {
        match r.await.unwrap() {
            Ok(ControlResponse::Ack) => {}
            other => failures.push(format!("{other:?}")),
        }
    }
    failures
}

/// libp2p-stream hands inbound streams to the accept loop over a one-slot channel and drops
/// those that arrive while it is full; a burst of concurrent requests on a single-threaded
/// runtime (the accept loop competes with everything else) must still be answered in full.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_concurrent_requests_on_one_thread_is_answered_in_full() {
    let (mut seeder, worker) = connected_pair().await;
    let app = ack_every_request(&mut seeder);
    let failures =
        burst_of_requests(std::slice::from_ref(&worker.client), 40, seeder.peer_id()).await;
    assert!(
        failures.is_empty(),
        "{} of 40 failed: {failures:?}",
        failures.len()
    );
    app.abort();
    worker.stop().await;
    seeder.stop().await;
}

/// libp2p-stream hands inbound streams to the accept loop over one shared one-slot channel and
/// drops those that arrive while it is full: with four workers' connections delivering streams
/// from two threads at once, some of a burst's streams die before any answer, which the
/// requester sees as "connection is closed". Every request must still be answered, on a
/// reopened stream. The test goes on (at most 20 bursts) until a stream has been reopened, so
/// it checks the reopen itself; without it, a burst with a drop fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_whose_streams_the_seeder_drops_are_answered_on_reopened_streams() {
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 150;
    let mut seeder = spawn_node().await;
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let mut worker = spawn_node().await;
        connect(&mut worker, &mut seeder).await;
        workers.push(worker);
    }
    let app = ack_every_request(&mut seeder);
    let clients: Vec<Client> = workers.iter().map(|w| w.client.clone()).collect();
    let reopened = || -> u64 { clients.iter().map(|c| c.metrics().streams_reopened).sum() };
    let started = Instant::now();
    let mut bursts = 0;
    while reopened() == 0 {
        assert!(
            bursts < 20 && started.elapsed() < WAIT,
            "no stream was dropped in {bursts} bursts: the reopen went untested"
        );
        bursts += 1;
        let failures = burst_of_requests(&clients, PER_WORKER, seeder.peer_id()).await;
        assert!(
            failures.is_empty(),
            "burst {bursts}: {} of {} failed, first: {:?}",
            failures.len(),
            WORKERS * PER_WORKER,
            failures.first()
        );
    }
    for w in &workers {
        let m = w.client.metrics();
        assert_eq!(m.control_requests_failed, 0);
        assert_eq!(m.control_requests_sent, (bursts * PER_WORKER) as u64);
    }
    app.abort();
    for w in workers {
        w.stop().await;
    }
    seeder.stop().await;
}
