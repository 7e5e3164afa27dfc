//! In-process nodes on 127.0.0.1 with short time limits, and helpers to wait for events. They
//! hold the tests' swarm key unless a test gives another one (or none).

use std::time::Duration;

use ldawt::net::{self, Client, Event, NetConfig, NetTuning};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running node: its client, its event stream and its event loop task.
pub struct TestNode {
    pub client: Client,
    pub events: mpsc::Receiver<Event>,
    pub task: JoinHandle<()>,
    pub keypair: Keypair,
    /// First listen address, with `/p2p/<id>`.
    pub addr: Multiaddr,
}

impl TestNode {
    pub fn peer_id(&self) -> PeerId {
        self.client.local_peer_id()
    }

    /// Stops the node and waits for its event loop to end.
    pub async fn stop(self) -> mpsc::Receiver<Event> {
        self.client.shutdown().await;
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("event loop ends after shutdown")
            .expect("event loop task");
        self.events
    }
}

/// Short limits so failure paths show up quickly.
pub fn tuning() -> NetTuning {
    NetTuning {
        open_stream_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        app_reply_timeout: Duration::from_secs(5),
        redial_initial: Duration::from_millis(200),
        redial_max: Duration::from_secs(1),
        ..NetTuning::default()
    }
}

/// Starts a node listening on `listen` (e.g. `/ip4/127.0.0.1/tcp/0`), mDNS off, with the
/// tests' swarm key.
pub async fn spawn_node_with(
    keypair: Option<Keypair>,
    listen: &str,
    bootstrap: Vec<Multiaddr>,
    tuning: NetTuning,
) -> TestNode {
    let mut cfg = NetConfig::new(keypair.unwrap_or_else(Keypair::generate_ed25519));
    cfg.listen = vec![listen.parse().expect("listen multiaddr")];
    cfg.bootstrap = bootstrap;
    cfg.mdns = false;
    cfg.idle_connection_timeout = Duration::from_secs(30);
    cfg.psk = Some(crate::common::test_swarm_key());
    spawn_configured(cfg, tuning).await
}

/// Starts a node with exactly `cfg` (any key, or none).
pub async fn spawn_configured(cfg: NetConfig, tuning: NetTuning) -> TestNode {
    let keypair = cfg.keypair.clone();
    let (client, events, event_loop) = net::new_with(cfg, tuning).expect("node starts");
    let task = tokio::spawn(event_loop.run());
    let addrs = client.listen_addrs().await.expect("listen addresses");
    let addr = addrs.first().cloned().expect("at least one listen address");
    TestNode {
        client,
        events,
        task,
        keypair,
        addr,
    }
}

/// A node on a free loopback port with the test limits.
pub async fn spawn_node() -> TestNode {
    spawn_node_with(None, "/ip4/127.0.0.1/tcp/0", Vec::new(), tuning()).await
}

/// Two fresh nodes, the second (the "worker") connected to the first (the "seeder"):
/// `(seeder, worker)`.
pub async fn connected_pair() -> (TestNode, TestNode) {
    let mut seeder = spawn_node().await;
    let mut worker = spawn_node().await;
    connect(&mut worker, &mut seeder).await;
    (seeder, worker)
}

/// Waits (up to [`WAIT`]) for the first event `pick` maps to `Some`, discarding the others.
pub async fn wait_for<T>(
    events: &mut mpsc::Receiver<Event>,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
            Ok(None) => panic!("event stream ended while waiting for {what}"),
            Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
        }
    }
}

/// Connects `a` to `b` and waits until both report the connection.
pub async fn connect(a: &mut TestNode, b: &mut TestNode) {
    a.client.dial(b.addr.clone()).await.expect("dial");
    let (pa, pb) = (a.peer_id(), b.peer_id());
    wait_for(&mut a.events, "PeerConnected on the dialer", |e| match e {
        Event::PeerConnected { peer, .. } if peer == pb => Some(()),
        _ => None,
    })
    .await;
    wait_for(
        &mut b.events,
        "PeerConnected on the listener",
        |e| match e {
            Event::PeerConnected { peer, .. } if peer == pa => Some(()),
            _ => None,
        },
    )
    .await;
}

/// A hostile peer: an in-process node on the project's `net` layer with any key (or none) and
/// any allow list, driven directly by the test, which can send any request or gossip.
pub async fn spawn_rogue(
    psk: Option<ldawt::net::PreSharedKey>,
    allow_peers: Vec<PeerId>,
    keypair: Option<Keypair>,
) -> TestNode {
    let mut cfg = NetConfig::new(keypair.unwrap_or_else(Keypair::generate_ed25519));
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("listen multiaddr")];
    cfg.mdns = false;
    cfg.psk = psk;
    cfg.allow_peers = allow_peers;
    // A silent rogue keeps a request unanswered for as long as the asker waits.
    let tuning = NetTuning {
        app_reply_timeout: Duration::from_secs(600),
        ..tuning()
    };
    spawn_configured(cfg, tuning).await
}

/// Makes `node` silent: every request it receives stays unanswered (the reply is held until
/// the node stops) and every other event is dropped. Returns the count of requests held.
pub fn hold_every_request(
    events: mpsc::Receiver<Event>,
) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let held = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = held.clone();
    tokio::spawn(async move {
        let mut events = events;
        let (mut replies, mut files) = (Vec::new(), Vec::new());
        while let Some(e) = events.recv().await {
            match e {
                Event::Request { reply, .. } => {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Bounded: past this many, older replies are answered by being dropped.
                    if replies.len() >= 10_000 {
                        replies.clear();
                    }
                    replies.push(reply);
                }
                Event::IncomingFile { decide, .. } => {
                    if files.len() >= 10_000 {
                        files.clear();
                    }
                    files.push(decide);
                }
                _ => {}
            }
        }
    });
    held
}
