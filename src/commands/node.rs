//! `ldawt node`: command-line glue (not built yet).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalOpts;

/// Arguments of `ldawt node`.
#[derive(Debug, Args)]
pub struct NodeArgs {}

/// Runs `ldawt node`.
pub async fn run(_args: NodeArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    super::not_built("node")
}
