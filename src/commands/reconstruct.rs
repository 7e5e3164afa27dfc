//! `ldawt reconstruct`: command-line glue (not built yet).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalOpts;

/// Arguments of `ldawt reconstruct`.
#[derive(Debug, Args)]
pub struct ReconstructArgs {}

/// Runs `ldawt reconstruct`.
pub async fn run(_args: ReconstructArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    super::not_built("reconstruct")
}
