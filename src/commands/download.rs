//! `ldawt download`: command-line glue (not built yet).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalOpts;

/// Arguments of `ldawt download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {}

/// Runs `ldawt download`.
pub async fn run(_args: DownloadArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    super::not_built("download")
}
