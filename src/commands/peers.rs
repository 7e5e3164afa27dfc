//! `ldawt peers`: command-line glue (not built yet).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalOpts;

/// Arguments of `ldawt peers`.
#[derive(Debug, Args)]
pub struct PeersArgs {}

/// Runs `ldawt peers`.
pub async fn run(_args: PeersArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    super::not_built("peers")
}
