//! An upload queue: files handed over one by one (the seeder's stored archives and results as
//! they land) are uploaded in arrival order by one task, each into the same collection; the
//! outcome is collected for the final report. Used by `ldawt node --upload-to`.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use reqwest::Url;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

use super::{WebDavClient, upload_file};

/// What the queue did.
#[derive(Debug, Default)]
pub struct QueueReport {
    /// Files uploaded (or already there with the same size).
    pub done: u64,
    /// Files that failed after retries, with the error.
    pub failed: Vec<(PathBuf, String)>,
}

/// The running queue; [`UploadQueue::finish`] drains it.
pub struct UploadQueue {
    tx: UnboundedSender<PathBuf>,
    task: JoinHandle<QueueReport>,
}

impl UploadQueue {
    /// Starts the uploading task: every file sent goes into `base` with `client`.
    pub fn start(client: WebDavClient, base: Url) -> Self {
        let (tx, mut rx) = unbounded_channel::<PathBuf>();
        let task = tokio::spawn(async move {
            let sent = AtomicU64::new(0);
            let mut report = QueueReport::default();
            while let Some(path) = rx.recv().await {
                match upload_file(&client, &path, &base, true, &sent).await {
                    Ok(_) => report.done += 1,
                    Err(e) => {
                        tracing::warn!(file = %path.display(), "upload failed: {e}");
                        report.failed.push((path, e.to_string()));
                    }
                }
            }
            report
        });
        Self { tx, task }
    }

    /// A handle that queues files (given to the node, which sends each stored file).
    pub fn sender(&self) -> UnboundedSender<PathBuf> {
        self.tx.clone()
    }

    /// Queues one file.
    pub fn send(&self, path: PathBuf) {
        let _ = self.tx.send(path);
    }

    /// Closes the queue and waits until every queued file is handled (the node's own senders
    /// must be dropped first).
    pub async fn finish(self) -> QueueReport {
        drop(self.tx);
        self.task.await.unwrap_or_default()
    }
}
