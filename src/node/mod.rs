//! The node runtime: wires identity, transport, lease store, coordinator (when seeding),
//! worker (unless `--no-work`), gossip publishing, the status endpoint and shutdown, and returns
//! the final report. `ldawt node` is a thin layer over [`run`].

mod announcer;
pub mod dispatch;
pub mod identity;
mod offers;
pub mod peers;
pub mod rlimit;
mod seeding;
mod status;
mod status_publisher;
pub mod swarm_key;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::coordinator::{CoordinatorError, FinalReport};
use crate::engine::EngineConfig;
use crate::model::ids::{DatasetId, NodeId};
use crate::model::lease::LeaseConfig;
use crate::model::time::Clock;
use crate::net::{self, NetConfig, NetError};
use crate::protocol::gossip::Gossip;
use crate::protocol::status::NodeStatus;
use crate::seed::{SeedError, SeedSpec, SeededDataset};
use crate::store::StoreError;
use crate::worker::activity::Activity;
use crate::worker::stats::Probe;
use crate::worker::{self, Offer, WorkerConfig, WorkerSummary};
use dispatch::Dispatcher;
use identity::IdentityError;
use offers::OfferPublisher;
use peers::PeerTable;
use swarm_key::{KeySource, SwarmKeyError};

/// Everything a node needs to run.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Identity, lease database, seeded rows, worker scratch space.
    pub data_dir: PathBuf,
    /// The dataset to seed, if any.
    pub seed: Option<SeedSpec>,
    /// Where a seeder writes archives and the final results.
    pub out: Option<PathBuf>,
    /// libp2p listen addresses.
    pub listen: Vec<Multiaddr>,
    /// `--join` addresses.
    pub join: Vec<Multiaddr>,
    /// mDNS discovery.
    pub mdns: bool,
    /// Lease policy of a seeded dataset.
    pub lease: LeaseConfig,
    /// Whether this node downloads shards.
    pub work: bool,
    /// Stay up after the seeded dataset is finished.
    pub keep_serving: bool,
    /// A worker-only node stops after being idle this long.
    pub exit_when_idle: Option<Duration>,
    /// Status endpoint address.
    pub status_addr: SocketAddr,
    /// Engine tuning.
    pub engine: EngineConfig,
    /// Cap on concurrent leases of this node's worker.
    pub max_leases: Option<u32>,
    /// Heartbeat / announcement period.
    pub heartbeat: Duration,
    /// A seeder sends here the path of every archive and shard results file it stores.
    pub stored_files: Option<mpsc::UnboundedSender<PathBuf>>,
    /// Where the swarm key comes from (or [`KeySource::Open`]).
    pub swarm_key: KeySource,
    /// When not empty, connections with any other peer are closed (`--allow-peer`).
    pub allow_peers: Vec<PeerId>,
    /// Rows of a remote seeder may target loopback and private addresses
    /// (`--allow-private-urls`).
    pub allow_private_urls: bool,
    /// `--max-archive-bytes`: a seeder refuses any archive transfer announcing more.
    pub max_archive_bytes: Option<u64>,
    /// A seeder reopens the failed shards of a resumed dataset (`--retry-failed`).
    pub retry_failed: bool,
    /// `--swarm-per-host`: a seeder's per-host budget summed over its swarm.
    pub swarm_per_host: Option<u32>,
    /// Wall-clock time for leases, announcements and status (`SystemClock` in production; a
    /// test may drive a `ManualClock`).
    pub clock: Arc<dyn Clock>,
}

/// What the node prints once it is up.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Base58 peer id, derived from the node's identity key.
    pub peer_id: String,
    /// Each listen address with `/p2p/<id>`: what to paste after `--join`.
    pub join_addrs: Vec<String>,
    /// The bound status endpoint.
    pub status_addr: SocketAddr,
    /// The seeded dataset, and whether it was resumed.
    pub seeded: Option<(SeededDataset, bool)>,
    /// The swarm key this node runs with (`psk: None` for an open swarm).
    pub swarm_key: swarm_key::SwarmKey,
}

/// What the node tells its user: once it listens, and then its status every half second.
pub trait NodeReporter: Send {
    /// The node is up.
    fn ready(&mut self, ready: &Ready);
    /// A fresh status document.
    fn progress(&mut self, _status: &NodeStatus) {}
    /// The node is stopping (clear any live display).
    fn finish(&mut self) {}
}

impl<F: FnMut(&Ready) + Send> NodeReporter for F {
    fn ready(&mut self, ready: &Ready) {
        self(ready)
    }
}

/// How the node ended.
#[derive(Debug, Clone, Default)]
pub struct NodeOutcome {
    /// Final reports of the seeded datasets (empty if not seeding or interrupted first).
    pub reports: Vec<FinalReport>,
    /// True when stopped by a signal.
    pub interrupted: bool,
    /// What the worker did.
    pub worker: Option<WorkerSummary>,
}

/// Node failures (all before or outside the swarm's normal operation).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Seeding failed (bad input: exit code 2).
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// The lease database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The coordinator failed.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// The transport failed to start.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The identity file is unusable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The swarm key is missing or unusable (exit code 2).
    #[error(transparent)]
    SwarmKey(#[from] SwarmKeyError),
    /// The status endpoint could not be bound.
    #[error("cannot serve the status endpoint on {addr}: {source}")]
    Status {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: NetError,
    },
    /// `--out` already holds another dataset's results (exit code 2).
    #[error(
        "{out} already holds the results of another dataset ({existing}); a second dataset \
         would overwrite them: give this seed its own --out (dataset {new})"
    )]
    OutTaken {
        /// The output directory.
        out: String,
        /// The dataset recorded there (id and name).
        existing: String,
        /// This seed's dataset id.
        new: String,
    },
    /// A directory could not be created.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

pub(super) fn mkdir(p: &std::path::Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(p).map_err(|source| NodeError::Io {
        path: p.display().to_string(),
        source,
    })
}

/// Runs a node until its seeded dataset is finished (unless `keep_serving`), its worker went
/// idle (`exit_when_idle`), or `shutdown` fires, telling `reporter` what happens.
///
/// The node's tasks: the transport's event loop, the [`dispatch`]er (sole owner of the peer
/// table, pushes offers), the [`announcer`], the [`status_publisher`], the coordinator (when
/// seeding) and the worker (unless `--no-work`); this function starts them and waits for the
/// end.
pub async fn run(
    cfg: NodeConfig,
    shutdown: CancellationToken,
    mut reporter: impl NodeReporter,
) -> Result<NodeOutcome, NodeError> {
    let clock = cfg.clock.clone();
    mkdir(&cfg.data_dir)?;
    let swarm_key = swarm_key::resolve(&cfg.swarm_key)?;
    if swarm_key.psk.is_none() {
        tracing::warn!(
            "open swarm (--open): any host that can reach this node can join, receive rows and report results"
        );
    }
    let keypair =
        identity::load_or_create(&crate::layout::DataDir::new(&cfg.data_dir).identity_key())?;
    let me = NodeId(keypair.public().to_peer_id());
    let stop = shutdown.child_token();
    // The coordinator outlives the worker at shutdown, so this node's own leases are given
    // back (and persisted) before it stops; dropped on any early return.
    let coord_stop = CancellationToken::new();
    let _coord_guard = coord_stop.clone().drop_guard();
    // The announcer and the status publisher; dropped on any early return.
    let tasks_stop = CancellationToken::new();
    let _tasks_guard = tasks_stop.clone().drop_guard();

    let (gossip_tx, gossip_rx) = mpsc::unbounded_channel::<Gossip>();
    let seeding = match cfg.seed.clone() {
        Some(spec) => Some(seeding::start(&cfg, spec, me, gossip_tx, coord_stop.clone()).await?),
        None => None,
    };
    let coord = seeding.as_ref().map(|s| s.coord.clone());
    let seeded = seeding.as_ref().map(|s| s.seeded.clone());

    // Transport and dispatcher.
    let mut net_cfg = NetConfig::new(keypair);
    if !cfg.listen.is_empty() {
        net_cfg.listen = cfg.listen.clone();
    }
    net_cfg.bootstrap = cfg.join.clone();
    net_cfg.mdns = cfg.mdns;
    net_cfg.psk = swarm_key.psk;
    net_cfg.allow_peers = cfg.allow_peers.clone();
    let (client, events, event_loop) = net::new(net_cfg)?;
    let net_task = tokio::spawn(event_loop.run());
    let (offers_tx, offers_rx) = watch::channel(Vec::<Offer>::new());
    let local_ds: Vec<DatasetId> = seeded.iter().map(|(d, _)| d.id).collect();
    let offers = OfferPublisher::new(coord.as_ref(), &local_ds, client.clone(), offers_tx);
    let table = PeerTable::new(peers::stall_after(cfg.heartbeat));
    let (dispatcher, peers) = Dispatcher::new(coord.clone(), table, clock.clone(), offers);
    tokio::spawn(dispatcher.run(events));

    // Status endpoint.
    let activity = Activity::new();
    let (status_tx, status_rx) = watch::channel(NodeStatus::default());
    let metrics = status::metrics_renderer(client.clone(), activity.clone(), status_rx.clone());
    let status_addr =
        crate::status_server::serve(cfg.status_addr, status_rx, metrics, stop.clone())
            .await
            .map_err(|source| NodeError::Status {
                addr: cfg.status_addr,
                source,
            })?;
    let join_addrs = wait_listen_addrs(&client).await;
    reporter.ready(&Ready {
        peer_id: me.to_string(),
        join_addrs: join_addrs.clone(),
        status_addr,
        seeded: seeded.clone(),
        swarm_key: swarm_key.clone(),
    });

    // Worker, announcer, status publisher.
    let own = status::Own {
        me,
        work: cfg.work,
        coord: coord.clone(),
        probe: Arc::new(Probe::new()),
        activity: activity.clone(),
        worker_cfg: WorkerConfig {
            me,
            work_dir: crate::layout::DataDir::new(&cfg.data_dir)
                .work()
                .into_path(),
            engine: cfg.engine.clone(),
            exit_when_idle: cfg.exit_when_idle,
            max_leases: cfg.max_leases,
            allow_private_urls: cfg.allow_private_urls,
        },
        // Whose free space a node that does not work reports: a seeder's --out, else its
        // data dir.
        disk_dir: seeding
            .as_ref()
            .map(|s| s.out.clone())
            .unwrap_or_else(|| cfg.data_dir.clone()),
    };
    let mut worker_task = cfg.work.then(|| {
        tokio::spawn(worker::run(
            own.worker_cfg.clone(),
            offers_rx,
            own.probe.clone(),
            activity.clone(),
            stop.clone(),
        ))
    });
    let (hb, gossip) = (cfg.heartbeat, gossip_rx);
    let announcer = announcer::run(
        client.clone(),
        own.clone(),
        clock.clone(),
        hb,
        gossip,
        tasks_stop.clone(),
    );
    tokio::spawn(announcer);
    let mut progress = status_tx.subscribe();
    let started = clock.now();
    let publisher = status_publisher::run(
        own,
        peers,
        clock.clone(),
        started,
        join_addrs,
        status_tx,
        tasks_stop.clone(),
    );
    tokio::spawn(publisher);

    // Until the end.
    let mut finalized = false;
    let mut outcome = NodeOutcome::default();
    let mut storage_failure = None;
    loop {
        let coord_finished = async {
            match &coord {
                Some(c) if !finalized => c.wait_finished().await,
                _ => std::future::pending().await,
            }
        };
        let storage_failed = async {
            match &coord {
                Some(c) => c.wait_storage_failed().await,
                None => std::future::pending().await,
            }
        };
        let worker_done = async {
            match worker_task.as_mut() {
                Some(t) => t.await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => {
                outcome.interrupted = true;
                break;
            }
            // Fail-stop: the seeder already refuses everything; stop the node cleanly.
            failure = storage_failed => {
                storage_failure = Some(failure);
                break;
            }
            _ = coord_finished => {
                if let Some(c) = &coord {
                    // Let the last gossip go out, then write the results.
                    outcome.reports = match c.finalize().await {
                        Ok(r) => r?,
                        Err(_) => Vec::new(),
                    };
                }
                finalized = true;
                if !cfg.keep_serving {
                    break;
                }
            }
            done = worker_done => {
                outcome.worker = done;
                worker_task = None;
                if coord.is_none() {
                    break;
                }
            }
            Ok(()) = progress.changed() => reporter.progress(&progress.borrow_and_update()),
        }
    }

    // Shutdown: the worker gives its leases back, then the transport closes.
    reporter.finish();
    stop.cancel();
    if let Some(t) = worker_task {
        outcome.worker = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .ok()
            .and_then(|r| r.ok());
    }
    coord_stop.cancel();
    tasks_stop.cancel();
    client.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), net_task).await;
    if let Some(f) = storage_failure {
        return Err(CoordinatorError::StorageFailed(f).into());
    }
    Ok(outcome)
}

/// The listen addresses with `/p2p/<id>`, waiting briefly for the listeners to come up.
async fn wait_listen_addrs(client: &net::Client) -> Vec<String> {
    for _ in 0..50 {
        if let Ok(addrs) = client.listen_addrs().await
            && !addrs.is_empty()
        {
            return addrs.iter().map(|a| a.to_string()).collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Vec::new()
}
