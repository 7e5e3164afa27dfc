//! `ldawt split`: command-line glue (not built yet).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalOpts;

/// Arguments of `ldawt split`.
#[derive(Debug, Args)]
pub struct SplitArgs {}

/// Runs `ldawt split`.
pub async fn run(_args: SplitArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    super::not_built("split")
}
