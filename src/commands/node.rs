//! `ldawt node`: command-line glue over [`crate::node::run`]. Parses the flags (and LDAWT's
//! manager config JSON with `--config`), prints the `--join` lines when up, and the final
//! report of a seeder.

use std::fs::File;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use libp2p::Multiaddr;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::cli::GlobalOpts;
use crate::engine::EngineConfig;
use crate::exit::{self, UsageError};
use crate::model::lease::LeaseConfig;
use crate::model::shard::{DEFAULT_SHARD_ROWS, ShardSizing};
use crate::net::NetError;
use crate::node::{NodeConfig, NodeError, NodeOutcome, NodeReporter, Ready};
use crate::protocol::status::{DEFAULT_STATUS_ADDR, NodeStatus};
use crate::seed::{Columns, SeedError, SeedSpec};

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
    /// Output directory of a seeder (archives, results.parquet, overview.json).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Identity, lease database and scratch space. Default: `<out>/.ldawt` for a seeder,
    /// `$XDG_DATA_HOME/ldawt` (or `~/.local/share/ldawt`) otherwise.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Seconds a lease lives without renewal (a silent worker loses its shard after that).
    #[arg(long, value_name = "SECS")]
    pub lease_ttl: Option<u64>,
    /// Failed attempts per shard before it is given up.
    #[arg(long)]
    pub max_retries: Option<u32>,
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
    /// Requests in flight per shard.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Requests in flight per host.
    #[arg(long)]
    pub per_host: Option<usize>,
    /// Attempts per URL.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Seconds allowed per download attempt.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
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
    /// Seconds between heartbeats and dataset announcements.
    #[arg(long, value_name = "SECS", default_value_t = 2.0, hide = true)]
    pub heartbeat: f64,
}

/// LDAWT's manager config (`taskvine.json`).
#[derive(Debug, Default, Deserialize)]
struct LdawtConfig {
    port_number: Option<u16>,
    parquets_directory: Option<PathBuf>,
    url_col: Option<String>,
    class_col: Option<String>,
    timeout_minutes: Option<u64>,
    max_retries: Option<u32>,
}

fn read_config(path: &Path) -> anyhow::Result<LdawtConfig> {
    let file = File::open(path)
        .map_err(|e| UsageError::new(format!("cannot read config {}: {e}", path.display())))?;
    let cfg: LdawtConfig = serde_json::from_reader(file)
        .map_err(|e| UsageError::new(format!("config {} is not valid: {e}", path.display())))?;
    Ok(cfg)
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

/// Turns the flags (and config) into a node configuration.
pub fn node_config(args: &NodeArgs) -> anyhow::Result<NodeConfig> {
    let file = match &args.config {
        Some(p) => read_config(p)?,
        None => LdawtConfig::default(),
    };
    let seed_path = args.seed.clone().or(file.parquets_directory);
    let out = args
        .out
        .clone()
        .or_else(|| seed_path.as_ref().map(|_| PathBuf::from("results")));
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
        SeedSpec {
            path,
            columns: Columns {
                url,
                class: args.class_col.clone().or(file.class_col.clone()),
                group: args.group_col.clone(),
            },
            sizing,
        }
    });
    if args.shard_rows == Some(0) || args.shards == Some(0) {
        return Err(UsageError::new("--shard-rows and --shards must be at least 1").into());
    }
    let data_dir = match (&args.data_dir, &out, &seed) {
        (Some(d), _, _) => d.clone(),
        (None, Some(o), Some(_)) => o.join(".ldawt"),
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
    let mut engine = EngineConfig::default();
    if let Some(c) = args.concurrency {
        engine.concurrency = c.max(1);
    }
    if let Some(p) = args.per_host {
        engine.per_host = p.max(1);
    }
    if let Some(a) = args.max_attempts {
        engine.max_attempts = a.max(1);
    }
    if let Some(t) = args.timeout {
        engine.total_timeout = Duration::from_secs(t.max(1));
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
    Ok(NodeConfig {
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
    })
}

/// Runs `ldawt node`.
pub async fn run(args: NodeArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let mut cfg = node_config(&args)?;
    if let Some(spec) = &cfg.seed {
        // Bad input is refused before anything is created.
        crate::seed::validate(spec)?;
    }
    check_listen_ports(&cfg.listen)?;
    if let Err(e) = std::net::TcpListener::bind(cfg.status_addr) {
        return Err(UsageError::new(format!(
            "cannot serve the status endpoint on {}: {e} (another node there? pass --status-addr)",
            cfg.status_addr
        ))
        .into());
    }
    let uploader = match &args.upload_to {
        Some(url) if cfg.seed.is_some() => {
            let up = Uploader::start(url, args.upload_user.as_deref()).await?;
            cfg.stored_files = Some(up.sender());
            Some(up)
        }
        Some(_) => {
            return Err(UsageError::new(
                "--upload-to needs --seed (the seeder stores the archives)",
            )
            .into());
        }
        None => None,
    };
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create the data dir {}", cfg.data_dir.display()))?;
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(forward_signals(shutdown.clone()));
    let reporter = CliReporter::new(global.no_progress);
    let result = crate::node::run(cfg, shutdown, reporter).await;
    let upload_failed = match uploader {
        Some(up) => {
            if let Ok(o) = &result {
                for r in &o.reports {
                    up.send(r.results_path.clone());
                    up.send(r.results_path.with_file_name("overview.json"));
                }
            }
            up.finish().await
        }
        None => false,
    };
    let outcome = match result {
        Ok(o) => o,
        Err(NodeError::Seed(SeedError::Input(e))) => return Err(e.into()),
        Err(e @ (NodeError::Status { .. } | NodeError::Net(NetError::Listen { .. }))) => {
            return Err(UsageError::new(e.to_string()).into());
        }
        Err(e) => return Err(e.into()),
    };
    let code = print_outcome(&outcome);
    Ok(ExitCode::from(if upload_failed && code == exit::OK {
        exit::PARTIAL
    } else {
        code
    }))
}

/// Uploads the seeder's stored files to a WebDAV collection, one at a time, as they arrive.
struct Uploader {
    tx: tokio::sync::mpsc::UnboundedSender<PathBuf>,
    task: tokio::task::JoinHandle<(u64, Vec<(PathBuf, String)>)>,
    url: String,
}

impl Uploader {
    /// Checks the server and credentials (bad ones exit 2 before anything starts).
    async fn start(url: &str, user: Option<&str>) -> anyhow::Result<Self> {
        use crate::commands::upload::{client_for, webdav_failure};
        let base = crate::webdav::parse_url(url).map_err(webdav_failure)?;
        let client = client_for(&base, user, crate::webdav::RetryPolicy::default())?;
        client.list(&base, false).await.map_err(webdav_failure)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
        let task = tokio::spawn(async move {
            let sent = std::sync::atomic::AtomicU64::new(0);
            let (mut done, mut failed) = (0u64, Vec::new());
            while let Some(path) = rx.recv().await {
                match crate::webdav::upload_file(&client, &path, &base, true, &sent).await {
                    Ok(_) => done += 1,
                    Err(e) => {
                        tracing::warn!(file = %path.display(), "upload failed: {e}");
                        failed.push((path, e.to_string()));
                    }
                }
            }
            (done, failed)
        });
        Ok(Self {
            tx,
            task,
            url: url.to_string(),
        })
    }

    fn sender(&self) -> tokio::sync::mpsc::UnboundedSender<PathBuf> {
        self.tx.clone()
    }

    fn send(&self, path: PathBuf) {
        let _ = self.tx.send(path);
    }

    /// Waits for the queue to drain; prints the outcome; true if some file failed.
    async fn finish(self) -> bool {
        drop(self.tx);
        let (done, failed) = self.task.await.unwrap_or_default();
        println!("uploaded {done} file(s) to {}", self.url);
        for (path, e) in &failed {
            println!("  upload failed: {}: {e}", path.display());
        }
        !failed.is_empty()
    }
}

/// The TCP port of a multiaddr, if it has one.
fn tcp_port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

/// libp2p listens with `SO_REUSEPORT`, so a second node on a busy port would silently share
/// it; a plain bind first turns that into a clear error.
fn check_listen_ports(listen: &[Multiaddr]) -> anyhow::Result<()> {
    use libp2p::multiaddr::Protocol;
    for addr in listen {
        let mut ip = None;
        let mut port = None;
        for p in addr.iter() {
            match p {
                Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
                Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
                Protocol::Tcp(t) => port = Some(t),
                _ => {}
            }
        }
        if let (Some(ip), Some(port)) = (ip, port)
            && port != 0
            && let Err(e) = std::net::TcpListener::bind((ip, port))
        {
            return Err(UsageError::new(format!(
                "cannot listen on {addr}: {e} (another node there? pass another --listen port)"
            ))
            .into());
        }
    }
    Ok(())
}

/// One node per data dir: a second one would share its identity and lease database.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join("node.lock");
    let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    if f.try_lock().is_err() {
        return Err(UsageError::new(format!(
            "the data dir {} is in use by another ldawt node; give this one its own --data-dir",
            dir.display()
        ))
        .into());
    }
    Ok(f)
}

async fn forward_signals(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
}

/// The node's user-facing output: the `--join` lines on stdout, then progress on stderr (a
/// live line on a terminal, one plain line every 10 s otherwise).
struct CliReporter {
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
}

/// Seconds between plain progress lines.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

impl CliReporter {
    fn new(no_progress: bool) -> Self {
        let bar = (!no_progress && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            last_line: None,
        }
    }
}

impl NodeReporter for CliReporter {
    fn ready(&mut self, r: &Ready) {
        print_ready(r);
    }

    fn progress(&mut self, s: &NodeStatus) {
        let line = progress_line(s);
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None => {
                if self.last_line.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
                    self.last_line = Some(Instant::now());
                    eprintln!("progress: {line}");
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// One line: each dataset's shards, the peers, this node's work and rate.
fn progress_line(s: &NodeStatus) -> String {
    let mut parts: Vec<String> = s
        .datasets
        .iter()
        .map(|d| {
            format!(
                "{}: {}/{} shards done, {} leased, {} failed",
                d.name, d.shards_done, d.shards_total, d.shards_leased, d.shards_failed
            )
        })
        .collect();
    let connected = s.peers.iter().filter(|p| p.connected).count();
    parts.push(format!("{connected} peer(s)"));
    if s.roles.iter().any(|r| r == "worker") {
        parts.push(format!(
            "here: {} lease(s), {} shard(s) done, {:.1} MB/s, {:.0} img/s",
            s.local.leases_held, s.local.shards_done, s.local.mb_per_s, s.local.images_per_s
        ));
    }
    parts.join(" · ")
}

fn print_ready(r: &Ready) {
    println!("ldawt node {}", r.peer_id);
    if let Some((ds, resumed)) = &r.seeded {
        println!(
            "seeding {} (dataset {}): {} rows in {} shards{}",
            ds.name,
            ds.id.to_hex(),
            ds.rows_total,
            ds.shard_rows.len(),
            if *resumed { ", resumed" } else { "" }
        );
    }
    if r.join_addrs.is_empty() {
        println!("warning: no listen address is up; peers cannot join this node");
    } else {
        println!("join this swarm with:");
        for a in &r.join_addrs {
            println!("  ldawt node --join {a}");
        }
    }
    println!("status: http://{}/status", r.status_addr);
}

/// Prints the final report and chooses the exit code.
fn print_outcome(o: &NodeOutcome) -> u8 {
    if o.interrupted {
        println!("interrupted: leases given back; rerun the same command to resume");
        return exit::INTERRUPTED;
    }
    if let Some(w) = &o.worker {
        println!(
            "worker: {} shards completed, {} lost, {} given back",
            w.completed, w.lost, w.abandoned
        );
    }
    let mut code = exit::OK;
    for r in &o.reports {
        println!(
            "dataset {} ({}): {} rows — {} ok, {} failed, {} skipped; {}/{} shards done, {:.1} MB",
            r.name,
            r.dataset_id,
            r.rows_total,
            r.ok,
            r.failed,
            r.skipped,
            r.shards_done,
            r.shards_total,
            r.bytes as f64 / 1e6
        );
        println!("results: {}", r.results_path.display());
        for (kind, n) in &r.error_breakdown {
            println!("  {kind}: {n} rows");
        }
        if !r.failed_shards.is_empty() {
            code = exit::PARTIAL;
            println!("failed shards (retries exhausted):");
            for f in &r.failed_shards {
                println!(
                    "  shard {} ({}, {} rows): {} attempts lost, last error: {}",
                    f.shard,
                    f.archive,
                    f.rows,
                    f.failures,
                    f.last_error.as_deref().unwrap_or("-")
                );
            }
        }
        if !r.failed_rows_sample.is_empty() {
            println!("failed rows (first {}):", r.failed_rows_sample.len());
            for (i, url, kind) in &r.failed_rows_sample {
                println!(
                    "  row {i}: {} ({})",
                    url.as_deref().unwrap_or("<no url>"),
                    kind.as_deref().unwrap_or("failed")
                );
            }
        }
    }
    code
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
