//! `ldawt fixture-server`: command-line glue (not built yet).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalOpts;

/// Arguments of `ldawt fixture-server`.
#[derive(Debug, Args)]
pub struct FixtureServerArgs {}

/// Runs `ldawt fixture-server`.
pub async fn run(_args: FixtureServerArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    super::not_built("fixture-server")
}
