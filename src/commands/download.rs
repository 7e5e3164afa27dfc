//! `ldawt download`: command-line glue for the acquisition engine. Resolves options (flags >
//! `--config` file > defaults; LDAWT's flag names are accepted as aliases), validates the input
//! before anything is written (bad input → exit 2, no output), runs the engine with a progress
//! display, turns SIGINT/SIGTERM into a clean interruption (exit 130, resumable), prints the
//! summary and exits 0 (all ok) or 1 (some rows failed). A previous run's outputs are never
//! replaced silently: `--resume` continues them, `--force` replaces them, otherwise exit 2.

pub(crate) mod dataset;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use super::config::{self, ConfigFor, LdawtConfig};
use super::engine_args::{EngineArgs, EngineFallback};
use crate::commands::cli::GlobalOpts;
use crate::engine::{self, Compression, EngineConfig, EngineError, ShardCounters, ShardJob};
use crate::exit::{self, UsageError};
use crate::report::{Progress, write_summary};

/// Archive compression on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// A plain tar (images are already compressed).
    None,
    /// gzip (fast level 1 unless `--level`).
    Gzip,
}

/// Arguments of `ldawt download` (boxed: the option set is large).
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The options.
    #[command(flatten)]
    pub options: Box<DownloadOptions>,
}

/// The options of `ldawt download`.
#[derive(Debug, Args)]
pub struct DownloadOptions {
    /// Input URL list (.parquet or .csv). LDAWT: `--input_path`.
    #[arg(long, visible_alias = "input_path")]
    pub input: Option<PathBuf>,
    /// Output archive: `.tar` (plain) or `.tar.gz`/`.tgz` (gzip). The results
    /// (`<stem>.results.parquet`) and overview (`<stem>.overview.json`) go next to it.
    /// LDAWT: `--output_tar`.
    #[arg(long, visible_alias = "output_tar")]
    pub output: Option<PathBuf>,
    /// URL column [default: photo_url]. LDAWT: `--url`, `--url_name`.
    #[arg(long = "url-col", visible_aliases = ["url", "url_name"])]
    pub url_col: Option<String>,
    /// Class column (one folder per class) [default: taxon_name]. LDAWT: `--label`, `--class_name`.
    #[arg(long = "class-col", visible_aliases = ["label", "class_name"])]
    pub class_col: Option<String>,
    /// Do not use a class column (members go to `<stem>/unlabeled/`).
    #[arg(long, conflicts_with = "class_col")]
    pub no_class: bool,
    /// An LDAWT JSON config file (`input`, `output`, `url`, `label`, `concurrent_downloads`,
    /// `timeout`, `max_file_size`, `max_retry_attempts`, …). Flags given on the command line win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Archive compression [default: from the output name].
    #[arg(long, value_enum)]
    pub compression: Option<CompressionArg>,
    /// gzip level 0–9 [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub level: Option<u32>,
    /// Continue an interrupted run: rows recorded as ok are kept (copied from the previous
    /// archive), the rest is downloaded.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Replace the outputs of a previous run (archive, results, overview). Without it (or
    /// --resume) an existing archive or results file is refused, exit 2.
    #[arg(long)]
    pub force: bool,
    /// Also compute the archive's sha256 (printed and written to the overview). Off by
    /// default: every image already has its own sha256 in the results file, and a second full
    /// pass over the bytes costs about a third of the download CPU.
    #[arg(long)]
    pub archive_sha256: bool,
    /// Continue a finished (or interrupted) run, retrying only the rows that failed with a
    /// retryable kind (timeouts, resets, 5xx, 429) or never ran: stored images are kept, final
    /// outcomes (404, not an image, opted out…) stay as they are. Implies --resume.
    #[arg(long)]
    pub retry_failed: bool,
    /// Transfer and dataset-builder options (shared with `ldawt node`).
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// The run's settings after merging flags, config file and defaults.
struct Resolved {
    input: PathBuf,
    output: PathBuf,
    url_col: String,
    class_col: Option<String>,
    resume: bool,
    force: bool,
    engine: EngineConfig,
}

fn resolve(args: DownloadOptions) -> anyhow::Result<Resolved> {
    let file = match &args.config {
        Some(path) => {
            config::load(path, ConfigFor::Download).map_err(|e| UsageError::new(e.to_string()))?
        }
        None => LdawtConfig::default(),
    };
    let input = args
        .input
        .or(file.input)
        .ok_or_else(|| UsageError::new("--input is required (or `input` in --config)"))?;
    let output = args
        .output
        .or(file.output)
        .ok_or_else(|| UsageError::new("--output is required (or `output` in --config)"))?;
    let mut engine = args.engine.engine_config(&EngineFallback {
        concurrency: file.concurrent_downloads,
        per_host: file.per_host,
        max_file_size: file.max_file_size,
        timeout: file.timeout,
        max_attempts: file.max_retry_attempts,
    })?;
    engine.retry_failed = args.retry_failed;
    engine.hash_archive = args.archive_sha256;
    let level = args.level.unwrap_or(1);
    engine.compression = match args.compression {
        Some(CompressionArg::None) => Some(Compression::None),
        Some(CompressionArg::Gzip) => Some(Compression::Gzip { level }),
        None if args.level.is_some() => Some(Compression::Gzip { level }),
        None => None,
    };
    let class_col = if args.no_class {
        None
    } else {
        Some(
            args.class_col
                .or(file.label)
                .unwrap_or_else(|| "taxon_name".into()),
        )
    };
    Ok(Resolved {
        input,
        output,
        url_col: args
            .url_col
            .or(file.url)
            .unwrap_or_else(|| "photo_url".into()),
        class_col,
        resume: args.resume || file.resume.unwrap_or(false) || engine.retry_failed,
        force: args.force,
        engine,
    })
}

/// Cancels `token` on the first SIGINT/SIGTERM; a second signal removes the unfinished
/// `.part` files (the previous outputs, if any, stay valid for `--resume`) and exits at once.
fn watch_signals(token: CancellationToken, archive: PathBuf) {
    let Ok(mut signals) = crate::signals::Signals::new() else {
        return;
    };
    tokio::spawn(async move {
        for round in 0..2 {
            signals.recv().await;
            if round == 0 {
                eprintln!(
                    "interrupted: finishing in-flight rows, then writing a resumable archive (signal again to quit now)"
                );
                token.cancel();
            } else {
                for done in [archive.clone(), engine::results_path(&archive)] {
                    let _ = std::fs::remove_file(crate::archive::part_path(&done));
                }
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
        }
    });
}

/// Adds the command-level inputs to the overview the engine wrote.
fn annotate_overview(report_archive: &std::path::Path, r: &Resolved) -> anyhow::Result<()> {
    let path = engine::overview_path(report_archive);
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut doc: serde_json::Value = serde_json::from_slice(&text)?;
    if let Some(inputs) = doc.get_mut("script_inputs").and_then(|v| v.as_object_mut()) {
        inputs.insert("input_file".into(), r.input.display().to_string().into());
        inputs.insert("url_column".into(), r.url_col.clone().into());
        inputs.insert("label_column".into(), r.class_col.clone().into());
    }
    crate::results::overview::write_overview(&path, &doc)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes `<stem>.report.html` beside the overview, from the results file.
fn write_run_report(report: &engine::ShardReport) -> anyhow::Result<()> {
    use crate::results::report_html::{RunFigures, render, report_path, write_report};
    let figures = RunFigures::from_results(&[report.results_path.as_path()])
        .context("reading the results for report.html")?;
    let title = engine::archive_stem(&report.archive_path);
    let html = render(&title, &figures, Some(report.elapsed.as_secs_f64()));
    let path = report_path(&engine::overview_path(&report.archive_path));
    write_report(&path, &html).with_context(|| format!("writing {}", path.display()))
}

/// Refuses to overwrite a previous run's archive or results silently.
fn refuse_existing_outputs(archive: &std::path::Path) -> anyhow::Result<()> {
    for existing in [archive.to_path_buf(), engine::results_path(archive)] {
        if existing.exists() {
            return Err(UsageError::new(format!(
                "{} already exists (a previous run); pass --resume to continue that run, or \
                 --force to replace it",
                existing.display()
            ))
            .into());
        }
    }
    Ok(())
}

/// Runs `ldawt download`.
pub async fn run(args: DownloadArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let resolved = resolve(*args.options)?;
    dataset::check_output(
        resolved.engine.format,
        &resolved.output,
        resolved.resume,
        resolved.engine.compression.is_some(),
    )?;
    let files = matches!(
        resolved.engine.format,
        engine::OutputFormat::Files | engine::OutputFormat::Parquet
    );
    let known =
        crate::model::naming::split_archive_suffix_ignore_case(&resolved.output.to_string_lossy())
            .is_some();
    if !files && !known && resolved.engine.compression.is_none() {
        return Err(UsageError::new(format!(
            "--output {}: name the archive .tar (plain) or .tar.gz/.tgz (gzip), or pass --compression",
            resolved.output.display()
        ))
        .into());
    }
    let resumed_tree = resolved.resume && resolved.engine.format == engine::OutputFormat::Files;
    if resolved.output.is_dir() && !resumed_tree {
        return Err(UsageError::new(format!(
            "--output {} is a directory; give an archive path such as out/shard.tar.gz",
            resolved.output.display()
        ))
        .into());
    }
    if !resolved.resume && !resolved.force {
        refuse_existing_outputs(&resolved.output)?;
    }
    let (input, url_col, class_col, extra) = (
        resolved.input.clone(),
        resolved.url_col.clone(),
        resolved.class_col.clone(),
        resolved.engine.input_columns(),
    );
    let rows = tokio::task::spawn_blocking(move || {
        crate::input::open_with(&input, &url_col, class_col.as_deref(), &extra)
    })
    .await??;
    // Only once the input is known good: a refused run leaves nothing behind.
    if let Some(parent) = resolved
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            UsageError::new(format!(
                "cannot create the output folder {}: {e}",
                parent.display()
            ))
        })?;
    }
    let counters = ShardCounters::new();
    let cancel = CancellationToken::new();
    watch_signals(cancel.clone(), resolved.output.clone());
    let progress = Progress::start(counters.clone(), global.no_progress);
    let job = ShardJob {
        rows,
        archive_path: resolved.output.clone(),
        resume: resolved.resume,
    };
    let outcome = engine::run_shard(job, &resolved.engine, counters, cancel).await;
    progress.finish().await;
    let report = match outcome {
        Ok(r) => r,
        Err(EngineError::Input(e)) => return Err(e.into()),
        Err(e @ EngineError::ResumeMismatch { .. }) => {
            return Err(UsageError::new(e.to_string()).into());
        }
        Err(e) => return Err(e.into()),
    };
    annotate_overview(&report.archive_path, &resolved)?;
    write_run_report(&report)?;
    write_summary(&mut std::io::stdout().lock(), &report).context("writing the summary")?;
    Ok(ExitCode::from(if report.interrupted {
        exit::INTERRUPTED
    } else if report.failed > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    }))
}

#[cfg(test)]
mod tests;
