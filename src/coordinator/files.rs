//! Archive and results files arriving at the seeder. A transfer writes
//! `<out>/.incoming/<dataset>/<shard>.e<epoch>.<kind>.part`; once net has verified size and
//! sha256 it is renamed to the same name without `.part` (staged). A `Complete` with that epoch
//! then sets both staged files aside (`.verifying`, beyond the reach of a later transfer of the
//! same lease), has them verified, and moves them into `--out` under their final names.
//! Staging per epoch keeps a late copy's files from ever mixing with the winner's.
//!
//! What is accepted is bounded before any byte is written: a transfer announcing more than its
//! shard can hold ([`IntakeLimits`]), or more than the free disk on `--out` minus a reserve
//! (disk promised to transfers still under way counts as used), is refused. Files of an epoch
//! that ended (expired, abandoned, fenced, refused) are deleted, and the whole staging area is
//! cleared when the seeder starts and when it finishes.

use std::path::{Path, PathBuf};

use super::Coordinator;
use crate::archive::results_path;
use crate::layout::{OutDir, VERIFYING_SUFFIX, parse_staged_name, staged_prefix};
use crate::model::ids::{DatasetId, ShardId};
use crate::model::time::UnixMillis;
pub use crate::net::FileDecision;
use crate::protocol::swarm::{FileKind, Refusal, RejectReason, TransferHeader};

/// Tar overhead allowed per row (header, padding, GNU long name, folder entry).
const TAR_BYTES_PER_ROW: u64 = 4 << 10;
/// Tar and gzip overhead allowed per archive (end blocks, gzip framing).
const TAR_BYTES_PER_ARCHIVE: u64 = 1 << 20;
/// Results-file bytes allowed per row (URL, class, error text, member, hash).
const RESULTS_BYTES_PER_ROW: u64 = 8 << 10;
/// Results-file bytes allowed per file (parquet footer and schema).
const RESULTS_BYTES_PER_FILE: u64 = 1 << 20;
/// Largest free disk kept on `--out` by default (a 32nd of the file system, at least 2 MiB).
pub const DEFAULT_DISK_RESERVE: u64 = 16 << 20;
/// Smallest default reserve.
const MIN_DISK_RESERVE: u64 = 2 << 20;
/// A transfer up to this many times the shard's expected size is "plausible": when even that
/// cannot fit, the seeder cannot go on and fail-stops instead of refusing forever.
const PLAUSIBLE_FACTOR: u64 = 4;

/// Bounds on what the seeder accepts from workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeLimits {
    /// Largest file a row may store (the engine's `max_file_size`).
    pub max_file_size: u64,
    /// `--max-archive-bytes`: a cap on any one archive on top of the per-shard bound.
    pub max_archive_bytes: Option<u64>,
    /// Free disk that must remain on `--out` after a transfer; `None`: a 32nd of the file
    /// system, between 2 MiB and [`DEFAULT_DISK_RESERVE`].
    pub disk_reserve: Option<u64>,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        Self {
            max_file_size: crate::engine::EngineConfig::default().max_file_size,
            max_archive_bytes: None,
            disk_reserve: None,
        }
    }
}

impl IntakeLimits {
    /// The largest file of `kind` a shard of `rows` rows can produce.
    pub fn max_bytes(&self, kind: FileKind, rows: u64) -> u64 {
        match kind {
            FileKind::Archive => {
                let per_row = self
                    .max_file_size
                    .saturating_add(self.max_file_size / 1024)
                    .saturating_add(TAR_BYTES_PER_ROW);
                let derived = rows
                    .saturating_mul(per_row)
                    .saturating_add(TAR_BYTES_PER_ARCHIVE);
                self.max_archive_bytes
                    .map_or(derived, |cap| derived.min(cap))
            }
            FileKind::Results => rows
                .saturating_mul(RESULTS_BYTES_PER_ROW)
                .saturating_add(RESULTS_BYTES_PER_FILE),
        }
    }
}

fn incoming_dir(out: &Path, dataset: DatasetId) -> PathBuf {
    OutDir::new(out).incoming_dataset(dataset)
}

/// Free bytes for an unprivileged writer on the file system of `path`, and its size.
fn free_disk(path: &Path) -> std::io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(path)?;
    Ok((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize),
    ))
}

impl IntakeLimits {
    /// The reserve on a file system of `total` bytes.
    fn reserve(&self, total: u64) -> u64 {
        self.disk_reserve
            .unwrap_or_else(|| (total / 32).clamp(MIN_DISK_RESERVE, DEFAULT_DISK_RESERVE))
    }
}

/// A transfer by lease and file kind (`true` for the archive).
type TransferKey = (DatasetId, ShardId, u64, bool);

/// Disk promised to transfers accepted but not yet staged, so that several transfers accepted
/// at once cannot together overrun the free disk each one fits in alone.
#[derive(Debug, Default)]
pub(super) struct Reservations(std::sync::Mutex<std::collections::HashMap<TransferKey, u64>>);

impl Reservations {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<TransferKey, u64>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn transfer_key(h: &TransferHeader) -> TransferKey {
    (h.dataset, h.shard, h.epoch, h.kind == FileKind::Archive)
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
    OutDir::new(out).staged(dataset, shard, epoch, kind_name(kind))
}

fn part_path(
    out: &Path,
    dataset: DatasetId,
    shard: ShardId,
    epoch: u64,
    kind: FileKind,
) -> PathBuf {
    OutDir::new(out).staged_part(dataset, shard, epoch, kind_name(kind))
}

/// Where a staged file waits while it is verified: out of reach of a later transfer of the
/// same lease, so what is promoted is exactly what was verified.
fn verifying_path(
    out: &Path,
    dataset: DatasetId,
    shard: ShardId,
    epoch: u64,
    kind: FileKind,
) -> PathBuf {
    OutDir::new(out).verifying(dataset, shard, epoch, kind_name(kind))
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

    /// Refuses a transfer larger than its shard can produce, or than the free disk allows.
    fn check_size(&mut self, peer: &str, h: &TransferHeader) -> Result<(), Refusal> {
        let (rows, bytes_per_row) = self
            .datasets
            .get(&h.dataset)
            .map(|d| {
                let rows = d.seeded.shard_rows.get(h.shard.0 as usize).copied();
                (rows.unwrap_or(0), d.bytes_per_row())
            })
            .unwrap_or((0, 0));
        let limit = self.cfg.intake.max_bytes(h.kind, rows);
        if h.size > limit {
            tracing::warn!(dataset = %h.dataset, shard = %h.shard, peer, size = h.size, limit, kind = kind_name(h.kind), "transfer refused: larger than its shard can be");
            return Err(Refusal::new(
                RejectReason::NotAllowed,
                format!(
                    "a {} of {} bytes is more than a shard of {rows} rows can hold ({limit})",
                    kind_name(h.kind),
                    h.size
                ),
            ));
        }
        let (free, total) = free_disk(&self.cfg.out).map_err(|e| {
            tracing::error!("seeder cannot measure its free disk: {e}");
            Refusal::new(
                RejectReason::StorageFailed,
                format!("the seeder cannot measure its free disk: {e}"),
            )
        })?;
        let key = transfer_key(h);
        let usable = free.saturating_sub(self.cfg.intake.reserve(total));
        let others: u64 = {
            let mut reserved = self.reserved.lock();
            reserved.retain(|(ds, shard, epoch, _), _| self.is_live(*ds, *shard, *epoch));
            reserved
                .iter()
                .filter(|(k, _)| **k != key)
                .map(|(_, v)| *v)
                .sum()
        };
        if usable.saturating_sub(others) > h.size {
            self.reserved.lock().insert(key, h.size);
            return Ok(());
        }
        tracing::warn!(dataset = %h.dataset, shard = %h.shard, peer, size = h.size, free, others, "transfer refused: not enough free disk on --out");
        let reserve = self.cfg.intake.reserve(total);
        let detail = format!(
            "not enough free disk on --out for a file of {} bytes ({free} free, {reserve} kept in reserve, {others} promised to other transfers)",
            h.size
        );
        if usable > h.size {
            // Short only because other transfers hold space: that may pass.
            return Err(Refusal::new(RejectReason::Busy, detail));
        }
        // No room even alone. A file of the shard's usual size: the seeder cannot go on, so it
        // fail-stops (exit 4) instead of refusing forever. An outsized announcement is only
        // refused: it must not stop the seeder.
        let expected = match h.kind {
            FileKind::Archive => bytes_per_row
                .saturating_mul(rows)
                .saturating_add(TAR_BYTES_PER_ARCHIVE),
            FileKind::Results => self.cfg.intake.max_bytes(FileKind::Results, rows),
        };
        if h.size <= expected.saturating_mul(PLAUSIBLE_FACTOR) {
            let out = self.cfg.out.clone();
            self.fail_storage(
                &out,
                format!(
                    "no room for a {}-byte {} of shard {} (keeping {reserve} bytes free)",
                    h.size,
                    kind_name(h.kind),
                    h.shard
                ),
            );
        }
        Err(Refusal::new(RejectReason::StorageFailed, detail))
    }

    /// True when `epoch` is a lease still held on `shard`.
    fn is_live(&self, dataset: DatasetId, shard: ShardId, epoch: u64) -> bool {
        self.datasets
            .get(&dataset)
            .and_then(|d| d.book.shard(shard))
            .and_then(|s| s.holder(epoch))
            .is_some()
    }

    /// Deletes the staged and partial files of `dataset` whose lease epoch is no longer held
    /// (expired, abandoned, fenced), and any file that is not a staging file.
    pub(super) fn sweep_incoming(&self, dataset: DatasetId) {
        let Some(d) = self.datasets.get(&dataset) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(incoming_dir(&self.cfg.out, dataset)) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let live = parse_staged_name(&name).is_some_and(|(shard, epoch)| {
                d.book.shard(shard).and_then(|s| s.holder(epoch)).is_some()
            });
            if !live {
                tracing::debug!(dataset = %dataset, file = name, "staged file of an ended lease removed");
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Bytes of an accepted transfer are arriving: a live lease being delivered stays live (see
    /// [`crate::model::lease::LeaseBook::handle_delivering`]). Anything else is ignored.
    pub fn transfer_progress(&mut self, peer: &str, header: &TransferHeader, now: UnixMillis) {
        if self.storage_failed.is_some() {
            return;
        }
        if let Some(d) = self.datasets.get_mut(&header.dataset) {
            let _ = d
                .book
                .handle_delivering(header.shard, header.epoch, peer, now);
        }
    }

    /// Where an incoming transfer should be written, or why it is refused (stale epoch, larger
    /// than its shard, not enough disk…). Decided before any byte is written.
    pub fn decide_file(
        &mut self,
        peer: &str,
        header: &TransferHeader,
        now: UnixMillis,
    ) -> FileDecision {
        if let Some(f) = self.storage_failure() {
            return FileDecision::Reject(Refusal::new(RejectReason::StorageFailed, f.to_string()));
        }
        if let Err(refusal) = self
            .check_header(peer, header, now)
            .and_then(|()| self.check_size(peer, header))
        {
            return FileDecision::Reject(refusal);
        }
        self.sweep_incoming(header.dataset);
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
        self.reserved.lock().remove(&transfer_key(header));
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
        &mut self,
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

/// The archive and results files of `(shard, epoch)` set aside for verification: the staged
/// files are moved there (a file already set aside by an earlier attempt is kept when nothing
/// newer was staged).
pub(super) fn take_for_verification(
    out: &Path,
    dataset: DatasetId,
    shard: ShardId,
    epoch: u64,
) -> [PathBuf; 2] {
    [FileKind::Archive, FileKind::Results].map(|kind| {
        let staged = staged_path(out, dataset, shard, epoch, kind);
        let verifying = verifying_path(out, dataset, shard, epoch, kind);
        if let Err(e) = std::fs::rename(&staged, &verifying)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!("seeder cannot set {} aside: {e}", staged.display());
        }
        verifying
    })
}

/// Removes the staged and partial files of one epoch of `shard`.
pub(super) fn discard_epoch(out: &Path, dataset: DatasetId, shard: ShardId, epoch: u64) {
    for kind in [FileKind::Archive, FileKind::Results] {
        let _ = std::fs::remove_file(staged_path(out, dataset, shard, epoch, kind));
        let _ = std::fs::remove_file(part_path(out, dataset, shard, epoch, kind));
        let _ = std::fs::remove_file(verifying_path(out, dataset, shard, epoch, kind));
    }
}

/// Removes the whole staging area (seeder start and finish: no transfer is resumed across).
/// At seeder start: keeps the staging area across the restart — a worker whose file was
/// staged before the seeder went down completes its lease with it instead of downloading the
/// shard again — and puts files caught in verification back to their staged names (the
/// completion is asked again). Files of leases that have ended are swept as they are found
/// ended, and the whole area at finalize.
pub(super) fn recover_incoming(out: &Path) {
    let Ok(datasets) = std::fs::read_dir(OutDir::new(out).incoming()) else {
        return;
    };
    for dataset in datasets.flatten() {
        let Ok(files) = std::fs::read_dir(dataset.path()) else {
            continue;
        };
        for f in files.flatten() {
            let path = f.path();
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(staged) = name.strip_suffix(VERIFYING_SUFFIX) {
                let back = path.with_file_name(staged);
                if back.exists() || std::fs::rename(&path, &back).is_err() {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
}

pub(super) fn clear_incoming(out: &Path) {
    let root = OutDir::new(out).incoming();
    match std::fs::remove_dir_all(&root) {
        Ok(()) => tracing::debug!("staging area {} cleared", root.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot clear the staging area {}: {e}", root.display()),
    }
}

/// Moves the verified archive and results of `(shard, epoch)` into `--out`; returns their
/// final paths.
pub(super) fn promote(
    out: &Path,
    dataset: DatasetId,
    shard: ShardId,
    epoch: u64,
    archive_name: &str,
) -> Result<[PathBuf; 2], String> {
    let [archive, results] = [FileKind::Archive, FileKind::Results]
        .map(|kind| verifying_path(out, dataset, shard, epoch, kind));
    let final_archive = OutDir::new(out).archive(archive_name);
    let final_results = results_path(&final_archive);
    std::fs::rename(&results, &final_results)
        .map_err(|e| format!("seeder cannot store {}: {e}", final_results.display()))?;
    std::fs::rename(&archive, &final_archive)
        .map_err(|e| format!("seeder cannot store {}: {e}", final_archive.display()))?;
    Ok([final_archive, final_results])
}

/// Removes every staged or partial file of `shard` (losing copies, old epochs).
pub(super) fn discard_staged(out: &Path, dataset: DatasetId, shard: ShardId) {
    let prefix = staged_prefix(shard);
    let Ok(entries) = std::fs::read_dir(incoming_dir(out, dataset)) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
