//! `ldawt size`: command-line glue (not built yet).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalOpts;

/// Arguments of `ldawt size`.
#[derive(Debug, Args)]
pub struct SizeArgs {}

/// Runs `ldawt size`.
pub async fn run(_args: SizeArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    super::not_built("size")
}
