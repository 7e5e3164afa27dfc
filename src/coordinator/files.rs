//! Archive and results files arriving at the seeder. A transfer writes
//! `<out>/.incoming/<dataset>/<shard>.e<epoch>.<kind>.part`; once net has verified size and
//! sha256 it is renamed to the same name without `.part` (staged). A `Complete` with that epoch
//! then moves both staged files into `--out` under their final names and marks the shard done.
//! Staging per epoch keeps a late copy's files from ever mixing with the winner's.

use std::path::{Path, PathBuf};

use super::Coordinator;
use crate::engine::results_path;
use crate::model::ids::{DatasetId, ShardId};
use crate::model::time::UnixMillis;
pub use crate::net::FileDecision;
use crate::protocol::swarm::{FileKind, Refusal, RejectReason, TransferHeader};

fn incoming_dir(out: &Path, dataset: DatasetId) -> PathBuf {
    out.join(".incoming").join(dataset.to_hex())
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Archive => "archive",
        FileKind::Results => "results",
    }
}

fn staged_path(
    out: &Path,
    dataset: DatasetId,
    shard: ShardId,
    epoch: u64,
    kind: FileKind,
) -> PathBuf {
    incoming_dir(out, dataset).join(format!("{:05}.e{epoch}.{}", shard.0, kind_name(kind)))
}

fn part_path(
    out: &Path,
    dataset: DatasetId,
    shard: ShardId,
    epoch: u64,
    kind: FileKind,
) -> PathBuf {
    let mut p = staged_path(out, dataset, shard, epoch, kind).into_os_string();
    p.push(".part");
    PathBuf::from(p)
}

impl Coordinator {
    fn check_header(&self, peer: &str, h: &TransferHeader, now: UnixMillis) -> Result<(), Refusal> {
        let d = self.datasets.get(&h.dataset).ok_or_else(|| {
            Refusal::new(
                RejectReason::UnknownDataset,
                format!("unknown dataset {}", h.dataset),
            )
        })?;
        d.book
            .check(h.shard, h.epoch, peer, now)
            .map(|_| ())
            .map_err(|e| super::requests::lease_refusal(&e))
    }

    /// Where an incoming transfer should be written, or why it is refused (stale epoch…).
    pub fn decide_file(
        &self,
        peer: &str,
        header: &TransferHeader,
        now: UnixMillis,
    ) -> FileDecision {
        if let Err(refusal) = self.check_header(peer, header, now) {
            return FileDecision::Reject(refusal);
        }
        let dir = incoming_dir(&self.cfg.out, header.dataset);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::error!("seeder cannot create {}: {e}", dir.display());
            return FileDecision::Reject(Refusal::new(
                RejectReason::StorageFailed,
                format!("the seeder cannot create its staging folder: {e}"),
            ));
        }
        FileDecision::Accept {
            part_path: part_path(
                &self.cfg.out,
                header.dataset,
                header.shard,
                header.epoch,
                header.kind,
            ),
        }
    }

    /// A transfer finished and net verified its size and sha256: stage it if the lease is still
    /// live.
    pub fn file_received(
        &self,
        peer: &str,
        header: &TransferHeader,
        part: &Path,
        now: UnixMillis,
    ) -> Result<(), Refusal> {
        if let Err(refusal) = self.check_header(peer, header, now) {
            let _ = std::fs::remove_file(part);
            return Err(refusal);
        }
        let staged = staged_path(
            &self.cfg.out,
            header.dataset,
            header.shard,
            header.epoch,
            header.kind,
        );
        std::fs::rename(part, &staged).map_err(|e| {
            tracing::error!("seeder cannot stage {}: {e}", staged.display());
            Refusal::new(
                RejectReason::StorageFailed,
                format!("the seeder cannot stage the file: {e}"),
            )
        })
    }

    /// The in-process worker's file: moved (or copied across filesystems) straight into the
    /// staging area, no network hop.
    pub fn accept_local_file(
        &self,
        peer: &str,
        header: &TransferHeader,
        src: &Path,
        now: UnixMillis,
    ) -> Result<(), Refusal> {
        let part = match self.decide_file(peer, header, now) {
            FileDecision::Accept { part_path } => part_path,
            FileDecision::Reject(refusal) => return Err(refusal),
        };
        if std::fs::rename(src, &part).is_err() {
            std::fs::copy(src, &part).map_err(|e| {
                Refusal::new(
                    RejectReason::StorageFailed,
                    format!("cannot copy {} to {}: {e}", src.display(), part.display()),
                )
            })?;
        }
        self.file_received(peer, header, &part, now)
    }
}

/// Moves the staged archive and results of `(shard, epoch)` into `--out`; returns their final
/// paths.
pub(super) fn promote(
    out: &Path,
    dataset: DatasetId,
    shard: ShardId,
    epoch: u64,
    archive_name: &str,
) -> Result<[PathBuf; 2], String> {
    let archive = staged_path(out, dataset, shard, epoch, FileKind::Archive);
    let results = staged_path(out, dataset, shard, epoch, FileKind::Results);
    for (p, what) in [(&archive, "archive"), (&results, "results file")] {
        if !p.exists() {
            return Err(format!(
                "the {what} of {shard} epoch {epoch} has not been received"
            ));
        }
    }
    let final_archive = out.join(archive_name);
    let final_results = results_path(&final_archive);
    std::fs::rename(&results, &final_results)
        .map_err(|e| format!("seeder cannot store {}: {e}", final_results.display()))?;
    std::fs::rename(&archive, &final_archive)
        .map_err(|e| format!("seeder cannot store {}: {e}", final_archive.display()))?;
    Ok([final_archive, final_results])
}

/// Removes every staged or partial file of `shard` (losing copies, old epochs).
pub(super) fn discard_staged(out: &Path, dataset: DatasetId, shard: ShardId) {
    let prefix = format!("{:05}.e", shard.0);
    let Ok(entries) = std::fs::read_dir(incoming_dir(out, dataset)) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
