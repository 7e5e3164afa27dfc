//! mDNS discovery across real interfaces: nodes in separate network namespaces, no bootstrap
//! address, find each other by mDNS only and exchange gossip. Each node is this test binary
//! re-executed inside its namespace (`child_node`, ignored in normal runs), so mDNS never runs
//! in the root namespace.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ldawt::model::node_stats::NodeStats;
use ldawt::model::time::UnixMillis;
use ldawt::net::{self, Event, NetConfig};
use ldawt::protocol::gossip::Gossip;
use libp2p::PeerId;
use libp2p::identity::Keypair;

use crate::netns::{KillOnDrop, TestNet, namespaces_with_prefix};

const CHILD_ENV: &str = "LDAWT_TEST_MDNS_CHILD_PEERS";
const NODES: usize = 3;

#[test]
fn nodes_in_namespaces_discover_each_other_by_mdns_and_gossip() {
    if let Some(why) = TestNet::unavailable() {
        crate::common::skip(format!("mDNS namespace test: {why}"));
        return;
    }
    let net = TestNet::create(NODES).expect("create namespaces");
    let prefix = net.hub.trim_end_matches("-hub").to_string();
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut children: Vec<KillOnDrop> = (0..NODES)
        .map(|i| {
            let child = net
                .command(i, exe.to_str().unwrap())
                .args(["--exact", "mdns::child_node", "--ignored", "--nocapture"])
                .env(CHILD_ENV, (NODES - 1).to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn a node in its namespace");
            KillOnDrop(child)
        })
        .collect();
    let mut ids = Vec::new();
    let mut heard = Vec::new();
    for child in &mut children {
        let stdout = child.0.stdout.take().unwrap();
        let mut me = None;
        let mut from = BTreeSet::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("LDAWT-ID"), Some(id)) => me = Some(id.to_string()),
                (Some("LDAWT-GOSSIP"), Some(id)) => {
                    from.insert(id.to_string());
                }
                (Some("LDAWT-CONN"), Some(id)) => {
                    let count = words.next().unwrap_or_default();
                    assert_eq!(count, "1", "one connection per pair, not {count} to {id}");
                }
                _ => {}
            }
        }
        let status = child.0.wait().unwrap();
        assert!(status.success(), "a node failed: heard from {from:?}");
        ids.push(me.expect("child printed its id"));
        heard.push(from);
    }
    for (i, from) in heard.iter().enumerate() {
        let others: BTreeSet<String> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(from, &others, "node {i} heard gossip from every other node");
    }
    eprintln!(
        "{NODES} nodes discovered each other and exchanged gossip in {:?}",
        started.elapsed()
    );
    drop(children);
    drop(net);
    assert!(
        namespaces_with_prefix(&prefix).is_empty(),
        "namespaces removed"
    );
}

/// One node of the test above; runs only when re-executed with [`CHILD_ENV`] inside a
/// namespace. Prints `LDAWT-ID <peer>` then `LDAWT-GOSSIP <peer>` per peer heard, and exits
/// once it heard every other node (keeps publishing a little longer so they hear it too).
#[tokio::test]
#[ignore = "run by nodes_in_namespaces_discover_each_other_by_mdns_and_gossip"]
async fn child_node() {
    let Ok(expected) = std::env::var(CHILD_ENV) else {
        panic!("only meant to run inside a namespace, started by the parent test");
    };
    let expected: usize = expected.parse().unwrap();
    let mut cfg = NetConfig::new(Keypair::generate_ed25519());
    cfg.listen = vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()];
    cfg.mdns = true;
    cfg.psk = Some(crate::common::test_swarm_key());
    let (client, mut events, event_loop) = net::new(cfg).unwrap();
    let me = client.local_peer_id();
    println!("LDAWT-ID {me}");
    tokio::spawn(event_loop.run());
    let publisher = {
        let client = client.clone();
        tokio::spawn(async move {
            for nonce in 0..300u64 {
                let msg = Gossip::Heartbeat {
                    stats: NodeStats::default(),
                    nonce,
                    sent_at: UnixMillis(nonce),
                };
                client.publish(msg).await.unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut heard: BTreeSet<PeerId> = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while heard.len() < expected {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Gossip { from, .. })) if from != me && heard.insert(from) => {
                println!("LDAWT-GOSSIP {from}");
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("heard only {heard:?}"),
        }
    }
    // Each pair should share exactly one connection (only the smaller id dials).
    let peers = client.connected_peers().await.unwrap();
    for (peer, addrs) in &peers {
        println!("LDAWT-CONN {peer} {}", addrs.len());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    publisher.abort();
    client.shutdown().await;
}
