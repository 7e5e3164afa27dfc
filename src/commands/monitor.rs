//! `ldawt monitor`: command-line glue (not built yet).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalOpts;

/// Arguments of `ldawt monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {}

/// Runs `ldawt monitor`.
pub async fn run(_args: MonitorArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    super::not_built("monitor")
}
