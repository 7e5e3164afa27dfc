//! `ldawt slurm`: command-line glue over `crate::slurm` — collects the job's values, renders
//! the sbatch script and prints it or writes it (atomically, executable) to `--output`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::commands::cli::GlobalOpts;
use crate::exit::UsageError;
use crate::report::say;
use crate::slurm::{SlurmJob, SwarmAccess, render};

/// Arguments of `ldawt slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// The swarm address every node joins: the seeder's multiaddr, as its `ldawt node` prints
    /// it (`/ip4/10.0.0.5/tcp/4001/p2p/12D3KooW…`).
    #[arg(long)]
    pub join: String,
    /// The swarm key file every node reads (the seeder prints its path with the `--join`
    /// line). It must be readable at the same path on the compute nodes (shared
    /// filesystem); the script passes the path, never the key.
    #[arg(long, value_name = "FILE", required_unless_present = "open")]
    pub swarm_key: Option<PathBuf>,
    /// The nodes join an open swarm without a key (`ldawt node --open`).
    #[arg(long, conflicts_with = "swarm_key")]
    pub open: bool,
    /// Each node exits after holding no lease for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub exit_when_idle: u64,
    /// Nodes to allocate; one `ldawt node` runs on each.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// CPUs per node.
    #[arg(long, default_value_t = 4)]
    pub cpus_per_task: u32,
    /// Memory per node (Slurm syntax: 16G, 4000M).
    #[arg(long, default_value = "16G")]
    pub mem: String,
    /// Wall-time limit (Slurm syntax: 4:00:00, 1-00:00:00).
    #[arg(long, default_value = "4:00:00")]
    pub time: String,
    /// Partition to submit to.
    #[arg(long)]
    pub partition: Option<String>,
    /// Account to charge.
    #[arg(long)]
    pub account: Option<String>,
    /// Slurm job name (`#SBATCH --job-name`).
    #[arg(long, default_value = "ldawt")]
    pub job_name: String,
    /// Path of the ldawt binary on the compute nodes (default: this binary's absolute path,
    /// right when the cluster shares the filesystem).
    #[arg(long)]
    pub ldawt: Option<String>,
    /// Directory under which each node creates its working directory.
    #[arg(long, default_value = "/tmp/ldawt")]
    pub work_root: String,
    /// Slurm log file pattern (%j = job id, %N = node name).
    #[arg(long, default_value = "ldawt-%j.out")]
    pub log: String,
    /// Extra argument passed to every `ldawt node` (repeat for several).
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// Write the script here (mode 755) instead of printing it.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs `ldawt slurm`.
pub async fn run(args: SlurmArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let ldawt = match args.ldawt {
        Some(path) => path,
        None => std::env::current_exe()
            .context("cannot find this binary's path; pass --ldawt")?
            .display()
            .to_string(),
    };
    let access = match &args.swarm_key {
        Some(path) => {
            // Refuse a missing or malformed key now, not on the compute nodes.
            crate::node::swarm_key::load(path).map_err(|e| UsageError::new(e.to_string()))?;
            let abs = std::path::absolute(path)
                .map_err(|e| UsageError::new(format!("--swarm-key {}: {e}", path.display())))?;
            SwarmAccess::KeyFile(abs.display().to_string())
        }
        None => SwarmAccess::Open,
    };
    let job = SlurmJob {
        join: args.join,
        access,
        idle_secs: args.exit_when_idle,
        nodes: args.nodes,
        cpus_per_task: args.cpus_per_task,
        mem: args.mem,
        time: args.time,
        partition: args.partition,
        account: args.account,
        job_name: args.job_name,
        ldawt,
        work_root: args.work_root,
        output_pattern: args.log,
        node_args: args.node_args,
    };
    let script = render(&job).map_err(|e| UsageError::new(e.to_string()))?;
    let Some(path) = args.output else {
        std::io::stdout().write_all(script.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    };
    let unwritable = |e: std::io::Error| {
        UsageError::new(format!("cannot write --output {}: {e}", path.display()))
    };
    crate::layout::write_atomic_mode(&path, script.as_bytes(), 0o755).map_err(unwritable)?;
    say!(
        "wrote {}; submit it with: sbatch {}",
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
