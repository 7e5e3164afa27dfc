//! `ldawt reconstruct`: command-line glue over `crate::reconstruct` — runs it on a blocking
//! thread, lists bad rows with their index on stderr and prints a summary. Exit 1 when some
//! rows were skipped, 2 for unusable input or output.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::commands::cli::GlobalOpts;
use crate::exit::UsageError;
use crate::reconstruct::{OutputFormat, ReconstructRequest, reconstruct};
use crate::report::say;

/// Bad rows listed one by one before a count takes over.
const LISTED_BAD_ROWS: usize = 50;

/// Arguments of `ldawt reconstruct`.
#[derive(Debug, Args)]
pub struct ReconstructArgs {
    /// The parquet with image bytes.
    #[arg(long)]
    pub input: PathBuf,
    /// The archive to write: .tar, or .tar.gz / .tgz for gzip.
    #[arg(long)]
    pub output: PathBuf,
    /// Column with the image bytes (binary, or the Hugging Face {bytes, path} struct).
    #[arg(long, default_value = "image")]
    pub image_col: String,
    /// Column with the class label. Folders are named like `download` names them (`Abaeis
    /// mexicana` → `Abaeis_mexicana`, `O'Neil` → `ONeil`, null → `unlabeled`).
    #[arg(long, default_value = "label")]
    pub label_col: String,
    /// Re-encode every image to this format; by default the original bytes are kept and the
    /// extension is taken from the image's magic bytes.
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `ldawt reconstruct`.
pub async fn run(args: ReconstructArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let req = ReconstructRequest {
        input: args.input,
        output: args.output,
        image_col: args.image_col,
        label_col: args.label_col,
        format: args.format,
        threads,
        overwrite: args.force,
    };
    let output = req.output.clone();
    let report = tokio::task::spawn_blocking(move || reconstruct(&req))
        .await
        .context("the reconstruct thread failed")?
        .map_err(|e| -> anyhow::Error {
            if e.is_bad_input() {
                UsageError::new(e.to_string()).into()
            } else {
                e.into()
            }
        })?;
    for bad in report.bad_rows.iter().take(LISTED_BAD_ROWS) {
        eprintln!("row {}: {}", bad.index, bad.reason);
    }
    if report.bad_rows.len() > LISTED_BAD_ROWS {
        eprintln!(
            "... and {} more bad rows",
            report.bad_rows.len() - LISTED_BAD_ROWS
        );
    }
    say!(
        "{} rows: {} images written in {} label folders, {} bad rows skipped -> {}",
        report.rows,
        report.written,
        report.labels,
        report.bad_rows.len(),
        output.display()
    );
    Ok(if report.bad_rows.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::PARTIAL)
    })
}
