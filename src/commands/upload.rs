//! `ldawt upload`: command-line glue (not built yet).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalOpts;

/// Arguments of `ldawt upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {}

/// Runs `ldawt upload`.
pub async fn run(_args: UploadArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    super::not_built("upload")
}
