//! Owns the `tracing` subscriber: logs go to stderr, filtered by `-v` or `RUST_LOG`.
//! User-facing output (progress, tables, reports) never goes through here; see `report`.
//! Colour (ANSI escapes) only when stderr is a terminal and `NO_COLOR` is unset or empty.

use std::io::IsTerminal;

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

/// True when log lines may carry ANSI colour: stderr is a terminal and `NO_COLOR`
/// (<https://no-color.org>) is unset or empty. Pure apart from its two inputs.
pub fn colour_wanted(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
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
        .with_ansi(colour_wanted(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_target(verbose >= 2);
    // A second init (tests calling into the binary's path twice) is harmless: ignore it.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some("".as_ref())));
        assert!(!colour_wanted(true, Some("1".as_ref())));
        assert!(!colour_wanted(false, None));
    }
}
