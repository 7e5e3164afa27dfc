//! `ldawt split`: command-line glue over `crate::split` — parses arguments, runs the two-pass
//! split on a blocking thread and prints the per-group table and the balance.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::commands::cli::GlobalOpts;
use crate::exit::UsageError;
use crate::report::say;
use crate::split::{Balance, SplitError, SplitRequest, split_parquet};

/// What `--balance` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BalanceBy {
    /// Rows (images) per group.
    Rows,
    /// Bytes per group, from `--size-col`.
    Bytes,
}

/// Arguments of `ldawt split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The parquet file to split.
    #[arg(long)]
    pub input: PathBuf,
    /// The class column; every class ends up wholly inside one group.
    #[arg(long, alias = "class-col")]
    pub group_col: String,
    /// Number of groups (output files group_1.parquet … group_N.parquet). A class is never
    /// split, so with fewer classes than groups only one file per class is written (none empty).
    #[arg(long)]
    pub groups: usize,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Balance groups by row count or by the bytes of `--size-col`.
    #[arg(long, value_enum, default_value_t = BalanceBy::Rows)]
    pub balance: BalanceBy,
    /// Integer column holding each row's size in bytes (needed by `--balance bytes`).
    #[arg(long)]
    pub size_col: Option<String>,
    /// Replace group files that already exist in `--out`.
    #[arg(long)]
    pub force: bool,
}

/// Runs `ldawt split`.
pub async fn run(args: SplitArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let balance = match (args.balance, args.size_col) {
        (BalanceBy::Rows, _) => Balance::Rows,
        (BalanceBy::Bytes, Some(size_col)) => Balance::Bytes { size_col },
        (BalanceBy::Bytes, None) => {
            return Err(UsageError::new("--balance bytes needs --size-col COLUMN").into());
        }
    };
    let requested = args.groups;
    let req = SplitRequest {
        input: args.input,
        group_col: args.group_col,
        groups: args.groups,
        out_dir: args.out,
        balance,
        overwrite: args.force,
    };
    let outcome = tokio::task::spawn_blocking(move || split_parquet(&req))
        .await
        .context("the split thread failed")?
        .map_err(|e: SplitError| {
            if e.is_bad_input() {
                anyhow::Error::new(UsageError::new(e.to_string()))
            } else {
                anyhow::Error::new(e)
            }
        })?;
    say!(
        "{:<24} {:>10} {:>9} {:>14}",
        "file",
        "rows",
        "classes",
        "load"
    );
    for (g, file) in outcome.files.iter().enumerate() {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        say!(
            "{:<24} {:>10} {:>9} {:>14}",
            name,
            outcome.rows_per_group[g],
            outcome.plan.classes_per_group[g],
            outcome.plan.loads[g]
        );
    }
    let max = outcome.plan.loads.iter().copied().max().unwrap_or(0);
    let min = outcome.plan.loads.iter().copied().min().unwrap_or(0);
    say!(
        "{} rows, {} classes ({} rows with a null class) in {} groups; balance: largest/smallest = {}/{} = {:.4}",
        outcome.input_rows,
        outcome.plan.assignment.len(),
        outcome.null_class_rows,
        outcome.files.len(),
        max,
        min,
        outcome.plan.imbalance()
    );
    if outcome.files.len() < requested {
        eprintln!(
            "note: --groups {requested} but only {} classes (a class is never split): wrote {} group file{}, none empty",
            outcome.plan.assignment.len(),
            outcome.files.len(),
            if outcome.files.len() == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
