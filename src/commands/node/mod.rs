//! `ldawt node`: command-line glue over [`crate::node::run`]. Parses the flags (and LDAWT's
//! manager config JSON with `--config`), prints the `--join` lines when up, and the final
//! report of a seeder.
//!
//! Layout: `args` holds the flags and their translation into a `NodeConfig`; `output` renders
//! progress and the final report; this file starts the node and wires signals, the data-dir
//! lock and the optional WebDAV uploader.

mod access;
mod args;
mod output;

pub use args::{NodeArgs, node_config};
use output::{CliReporter, print_outcome};

use std::fs::File;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use libp2p::Multiaddr;
use tokio_util::sync::CancellationToken;

use crate::commands::cli::GlobalOpts;
use crate::coordinator::CoordinatorError;
use crate::exit::{self, UsageError};
use crate::net::NetError;
use crate::node::NodeError;
use crate::seed::SeedError;
use crate::webdav::queue::UploadQueue;

/// Runs `ldawt node`.
pub async fn run(args: NodeArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let mut cfg = node_config(&args)?;
    if let Some(spec) = &cfg.seed {
        // Bad input is refused before anything is created.
        crate::seed::validate(spec)?;
    }
    check_listen_ports(&cfg.listen)?;
    if let Err(e) = std::net::TcpListener::bind(cfg.status_addr) {
        return Err(UsageError::new(format!(
            "cannot serve the status endpoint on {}: {e} (another node there? pass --status-addr)",
            cfg.status_addr
        ))
        .into());
    }
    let uploader = match &args.upload_to {
        Some(url) if cfg.seed.is_some() => {
            let up = Uploader::start(url, args.upload_user.as_deref()).await?;
            cfg.stored_files = Some(up.queue.sender());
            Some(up)
        }
        Some(_) => {
            return Err(UsageError::new(
                "--upload-to needs --seed (the seeder stores the archives)",
            )
            .into());
        }
        None => None,
    };
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create the data dir {}", cfg.data_dir.display()))?;
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let shutdown = CancellationToken::new();
    crate::signals::cancel_on_stop(shutdown.clone())
        .context("installing the SIGINT/SIGTERM handlers")?;
    let reporter = CliReporter::new(global.no_progress);
    let result = crate::node::run(cfg, shutdown, reporter).await;
    let upload_failed = match uploader {
        Some(up) => {
            if let Ok(o) = &result {
                for r in &o.reports {
                    let out = r.results_path.parent().unwrap_or(std::path::Path::new("."));
                    let out = crate::layout::OutDir::new(out);
                    up.queue.send(out.results());
                    up.queue.send(out.overview());
                }
            }
            up.finish().await
        }
        None => false,
    };
    let outcome = match result {
        Ok(o) => o,
        Err(NodeError::Seed(SeedError::Input(e))) => return Err(e.into()),
        // Exit code 4 (exit::STORAGE_FAILED): the error names the directory and its free space.
        Err(NodeError::Coordinator(CoordinatorError::StorageFailed(f))) => return Err(f.into()),
        Err(
            e @ (NodeError::Status { .. }
            | NodeError::Net(NetError::Listen { .. })
            | NodeError::SwarmKey(_)
            | NodeError::OutTaken { .. }),
        ) => {
            return Err(UsageError::new(e.to_string()).into());
        }
        Err(e) => return Err(e.into()),
    };
    let code = print_outcome(&outcome);
    Ok(ExitCode::from(if upload_failed && code == exit::OK {
        exit::PARTIAL
    } else {
        code
    }))
}

/// The seeder's stored files, uploaded to a WebDAV collection as they arrive
/// ([`UploadQueue`]).
struct Uploader {
    queue: UploadQueue,
    url: String,
}

impl Uploader {
    /// Checks the server and credentials (bad ones exit 2 before anything starts).
    async fn start(url: &str, user: Option<&str>) -> anyhow::Result<Self> {
        use crate::commands::upload::{client_for, webdav_failure};
        let base = crate::webdav::parse_url(url).map_err(webdav_failure)?;
        let client = client_for(&base, user, crate::webdav::RetryPolicy::webdav())?;
        client.list(&base, false).await.map_err(webdav_failure)?;
        Ok(Self {
            queue: UploadQueue::start(client, base),
            url: url.to_string(),
        })
    }

    /// Waits for the queue to drain; prints the outcome; true if some file failed.
    async fn finish(self) -> bool {
        let report = self.queue.finish().await;
        output::say!("uploaded {} file(s) to {}", report.done, self.url);
        for (path, e) in &report.failed {
            output::say!("  upload failed: {}: {e}", path.display());
        }
        !report.failed.is_empty()
    }
}

/// Refuses a busy `--listen` port with a clear error before anything is created (the check
/// itself lives in `net`, which applies it again when it binds).
fn check_listen_ports(listen: &[Multiaddr]) -> anyhow::Result<()> {
    for addr in listen {
        crate::net::ensure_port_free(addr).map_err(|e| UsageError::new(e.to_string()))?;
    }
    Ok(())
}

/// One node per data dir: a second one would share its identity and lease database.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let path = crate::layout::DataDir::new(dir).lock_file();
    let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    if f.try_lock().is_err() {
        return Err(UsageError::new(format!(
            "the data dir {} is in use by another ldawt node; give this one its own --data-dir",
            dir.display()
        ))
        .into());
    }
    Ok(f)
}

#[cfg(test)]
mod tests;
