//! `ldawt size`: estimates the total download size of URL lists without downloading them —
//! concurrent `HEAD` probes (with a ranged-`GET` fallback) under the same global and per-host
//! limits, retry policy and adaptive host pacing as the download engine. Reports the total,
//! optional per-class totals, and every unresolved URL with its reason.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::engine::{EngineConfig, EngineError};
use crate::fetch::Fetcher;
use crate::fetch::hosts::{HostGates, host_key};
use crate::input::{self, InputError, UrlRow};
use crate::model::retry::RetryPolicy;

/// Unresolved URLs listed in full; beyond this only their number is kept (bounded memory).
pub const MAX_LISTED_UNRESOLVED: usize = 10_000;

/// A URL whose size could not be determined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unresolved {
    /// The input file.
    pub file: String,
    /// 0-based row index in that file.
    pub row: u64,
    /// The URL (empty when the cell was empty).
    pub url: String,
    /// Why.
    pub reason: String,
}

/// Totals of one class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassTotal {
    /// URLs resolved.
    pub resolved: u64,
    /// Their bytes.
    pub bytes: u64,
    /// URLs unresolved.
    pub unresolved: u64,
}

/// The outcome of a size estimate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SizeReport {
    /// The files read.
    pub files: Vec<String>,
    /// Rows read.
    pub rows: u64,
    /// URLs whose size is known.
    pub resolved: u64,
    /// Sum of the known sizes.
    pub total_bytes: u64,
    /// URLs whose size is unknown.
    pub unresolved_count: u64,
    /// The first [`MAX_LISTED_UNRESOLVED`] of them, with reasons.
    pub unresolved: Vec<Unresolved>,
    /// Per class (only with a class column).
    pub per_class: BTreeMap<String, ClassTotal>,
}

struct Probed {
    file: Arc<str>,
    row: UrlRow,
    size: Result<u64, String>,
}

impl SizeReport {
    fn add(&mut self, p: Probed, by_class: bool) {
        self.rows += 1;
        let class = by_class.then(|| p.row.class.clone().unwrap_or_else(|| "(null)".into()));
        let entry = class.map(|c| self.per_class.entry(c).or_default());
        match p.size {
            Ok(bytes) => {
                self.resolved += 1;
                self.total_bytes += bytes;
                if let Some(e) = entry {
                    e.resolved += 1;
                    e.bytes += bytes;
                }
            }
            Err(reason) => {
                self.unresolved_count += 1;
                if let Some(e) = entry {
                    e.unresolved += 1;
                }
                if self.unresolved.len() < MAX_LISTED_UNRESOLVED {
                    self.unresolved.push(Unresolved {
                        file: p.file.to_string(),
                        row: p.row.index,
                        url: p.row.url.unwrap_or_default(),
                        reason,
                    });
                }
            }
        }
    }
}

async fn probe(
    fetcher: &Fetcher,
    gates: &HostGates,
    policy: &RetryPolicy,
    cancel: &CancellationToken,
    text: &str,
) -> Result<u64, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported URL scheme '{}'", url.scheme()));
    }
    let gate = gates.gate(&host_key(&url));
    let mut attempts = 0;
    loop {
        let permit = gate.acquire(cancel).await.ok_or("interrupted")?;
        attempts += 1;
        let result = fetcher.probe_size(&url).await;
        drop(permit);
        let err = match result {
            Ok(n) => {
                gate.on_success();
                return Ok(n);
            }
            Err(e) => e,
        };
        if err.failure.is_throttle() {
            gate.on_throttle(err.retry_after);
        }
        match policy.next_delay(&err.failure, attempts, err.retry_after, fastrand::f64()) {
            Some(delay) if !cancel.is_cancelled() => tokio::time::sleep(delay).await,
            _ => return Err(format!("{} ({})", err.message, err.failure.kind())),
        }
    }
}

/// Probes every URL of `files` (read in order, streamed) and sums their sizes.
pub async fn estimate(
    files: Vec<PathBuf>,
    url_col: &str,
    class_col: Option<&str>,
    cfg: &EngineConfig,
    cancel: CancellationToken,
) -> Result<SizeReport, EngineError> {
    // Validate every file before probing anything.
    let mut sources = Vec::with_capacity(files.len());
    for f in &files {
        sources.push((
            Arc::<str>::from(f.display().to_string()),
            input::open(f, url_col, class_col)?,
        ));
    }
    let fetcher = Fetcher::new(&cfg.fetch).map_err(|e| EngineError::Http(e.to_string()))?;
    let ctx = Arc::new((
        fetcher,
        HostGates::new(cfg.fetch.per_host.max(1)),
        RetryPolicy {
            max_attempts: cfg.max_attempts.max(1),
            ..RetryPolicy::default()
        },
    ));
    let (row_tx, mut row_rx) = mpsc::channel::<(Arc<str>, Result<Vec<UrlRow>, InputError>)>(2);
    let reader = std::thread::spawn(move || {
        for (name, mut rows) in sources {
            while let Some(batch) = rows.next_batch() {
                let stop = batch.is_err();
                if row_tx.blocking_send((Arc::clone(&name), batch)).is_err() || stop {
                    return;
                }
            }
        }
    });
    let (done_tx, mut done_rx) = mpsc::channel::<Probed>(256);
    let by_class = class_col.is_some();
    let mut report = SizeReport {
        files: files.iter().map(|f| f.display().to_string()).collect(),
        ..SizeReport::default()
    };
    let aggregator = tokio::spawn(async move {
        while let Some(p) = done_rx.recv().await {
            report.add(p, by_class);
        }
        report
    });
    let semaphore = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let mut input_error = None;
    'outer: while let Some((file, batch)) = tokio::select! {
        _ = cancel.cancelled() => None,
        b = row_rx.recv() => b,
    } {
        let rows = match batch {
            Ok(rows) => rows,
            Err(e) => {
                input_error = Some(e);
                break;
            }
        };
        for row in rows {
            let text = row.url.as_deref().map(str::trim).unwrap_or("").to_string();
            if text.is_empty() {
                let size = Err("empty URL".to_string());
                if done_tx
                    .send(Probed {
                        file: Arc::clone(&file),
                        row,
                        size,
                    })
                    .await
                    .is_err()
                {
                    break 'outer;
                }
                continue;
            }
            let permit = tokio::select! {
                _ = cancel.cancelled() => break 'outer,
                p = Arc::clone(&semaphore).acquire_owned() => match p { Ok(p) => p, Err(_) => break 'outer },
            };
            let (ctx, tx, cancel, file) = (
                Arc::clone(&ctx),
                done_tx.clone(),
                cancel.clone(),
                Arc::clone(&file),
            );
            tokio::spawn(async move {
                let (fetcher, gates, policy) = &*ctx;
                let size = probe(fetcher, gates, policy, &cancel, &text).await;
                drop(permit);
                let _ = tx.send(Probed { file, row, size }).await;
            });
        }
    }
    drop(row_rx);
    drop(done_tx);
    let report = aggregator
        .await
        .map_err(|e| EngineError::Http(format!("size aggregator: {e}")))?;
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    if let Some(e) = input_error {
        return Err(EngineError::Input(e));
    }
    Ok(report)
}
