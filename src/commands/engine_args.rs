//! The engine flags shared by `ldawt download` and `ldawt node` (flattened into both), and
//! their one translation into an [`EngineConfig`]: the same names, defaults and checks on
//! both commands (`--concurrency 0` is refused by both; timeouts are positive seconds).
//! A seeder sends the resulting settings to its workers with every grant.

use std::time::Duration;

use clap::Args;

use super::download::dataset::DatasetOptions;
use crate::engine::EngineConfig;
use crate::exit::UsageError;

/// Transfer and dataset-builder flags of the engine.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Requests in flight across all hosts (per shard in a swarm) [default: 128]. LDAWT:
    /// `--concurrent_downloads`.
    #[arg(long, visible_alias = "concurrent_downloads")]
    pub concurrency: Option<usize>,
    /// Requests in flight per host; lowered automatically while a host answers 429/503
    /// [default: the concurrency].
    #[arg(long)]
    pub per_host: Option<usize>,
    /// Largest file accepted, in bytes, enforced while streaming [default: 524288000].
    /// LDAWT: `--max_file_size`.
    #[arg(long, visible_alias = "max_file_size")]
    pub max_file_size: Option<u64>,
    /// Time allowed for one attempt, end to end, in seconds [default: 120].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Time allowed to connect, in seconds [default: 10].
    #[arg(long, value_name = "SECS")]
    pub connect_timeout: Option<f64>,
    /// Time allowed until the response headers, in seconds [default: 30].
    #[arg(long, value_name = "SECS")]
    pub first_byte_timeout: Option<f64>,
    /// Longest pause allowed between two body chunks, in seconds [default: 30].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<f64>,
    /// Attempts per row for retryable failures (timeouts, resets, 5xx, 429) [default: 4].
    #[arg(long, visible_alias = "max_retry_attempts")]
    pub max_attempts: Option<u32>,
    /// Accepted Content-Type patterns (repeatable) [default: image/*].
    #[arg(long = "accept-type")]
    pub accept_type: Vec<String>,
    /// User-Agent header [default: ldawt/<version> (+<project URL>)].
    #[arg(long)]
    pub user_agent: Option<String>,
    /// Dataset-builder options (opt-outs, hash check, extra columns, output format, resize).
    #[command(flatten)]
    pub dataset: DatasetOptions,
}

/// Values a config file may give when the flag is absent (LDAWT's JSON for `download`).
#[derive(Debug, Clone, Default)]
pub struct EngineFallback {
    /// `concurrent_downloads`.
    pub concurrency: Option<usize>,
    /// `per_host`.
    pub per_host: Option<usize>,
    /// `max_file_size`.
    pub max_file_size: Option<u64>,
    /// `timeout`, seconds.
    pub timeout: Option<f64>,
    /// `max_retry_attempts`.
    pub max_attempts: Option<u32>,
}

fn seconds(flag: &str, v: f64) -> Result<Duration, UsageError> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| UsageError::new(format!("{flag} must be a positive number of seconds")))
}

fn at_least_one(flag: &str, v: usize) -> Result<usize, UsageError> {
    if v == 0 {
        return Err(UsageError::new(format!("{flag} must be at least 1")));
    }
    Ok(v)
}

impl EngineArgs {
    /// The engine configuration: flags, then `file`, then defaults; every value checked once.
    pub fn engine_config(&self, file: &EngineFallback) -> anyhow::Result<EngineConfig> {
        let mut engine = EngineConfig::default();
        if let Some(c) = self.concurrency.or(file.concurrency) {
            engine.concurrency = at_least_one("--concurrency", c)?;
        }
        engine.fetch.per_host = match self.per_host.or(file.per_host) {
            Some(p) => at_least_one("--per-host", p)?,
            None => engine.concurrency,
        };
        if let Some(m) = self.max_file_size.or(file.max_file_size) {
            if m == 0 {
                return Err(UsageError::new("--max-file-size must be at least 1 byte").into());
            }
            engine.fetch.max_file_size = m;
        }
        if let Some(t) = self.timeout.or(file.timeout) {
            engine.fetch.total_timeout = seconds("--timeout", t)?;
            engine.fetch.first_byte_timeout = engine
                .fetch
                .first_byte_timeout
                .min(engine.fetch.total_timeout);
            engine.fetch.idle_timeout = engine.fetch.idle_timeout.min(engine.fetch.total_timeout);
        }
        if let Some(t) = self.connect_timeout {
            engine.fetch.connect_timeout = seconds("--connect-timeout", t)?;
        }
        if let Some(t) = self.first_byte_timeout {
            engine.fetch.first_byte_timeout = seconds("--first-byte-timeout", t)?;
        }
        if let Some(t) = self.idle_timeout {
            engine.fetch.idle_timeout = seconds("--idle-timeout", t)?;
        }
        if let Some(a) = self.max_attempts.or(file.max_attempts) {
            // LDAWT's files say 0 for "no retry": one attempt.
            engine.max_attempts = a.max(1);
        }
        if !self.accept_type.is_empty() {
            engine.fetch.accept_types = self.accept_type.clone();
        }
        if let Some(ua) = &self.user_agent {
            if ua.is_empty() || !ua.chars().all(|c| (' '..='~').contains(&c)) {
                return Err(UsageError::new(format!(
                    "--user-agent {ua:?}: printable ASCII only, not empty"
                ))
                .into());
            }
            engine.fetch.user_agent = ua.clone();
        }
        self.dataset.apply(&mut engine)?;
        Ok(engine)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        engine: EngineArgs,
    }

    fn config(v: &[&str]) -> anyhow::Result<EngineConfig> {
        let mut argv = vec!["x"];
        argv.extend_from_slice(v);
        Cmd::try_parse_from(argv)?
            .engine
            .engine_config(&EngineFallback::default())
    }

    #[test]
    fn one_validation_for_every_command() {
        for bad in [
            &["--concurrency", "0"][..],
            &["--per-host", "0"],
            &["--timeout", "0"],
            &["--timeout", "-1"],
            &["--max-file-size", "0"],
            &["--user-agent", ""],
        ] {
            assert!(config(bad).is_err(), "{bad:?} accepted");
        }
        let e = config(&[
            "--concurrency",
            "8",
            "--timeout",
            "5",
            "--max-attempts",
            "0",
        ])
        .unwrap();
        assert_eq!((e.concurrency, e.fetch.per_host, e.max_attempts), (8, 8, 1));
        assert_eq!(e.fetch.total_timeout, Duration::from_secs(5));
        assert!(e.fetch.first_byte_timeout <= e.fetch.total_timeout);
        let from_file = Cmd::try_parse_from(["x"])
            .unwrap()
            .engine
            .engine_config(&EngineFallback {
                concurrency: Some(3),
                ..EngineFallback::default()
            })
            .unwrap();
        assert_eq!(from_file.concurrency, 3);
    }
}
