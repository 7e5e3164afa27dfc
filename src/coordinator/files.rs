//! Decisions on archive and results files arriving at the seeder, and where they live. A
//! transfer writes `<out>/.incoming/<dataset>/<shard>.e<epoch>.<kind>.part`; once net has
//! verified size and sha256 it is renamed to the same name without `.part` (staged). A
//! `Complete` with that epoch then sets both staged files aside (`.verifying`, beyond the reach
//! of a later transfer of the same lease), has them verified, and moves them into `--out` under
//! their final names. Staging per epoch keeps a late copy's files from ever mixing with the
//! winner's. The renames and deletions themselves are effects, carried out by
//! [`super::file_ops`]; the paths come from [`crate::layout::OutDir`].
//!
//! What is accepted is bounded before any byte is written: a transfer announcing more than its
//! shard can hold ([`IntakeLimits`]), or more than the free disk on `--out` minus a reserve
//! (disk promised to transfers still under way counts as used), is refused. Files of an epoch
//! that ended (expired, abandoned, fenced, refused) are deleted, and the whole staging area is
//! cleared when the seeder finishes.

use std::path::{Path, PathBuf};

use super::effects::{Answer, Discard, Effect, ImportLocal, OpenStaging, RequestId, StageFile};
use super::state::SeederState;
use crate::archive::results_path;
use crate::layout::OutDir;
use crate::model::ids::{DatasetId, Epoch, NodeId, ShardId};
use crate::model::time::UnixMillis;
use crate::protocol::control::{Refusal, RejectReason};
use crate::protocol::transfer::{FileKind, TransferHeader};

/// The seeder's answer to an announced transfer, decided before any byte is written (the
/// node hands it to the transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeDecision {
    /// Write to `part_path`, resuming from its current length.
    Accept {
        /// The partial file (created if missing).
        part_path: PathBuf,
    },
    /// Refuse, telling the sender why.
    Reject(Refusal),
}

/// Free and total bytes of the filesystem of `--out`, as measured for a decision (or why it
/// could not be measured).
pub type DiskSpace = Result<(u64, u64), String>;

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
            max_file_size: crate::engine::EngineConfig::default().fetch.max_file_size,
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

impl IntakeLimits {
    /// The reserve on a file system of `total` bytes.
    fn reserve(&self, total: u64) -> u64 {
        self.disk_reserve
            .unwrap_or_else(|| (total / 32).clamp(MIN_DISK_RESERVE, DEFAULT_DISK_RESERVE))
    }
}

/// A transfer by lease and file kind (`true` for the archive).
type TransferKey = (DatasetId, ShardId, Epoch, bool);

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

/// The kind as it stands in a staging file's name and in messages.
pub(super) fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Archive => "archive",
        FileKind::Results => "results",
    }
}

/// `([staged archive, staged results], [set-aside archive, set-aside results])` of a lease.
pub(super) fn verification_paths(
    out: &Path,
    dataset: DatasetId,
    shard: ShardId,
    epoch: Epoch,
) -> ([PathBuf; 2], [PathBuf; 2]) {
    let out = OutDir::new(out);
    let kinds = [FileKind::Archive, FileKind::Results].map(kind_name);
    (
        kinds.map(|k| out.staged(dataset, shard, epoch, k)),
        kinds.map(|k| out.verifying(dataset, shard, epoch, k)),
    )
}

/// `[archive, results]` of a shard stored in `--out` as `archive_name`.
pub(super) fn final_paths(out: &Path, archive_name: &str) -> [PathBuf; 2] {
    let archive = out.join(archive_name);
    let results = results_path(&archive);
    [archive, results]
}

impl SeederState {
    fn check_header(
        &self,
        peer: NodeId,
        h: &TransferHeader,
        now: UnixMillis,
    ) -> Result<(), Refusal> {
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
    fn check_size(
        &mut self,
        peer: NodeId,
        h: &TransferHeader,
        disk: DiskSpace,
    ) -> Result<(), Refusal> {
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
            tracing::warn!(dataset = %h.dataset, shard = %h.shard, peer = %peer, size = h.size, limit, kind = kind_name(h.kind), "transfer refused: larger than its shard can be");
            return Err(Refusal::new(
                RejectReason::NotAllowed,
                format!(
                    "a {} of {} bytes is more than a shard of {rows} rows can hold ({limit})",
                    kind_name(h.kind),
                    h.size
                ),
            ));
        }
        let (free, total) = disk.map_err(|e| {
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
        tracing::warn!(dataset = %h.dataset, shard = %h.shard, peer = %peer, size = h.size, free, others, "transfer refused: not enough free disk on --out");
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
                Some(free),
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
    fn is_live(&self, dataset: DatasetId, shard: ShardId, epoch: Epoch) -> bool {
        self.datasets
            .get(&dataset)
            .and_then(|d| d.book.shard(shard))
            .and_then(|s| s.holder(epoch))
            .is_some()
    }

    /// Bytes of an accepted transfer are arriving: a live lease being delivered stays live (see
    /// [`crate::model::lease::LeaseBook::handle_delivering`]). Anything else is ignored.
    pub fn transfer_progress(&mut self, peer: NodeId, header: &TransferHeader, now: UnixMillis) {
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
    /// than its shard, not enough disk…). Decided before any byte is written, from `disk`
    /// measured by the caller.
    pub fn decide_file(
        &mut self,
        to: RequestId,
        peer: NodeId,
        header: &TransferHeader,
        disk: DiskSpace,
        now: UnixMillis,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        match self.admit(peer, header, disk, now, &mut fx) {
            Ok((dir, part_path)) => {
                fx.push(Effect::OpenStaging(OpenStaging { to, dir, part_path }))
            }
            Err(refusal) => fx.push(Effect::Reply(
                to,
                Answer::Intake(IntakeDecision::Reject(refusal)),
            )),
        }
        fx
    }

    /// Checks a transfer and reserves its disk: the staging folder and partial file, or the
    /// refusal.
    fn admit(
        &mut self,
        peer: NodeId,
        header: &TransferHeader,
        disk: DiskSpace,
        now: UnixMillis,
        fx: &mut Vec<Effect>,
    ) -> Result<(PathBuf, PathBuf), Refusal> {
        if let Some(f) = self.storage_failure() {
            return Err(Refusal::new(RejectReason::StorageFailed, f.to_string()));
        }
        self.check_header(peer, header, now)?;
        self.check_size(peer, header, disk)?;
        self.sweep(header.dataset, fx);
        let out = OutDir::new(&self.cfg.out);
        let part = out.staged_part(
            header.dataset,
            header.shard,
            header.epoch,
            kind_name(header.kind),
        );
        Ok((out.incoming_dataset(header.dataset), part))
    }

    /// A transfer finished and net verified its size and sha256: staged if the lease is still
    /// live, else deleted and refused.
    pub fn file_received(
        &mut self,
        to: RequestId,
        peer: NodeId,
        header: &TransferHeader,
        part: PathBuf,
        now: UnixMillis,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.file_received_into(to, peer, header, part, now, &mut fx);
        fx
    }

    pub(super) fn file_received_into(
        &mut self,
        to: RequestId,
        peer: NodeId,
        header: &TransferHeader,
        part: PathBuf,
        now: UnixMillis,
        fx: &mut Vec<Effect>,
    ) {
        self.reserved.lock().remove(&transfer_key(header));
        if let Err(refusal) = self.check_header(peer, header, now) {
            fx.push(Effect::Discard(Discard::File(part)));
            fx.push(Effect::Reply(to, Answer::Staged(Err(refusal))));
            return;
        }
        let staged = OutDir::new(&self.cfg.out).staged(
            header.dataset,
            header.shard,
            header.epoch,
            kind_name(header.kind),
        );
        fx.push(Effect::StageFile(StageFile { to, part, staged }));
    }

    /// The in-process worker's file: moved (or copied across filesystems) straight into the
    /// staging area, no network hop, then staged like a transfer.
    pub fn accept_local_file(
        &mut self,
        to: RequestId,
        peer: NodeId,
        header: &TransferHeader,
        src: PathBuf,
        disk: DiskSpace,
        now: UnixMillis,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        match self.admit(peer, header, disk, now, &mut fx) {
            Ok((dir, part)) => fx.push(Effect::ImportLocal(ImportLocal {
                to,
                peer,
                header: header.clone(),
                src,
                dir,
                part,
            })),
            Err(refusal) => fx.push(Effect::Reply(to, Answer::Staged(Err(refusal)))),
        }
        fx
    }
}
