//! Owns the `tracing` subscriber: logs go to stderr, filtered by `-v` or `RUST_LOG`.
//! User-facing output (progress, tables, reports) never goes through here; see `report`.

use tracing_subscriber::EnvFilter;

/// How log lines are rendered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. `verbose` raises the default level (0 = warn, 1 = info,
/// 2 = debug, 3+ = trace); an explicit `RUST_LOG` always wins.
pub fn init(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info,ldawt=info",
        2 => "info,ldawt=debug",
        _ => "debug,ldawt=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose >= 2);
    // A second init (tests calling into the binary's path twice) is harmless: ignore it.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
