//! LDAWT's JSON configuration file (`--config`, the format of `ImgDownloadOptimized.py`):
//! the same keys, so existing users' files keep working. Rate-limit keys are accepted and
//! ignored (ldawt paces each host adaptively); an unknown key is an error naming it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The keys of an LDAWT config file (plus ldawt's own optional ones).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdawtConfig {
    /// Input parquet/CSV.
    pub input: Option<PathBuf>,
    /// Output archive.
    pub output: Option<PathBuf>,
    /// URL column.
    pub url: Option<String>,
    /// Class column.
    pub label: Option<String>,
    /// Requests in flight.
    pub concurrent_downloads: Option<usize>,
    /// Per-request total timeout, seconds.
    pub timeout: Option<f64>,
    /// Largest body accepted, bytes.
    pub max_file_size: Option<u64>,
    /// Attempts per row.
    pub max_retry_attempts: Option<u32>,
    /// LDAWT's fixed retry delay (ignored: ldawt backs off exponentially with jitter).
    pub retry_delay: Option<f64>,
    /// LDAWT's token-bucket rate (ignored: per-host AIMD pacing instead).
    pub rate_limit: Option<f64>,
    /// LDAWT's token-bucket capacity (ignored).
    pub rate_capacity: Option<f64>,
    /// LDAWT's rate-limit switch (ignored).
    pub enable_rate_limiting: Option<bool>,
    /// Requests in flight per host (ldawt).
    pub per_host: Option<usize>,
    /// Resume a previous run (ldawt).
    pub resume: Option<bool>,
}

/// Reads and checks a config file; the error names the file and the offending key or position.
pub fn load(path: &Path) -> Result<LdawtConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let cfg: LdawtConfig =
        serde_json::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    if cfg.rate_limit.is_some()
        || cfg.rate_capacity.is_some()
        || cfg.enable_rate_limiting.is_some()
        || cfg.retry_delay.is_some()
    {
        tracing::info!(
            "config: rate_limit/rate_capacity/enable_rate_limiting/retry_delay are ignored (per-host adaptive pacing and exponential backoff replace them)"
        );
    }
    Ok(cfg)
}
