//! The node runtime: wires identity, transport, lease store, coordinator (when seeding),
//! worker (unless `--no-work`), gossip publishing, the status endpoint and shutdown, and returns
//! the final report. `ldawt node` is a thin layer over [`run`].

pub mod dispatch;
pub mod identity;
pub mod peers;
pub mod rlimit;
mod status;
pub mod swarm_key;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::coordinator::{
    Coordinator, CoordinatorConfig, CoordinatorError, CoordinatorHandle, FinalReport, IntakeLimits,
};
use crate::engine::EngineConfig;
use crate::model::ids::DatasetId;
use crate::model::lease::LeaseConfig;
use crate::model::time::{Clock, SystemClock};
use crate::net::{self, NetConfig, NetError};
use crate::protocol::status::NodeStatus;
use crate::protocol::swarm::Gossip;
use crate::seed::{SeedError, SeedSpec, SeededDataset};
use crate::store::{Store, StoreError};
use crate::worker::activity::Activity;
use crate::worker::link::SeederLink;
use crate::worker::stats::Probe;
use crate::worker::{self, Offer, WorkerConfig, WorkerSummary};
use identity::IdentityError;
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

fn mkdir(p: &std::path::Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(p).map_err(|source| NodeError::Io {
        path: p.display().to_string(),
        source,
    })
}

/// The marker naming the dataset whose results an `--out` directory holds.
const OUT_MARKER: &str = ".ldawt-dataset";

/// Claims `out` for `ds`: refuses a directory that already holds another dataset's results
/// (two seeds into one `--out` would overwrite each other's archives, results and overview).
fn claim_out_dir(out: &std::path::Path, ds: &SeededDataset) -> Result<(), NodeError> {
    let marker = out.join(OUT_MARKER);
    let mine = format!("{} {}\n", ds.id.to_hex(), ds.name);
    match std::fs::read_to_string(&marker) {
        Ok(text) if text.split_whitespace().next() == Some(ds.id.to_hex().as_str()) => Ok(()),
        Ok(text) => Err(NodeError::OutTaken {
            out: out.display().to_string(),
            existing: text.trim().to_string(),
            new: ds.id.to_hex(),
        }),
        Err(_) => std::fs::write(&marker, mine).map_err(|source| NodeError::Io {
            path: marker.display().to_string(),
            source,
        }),
    }
}

/// Runs a node until its seeded dataset is finished (unless `keep_serving`), its worker went
/// idle (`exit_when_idle`), or `shutdown` fires, telling `reporter` what happens.
pub async fn run(
    cfg: NodeConfig,
    shutdown: CancellationToken,
    mut reporter: impl NodeReporter,
) -> Result<NodeOutcome, NodeError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    mkdir(&cfg.data_dir)?;
    let swarm_key = swarm_key::resolve(&cfg.swarm_key)?;
    if swarm_key.psk.is_none() {
        tracing::warn!(
            "open swarm (--open): any host that can reach this node can join, receive rows and report results"
        );
    }
    let keypair = identity::load_or_create(&cfg.data_dir.join("identity.key"))?;
    let me = keypair.public().to_peer_id().to_string();
    let stop = shutdown.child_token();
    // The coordinator outlives the worker at shutdown, so this node's own leases are given
    // back (and persisted) before it stops; dropped on any early return.
    let coord_stop = CancellationToken::new();
    let _coord_guard = coord_stop.clone().drop_guard();

    // Seeding and the coordinator.
    let (gossip_tx, mut gossip_rx) = mpsc::unbounded_channel::<Gossip>();
    let mut seeded = None;
    let mut coord = None;
    // Whose free space a node that does not work reports: a seeder's --out, else its data dir.
    let mut disk_dir = cfg.data_dir.clone();
    if let Some(spec) = cfg.seed.clone() {
        let out = cfg.out.clone().unwrap_or_else(|| PathBuf::from("."));
        disk_dir = out.clone();
        mkdir(&out)?;
        let data = cfg.data_dir.clone();
        let ds = tokio::task::spawn_blocking(move || crate::seed::seed(&spec, &data))
            .await
            .map_err(|e| NodeError::Io {
                path: "seeding".into(),
                source: std::io::Error::other(e),
            })??;
        claim_out_dir(&out, &ds)?;
        let settings = seeder_settings(&cfg.engine, &cfg.data_dir, &out, &ds).await?;
        let ds = parquet_names(ds, cfg.engine.format);
        let store = Store::open(&cfg.data_dir.join("leases.redb"))?;
        let mut c = Coordinator::new(
            CoordinatorConfig {
                out,
                data_dir: cfg.data_dir.clone(),
                lease: cfg.lease,
                stored: cfg.stored_files.clone(),
                intake: IntakeLimits {
                    max_file_size: cfg.engine.max_file_size,
                    max_archive_bytes: cfg.max_archive_bytes,
                    ..IntakeLimits::default()
                },
                retry_failed: cfg.retry_failed,
                local_peer: Some(me.clone()),
                settings: Some(settings),
                swarm_per_host: cfg.swarm_per_host,
            },
            store,
        );
        let resumed = c.add_dataset(ds.clone(), clock.now()).await?;
        seeded = Some((ds, resumed));
        coord = Some(CoordinatorHandle::spawn(
            c,
            clock.clone(),
            gossip_tx.clone(),
            coord_stop.clone(),
        ));
    }

    // Transport.
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
    let peers = Arc::new(Mutex::new(PeerTable::new(peers::stall_after(
        cfg.heartbeat,
    ))));
    tokio::spawn(dispatch::run(
        events,
        coord.clone(),
        peers.clone(),
        clock.clone(),
    ));

    // Status endpoint.
    let activity = Activity::new();
    let probe = Arc::new(Probe::new());
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
        peer_id: me.clone(),
        join_addrs: join_addrs.clone(),
        status_addr,
        seeded: seeded.clone(),
        swarm_key: swarm_key.clone(),
    });

    // Worker.
    let (offers_tx, offers_rx) = watch::channel(Vec::<Offer>::new());
    let work_dir = cfg.data_dir.join("work");
    let worker_cfg = WorkerConfig {
        me: me.clone(),
        work_dir: work_dir.clone(),
        engine: cfg.engine.clone(),
        exit_when_idle: cfg.exit_when_idle,
        max_leases: cfg.max_leases,
        poll: Duration::from_millis(300),
        allow_private_urls: cfg.allow_private_urls,
    };
    let worker_task = cfg.work.then(|| {
        tokio::spawn(worker::run(
            worker_cfg.clone(),
            offers_rx,
            probe.clone(),
            activity.clone(),
            stop.clone(),
        ))
    });

    // Heartbeats, announcements, offers, status.
    let started = clock.now();
    let mut tick = tokio::time::interval(cfg.heartbeat);
    let mut status_tick = tokio::time::interval(Duration::from_millis(500));
    let local_ds: Vec<DatasetId> = seeded.iter().map(|(d, _)| d.id).collect();
    let mut worker_task = worker_task;
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
            done = async { match worker_task.as_mut() { Some(t) => t.await.ok(), None => std::future::pending().await } } => {
                outcome.worker = done;
                worker_task = None;
                if coord.is_none() {
                    break;
                }
            }
            Some(g) = gossip_rx.recv() => {
                if let Err(e) = client.publish(g).await {
                    tracing::debug!("cannot publish: {e}");
                }
            }
            _ = tick.tick() => {
                let stats = status::own_stats(&probe, &activity, &worker_cfg, cfg.work, coord.is_some(), &disk_dir);
                let hb = Gossip::Heartbeat { stats, nonce: fastrand::u64(..), sent_at: clock.now() };
                let _ = client.publish(hb).await;
                if let Some(c) = &coord
                    && let Ok(snap) = c.snapshot(&me).await
                {
                    for a in snap.announcements {
                        let _ = client.publish(a).await;
                    }
                }
                let mut offers: Vec<Offer> = Vec::new();
                if let Some(c) = &coord {
                    offers.extend(local_ds.iter().map(|d| Offer { dataset: *d, link: SeederLink::Local { coord: c.clone() }, open: true }));
                }
                let remote = peers.lock().map(|p| p.announced(clock.now())).unwrap_or_default();
                for (dataset, seeder, open) in remote {
                    if !local_ds.contains(&dataset) {
                        offers.push(Offer { dataset, link: SeederLink::Remote { client: client.clone(), peer: seeder }, open });
                    }
                }
                let _ = offers_tx.send(offers);
            }
            _ = status_tick.tick() => {
                status::log_liveness(&peers, clock.now());
                let doc = status::build(&status::Inputs {
                    me: &me,
                    join_addrs: &join_addrs,
                    started,
                    now: clock.now(),
                    work: cfg.work,
                    coord: coord.as_ref(),
                    peers: &peers,
                    probe: &probe,
                    activity: &activity,
                    worker_cfg: &worker_cfg,
                    disk_dir: &disk_dir,
                }).await;
                reporter.progress(&doc);
                let _ = status_tx.send(doc);
            }
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

/// A seeder's dataset settings; for webdataset with the dataset's class table (computed over
/// every seeded row, written to `<out>/<name>.classes.json`, sent to every worker).
async fn seeder_settings(
    engine: &crate::engine::EngineConfig,
    data_dir: &std::path::Path,
    out: &std::path::Path,
    ds: &crate::seed::SeededDataset,
) -> Result<crate::protocol::settings::DatasetSettings, NodeError> {
    use crate::verify::classes;
    let mut settings = crate::protocol::settings::DatasetSettings::from_engine(engine);
    if engine.format != crate::engine::OutputFormat::Webdataset {
        return Ok(settings);
    }
    let path = classes::classes_file(out, ds);
    let io_err = |source: std::io::Error| NodeError::Io {
        path: path.display().to_string(),
        source,
    };
    let (data, seeded) = (data_dir.to_path_buf(), ds.clone());
    let names = tokio::task::spawn_blocking(move || classes::class_table(&data, &seeded))
        .await
        .map_err(|e| io_err(std::io::Error::other(e)))?
        .map_err(io_err)?;
    settings.class_names = names;
    settings.check().map_err(|e| {
        io_err(std::io::Error::other(format!(
            "the dataset's class table cannot be sent to workers: {e}"
        )))
    })?;
    let text = serde_json::to_vec_pretty(&classes::table_json(&settings.class_names))
        .map_err(|e| io_err(std::io::Error::other(e)))?;
    std::fs::write(&path, text).map_err(io_err)?;
    Ok(settings)
}

/// With `--format parquet` each shard is one images parquet: `<stem>.parquet` instead of the
/// seeded `<stem>.tar.gz` (the grant, the stored file and the merged results all use it).
fn parquet_names(
    mut ds: crate::seed::SeededDataset,
    format: crate::engine::OutputFormat,
) -> crate::seed::SeededDataset {
    if format == crate::engine::OutputFormat::Parquet {
        for name in &mut ds.archive_names {
            *name = format!(
                "{}.parquet",
                crate::archive::archive_stem(std::path::Path::new(name))
            );
        }
    }
    ds
}
