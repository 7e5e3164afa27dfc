//! The command line: the top-level `Cli`, global options, and the list of subcommands. Each
//! subcommand's own `*Args` struct lives next to its implementation in `commands/`.

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::telemetry::LogFormat;

/// ldawt: a peer-to-peer swarm that turns parquet lists of image URLs into per-shard archives.
#[derive(Debug, Parser)]
#[command(name = "ldawt", version, about, propagate_version = true)]
pub struct Cli {
    /// Options shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every subcommand, listed under their own heading after each
/// subcommand's options.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "LDAWT_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Never draw progress bars; print plain periodic lines instead (automatic when stderr is
    /// not a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// Every subcommand of the product.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a swarm node: `--seed DATA` manages a dataset, `--join ADDR` (or mDNS) helps.
    Node(Box<commands::node::NodeArgs>),
    /// Run the whole thing offline on this machine: a local image server, a seeder and two
    /// workers on the embedded 200-row sample; leaves the output in `ldawt-demo/`.
    Demo(commands::demo::DemoArgs),
    /// List the peers and dataset progress known to a local node.
    Peers(commands::peers::PeersArgs),
    /// Split a parquet into N balanced groups, keeping each class inside one group.
    Split(commands::split::SplitArgs),
    /// Estimate the total download size of URL lists with HEAD / Range requests.
    Size(commands::size::SizeArgs),
    /// Download one parquet/CSV shard of URLs into one archive organised by class.
    Download(commands::download::DownloadArgs),
    /// Rebuild class folders from image bytes stored inside a parquet.
    Reconstruct(commands::reconstruct::ReconstructArgs),
    /// Watch this machine (and a running node): CPU, memory, disk, network, alerts.
    Monitor(commands::monitor::MonitorArgs),
    /// Compare two file listings (text, directory, archive or WebDAV collection).
    Compare(commands::compare::CompareArgs),
    /// Render an sbatch script that starts `ldawt node --join` on Slurm nodes.
    Slurm(commands::slurm::SlurmArgs),
    /// Upload files or directories to a WebDAV collection in parallel.
    Upload(commands::upload::UploadArgs),
    /// Serve deterministic test images over HTTP (used by tests and benchmarks).
    #[command(hide = true)]
    FixtureServer(commands::fixture_server::FixtureServerArgs),
}
