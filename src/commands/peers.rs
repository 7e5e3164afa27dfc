//! `ldawt peers`: asks a running node's control endpoint for its status and prints every known
//! peer (resources, leases, throughput, last seen) and the progress of every dataset, as a
//! table or as the raw JSON document (`--json`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::commands::cli::GlobalOpts;
use crate::exit::UsageError;
use crate::protocol::status::DEFAULT_STATUS_ADDR;
use crate::status_client::{StatusClientError, fetch_status};

/// Arguments of `ldawt peers`.
#[derive(Debug, Args)]
pub struct PeersArgs {
    /// Print the node's status document as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The node's control endpoint (`host:port`), as given to `ldawt node --status-addr`.
    #[arg(long, default_value = DEFAULT_STATUS_ADDR, env = "LDAWT_STATUS_ADDR")]
    pub status_addr: String,
}

/// Runs `ldawt peers`.
pub async fn run(args: PeersArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let status = match fetch_status(&args.status_addr).await {
        Ok(status) => status,
        Err(e @ StatusClientError::Unreachable { .. }) => {
            return Err(UsageError::new(format!(
                "{e} (is `ldawt node` running there? pass --status-addr to query another node)"
            ))
            .into());
        }
        Err(e) => return Err(UsageError::new(e.to_string()).into()),
    };
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&status).context("rendering the status")?;
        json.push('\n');
        json
    } else {
        crate::peers_view::render(&status)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
