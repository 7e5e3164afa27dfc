//! The blocking file work of the seeder's staging area and `--out`, carried out by the
//! executor ([`super::exec`]) off the actor: setting a completion's files aside, promoting
//! them, staging and importing transfers, deleting the files of ended leases, measuring free
//! disk, and recovering or clearing the staging area at start and finish. Which files are
//! named is decided by the state; the paths come from [`crate::layout::OutDir`].

use std::path::{Path, PathBuf};

use super::effects::Discard;
use super::files::kind_name;
use crate::layout::{OutDir, VERIFYING_SUFFIX, parse_staged_name, staged_prefix};
use crate::protocol::control::{Refusal, RejectReason};
use crate::protocol::transfer::FileKind;

/// Free bytes for an unprivileged writer on the file system of `path`, and its size.
pub fn free_disk(path: &Path) -> std::io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(path)?;
    Ok((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize),
    ))
}

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

/// Removes the whole staging area (seeder finish: no transfer is resumed across).
pub(super) fn clear_incoming(out: &Path) {
    let root = OutDir::new(out).incoming();
    match std::fs::remove_dir_all(&root) {
        Ok(()) => tracing::debug!("staging area {} cleared", root.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot clear the staging area {}: {e}", root.display()),
    }
}

/// Moves a staged file aside for verification, out of reach of a later transfer of the same
/// lease (a file already set aside by an earlier attempt is kept when nothing newer was
/// staged).
pub(super) fn set_aside(staged: &Path, verifying: &Path) {
    if let Err(e) = std::fs::rename(staged, verifying)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::error!("seeder cannot set {} aside: {e}", staged.display());
    }
}

/// Moves the verified `[archive, results]` into `--out` (results first); returns the final
/// paths.
pub(super) fn promote(from: &[PathBuf; 2], to: &[PathBuf; 2]) -> Result<[PathBuf; 2], String> {
    let [archive, results] = from;
    let [final_archive, final_results] = to;
    std::fs::rename(results, final_results)
        .map_err(|e| format!("seeder cannot store {}: {e}", final_results.display()))?;
    std::fs::rename(archive, final_archive)
        .map_err(|e| format!("seeder cannot store {}: {e}", final_archive.display()))?;
    Ok(to.clone())
}

/// Renames a finished transfer to its staged name.
pub(super) fn stage(part: &Path, staged: &Path) -> Result<(), Refusal> {
    std::fs::rename(part, staged).map_err(|e| {
        tracing::error!("seeder cannot stage {}: {e}", staged.display());
        Refusal::new(
            RejectReason::StorageFailed,
            format!("the seeder cannot stage the file: {e}"),
        )
    })
}

/// Creates the staging folder `dir`.
pub(super) fn open_staging(dir: &Path) -> Result<(), Refusal> {
    std::fs::create_dir_all(dir).map_err(|e| {
        tracing::error!("seeder cannot create {}: {e}", dir.display());
        Refusal::new(
            RejectReason::StorageFailed,
            format!("the seeder cannot create its staging folder: {e}"),
        )
    })
}

/// Moves the in-process worker's file to `part` (copied when it is on another filesystem).
pub(super) fn import(src: &Path, dir: &Path, part: &Path) -> Result<(), Refusal> {
    open_staging(dir)?;
    if std::fs::rename(src, part).is_err() {
        std::fs::copy(src, part).map_err(|e| {
            Refusal::new(
                RejectReason::StorageFailed,
                format!("cannot copy {} to {}: {e}", src.display(), part.display()),
            )
        })?;
    }
    Ok(())
}

/// Deletes what `what` names (errors ignored: a file already gone is what was wanted).
pub(super) fn discard(out: &Path, what: &Discard) {
    match what {
        Discard::Epoch {
            dataset,
            shard,
            epoch,
        } => {
            let out = OutDir::new(out);
            for kind in [FileKind::Archive, FileKind::Results].map(kind_name) {
                let _ = std::fs::remove_file(out.staged(*dataset, *shard, *epoch, kind));
                let _ = std::fs::remove_file(out.staged_part(*dataset, *shard, *epoch, kind));
                let _ = std::fs::remove_file(out.verifying(*dataset, *shard, *epoch, kind));
            }
        }
        Discard::Shard { dataset, shard } => {
            let prefix = staged_prefix(*shard);
            let Ok(entries) = std::fs::read_dir(OutDir::new(out).incoming_dataset(*dataset)) else {
                return;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Discard::Sweep {
            dataset,
            live,
            below_epoch,
        } => {
            let Ok(entries) = std::fs::read_dir(OutDir::new(out).incoming_dataset(*dataset)) else {
                return;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let keep = parse_staged_name(&name).is_some_and(|(shard, epoch)| {
                    epoch >= *below_epoch || live.contains(&(shard, epoch))
                });
                if !keep {
                    tracing::debug!(dataset = %dataset, file = name, "staged file of an ended lease removed");
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Discard::File(path) => {
            let _ = std::fs::remove_file(path);
        }
    }
}
