//! `ldawt upload`: command-line glue over `crate::webdav::upload` — resolves credentials,
//! probes the server (bad URL, unreachable server or rejected credentials exit 2 before any
//! transfer), uploads in parallel with a progress bar and prints a summary. Hidden entries
//! (`.ldawt/`, `.incoming/`, temp files) inside the given directories are left out unless
//! `--include-hidden`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::cli::GlobalOpts;
use crate::exit::UsageError;
use crate::report::say;
use crate::webdav::upload::{plan_uploads, upload_all};
use crate::webdav::{RetryPolicy, WebDavClient, WebDavError, credentials, parse_url};

/// Arguments of `ldawt upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The WebDAV collection to upload into (created if missing), e.g.
    /// https://data.cyverse.org/dav/iplant/home/USER/run1
    #[arg(long)]
    pub to: String,
    /// Files and directories to upload; a directory `d` lands as `<to>/d/…`.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// WebDAV user; the password comes from LDAWT_PASSWORD or ~/.netrc, never the command line.
    #[arg(long)]
    pub user: Option<String>,
    /// Files sent at the same time.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Attempts per request (first try included) on server errors and dropped connections.
    #[arg(long, default_value_t = 5)]
    pub attempts: u32,
    /// Upload even files already on the server with the same size.
    #[arg(long)]
    pub overwrite: bool,
    /// Also upload hidden files and folders (names starting with `.`) found inside the given
    /// directories, such as a node's private `.ldawt/` state. A path named on the command line
    /// is always uploaded.
    #[arg(long)]
    pub include_hidden: bool,
}

/// Turns a WebDAV error into an exit-2 usage error when it is the user's input at fault.
pub(crate) fn webdav_failure(e: WebDavError) -> anyhow::Error {
    if e.is_bad_input() {
        UsageError::new(e.to_string()).into()
    } else {
        e.into()
    }
}

/// Builds a client for `url`'s host from `--user`, LDAWT_PASSWORD and ~/.netrc.
pub(crate) fn client_for(
    url: &reqwest::Url,
    user: Option<&str>,
    policy: RetryPolicy,
) -> anyhow::Result<WebDavClient> {
    let netrc = std::env::var_os("NETRC")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".netrc")));
    let creds = credentials::resolve(
        user,
        std::env::var("LDAWT_PASSWORD").ok(),
        url.host_str().unwrap_or_default(),
        netrc.as_deref(),
    );
    WebDavClient::new(creds, policy).map_err(webdav_failure)
}

/// Runs `ldawt upload`.
pub async fn run(args: UploadArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    if args.concurrency == 0 {
        return Err(UsageError::new("--concurrency must be at least 1").into());
    }
    let base = parse_url(&args.to).map_err(webdav_failure)?;
    let plan = plan_uploads(&args.paths, &base, args.include_hidden).map_err(webdav_failure)?;
    let (dirs, items) = (plan.dirs, plan.items);
    if !plan.hidden.is_empty() {
        let shown: Vec<String> = plan
            .hidden
            .iter()
            .take(5)
            .map(|p| p.display().to_string())
            .collect();
        eprintln!(
            "left out {} hidden entr{} ({}{}); pass --include-hidden to upload them",
            plan.hidden.len(),
            if plan.hidden.len() == 1 { "y" } else { "ies" },
            shown.join(", "),
            if plan.hidden.len() > 5 { ", ..." } else { "" }
        );
    }
    let policy = RetryPolicy {
        max_attempts: args.attempts.max(1),
        ..RetryPolicy::webdav()
    };
    let client = client_for(&base, args.user.as_deref(), policy)?;
    // Probe once without retries: a wrong address or password stops here with exit code 2.
    client.list(&base, false).await.map_err(webdav_failure)?;

    let total: u64 = items.iter().map(|i| i.size).sum();
    let files = items.len();
    let sent = Arc::new(AtomicU64::new(0));
    let bar = if global.no_progress {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let ticker = {
        let (bar, sent) = (bar.clone(), sent.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(sent.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let started = Instant::now();
    let report = upload_all(
        &client,
        &dirs,
        items,
        args.concurrency,
        !args.overwrite,
        &sent,
    )
    .await;
    ticker.abort();
    bar.finish_and_clear();

    for (path, size) in &report.uploaded {
        say!("uploaded  {} ({size} bytes)", path.display());
    }
    for path in &report.skipped {
        say!("skipped   {} (already there, same size)", path.display());
    }
    for (path, err) in &report.failed {
        say!("FAILED    {}: {err}", path.display());
    }
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    let bytes: u64 = report.uploaded.iter().map(|(_, s)| s).sum();
    say!(
        "{files} files: {} uploaded, {} skipped, {} failed; {bytes} of {total} bytes sent in {secs:.1}s ({:.2} MB/s) to {base}",
        report.uploaded.len(),
        report.skipped.len(),
        report.failed.len(),
        bytes as f64 / 1e6 / secs,
    );
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::PARTIAL)
    })
}
