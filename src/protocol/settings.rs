//! A dataset's engine settings as a seeder sends them with every grant: the seeder owns the
//! dataset's politeness (concurrency, per-host cap, timeouts, retries), what is accepted
//! (content types, largest file), the identity sent (User-Agent and contact token), the
//! opt-outs honoured, the hash check, the carried columns and the image processing, so workers
//! need no flags of their own.
//!
//! Versioned ([`SETTINGS_VERSION`]) and size-bounded ([`MAX_SETTINGS_BYTES`]). A worker treats
//! them as hostile input: [`DatasetSettings::apply`] checks every field's bounds and can only
//! tighten the worker's own limits (concurrency, per-host cap, largest file); the worker's
//! safety settings (SSRF guard, redaction of error texts, archive hashing) are never taken
//! from a seeder. Pure.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{
    EngineConfig, HashCheck, ImageFilters, OutputFormat, ResizeMode, ResizeOptions,
    check_user_agent_token,
};

/// The settings layout this build writes and reads.
pub const SETTINGS_VERSION: u32 = 2;
/// Largest encoded settings accepted (besides the class table).
pub const MAX_SETTINGS_BYTES: usize = 16 << 10;
/// Most classes in a webdataset class table.
pub const MAX_CLASSES: usize = 65_536;
/// Largest class table, bytes of names in all.
pub const MAX_CLASS_TABLE_BYTES: usize = 1 << 20;
/// Longest class name in a class table.
const MAX_CLASS_NAME: usize = 1024;
/// Longest timeout a seeder may ask for (a worker's slots are not held hostage).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Most attempts per row a seeder may ask for.
pub const MAX_ATTEMPTS: u32 = 10;
/// Largest resize target a seeder may ask for (bounds the worker's memory per image).
pub const MAX_IMAGE_SIZE: u32 = 8192;
/// Most entries in any list (content types, directives, columns).
const MAX_LIST: usize = 64;
/// Longest text of any one entry (a column name, a content type, a directive).
const MAX_TEXT: usize = 256;

/// A dataset's engine settings, as sent with a grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSettings {
    /// The layout ([`SETTINGS_VERSION`]); any other is refused.
    pub version: u32,
    /// Requests in flight per shard.
    pub concurrency: u32,
    /// Requests in flight per host per shard (with `--swarm-per-host`: this lease's share of
    /// the swarm's budget).
    pub per_host: u32,
    /// Connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// Time to the response headers, ms.
    pub first_byte_timeout_ms: u64,
    /// Longest pause between two body chunks, ms.
    pub idle_timeout_ms: u64,
    /// One attempt end to end, ms.
    pub total_timeout_ms: u64,
    /// Largest body accepted, bytes.
    pub max_file_size: u64,
    /// Attempts per row.
    pub max_attempts: u32,
    /// Accepted `Content-Type` patterns.
    pub accept_types: Vec<String>,
    /// User-Agent header (before the token).
    pub user_agent: String,
    /// Contact added to the User-Agent.
    pub user_agent_token: Option<String>,
    /// `X-Robots-Tag` directives that stop an image from being stored.
    pub disallowed_header_directives: Vec<String>,
    /// Honour robots.txt.
    pub respect_robots_txt: bool,
    /// Compare each body with a digest column.
    pub verify_hash: Option<HashCheck>,
    /// Input columns carried into the results.
    pub extra_cols: Vec<String>,
    /// Caption column (webdataset).
    pub caption_col: Option<String>,
    /// Output layout.
    pub format: OutputFormat,
    /// Limits on image dimensions.
    pub filters: ImageFilters,
    /// Resizing and re-encoding.
    pub resize: ResizeOptions,
    /// The dataset's webdataset class table (id = position), computed by the seeder over every
    /// row so all workers write the same `.cls`; empty for the other formats.
    pub class_names: Vec<String>,
}

/// A field of received settings out of bounds: the lease is given back, nothing is fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dataset settings refused: {field}: {why}")]
pub struct SettingsError {
    /// Name of the offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub why: String,
}

fn bad(field: &'static str, why: impl Into<String>) -> SettingsError {
    SettingsError {
        field,
        why: why.into(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn clamp_u32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl DatasetSettings {
    /// The settings of a seeder's dataset, from its resolved engine configuration.
    pub fn from_engine(e: &EngineConfig) -> Self {
        Self {
            version: SETTINGS_VERSION,
            concurrency: clamp_u32(e.concurrency),
            per_host: clamp_u32(e.fetch.per_host),
            connect_timeout_ms: millis(e.fetch.connect_timeout),
            first_byte_timeout_ms: millis(e.fetch.first_byte_timeout),
            idle_timeout_ms: millis(e.fetch.idle_timeout),
            total_timeout_ms: millis(e.fetch.total_timeout),
            max_file_size: e.fetch.max_file_size,
            max_attempts: e.max_attempts,
            accept_types: e.fetch.accept_types.clone(),
            user_agent: e.fetch.user_agent.clone(),
            user_agent_token: e.fetch.user_agent_token.clone(),
            disallowed_header_directives: e.fetch.disallowed_header_directives.clone(),
            respect_robots_txt: e.respect_robots_txt,
            verify_hash: e.verify_hash.clone(),
            extra_cols: e.extra_cols.clone(),
            caption_col: e.caption_col.clone(),
            format: e.format,
            filters: e.filters.clone(),
            resize: e.resize.clone(),
            class_names: e.class_names.clone(),
        }
    }

    /// The engine configuration of one lease: `local` (the worker's own configuration, whose
    /// safety settings and limits stay) with these settings applied, after checking every
    /// field. Concurrency, per-host cap and largest file only ever go down.
    pub fn apply(&self, local: &EngineConfig) -> Result<EngineConfig, SettingsError> {
        self.check()?;
        let mut e = local.clone();
        e.concurrency = local.concurrency.min(self.concurrency as usize).max(1);
        e.fetch.per_host = local.fetch.per_host.min(self.per_host as usize).max(1);
        e.fetch.max_file_size = local.fetch.max_file_size.min(self.max_file_size);
        e.fetch.connect_timeout = Duration::from_millis(self.connect_timeout_ms);
        e.fetch.first_byte_timeout = Duration::from_millis(self.first_byte_timeout_ms);
        e.fetch.idle_timeout = Duration::from_millis(self.idle_timeout_ms);
        e.fetch.total_timeout = Duration::from_millis(self.total_timeout_ms);
        e.max_attempts = self.max_attempts;
        e.fetch.accept_types = self.accept_types.clone();
        e.fetch.user_agent = self.user_agent.clone();
        e.fetch.user_agent_token = self.user_agent_token.clone();
        e.fetch.disallowed_header_directives = self.disallowed_header_directives.clone();
        e.respect_robots_txt = self.respect_robots_txt;
        e.verify_hash = self.verify_hash.clone();
        e.extra_cols = self.extra_cols.clone();
        e.caption_col = self.caption_col.clone();
        e.format = self.format;
        e.filters = self.filters.clone();
        e.resize = self.resize.clone();
        e.class_names = self.class_names.clone();
        // A lease always writes a fresh shard.
        e.retry_failed = false;
        Ok(e)
    }

    /// The class table: bounded in count, name length and total, names unique and non-empty.
    fn check_class_table(&self) -> Result<(), SettingsError> {
        let names = &self.class_names;
        if names.len() > MAX_CLASSES {
            return Err(bad(
                "class_names",
                format!("{} classes, at most {MAX_CLASSES}", names.len()),
            ));
        }
        let total: usize = names.iter().map(String::len).sum();
        if total > MAX_CLASS_TABLE_BYTES {
            return Err(bad(
                "class_names",
                format!("{total} bytes of names, at most {MAX_CLASS_TABLE_BYTES}"),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(names.len());
        for n in names {
            if n.len() > MAX_CLASS_NAME {
                return Err(bad(
                    "class_names",
                    format!("a name of {} bytes, at most {MAX_CLASS_NAME}", n.len()),
                ));
            }
            if !seen.insert(n.as_str()) {
                return Err(bad("class_names", format!("{:?} named twice", shown(n))));
            }
        }
        if !names.is_empty() && self.format != OutputFormat::Webdataset {
            return Err(bad(
                "class_names",
                "a class table is for --format webdataset",
            ));
        }
        Ok(())
    }

    /// Checks every field's bounds.
    pub fn check(&self) -> Result<(), SettingsError> {
        if self.version != SETTINGS_VERSION {
            return Err(bad(
                "version",
                format!(
                    "{} (this build reads version {SETTINGS_VERSION}; upgrade the worker or the seeder)",
                    self.version
                ),
            ));
        }
        self.check_class_table()?;
        let without_table = Self {
            class_names: Vec::new(),
            ..self.clone()
        };
        let size = postcard::to_stdvec(&without_table)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if size > MAX_SETTINGS_BYTES {
            return Err(bad(
                "settings",
                format!("{size} bytes encoded, over {MAX_SETTINGS_BYTES}"),
            ));
        }
        for (field, v) in [
            ("concurrency", self.concurrency),
            ("per_host", self.per_host),
        ] {
            if v == 0 {
                return Err(bad(field, "must be at least 1"));
            }
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(bad(
                "max_attempts",
                format!("{} is not within 1..={MAX_ATTEMPTS}", self.max_attempts),
            ));
        }
        if self.max_file_size == 0 {
            return Err(bad("max_file_size", "must be at least 1 byte"));
        }
        for (field, ms) in [
            ("connect_timeout", self.connect_timeout_ms),
            ("first_byte_timeout", self.first_byte_timeout_ms),
            ("idle_timeout", self.idle_timeout_ms),
            ("total_timeout", self.total_timeout_ms),
        ] {
            if ms == 0 || ms > millis(MAX_TIMEOUT) {
                return Err(bad(
                    field,
                    format!("{ms} ms is not within 1 ms..={MAX_TIMEOUT:?}"),
                ));
            }
        }
        check_list("accept_types", &self.accept_types)?;
        if self.accept_types.is_empty() {
            return Err(bad("accept_types", "empty: nothing would be accepted"));
        }
        check_list(
            "disallowed_header_directives",
            &self.disallowed_header_directives,
        )?;
        check_list("extra_cols", &self.extra_cols)?;
        if self.user_agent.is_empty()
            || self.user_agent.len() > MAX_TEXT
            || !self.user_agent.chars().all(|c| (' '..='~').contains(&c))
        {
            return Err(bad(
                "user_agent",
                format!(
                    "must be 1..={MAX_TEXT} printable ASCII characters: {:?}",
                    shown(&self.user_agent)
                ),
            ));
        }
        if let Some(t) = &self.user_agent_token {
            if t.len() > MAX_TEXT {
                return Err(bad("user_agent_token", "too long"));
            }
            check_user_agent_token(t).map_err(|e| bad("user_agent_token", e))?;
        }
        if let Some(h) = &self.verify_hash {
            check_text("verify_hash", &h.column)?;
        }
        if let Some(c) = &self.caption_col {
            check_text("caption_col", c)?;
        }
        if self.format == OutputFormat::Files {
            return Err(bad(
                "format",
                "files: the swarm delivers one verified file per shard; a plain tree is for \
                 `ldawt download`",
            ));
        }
        if let Some(r) = self.filters.max_aspect_ratio
            && !(r.is_finite() && r >= 1.0)
        {
            return Err(bad("max_aspect_ratio", format!("{r} is not a number ≥ 1")));
        }
        if self.resize.mode != ResizeMode::No
            && !(1..=MAX_IMAGE_SIZE).contains(&self.resize.image_size)
        {
            return Err(bad(
                "image_size",
                format!(
                    "{} is not within 1..={MAX_IMAGE_SIZE}",
                    self.resize.image_size
                ),
            ));
        }
        if !(1..=100).contains(&self.resize.encode_quality) {
            return Err(bad(
                "encode_quality",
                format!("{} is not within 1..=100", self.resize.encode_quality),
            ));
        }
        Ok(())
    }
}

fn shown(text: &str) -> String {
    text.chars().take(60).collect()
}

fn check_text(field: &'static str, text: &str) -> Result<(), SettingsError> {
    if text.trim().is_empty() || text.len() > MAX_TEXT || text.chars().any(char::is_control) {
        return Err(bad(
            field,
            format!(
                "{:?} is not a name of 1..={MAX_TEXT} bytes without control characters",
                shown(text)
            ),
        ));
    }
    Ok(())
}

fn check_list(field: &'static str, list: &[String]) -> Result<(), SettingsError> {
    if list.len() > MAX_LIST {
        return Err(bad(
            field,
            format!("{} entries, at most {MAX_LIST}", list.len()),
        ));
    }
    for (i, t) in list.iter().enumerate() {
        check_text(field, t)?;
        if list[..i].contains(t) {
            return Err(bad(field, format!("{:?} named twice", shown(t))));
        }
    }
    Ok(())
}

/// A grant's settings default to the worker's own when a seeder sends none.
pub fn lease_config(
    settings: Option<&DatasetSettings>,
    local: &EngineConfig,
) -> Result<EngineConfig, SettingsError> {
    match settings {
        Some(s) => s.apply(local),
        None => Ok(local.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::FetchConfig;

    fn seeder() -> EngineConfig {
        EngineConfig {
            fetch: FetchConfig {
                per_host: 2,
                total_timeout: Duration::from_secs(7),
                user_agent_token: Some("me@example.org".into()),
                ..FetchConfig::default()
            },
            concurrency: 8,
            extra_cols: vec!["caption".into()],
            resize: ResizeOptions {
                mode: ResizeMode::CenterCrop,
                image_size: 64,
                ..ResizeOptions::default()
            },
            ..EngineConfig::default()
        }
    }

    #[test]
    fn settings_round_trip_and_reach_the_lease_config() {
        let s = DatasetSettings::from_engine(&seeder());
        let bytes = postcard::to_stdvec(&s).unwrap();
        assert!(bytes.len() < MAX_SETTINGS_BYTES);
        assert_eq!(postcard::from_bytes::<DatasetSettings>(&bytes).unwrap(), s);
        let local = EngineConfig {
            fetch: FetchConfig {
                block_private_addresses: true,
                ..FetchConfig::default()
            },
            redact_error_messages: true,
            ..EngineConfig::default()
        };
        let e = s.apply(&local).unwrap();
        assert_eq!((e.concurrency, e.fetch.per_host), (8, 2));
        assert_eq!(e.fetch.total_timeout, Duration::from_secs(7));
        assert_eq!(e.resize.image_size, 64);
        assert_eq!(e.extra_cols, vec!["caption".to_string()]);
        assert!(e.fetch.user_agent_header().contains("me@example.org"));
        assert!(
            e.fetch.block_private_addresses && e.redact_error_messages,
            "the worker's own safety settings stay"
        );
    }

    #[test]
    fn a_seeder_never_loosens_a_workers_own_limits() {
        let wide = EngineConfig {
            fetch: FetchConfig {
                per_host: 10_000,
                max_file_size: u64::MAX,
                ..FetchConfig::default()
            },
            concurrency: 10_000,
            ..EngineConfig::default()
        };
        let s = DatasetSettings::from_engine(&wide);
        let local = EngineConfig {
            fetch: FetchConfig {
                per_host: 4,
                max_file_size: 1 << 20,
                ..FetchConfig::default()
            },
            concurrency: 16,
            ..EngineConfig::default()
        };
        let e = s.apply(&local).unwrap();
        assert_eq!(
            (e.concurrency, e.fetch.per_host, e.fetch.max_file_size),
            (16, 4, 1 << 20)
        );
        assert_eq!(
            lease_config(None, &local).unwrap(),
            local,
            "no settings: the worker's own"
        );
    }

    #[test]
    fn hostile_fields_are_refused_by_name() {
        let good = DatasetSettings::from_engine(&seeder());
        let local = EngineConfig::default();
        type Spoil = Box<dyn Fn(&mut DatasetSettings)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("version", Box::new(|s| s.version = 99)),
            ("concurrency", Box::new(|s| s.concurrency = 0)),
            ("per_host", Box::new(|s| s.per_host = 0)),
            ("max_attempts", Box::new(|s| s.max_attempts = 1_000)),
            ("total_timeout", Box::new(|s| s.total_timeout_ms = u64::MAX)),
            ("connect_timeout", Box::new(|s| s.connect_timeout_ms = 0)),
            ("max_file_size", Box::new(|s| s.max_file_size = 0)),
            (
                "accept_types",
                Box::new(|s| s.accept_types = vec!["x".into(); 65]),
            ),
            ("accept_types", Box::new(|s| s.accept_types.clear())),
            (
                "user_agent",
                Box::new(|s| s.user_agent = "a\r\nX-Evil: 1".into()),
            ),
            (
                "user_agent_token",
                Box::new(|s| s.user_agent_token = Some("a)b".into())),
            ),
            (
                "extra_cols",
                Box::new(|s| s.extra_cols = vec!["a".into(), "a".into()]),
            ),
            (
                "caption_col",
                Box::new(|s| s.caption_col = Some("x".repeat(300))),
            ),
            ("format", Box::new(|s| s.format = OutputFormat::Files)),
            (
                "class_names",
                Box::new(|s| s.class_names = vec!["a".into()]),
            ),
            (
                "class_names",
                Box::new(|s| {
                    s.format = OutputFormat::Webdataset;
                    s.class_names = vec!["a".into(), "a".into()];
                }),
            ),
            (
                "class_names",
                Box::new(|s| {
                    s.format = OutputFormat::Webdataset;
                    s.class_names = vec!["x".repeat(2000)];
                }),
            ),
            (
                "max_aspect_ratio",
                Box::new(|s| s.filters.max_aspect_ratio = Some(f64::NAN)),
            ),
            ("image_size", Box::new(|s| s.resize.image_size = 1_000_000)),
            ("encode_quality", Box::new(|s| s.resize.encode_quality = 0)),
            (
                "settings",
                Box::new(|s| {
                    let long: Vec<String> = (0..64).map(|i| format!("{i:0>250}")).collect();
                    s.disallowed_header_directives = long.clone();
                    s.accept_types = long;
                }),
            ),
        ];
        for (field, spoil) in cases {
            let mut s = good.clone();
            spoil(&mut s);
            let err = s.apply(&local).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }
}
