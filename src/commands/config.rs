//! LDAWT's JSON configuration files (`--config`), one reader for every command so that
//! existing users' files keep working:
//!
//! - `ldawt download` reads the format of `ImgDownloadOptimized.py` ([`ConfigFor::Download`]):
//!   `input`, `output`, `url`, `label`, `concurrent_downloads`, `timeout`, `max_file_size`,
//!   `max_retry_attempts`, plus ldawt's `per_host` and `resume`. LDAWT's rate-limit keys
//!   (`retry_delay`, `rate_limit`, `rate_capacity`, `enable_rate_limiting`) are accepted and
//!   ignored (ldawt paces each host adaptively and backs off with jitter). Any other key is an
//!   error naming it.
//! - `ldawt node` reads LDAWT's manager config, `taskvine.json` ([`ConfigFor::Node`]):
//!   `port_number`, `parquets_directory`, `url_col`, `class_col`, `timeout_minutes`,
//!   `max_retries`; other keys are ignored (the file is shared with other LDAWT tools).
//!
//! Flags given on the command line win over the file; each command applies that rule where
//! it merges the two. A bad value is an error naming the file and the key.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

/// Which command reads the file (its keys and how unknown keys are treated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFor {
    /// `ldawt download`: `ImgDownloadOptimized.py`'s keys; an unknown key is an error.
    Download,
    /// `ldawt node`: LDAWT's manager keys; other keys are ignored.
    Node,
}

/// The keys `ldawt download` accepts.
const DOWNLOAD_KEYS: &[&str] = &[
    "input",
    "output",
    "url",
    "label",
    "concurrent_downloads",
    "timeout",
    "max_file_size",
    "max_retry_attempts",
    "retry_delay",
    "rate_limit",
    "rate_capacity",
    "enable_rate_limiting",
    "per_host",
    "resume",
];

/// LDAWT's keys that ldawt accepts and ignores (adaptive per-host pacing and exponential
/// backoff replace them).
const IGNORED_KEYS: &[&str] = &[
    "retry_delay",
    "rate_limit",
    "rate_capacity",
    "enable_rate_limiting",
];

/// The keys `ldawt node` reads.
const NODE_KEYS: &[&str] = &[
    "port_number",
    "parquets_directory",
    "url_col",
    "class_col",
    "timeout_minutes",
    "max_retries",
];

impl ConfigFor {
    fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Download => DOWNLOAD_KEYS,
            Self::Node => NODE_KEYS,
        }
    }

    fn command(self) -> &'static str {
        match self {
            Self::Download => "download",
            Self::Node => "node",
        }
    }
}

/// The keys of an LDAWT config file, every one optional (absent: the flag or the default).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct LdawtConfig {
    /// Input parquet/CSV (`download`).
    pub input: Option<PathBuf>,
    /// Output archive (`download`).
    pub output: Option<PathBuf>,
    /// URL column (`download`).
    pub url: Option<String>,
    /// Class column (`download`).
    pub label: Option<String>,
    /// Requests in flight (`download`).
    pub concurrent_downloads: Option<usize>,
    /// Per-request total timeout in seconds (`download`).
    pub timeout: Option<f64>,
    /// Largest body accepted, in bytes (`download`).
    pub max_file_size: Option<u64>,
    /// Attempts per row (`download`).
    pub max_retry_attempts: Option<u32>,
    /// LDAWT's fixed retry delay (ignored).
    pub retry_delay: Option<f64>,
    /// LDAWT's token-bucket rate (ignored).
    pub rate_limit: Option<f64>,
    /// LDAWT's token-bucket capacity (ignored).
    pub rate_capacity: Option<f64>,
    /// LDAWT's rate-limit switch (ignored).
    pub enable_rate_limiting: Option<bool>,
    /// Requests in flight per host (`download`, ldawt's own).
    pub per_host: Option<usize>,
    /// Resume a previous run (`download`, ldawt's own).
    pub resume: Option<bool>,
    /// The manager's port, which becomes the swarm's TCP port (`node`).
    pub port_number: Option<u16>,
    /// What to seed (`node`).
    pub parquets_directory: Option<PathBuf>,
    /// URL column (`node`).
    pub url_col: Option<String>,
    /// Class column (`node`).
    pub class_col: Option<String>,
    /// Lease time to live, in minutes (`node`).
    pub timeout_minutes: Option<u64>,
    /// Leases lost before a shard fails (`node`).
    pub max_retries: Option<u32>,
}

/// A config file that cannot be used; each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not one JSON object.
    #[error("config file {path} is not a JSON object: {reason}")]
    NotAnObject {
        /// The file.
        path: String,
        /// The parser's message (with line and column) or what was found instead.
        reason: String,
    },
    /// A key the command does not know.
    #[error("config file {path}: unknown key `{key}` for `ldawt {command}` (known keys: {known})")]
    UnknownKey {
        /// The file.
        path: String,
        /// The key.
        key: String,
        /// The command reading the file.
        command: &'static str,
        /// The keys it knows, comma-separated.
        known: String,
    },
    /// A known key with a value of the wrong type or out of range.
    #[error("config file {path}: key `{key}`: {reason}")]
    BadValue {
        /// The file.
        path: String,
        /// The key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
}

/// Reads the config file at `path` for the command `what`.
pub fn load(path: &Path, what: ConfigFor) -> Result<LdawtConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, path, what)
}

/// [`load`] on the file's text.
pub fn parse(text: &str, path: &Path, what: ConfigFor) -> Result<LdawtConfig, ConfigError> {
    let name = || path.display().to_string();
    let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::NotAnObject {
        path: name(),
        reason: e.to_string(),
    })?;
    let Value::Object(map) = value else {
        return Err(ConfigError::NotAnObject {
            path: name(),
            reason: format!("found {}", kind_of(&value)),
        });
    };
    let keys = what.keys();
    let mut used = Map::new();
    for (key, value) in map {
        if keys.contains(&key.as_str()) {
            used.insert(key, value);
        } else if what == ConfigFor::Download {
            return Err(ConfigError::UnknownKey {
                path: name(),
                key,
                command: what.command(),
                known: keys.join(", "),
            });
        } else {
            tracing::debug!("config file {}: key `{key}` is not used by ldawt", name());
        }
    }
    // Each key alone, so that a bad value is named by its key.
    for (key, value) in &used {
        let mut one = Map::new();
        one.insert(key.clone(), value.clone());
        if let Err(e) = serde_json::from_value::<LdawtConfig>(Value::Object(one)) {
            return Err(ConfigError::BadValue {
                path: name(),
                key: key.clone(),
                reason: e.to_string(),
            });
        }
    }
    if let Some(k) = used.keys().find(|k| IGNORED_KEYS.contains(&k.as_str())) {
        tracing::info!(
            "config file {}: `{k}` and LDAWT's other rate-limit keys ({}) are ignored \
             (per-host adaptive pacing and exponential backoff replace them)",
            name(),
            IGNORED_KEYS.join(", ")
        );
    }
    serde_json::from_value(Value::Object(used)).map_err(|e| ConfigError::NotAnObject {
        path: name(),
        reason: e.to_string(),
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("ldawt.json");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn every_download_key_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            r#"{"input": "a.parquet", "output": "b.tar.gz", "url": "image", "label": "species",
                "concurrent_downloads": 5, "timeout": 10, "max_file_size": 500000000,
                "max_retry_attempts": 2, "retry_delay": 1.5, "rate_limit": 15.0,
                "rate_capacity": 30, "enable_rate_limiting": true, "per_host": 4,
                "resume": true}"#,
        );
        let c = load(&p, ConfigFor::Download).unwrap();
        assert_eq!(c.input, Some(PathBuf::from("a.parquet")));
        assert_eq!(c.output, Some(PathBuf::from("b.tar.gz")));
        assert_eq!(
            (c.url.as_deref(), c.label.as_deref()),
            (Some("image"), Some("species"))
        );
        assert_eq!(c.concurrent_downloads, Some(5));
        assert_eq!(c.timeout, Some(10.0));
        assert_eq!(c.max_file_size, Some(500_000_000));
        assert_eq!(c.max_retry_attempts, Some(2));
        assert_eq!((c.per_host, c.resume), (Some(4), Some(true)));
        assert_eq!(c.rate_limit, Some(15.0));
        assert_eq!(c.port_number, None);
    }

    #[test]
    fn every_node_key_is_read_and_other_keys_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            r#"{"port_number": 9124, "parquets_directory": "examples/2split",
                "url_col": "photo_url", "class_col": "species_name",
                "timeout_minutes": 30, "max_retries": 5, "unused": true, "input": "x"}"#,
        );
        let c = load(&p, ConfigFor::Node).unwrap();
        let want = LdawtConfig {
            port_number: Some(9124),
            parquets_directory: Some("examples/2split".into()),
            url_col: Some("photo_url".into()),
            class_col: Some("species_name".into()),
            timeout_minutes: Some(30),
            max_retries: Some(5),
            ..LdawtConfig::default()
        };
        assert_eq!(c, want, "download keys in a manager config are not read");
    }

    #[test]
    fn a_bad_file_is_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let e = load(&missing, ConfigFor::Node).unwrap_err();
        assert!(matches!(e, ConfigError::Unreadable { .. }), "{e}");
        assert!(e.to_string().contains("missing.json"), "{e}");

        let p = write(dir.path(), "{\"input\": ");
        let e = load(&p, ConfigFor::Download).unwrap_err().to_string();
        assert!(e.contains("ldawt.json") && e.contains("line 1"), "{e}");
        let p = write(dir.path(), "[1, 2]");
        let e = load(&p, ConfigFor::Node).unwrap_err().to_string();
        assert!(e.contains("ldawt.json") && e.contains("an array"), "{e}");

        let p = write(dir.path(), r#"{"input": "a.parquet", "threads": 4}"#);
        let e = load(&p, ConfigFor::Download).unwrap_err().to_string();
        assert!(
            e.contains("ldawt.json")
                && e.contains("`threads`")
                && e.contains("concurrent_downloads"),
            "{e}"
        );
        let p = write(dir.path(), r#"{"port_number": 9124}"#);
        let e = load(&p, ConfigFor::Download).unwrap_err().to_string();
        assert!(
            e.contains("`port_number`"),
            "a manager key is not a download key: {e}"
        );

        let p = write(dir.path(), r#"{"url": "u", "timeout": "soon"}"#);
        let e = load(&p, ConfigFor::Download).unwrap_err();
        assert!(
            matches!(&e, ConfigError::BadValue { key, .. } if key == "timeout"),
            "{e}"
        );
        assert!(e.to_string().contains("ldawt.json"), "{e}");
        let p = write(dir.path(), r#"{"port_number": 70000, "unused": "x"}"#);
        let e = load(&p, ConfigFor::Node).unwrap_err();
        assert!(
            matches!(&e, ConfigError::BadValue { key, .. } if key == "port_number"),
            "{e}"
        );
    }
}
