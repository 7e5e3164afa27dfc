//! The archive transfer protocol (`/ldawt/archive/1`), sender → receiver:
//!
//! 1. the sender writes a `TransferHeader` frame (size, sha256, shard, epoch, kind);
//! 2. the receiver asks the application ([`Event::IncomingFile`]) where to write, re-hashes the
//!    partial file already there and answers `Accept { offset }` (or `Reject { reason }`);
//! 3. the sender streams the file's bytes from `offset` to the end, 256 KiB at a time, straight
//!    from disk; the receiver appends them to the partial file;
//! 4. the receiver fsyncs and checks size and sha256 — a mismatch deletes the partial file —
//!    then asks the application for its verdict ([`Event::FileReceived`]) and sends the
//!    final `Outcome` frame.
//!
//! An interruption (dropped connection, silent peer) leaves the partial file in place, so the
//! next attempt sends only the rest. Every chunk has its own inactivity timeout; the transfer
//! as a whole has none.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use libp2p_stream::IncomingStreams;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt, AsyncWriteExt as _};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::accept::{StreamContext, accept_streams};
use super::control::open_stream;
use super::framing::{CHUNK_BYTES, recv_msg, send_msg, write_all_timed};
use super::metrics::NetCounters;
use super::offer::offer;
use super::{Event, FileDecision, NetError, NetTuning};
use crate::protocol::control::{Refusal, RejectReason};
use crate::protocol::transfer::{MAX_TRANSFER_HEADER_BYTES, TRANSFER_PROTOCOL, TransferHeader};

/// The receiver's answer to a header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// Send the bytes from `offset` on.
    Accept { offset: u64 },
    /// Refused.
    Reject(Refusal),
}

/// The receiver's last word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Outcome {
    /// Verified and stored.
    Stored,
    /// Verified but refused by the application.
    Refused(Refusal),
    /// Size or sha256 did not match; the partial file was deleted.
    Mismatch { reason: String },
}

/// The protocol name as libp2p wants it.
pub(crate) fn protocol() -> StreamProtocol {
    StreamProtocol::new(TRANSFER_PROTOCOL)
}

/// Sends the file at `path` to `peer` (see the module documentation).
pub(crate) async fn send_file(
    streams: &mut libp2p_stream::Control,
    peer: PeerId,
    header: &TransferHeader,
    path: &Path,
    tuning: &NetTuning,
    counters: &NetCounters,
) -> Result<(), NetError> {
    let mut file = File::open(path).await?;
    let len = file.metadata().await?.len();
    if len != header.size {
        return Err(NetError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} holds {len} bytes but its transfer header announces {}",
                path.display(),
                header.size
            ),
        )));
    }
    let idle = tuning.idle_timeout;
    // The receiver may queue us behind its other transfers, then ask its application.
    let wait = tuning.app_reply_timeout * 2 + idle;
    let open = || {
        let mut control = streams.clone();
        async move { open_stream(&mut control, peer, protocol(), tuning).await }
    };
    let (mut stream, reply) = offer(&counters.streams_reopened, open, header, wait, idle).await?;
    let offset = match reply {
        Reply::Accept { offset } if offset <= header.size => offset,
        Reply::Accept { offset } => {
            return Err(NetError::Protocol(format!(
                "receiver asked to resume at {offset} of a {}-byte file",
                header.size
            )));
        }
        Reply::Reject(refusal) => return Err(NetError::Rejected(refusal)),
    };
    if offset > 0 {
        debug!(%peer, offset, size = header.size, "resuming transfer");
        NetCounters::add(&counters.transfer_bytes_resumed, offset);
    }
    file.seek(SeekFrom::Start(offset)).await?;
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut remaining = header.size - offset;
    while remaining > 0 {
        let want = remaining.min(CHUNK_BYTES as u64) as usize;
        file.read_exact(&mut buf[..want]).await?;
        write_all_timed(&mut stream, &buf[..want], idle).await?;
        NetCounters::add(&counters.transfer_bytes_sent, want as u64);
        remaining -= want as u64;
    }
    timeout(idle, stream.flush())
        .await
        .map_err(|_| NetError::Timeout("flushing the stream"))??;
    let outcome = recv_msg(&mut stream, MAX_TRANSFER_HEADER_BYTES, wait, idle).await?;
    let _ = stream.close().await;
    match outcome {
        Outcome::Stored => Ok(()),
        Outcome::Refused(refusal) => Err(NetError::Rejected(refusal)),
        Outcome::Mismatch { reason } => Err(NetError::Mismatch(reason)),
    }
}

/// Accepts transfer streams until `cancel`, one task per stream; at most
/// `max_inbound_transfers` write to disk at once, the others wait for a slot.
pub(crate) async fn serve(
    incoming: IncomingStreams,
    ctx: StreamContext,
    cancel: CancellationToken,
) {
    let bound = ctx.tuning.max_inbound_transfers;
    accept_streams(
        incoming,
        ctx,
        bound,
        cancel,
        |peer, stream, ctx, slots| async move {
            if let Err(e) = receive(peer, stream, &ctx, &slots).await {
                NetCounters::add(&ctx.counters.transfers_failed, 1);
                warn!(%peer, error = %e, "incoming transfer failed");
            }
        },
    )
    .await;
}

/// Runs the receiving side of one transfer.
async fn receive(
    peer: PeerId,
    mut stream: Stream,
    ctx: &StreamContext,
    slots: &Semaphore,
) -> Result<(), NetError> {
    let (events, tuning, counters) = (&ctx.events, &*ctx.tuning, &*ctx.counters);
    let idle = tuning.idle_timeout;
    let header: TransferHeader =
        recv_msg(&mut stream, MAX_TRANSFER_HEADER_BYTES, idle, idle).await?;
    let Ok(Ok(_slot)) = timeout(tuning.app_reply_timeout, slots.acquire()).await else {
        let reply = Reply::Reject(Refusal::new(
            RejectReason::Busy,
            "the receiver is busy with other transfers",
        ));
        return send_msg(&mut stream, &reply, MAX_TRANSFER_HEADER_BYTES, idle).await;
    };
    let (decide, decision) = oneshot::channel();
    let asked = Event::IncomingFile {
        peer,
        header: header.clone(),
        decide,
    };
    let decision = match timeout(tuning.app_reply_timeout, events.send(asked)).await {
        Ok(Ok(())) => match timeout(tuning.app_reply_timeout, decision).await {
            Ok(Ok(d)) => d,
            Ok(Err(_)) => FileDecision::Reject(Refusal::new(
                RejectReason::Busy,
                "the node dropped the transfer without deciding",
            )),
            Err(_) => FileDecision::Reject(Refusal::new(
                RejectReason::Busy,
                "the node did not decide in time",
            )),
        },
        _ => FileDecision::Reject(Refusal::new(
            RejectReason::Busy,
            "the node is not taking transfers",
        )),
    };
    let part_path = match decision {
        FileDecision::Accept { part_path } => part_path,
        FileDecision::Reject(refusal) => {
            return send_msg(
                &mut stream,
                &Reply::Reject(refusal),
                MAX_TRANSFER_HEADER_BYTES,
                idle,
            )
            .await;
        }
    };
    let (mut file, offset, mut hasher) = match open_part(&part_path, header.size).await {
        Ok(opened) => opened,
        Err(e) => {
            let reason = format!("cannot write {}: {e}", part_path.display());
            warn!(%peer, "{reason}");
            let refusal = Refusal::new(
                RejectReason::StorageFailed,
                format!("the receiver cannot write the file: {e}"),
            );
            send_msg(
                &mut stream,
                &Reply::Reject(refusal),
                MAX_TRANSFER_HEADER_BYTES,
                idle,
            )
            .await?;
            return Err(e);
        }
    };
    send_msg(
        &mut stream,
        &Reply::Accept { offset },
        MAX_TRANSFER_HEADER_BYTES,
        idle,
    )
    .await?;
    let progress = Progress {
        peer,
        header: &header,
        events,
    };
    let copied = copy_to_part(
        &mut stream,
        &mut file,
        &mut hasher,
        header.size - offset,
        idle,
        counters,
        &progress,
    )
    .await;
    // Whatever arrived stays on disk for the next attempt to resume from.
    file.flush().await?;
    copied?;
    file.sync_all().await?;
    drop(file);
    let digest: [u8; 32] = hasher.finalize().into();
    if digest != header.sha256 {
        let reason = format!(
            "sha256 of the received {} bytes is {}, the sender announced {}; partial copy deleted",
            header.size,
            hex::encode(digest),
            hex::encode(header.sha256)
        );
        tokio::fs::remove_file(&part_path).await?;
        let outcome = Outcome::Mismatch {
            reason: reason.clone(),
        };
        send_msg(&mut stream, &outcome, MAX_TRANSFER_HEADER_BYTES, idle).await?;
        return Err(NetError::Mismatch(reason));
    }
    let outcome = match application_verdict(peer, header, part_path, events, tuning).await {
        Ok(()) => Outcome::Stored,
        Err(refusal) => Outcome::Refused(refusal),
    };
    if outcome == Outcome::Stored {
        NetCounters::add(&counters.transfers_received, 1);
        info!(%peer, "file received and stored");
    }
    send_msg(&mut stream, &outcome, MAX_TRANSFER_HEADER_BYTES, idle).await?;
    let _ = stream.close().await;
    Ok(())
}

/// Tells the application, at most once a second, that bytes of a transfer keep arriving.
struct Progress<'a> {
    peer: PeerId,
    header: &'a TransferHeader,
    events: &'a mpsc::Sender<Event>,
}

/// Time between two [`Event::TransferProgress`] of one transfer.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Progress<'_> {
    fn note(&self) {
        let _ = self.events.try_send(Event::TransferProgress {
            peer: self.peer,
            header: self.header.clone(),
        });
    }
}

/// Reads exactly `remaining` bytes from the stream into the file, hashing them.
async fn copy_to_part(
    stream: &mut Stream,
    file: &mut File,
    hasher: &mut Sha256,
    mut remaining: u64,
    idle: std::time::Duration,
    counters: &NetCounters,
    progress: &Progress<'_>,
) -> Result<(), NetError> {
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut noted = tokio::time::Instant::now();
    while remaining > 0 {
        if noted.elapsed() >= PROGRESS_EVERY {
            progress.note();
            noted = tokio::time::Instant::now();
        }
        let want = remaining.min(CHUNK_BYTES as u64) as usize;
        let n = timeout(idle, stream.read(&mut buf[..want]))
            .await
            .map_err(|_| NetError::Timeout("waiting for file data"))??;
        if n == 0 {
            return Err(NetError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the sender stopped with {remaining} bytes to go"),
            )));
        }
        file.write_all(&buf[..n]).await?;
        hasher.update(&buf[..n]);
        NetCounters::add(&counters.transfer_bytes_received, n as u64);
        remaining -= n as u64;
    }
    Ok(())
}

/// Opens (creating it and its directory) the partial file, re-hashes the prefix it already
/// holds and positions at its end. A prefix longer than the announced size is discarded.
async fn open_part(path: &Path, size: u64) -> Result<(File, u64, Sha256), NetError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .await?;
    let mut have = file.metadata().await?.len();
    if have > size {
        file.set_len(0).await?;
        have = 0;
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut left = have;
    while left > 0 {
        let want = left.min(CHUNK_BYTES as u64) as usize;
        file.read_exact(&mut buf[..want]).await?;
        hasher.update(&buf[..want]);
        left -= want as u64;
    }
    file.seek(SeekFrom::Start(have)).await?;
    Ok((file, have, hasher))
}

async fn application_verdict(
    peer: PeerId,
    header: TransferHeader,
    part_path: PathBuf,
    events: &mpsc::Sender<Event>,
    tuning: &NetTuning,
) -> Result<(), Refusal> {
    let (verdict, answer) = oneshot::channel();
    let event = Event::FileReceived {
        peer,
        header,
        part_path,
        verdict,
    };
    match timeout(tuning.app_reply_timeout, events.send(event)).await {
        Ok(Ok(())) => {}
        _ => {
            return Err(Refusal::new(
                RejectReason::Busy,
                "the node is not taking transfers",
            ));
        }
    }
    match timeout(tuning.app_reply_timeout, answer).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(_)) => Err(Refusal::new(
            RejectReason::Busy,
            "the node dropped the file without a verdict",
        )),
        Err(_) => Err(Refusal::new(
            RejectReason::Busy,
            "the node did not store the file in time",
        )),
    }
}
