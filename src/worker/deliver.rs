//! Delivering a finished shard: the archive then its results file, pushed to the seeder
//! (resuming a partial transfer) and kept through every transient failure ("busy", "storage
//! failed", unreachable) for [`finished_patience`]; then `Complete`. Used right after the
//! engine finishes and for shards kept across a worker restart ([`super::kept`]).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::kept::Finished;
use super::lease_task::{
    LeaseCtx, LeaseOutcome, SHUTTING_DOWN, backoff, finished_patience, given_up, retry,
    sleep_or_cancel,
};
use super::link::LinkError;
use crate::engine::results_path;
use crate::protocol::control::{ControlRequest, ControlResponse, Grant};
use crate::protocol::transfer::{FileKind, TransferHeader};

/// The kept shard's files, delivered again.
pub(super) async fn deliver_kept(
    ctx: &LeaseCtx,
    dir: &Path,
    f: &Finished,
    lost: &CancellationToken,
    shutdown: &CancellationToken,
) -> LeaseOutcome {
    let g = &f.grant;
    tracing::info!(dataset = %g.dataset, shard = %g.shard, epoch = %g.epoch, "offering a shard finished before the restart");
    let archive = crate::layout::LeaseDir::new(dir).archive(&g.archive_name);
    deliver(ctx, &archive, f, lost, shutdown).await
}

/// Pushes the archive then the results file of a finished shard, then completes it; keeps
/// them through every transient failure for [`finished_patience`].
pub(super) async fn deliver(
    ctx: &LeaseCtx,
    archive: &Path,
    f: &Finished,
    lost: &CancellationToken,
    shutdown: &CancellationToken,
) -> LeaseOutcome {
    let g = &f.grant;
    for (kind, path) in [
        (FileKind::Archive, archive.to_path_buf()),
        (FileKind::Results, results_path(archive)),
    ] {
        // The engine hashed the archive bytes as it wrote them: reuse that digest (one pass
        // less per shard, and a disk that corrupts the file after the write is caught by the
        // seeder's verification instead of being blessed by a re-hash). The small results file
        // is hashed here.
        let known = match kind {
            FileKind::Archive => header_from_digest(g, f.archive_size, f.archive_sha256.as_deref()),
            FileKind::Results => None,
        };
        let header = match known {
            Some(h) => Ok(h),
            None => header_for(g, kind, &path).await,
        };
        let header = match header {
            Ok(h) => h,
            Err(e) => {
                return LeaseOutcome::Abandoned(format!("cannot read {}: {e}", path.display()));
            }
        };
        // A finished shard is kept until the seeder answers for good: "busy", "storage
        // failed" and an unreachable seeder are retried for a long while.
        let started = Instant::now();
        let patience = finished_patience(g);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if lost.is_cancelled() {
                return LeaseOutcome::Lost("the seeder refused a renewal".into());
            }
            match ctx.link.send_file(ctx.me, header.clone(), &path).await {
                Ok(()) => break,
                Err(LinkError::Refused(r)) if !r.reason.is_retryable() => {
                    return LeaseOutcome::Lost(r.to_string());
                }
                Err(e) if started.elapsed() < patience => {
                    tracing::warn!(shard = %g.shard, attempt, "delivering the finished shard failed, keeping it and retrying: {e}");
                    if sleep_or_cancel(backoff(attempt), shutdown).await {
                        return LeaseOutcome::Released(SHUTTING_DOWN.into());
                    }
                }
                Err(e) => {
                    return LeaseOutcome::Abandoned(format!(
                        "gave up delivering a finished shard after {:?}: {e}",
                        started.elapsed()
                    ));
                }
            }
        }
    }
    let complete = ControlRequest::Complete {
        dataset: g.dataset,
        shard: g.shard,
        epoch: g.epoch,
        ok: f.ok,
        failed: f.failed,
        bytes: f.bytes,
    };
    match retry(
        || ctx.link.request(ctx.me, complete.clone()),
        shutdown,
        finished_patience(g),
    )
    .await
    {
        Ok(ControlResponse::Ack) => {
            ctx.activity.shards_done.fetch_add(1, Ordering::Relaxed);
            LeaseOutcome::Completed
        }
        Ok(ControlResponse::Rejected(r)) => LeaseOutcome::Lost(r.to_string()),
        Ok(other) => LeaseOutcome::Abandoned(format!("unexpected answer to Complete: {other:?}")),
        Err(e) => given_up(e, shutdown),
    }
}

/// The archive's transfer header from the engine's own size and streaming sha256, if it
/// gave a well-formed digest.
fn header_from_digest(g: &Grant, size: u64, sha256_hex: Option<&str>) -> Option<TransferHeader> {
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(sha256_hex?, &mut sha256).ok()?;
    Some(TransferHeader {
        dataset: g.dataset,
        shard: g.shard,
        epoch: g.epoch,
        kind: FileKind::Archive,
        size,
        sha256,
    })
}

async fn header_for(g: &Grant, kind: FileKind, path: &Path) -> std::io::Result<TransferHeader> {
    let path = path.to_path_buf();
    let (size, sha256) = tokio::task::spawn_blocking(move || hash_file(&path))
        .await
        .map_err(std::io::Error::other)??;
    Ok(TransferHeader {
        dataset: g.dataset,
        shard: g.shard,
        epoch: g.epoch,
        kind,
        size,
        sha256,
    })
}

fn hash_file(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, h.finalize().into()))
}
