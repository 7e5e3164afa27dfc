//! The coordinator as an actor: one task owns the [`Coordinator`], serves messages one at a
//! time (so every transition is ordered and persisted before the next), and expires leases
//! when the earliest one is due. [`CoordinatorHandle`] is the cloneable front used by the node's
//! network dispatcher and by the in-process worker. A completion is verified outside the
//! actor (the actor checks the lease, a blocking thread reads the files, the actor commits), so
//! renewals and bids are never queued behind a verification.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::complete::{CompleteKey, VerifyFailure, VerifyJob, run_job};
use super::{Coordinator, CoordinatorError, FileDecision, FinalReport, StorageFailure};
use crate::model::ids::Epoch;
use crate::model::time::Clock;
use crate::protocol::control::{ControlRequest, ControlResponse, Refusal, RejectReason};
use crate::protocol::gossip::Gossip;
use crate::protocol::status::DatasetProgress;
use crate::protocol::transfer::TransferHeader;
use crate::verify::Verified;

/// Longest sleep between two expiry checks.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Deliveries verified at once (each reads its files once on a blocking thread).
const CONCURRENT_VERIFICATIONS: usize = 2;

type Verdict = Result<Verified, VerifyFailure>;

enum Msg {
    Request(String, ControlRequest, oneshot::Sender<ControlResponse>),
    PrepareComplete(
        String,
        CompleteKey,
        oneshot::Sender<Result<VerifyJob, ControlResponse>>,
    ),
    CommitComplete(
        String,
        CompleteKey,
        Verdict,
        oneshot::Sender<ControlResponse>,
    ),
    Decide(String, TransferHeader, oneshot::Sender<FileDecision>),
    Progress(String, TransferHeader),
    Received(
        String,
        TransferHeader,
        PathBuf,
        oneshot::Sender<Result<(), Refusal>>,
    ),
    LocalFile(
        String,
        TransferHeader,
        PathBuf,
        oneshot::Sender<Result<(), Refusal>>,
    ),
    Snapshot(String, oneshot::Sender<Snapshot>),
    Finalize(oneshot::Sender<Result<Vec<FinalReport>, CoordinatorError>>),
}

/// What the node publishes about its datasets.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Progress per dataset.
    pub progress: Vec<DatasetProgress>,
    /// `Gossip::Dataset` announcements.
    pub announcements: Vec<Gossip>,
    /// True when every dataset is finished.
    pub finished: bool,
    /// Deliveries refused because they failed verification, per peer id.
    pub invalid_deliveries: std::collections::BTreeMap<String, u64>,
}

/// A cloneable front of the coordinator actor.
#[derive(Clone)]
pub struct CoordinatorHandle {
    tx: mpsc::Sender<Msg>,
    finished: watch::Receiver<bool>,
    verifying: Arc<Semaphore>,
    storage: watch::Receiver<Option<StorageFailure>>,
}

/// The coordinator has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the coordinator has stopped")]
pub struct Stopped;

impl CoordinatorHandle {
    /// Starts the actor. Lease changes are sent on `gossip`; it stops on `cancel`.
    pub fn spawn(
        mut coord: Coordinator,
        clock: Arc<dyn Clock>,
        gossip: mpsc::UnboundedSender<Gossip>,
        cancel: CancellationToken,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Msg>(256);
        let (finished_tx, finished) = watch::channel(coord.is_finished());
        let (storage_tx, storage) = watch::channel(None);
        tokio::spawn(async move {
            loop {
                let now = clock.now();
                let wait = coord
                    .poll_timeout()
                    .map(|t| t.since(now).max(Duration::from_millis(5)))
                    .unwrap_or(MAX_IDLE)
                    .min(MAX_IDLE);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {
                        coord.handle_timeout(clock.now()).await;
                    }
                    msg = rx.recv() => match msg {
                        None => break,
                        Some(msg) => serve(&mut coord, msg, clock.now()).await,
                    },
                }
                coord.check_storage(clock.now());
                for g in coord.drain_gossip() {
                    let _ = gossip.send(g);
                }
                let done = coord.is_finished();
                finished_tx.send_if_modified(|f| std::mem::replace(f, done) != done);
                if let Some(failure) = coord.storage_failure()
                    && storage_tx.borrow().is_none()
                {
                    let _ = storage_tx.send(Some(failure.clone()));
                }
            }
        });
        Self {
            tx,
            finished,
            verifying: Arc::new(Semaphore::new(CONCURRENT_VERIFICATIONS)),
            storage,
        }
    }

    /// Answers a control request from `peer`.
    pub async fn request(&self, peer: &str, req: ControlRequest) -> ControlResponse {
        if let ControlRequest::Complete {
            dataset,
            shard,
            epoch: Epoch(epoch),
            ..
        } = req
        {
            let key = CompleteKey {
                dataset,
                shard,
                epoch,
            };
            return self.complete(peer, key).await;
        }
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(Msg::Request(peer.into(), req, tx))
            .await
            .is_err()
        {
            return stopped();
        }
        rx.await.unwrap_or_else(|_| stopped())
    }

    /// A completion: the actor checks the lease, the files are verified on a blocking thread,
    /// the actor commits (checking the lease again).
    async fn complete(&self, peer: &str, key: CompleteKey) -> ControlResponse {
        let Ok(_permit) = self.verifying.acquire().await else {
            return stopped();
        };
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(Msg::PrepareComplete(peer.into(), key, tx))
            .await
            .is_err()
        {
            return stopped();
        }
        let job = match rx.await {
            Ok(Ok(job)) => job,
            Ok(Err(refused)) => return refused,
            Err(_) => return stopped(),
        };
        let verdict = run_job(job).await;
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(Msg::CommitComplete(peer.into(), key, verdict, tx))
            .await
            .is_err()
        {
            return stopped();
        }
        rx.await.unwrap_or_else(|_| stopped())
    }

    /// Bytes of an accepted transfer are arriving (keeps the lease being delivered live). Never
    /// waits: a full queue drops the note, the next one follows within a second.
    pub fn transfer_progress(&self, peer: &str, header: TransferHeader) {
        let _ = self.tx.try_send(Msg::Progress(peer.into(), header));
    }

    /// Where to write an incoming transfer.
    pub async fn decide_file(&self, peer: &str, header: TransferHeader) -> FileDecision {
        let (tx, rx) = oneshot::channel();
        let reject = || FileDecision::Reject(stopped_refusal());
        if self
            .tx
            .send(Msg::Decide(peer.into(), header, tx))
            .await
            .is_err()
        {
            return reject();
        }
        rx.await.unwrap_or_else(|_| reject())
    }

    /// A verified transfer arrived at `part`.
    pub async fn file_received(
        &self,
        peer: &str,
        header: TransferHeader,
        part: PathBuf,
    ) -> Result<(), Refusal> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Received(peer.into(), header, part, tx))
            .await
            .map_err(|_| stopped_refusal())?;
        rx.await.map_err(|_| stopped_refusal())?
    }

    /// The in-process worker hands over a finished file.
    pub async fn local_file(
        &self,
        peer: &str,
        header: TransferHeader,
        path: PathBuf,
    ) -> Result<(), Refusal> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::LocalFile(peer.into(), header, path, tx))
            .await
            .map_err(|_| stopped_refusal())?;
        rx.await.map_err(|_| stopped_refusal())?
    }

    /// Progress and announcements, naming `seeder` as the seeder.
    pub async fn snapshot(&self, seeder: &str) -> Result<Snapshot, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Snapshot(seeder.into(), tx))
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Writes the final results and overview of every dataset.
    pub async fn finalize(&self) -> Result<Result<Vec<FinalReport>, CoordinatorError>, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Finalize(tx)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Resolves with the failure when the seeder's storage fails (fail-stop); never otherwise.
    pub async fn wait_storage_failed(&self) -> StorageFailure {
        let mut rx = self.storage.clone();
        loop {
            if let Some(f) = rx.borrow_and_update().clone() {
                return f;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves when every dataset is finished (or the actor stopped).
    pub async fn wait_finished(&self) {
        let mut rx = self.finished.clone();
        let _ = rx.wait_for(|f| *f).await;
    }
}

fn stopped_refusal() -> Refusal {
    Refusal::new(RejectReason::Busy, Stopped.to_string())
}

fn stopped() -> ControlResponse {
    ControlResponse::Rejected(stopped_refusal())
}

async fn serve(coord: &mut Coordinator, msg: Msg, now: crate::model::time::UnixMillis) {
    match msg {
        Msg::Request(peer, req, reply) => {
            let _ = reply.send(coord.handle_request(&peer, req, now).await);
        }
        Msg::PrepareComplete(peer, key, reply) => {
            let _ = reply.send(coord.prepare_complete(&peer, key, now));
        }
        Msg::CommitComplete(peer, key, verdict, reply) => {
            let _ = reply.send(coord.commit_complete(&peer, key, verdict, now).await);
        }
        Msg::Decide(peer, header, reply) => {
            // (A shard of the usual size with no room at all fail-stops the seeder inside.)
            let _ = reply.send(coord.decide_file(&peer, &header, now));
        }
        Msg::Progress(peer, header) => coord.transfer_progress(&peer, &header, now),
        Msg::Received(peer, header, part, reply) => {
            let _ = reply.send(coord.file_received(&peer, &header, &part, now));
        }
        Msg::LocalFile(peer, header, path, reply) => {
            let _ = reply.send(coord.accept_local_file(&peer, &header, &path, now));
        }
        Msg::Snapshot(seeder, reply) => {
            let _ = reply.send(Snapshot {
                progress: coord.progress(&seeder),
                announcements: coord.announcements(now),
                finished: coord.is_finished(),
                invalid_deliveries: coord.invalid_deliveries().clone(),
            });
        }
        Msg::Finalize(reply) => {
            let _ = reply.send(coord.finalize().await);
        }
    }
}
