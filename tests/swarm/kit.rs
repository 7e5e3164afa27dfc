//! The in-process swarm kit shared by the swarm tests: a node's configuration (seeder or
//! worker), starting it as a task and waiting for it, and an insider peer (a bare transport
//! holding the swarm key) that bids, fetches rows, sends files and completes as it likes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ldawt::engine::{EngineConfig, RowResult, RowStatus};
use ldawt::input::UrlRow;
use ldawt::model::ids::DatasetId;
use ldawt::model::lease::LeaseConfig;
use ldawt::model::node_stats::NodeStats;
use ldawt::model::shard::ShardSizing;
use ldawt::model::time::SystemClock;
use ldawt::net::{self, Client, NetConfig};
use ldawt::node::swarm_key::KeySource;
use ldawt::node::{self, NodeConfig, NodeOutcome, Ready};
use ldawt::protocol::control::{ControlRequest, ControlResponse, Grant};
use ldawt::protocol::transfer::{FileKind, TransferHeader};
use ldawt::seed::{Columns, SeedSpec};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::common::test_swarm_key;

/// The one place an in-process node's configuration is built (every swarm test uses it).
pub fn node_config(data: &Path) -> NodeConfig {
    NodeConfig {
        data_dir: data.to_path_buf(),
        seed: None,
        out: None,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        join: Vec::new(),
        mdns: false,
        lease: LeaseConfig::default(),
        work: true,
        keep_serving: false,
        exit_when_idle: None,
        status_addr: "127.0.0.1:0".parse().unwrap(),
        engine: EngineConfig::default(),
        max_leases: Some(2),
        heartbeat: Duration::from_millis(300),
        stored_files: None,
        swarm_key: KeySource::Env(test_swarm_key()),
        allow_peers: Vec::new(),
        allow_private_urls: true,
        max_archive_bytes: None,
        retry_failed: false,
        swarm_per_host: None,
        clock: Arc::new(SystemClock),
    }
}

/// The seed columns of [`super::util::write_seed`]'s files: `photo_url`, class `taxon_name`.
pub fn seed_columns() -> Columns {
    Columns {
        url: "photo_url".into(),
        class: Some("taxon_name".into()),
        group: None,
        extra: Vec::new(),
    }
}

/// A seeder with no work of its own (data dir `data`) of `input` into `out`, sharded by
/// `sizing`, with the default lease policy.
pub fn seeder_config(data: &Path, input: PathBuf, out: &Path, sizing: ShardSizing) -> NodeConfig {
    let mut cfg = node_config(data);
    cfg.seed = Some(SeedSpec {
        path: input,
        columns: seed_columns(),
        sizing,
    });
    cfg.out = Some(out.to_path_buf());
    cfg.work = false;
    cfg
}

/// The lease policy of the forgery tests: 3 s leases, 10 retries (refused deliveries must not
/// use them up), no tail copies.
pub fn forgery_leases() -> LeaseConfig {
    LeaseConfig {
        ttl: Duration::from_secs(3),
        max_retries: 10,
        speculative: false,
        copy_after: Duration::from_secs(60),
    }
}

/// A worker (data dir `data`) joining `join`, leaving 3 s after it runs out of work.
pub fn worker_config(data: &Path, join: Vec<Multiaddr>) -> NodeConfig {
    let mut cfg = node_config(data);
    cfg.join = join;
    cfg.exit_when_idle = Some(Duration::from_secs(3));
    cfg
}

/// Runs a node as a task; the receiver gets its start-up lines once.
pub fn spawn_node(
    cfg: NodeConfig,
    stop: CancellationToken,
) -> (oneshot::Receiver<Ready>, JoinHandle<NodeOutcome>) {
    let (tx, rx) = oneshot::channel();
    let mut tx = Some(tx);
    let task = tokio::spawn(async move {
        node::run(cfg, stop, move |r: &Ready| {
            if let Some(tx) = tx.take() {
                let _ = tx.send(r.clone());
            }
        })
        .await
        .expect("node runs")
    });
    (rx, task)
}

/// A started seeder: its task, and what a peer needs to reach it.
pub struct Seeder {
    /// The node's task.
    pub task: JoinHandle<NodeOutcome>,
    /// Its start-up lines.
    pub ready: Ready,
    /// Its first `--join` address.
    pub join: Multiaddr,
    /// Its peer id.
    pub peer: PeerId,
    /// The id of the dataset it seeds.
    pub dataset: DatasetId,
}

/// Starts the seeder `cfg` (never stopped from outside) and waits (30 s at most) until it is up.
pub async fn start_seeder(cfg: NodeConfig) -> Seeder {
    start_seeder_until(cfg, CancellationToken::new()).await
}

/// Starts the seeder `cfg`, stopped by `stop`, and waits (30 s at most) until it is up.
pub async fn start_seeder_until(cfg: NodeConfig, stop: CancellationToken) -> Seeder {
    let (ready, task) = spawn_node(cfg, stop);
    let ready = up(ready).await;
    Seeder {
        task,
        join: ready.join_addrs[0].parse().unwrap(),
        peer: ready.peer_id.parse().unwrap(),
        dataset: ready.seeded.clone().expect("a seeder").0.id,
        ready,
    }
}

/// A node's start-up lines, within 30 s.
pub async fn up(ready: oneshot::Receiver<Ready>) -> Ready {
    tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("the node starts within 30 s")
        .expect("the node reports its start")
}

/// A node's outcome once its task ends, within `limit` (`what` names it in the failure).
pub async fn finished(task: JoinHandle<NodeOutcome>, limit: Duration, what: &str) -> NodeOutcome {
    tokio::time::timeout(limit, task)
        .await
        .unwrap_or_else(|_| panic!("{what} within {limit:?}"))
        .unwrap()
}

/// Stats of an ordinary machine, for bids.
pub fn stats() -> NodeStats {
    NodeStats {
        cores: 2,
        mem_total: 4 << 30,
        mem_free: 4 << 30,
        disk_free: 1 << 40,
        works: true,
        ..Default::default()
    }
}

/// An insider: a bare transport joined to `join` that can send any request or file. It holds
/// the swarm key, so only the seeder's own checks stand in its way. Its events are drained.
pub async fn insider(join: Multiaddr) -> Client {
    let mut cfg = NetConfig::new(Keypair::generate_ed25519());
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    cfg.bootstrap = vec![join];
    cfg.mdns = false;
    cfg.psk = Some(test_swarm_key());
    let (client, mut events, event_loop) = net::new(cfg).unwrap();
    tokio::spawn(event_loop.run());
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    client
}

/// Bids for a shard of `dataset` every 100 ms until granted (20 s at most).
pub async fn take_lease(peer: &Client, seeder: PeerId, dataset: DatasetId) -> Grant {
    for _ in 0..200 {
        let bid = ControlRequest::Bid {
            dataset,
            stats: stats(),
        };
        if let Ok(ControlResponse::Granted(g)) = peer.request(seeder, bid).await {
            return g;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the insider never got a lease");
}

/// The rows of the granted shard.
pub async fn rows_of(peer: &Client, seeder: PeerId, g: &Grant) -> Vec<UrlRow> {
    let ask = ControlRequest::Rows {
        dataset: g.dataset,
        shard: g.shard,
        epoch: g.epoch,
    };
    match peer.request(seeder, ask).await.unwrap() {
        ControlResponse::Rows(r) => r,
        other => panic!("no rows: {other:?}"),
    }
}

/// Sends `path` as the `kind` file of the granted shard (with its true size and sha256); the
/// seeder must take the bytes (what it thinks of them comes with the completion).
pub async fn send(peer: &Client, seeder: PeerId, g: &Grant, kind: FileKind, path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let header = TransferHeader {
        dataset: g.dataset,
        shard: g.shard,
        epoch: g.epoch,
        kind,
        size: bytes.len() as u64,
        sha256: Sha256::digest(&bytes).into(),
    };
    peer.send_file(seeder, header, path)
        .await
        .unwrap_or_else(|e| panic!("the seeder takes the {kind:?} bytes: {e}"));
}

/// Sends both files of the granted shard, then claims it complete with every row stored and
/// `bytes` bytes; the seeder's answer.
pub async fn deliver(
    peer: &Client,
    seeder: PeerId,
    g: &Grant,
    [archive, results]: [&Path; 2],
    bytes: u64,
) -> ControlResponse {
    send(peer, seeder, g, FileKind::Archive, archive).await;
    send(peer, seeder, g, FileKind::Results, results).await;
    let complete = ControlRequest::Complete {
        dataset: g.dataset,
        shard: g.shard,
        epoch: g.epoch,
        ok: g.rows,
        failed: 0,
        bytes,
    };
    peer.request(seeder, complete).await.unwrap()
}

/// The result a forger reports for row `r`, claiming it stored a body of `bytes` bytes with
/// hash `sha256` (hex) as `member`, at the first attempt.
pub fn claimed_row(r: &UrlRow, bytes: usize, sha256: String, member: String) -> RowResult {
    RowResult {
        index: r.index,
        url: r.url.clone(),
        class: r.class.clone(),
        status: RowStatus::Ok,
        http_status: Some(200),
        error_kind: None,
        error_message: None,
        bytes: bytes as u64,
        sha256: Some(sha256),
        member: Some(member),
        attempts: 1,
        elapsed_ms: 1,
    }
}
