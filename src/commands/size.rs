//! `ldawt size`: command-line glue for [`crate::size`]. Estimates the total download size of a
//! URL list (a file or a folder of `.parquet`/`.csv` files) and prints the total, optional
//! per-class totals and the unresolved URLs with reasons — or all of it as JSON (`--json`).
//! Exit 0 when every size is known, 1 when some are not, 2 on bad input.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::commands::cli::GlobalOpts;
use crate::engine::{EngineConfig, EngineError, FetchConfig};
use crate::exit;
use crate::size::{SizeReport, estimate};

/// Arguments of `ldawt size`.
#[derive(Debug, Args)]
pub struct SizeArgs {
    /// A `.parquet`/`.csv` file, or a folder of them. LDAWT: `--directory`.
    #[arg(long, visible_alias = "directory")]
    pub input: PathBuf,
    /// URL column. LDAWT: `--url_column`.
    #[arg(
        long = "url-col",
        visible_alias = "url_column",
        default_value = "photo_url"
    )]
    pub url_col: String,
    /// Also total per class of this column.
    #[arg(long = "class-col")]
    pub class_col: Option<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Probes in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Probes in flight per host [default: the concurrency].
    #[arg(long)]
    pub per_host: Option<usize>,
    /// Time allowed per probe, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Attempts per URL for retryable failures.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
}

fn write_text(out: &mut impl Write, r: &SizeReport) -> std::io::Result<()> {
    let mb = r.total_bytes as f64 / 1e6;
    writeln!(
        out,
        "Total size: {mb:.2} MB ({:.2} GB), {} bytes",
        mb / 1e3,
        r.total_bytes
    )?;
    writeln!(
        out,
        "URLs: {} ({} resolved, {} unresolved)",
        r.rows, r.resolved, r.unresolved_count
    )?;
    if !r.per_class.is_empty() {
        writeln!(out, "Per class:")?;
        for (class, t) in &r.per_class {
            writeln!(
                out,
                "  {class:<40} {:>10.2} MB  {} resolved, {} unresolved",
                t.bytes as f64 / 1e6,
                t.resolved,
                t.unresolved
            )?;
        }
    }
    if r.unresolved_count > 0 {
        writeln!(out, "Unresolved URLs: {}", r.unresolved_count)?;
        for u in &r.unresolved {
            writeln!(out, "  {} row {}: {} — {}", u.file, u.row, u.url, u.reason)?;
        }
        let hidden = r.unresolved_count - r.unresolved.len() as u64;
        if hidden > 0 {
            writeln!(out, "  … and {hidden} more")?;
        }
    }
    Ok(())
}

/// Runs `ldawt size`.
pub async fn run(args: SizeArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| exit::UsageError::new("--timeout must be a positive number of seconds"))?;
    let concurrency = args.concurrency.max(1);
    let cfg = EngineConfig {
        fetch: FetchConfig {
            per_host: args.per_host.unwrap_or(concurrency).max(1),
            first_byte_timeout: timeout,
            total_timeout: timeout,
            ..FetchConfig::default()
        },
        concurrency,
        max_attempts: args.max_attempts.max(1),
        ..EngineConfig::default()
    };
    let files = crate::input::list_inputs(&args.input)?;
    let cancel = CancellationToken::new();
    crate::signals::cancel_on_stop(cancel.clone())
        .context("installing the SIGINT/SIGTERM handlers")?;
    let report = match estimate(
        files,
        &args.url_col,
        args.class_col.as_deref(),
        &cfg,
        cancel,
    )
    .await
    {
        Ok(r) => r,
        Err(EngineError::Input(e)) => return Err(e.into()),
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).context("writing JSON")?;
        writeln!(out).context("writing JSON")?;
    } else {
        write_text(&mut out, &report).context("writing the report")?;
    }
    Ok(ExitCode::from(if report.unresolved_count > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    }))
}
