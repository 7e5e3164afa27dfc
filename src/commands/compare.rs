//! `ldawt compare`: command-line glue (not built yet).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalOpts;

/// Arguments of `ldawt compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {}

/// Runs `ldawt compare`.
pub async fn run(_args: CompareArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    super::not_built("compare")
}
