//! `ldawt slurm`: command-line glue (not built yet).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalOpts;

/// Arguments of `ldawt slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {}

/// Runs `ldawt slurm`.
pub async fn run(_args: SlurmArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    super::not_built("slurm")
}
