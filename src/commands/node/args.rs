//! The flags of `ldawt node`, merged over LDAWT's manager config JSON (read by
//! [`crate::commands::config`]), and their translation into a validated [`NodeConfig`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use libp2p::Multiaddr;

use super::super::config::{self, ConfigFor, LdawtConfig};
use super::super::engine_args::{EngineArgs, EngineFallback};
use crate::engine::{EngineConfig, FetchConfig, OutputFormat};
use crate::exit::UsageError;
use crate::model::lease::LeaseConfig;
use crate::model::shard::{DEFAULT_SHARD_ROWS, ShardSizing};
use crate::node::NodeConfig;
use crate::protocol::settings::DatasetSettings;
use crate::protocol::status::DEFAULT_STATUS_ADDR;
use crate::seed::{Columns, SeedSpec};

use super::access::{AccessArgs, key_source};

/// Arguments of `ldawt node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Seed this dataset: a parquet/CSV file, or a directory of pre-split parquet files (one
    /// shard per file). This node then manages it and writes the archives into `--out`.
    #[arg(long, value_name = "FILE|DIR")]
    pub seed: Option<PathBuf>,
    /// Join a swarm through this node (repeatable): `/ip4/10.0.0.5/tcp/4001/p2p/12D3…`.
    #[arg(long, value_name = "MULTIADDR")]
    pub join: Vec<Multiaddr>,
    /// Listen address (repeatable). Default: every interface on TCP port 4001; `/tcp/0` picks
    /// a free port.
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
    /// Do not discover peers on the local network by mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// URL column of the seed [default: photo_url].
    #[arg(long)]
    pub url_col: Option<String>,
    /// Class column of the seed (archive folders); none if absent.
    #[arg(long)]
    pub class_col: Option<String>,
    /// Keep every value of this column inside one shard (balanced greedy split).
    #[arg(long)]
    pub group_col: Option<String>,
    /// Rows per shard (default 10,000).
    #[arg(long, conflicts_with = "shards")]
    pub shard_rows: Option<u64>,
    /// Number of shards.
    #[arg(long)]
    pub shards: Option<u32>,
    /// Output directory of a seeder (archives, results.parquet, overview.json, report.html);
    /// one dataset per directory [default: results].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Identity, lease database and scratch space. Default: `<out>/.ldawt` for a seeder,
    /// `$XDG_DATA_HOME/ldawt` (or `~/.local/share/ldawt`) otherwise.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Seconds a lease lives without renewal (a silent worker loses its shard after that)
    /// [default: 60].
    #[arg(long, value_name = "SECS")]
    pub lease_ttl: Option<u64>,
    /// Failed attempts per shard before it is given up (each distinct peer counts once). On a
    /// rerun, a higher value reopens shards that failed under the old one.
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// On a rerun of a seeder, reopen every shard that failed (fresh retry budget), and the
    /// rows of done shards that failed retryably (timeouts, 5xx, 429…): workers fetch only
    /// those, stored beside the shard as `<stem>-r<N>.tar.gz`; results.parquet keeps the newest
    /// outcome of every row.
    #[arg(long)]
    pub retry_failed: bool,
    /// Coordinate only: this node downloads nothing.
    #[arg(long)]
    pub no_work: bool,
    /// Stay up after the seeded dataset is finished.
    #[arg(long)]
    pub keep_serving: bool,
    /// Stop after holding no lease for SECS seconds (batch jobs, Slurm).
    #[arg(long, value_name = "SECS")]
    pub exit_when_idle: Option<u64>,
    /// Control endpoint (HTTP+JSON `/status`, `/metrics`) [default: 127.0.0.1:9124].
    #[arg(long, value_name = "ADDR")]
    pub status_addr: Option<SocketAddr>,
    /// LDAWT manager config JSON (`port_number`, `parquets_directory`, `url_col`, `class_col`,
    /// `timeout_minutes`, `max_retries`); flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// At most this many shards at once on this node.
    #[arg(long)]
    pub max_leases: Option<u32>,
    /// A seeder uploads every stored shard archive (and its results file) into this WebDAV
    /// collection as it arrives, then `results.parquet` and `overview.json` at the end.
    #[arg(long, value_name = "URL")]
    pub upload_to: Option<String>,
    /// WebDAV user for `--upload-to`; the password comes from LDAWT_PASSWORD or ~/.netrc.
    #[arg(long, value_name = "USER")]
    pub upload_user: Option<String>,
    /// A seeder refuses any archive transfer announcing more than this many bytes (on top of
    /// the per-shard bound: rows × largest file, and the free disk on `--out`).
    #[arg(long, value_name = "BYTES")]
    pub max_archive_bytes: Option<u64>,
    /// Seconds between heartbeats and dataset announcements.
    #[arg(long, value_name = "SECS", default_value_t = 2.0, hide = true)]
    pub heartbeat: f64,
    /// A seeder caps the requests in flight to any one host at N, summed over every worker
    /// of the swarm: each lease gets a share of N (split among the working peers, sent with
    /// the grant), and 429/503 answers reported by any worker lower it for all.
    #[arg(long, value_name = "N", requires = "seed", value_parser = clap::value_parser!(u32).range(1..))]
    pub swarm_per_host: Option<u32>,
    /// Swarm key, open swarm, allow list, private URLs.
    #[command(flatten)]
    pub access: AccessArgs,
    /// Engine options. A seeder sends them with every grant (its workers need none); on a
    /// worker, `--concurrency`, `--per-host` and `--max-file-size` are upper bounds no seeder
    /// can raise.
    #[command(flatten)]
    pub engine: EngineArgs,
}

fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("ldawt");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/ldawt");
    }
    std::env::temp_dir().join("ldawt")
}

/// The class column used when none is named: `taxon_name` (as `ldawt download`), else LDAWT's
/// `name`, whichever the first seed file has; with neither, every image goes to `unlabeled/`,
/// which is said once as a warning.
fn default_class_col(seed: &Path, url: &str) -> Option<String> {
    let first = crate::input::list_inputs(seed).ok()?.into_iter().next()?;
    let found = ["taxon_name", "name"]
        .into_iter()
        .find(|c| crate::input::open(&first, url, Some(c)).is_ok());
    if found.is_none() {
        tracing::warn!(
            "{} has no class column (taxon_name or name): every image goes to unlabeled/; \
             name one with --class-col",
            first.display()
        );
    }
    found.map(str::to_string)
}

/// Turns the flags (and config) into a node configuration.
pub fn node_config(args: &NodeArgs) -> anyhow::Result<NodeConfig> {
    let file = match &args.config {
        Some(p) => config::load(p, ConfigFor::Node).map_err(|e| UsageError::new(e.to_string()))?,
        None => LdawtConfig::default(),
    };
    let seed_path = args.seed.clone().or(file.parquets_directory);
    let out = args
        .out
        .clone()
        .or_else(|| seed_path.as_ref().map(|_| PathBuf::from("results")));
    let engine = args.engine.engine_config(&EngineFallback::default())?;
    if seed_path.is_some() {
        check_swarm_settings(&engine)?;
    } else if dataset_flags_given(&engine) {
        tracing::warn!(
            "engine options other than --concurrency, --per-host and --max-file-size are the \
             seeder's to choose: a seeder's grants replace them on this worker"
        );
    }
    let seed = seed_path.map(|path| {
        let sizing = match (args.shard_rows, args.shards) {
            (_, Some(n)) => ShardSizing::Count(n),
            (Some(r), None) => ShardSizing::Rows(r),
            (None, None) => ShardSizing::Rows(DEFAULT_SHARD_ROWS),
        };
        let url = args
            .url_col
            .clone()
            .or(file.url_col.clone())
            .unwrap_or_else(|| "photo_url".into());
        let class = args
            .class_col
            .clone()
            .or(file.class_col.clone())
            .or_else(|| default_class_col(&path, &url));
        SeedSpec {
            path,
            columns: Columns {
                url,
                class,
                group: args.group_col.clone(),
                extra: engine.input_columns(),
            },
            sizing,
        }
    });
    if args.shard_rows == Some(0) || args.shards == Some(0) {
        return Err(UsageError::new("--shard-rows and --shards must be at least 1").into());
    }
    if args.no_work && args.exit_when_idle.is_some() {
        // A node that takes no lease is never busy, so "idle" would never end anything.
        return Err(UsageError::new(
            "--exit-when-idle stops a worker that holds no lease; a --no-work node holds none \
             (a seeder stops when its dataset is finished)",
        )
        .into());
    }
    let data_dir = match (&args.data_dir, &out, &seed) {
        (Some(d), _, _) => d.clone(),
        (None, Some(o), Some(_)) => crate::layout::OutDir::new(o).default_data_dir(),
        _ => default_data_dir(),
    };
    let mut listen = args.listen.clone();
    if listen.is_empty()
        && let Some(port) = file.port_number
    {
        listen.push(format!("/ip4/0.0.0.0/tcp/{port}").parse()?);
    }
    let defaults = LeaseConfig::default();
    let ttl = args
        .lease_ttl
        .or(file.timeout_minutes.map(|m| m * 60))
        .map(Duration::from_secs)
        .unwrap_or(defaults.ttl);
    if ttl < Duration::from_secs(1) {
        return Err(UsageError::new("--lease-ttl must be at least 1 second").into());
    }
    let status_addr = match args.status_addr {
        Some(a) => a,
        None => {
            let mut a: SocketAddr = DEFAULT_STATUS_ADDR.parse()?;
            // LDAWT configs use 9124 as the manager port, which becomes the swarm port here:
            // the status endpoint then moves one port up (it is printed at start).
            if listen.iter().any(|l| tcp_port(l) == Some(a.port())) {
                a.set_port(a.port() + 1);
            }
            a
        }
    };
    let env_key = std::env::var(crate::node::swarm_key::KEY_ENV).ok();
    let swarm_key = key_source(&args.access, seed.is_some(), &data_dir, env_key.as_deref())?;
    Ok(NodeConfig {
        swarm_key,
        allow_peers: args.access.allow_peers.clone(),
        allow_private_urls: args.access.allow_private_urls,
        data_dir,
        seed,
        out,
        listen,
        join: args.join.clone(),
        mdns: !args.no_mdns,
        lease: LeaseConfig {
            ttl,
            max_retries: args
                .max_retries
                .or(file.max_retries)
                .unwrap_or(defaults.max_retries),
            speculative: true,
            copy_after: defaults.copy_after,
        },
        work: !args.no_work,
        keep_serving: args.keep_serving,
        exit_when_idle: args.exit_when_idle.map(Duration::from_secs),
        status_addr,
        engine,
        max_leases: args.max_leases,
        heartbeat: Duration::from_secs_f64(args.heartbeat.clamp(0.1, 60.0)),
        stored_files: None,
        max_archive_bytes: args.max_archive_bytes,
        retry_failed: args.retry_failed,
        swarm_per_host: args.swarm_per_host,
        clock: std::sync::Arc::new(crate::model::time::SystemClock),
    })
}

/// True when a worker was given engine options that a seeder's settings replace (all but
/// its own upper bounds).
fn dataset_flags_given(engine: &EngineConfig) -> bool {
    let bounds_only = EngineConfig {
        fetch: FetchConfig {
            per_host: engine.fetch.per_host,
            max_file_size: engine.fetch.max_file_size,
            ..FetchConfig::default()
        },
        concurrency: engine.concurrency,
        ..EngineConfig::default()
    };
    *engine != bounds_only
}

/// A seeder's engine settings must be ones its workers accept (see
/// [`DatasetSettings::check`]): refused here, before anything is seeded.
fn check_swarm_settings(engine: &EngineConfig) -> anyhow::Result<()> {
    if engine.format == OutputFormat::Files {
        return Err(UsageError::new(
            "--format files: a seeder collects one verified file per shard (classdirs or \
             webdataset tar, or parquet); a plain directory tree is for `ldawt download`",
        )
        .into());
    }
    DatasetSettings::from_engine(engine)
        .check()
        .map_err(|e| UsageError::new(format!("cannot send these settings to workers: {e}")))?;
    Ok(())
}

/// The TCP port of a multiaddr, if it has one.
fn tcp_port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}
