//! The coordinator as an actor: one task owns the [`SeederState`] and loops: receive an
//! event (a request, an outcome of earlier work, a lease expiry) → ask the state → hand the
//! effects to the executor ([`super::exec`]). It never waits on a file or a commit: file moves
//! run in an ordered lane, verifications a few at a time, commits and reads in their own
//! tasks, and their outcomes come back as events; so a renewal is answered (once its own
//! commit is done) while a completion is verified or promoted. [`CoordinatorHandle`] is the
//! cloneable front used by the node's network dispatcher and by the in-process worker; it
//! measures the free disk a transfer decision needs before asking the actor.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::effects::{Effect, Outcome};
use super::exec::{Executor, Job, Pending, Replies};
use super::files::{DiskSpace, IntakeDecision};
use super::state::SeederState;
use super::{Coordinator, CoordinatorError, FinalReport, StorageFailure, file_ops};
use crate::model::ids::NodeId;
use crate::model::time::{Clock, UnixMillis};
use crate::protocol::control::{ControlRequest, ControlResponse, Refusal, RejectReason};
use crate::protocol::gossip::Gossip;
use crate::protocol::status::DatasetProgress;
use crate::protocol::transfer::TransferHeader;

/// Longest sleep between two expiry checks.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Deliveries verified at once (each reads its files once on a blocking thread).
const CONCURRENT_VERIFICATIONS: usize = 2;
/// How often the seeder measures its own free space.
const DISK_CHECK: Duration = Duration::from_millis(500);

enum Msg {
    Request(NodeId, ControlRequest, oneshot::Sender<ControlResponse>),
    Decide(
        NodeId,
        TransferHeader,
        DiskSpace,
        oneshot::Sender<IntakeDecision>,
    ),
    Progress(NodeId, TransferHeader),
    Received(
        NodeId,
        TransferHeader,
        PathBuf,
        oneshot::Sender<Result<(), Refusal>>,
    ),
    LocalFile(
        NodeId,
        TransferHeader,
        PathBuf,
        DiskSpace,
        oneshot::Sender<Result<(), Refusal>>,
    ),
    Snapshot(NodeId, oneshot::Sender<Snapshot>),
    Finalize(oneshot::Sender<Result<Vec<FinalReport>, CoordinatorError>>),
    FreeSpace(PathBuf, u64),
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
    pub invalid_deliveries: std::collections::BTreeMap<NodeId, u64>,
}

/// A cloneable front of the coordinator actor.
#[derive(Clone)]
pub struct CoordinatorHandle {
    tx: mpsc::Sender<Msg>,
    finished: watch::Receiver<bool>,
    storage: watch::Receiver<Option<StorageFailure>>,
    out: PathBuf,
}

/// The coordinator has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the coordinator has stopped")]
pub struct Stopped;

/// The actor's side: the state, its executor and the lanes its jobs run in.
struct Actor {
    state: SeederState,
    exec: Executor,
    files: mpsc::UnboundedSender<Job>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    verifying: Arc<Semaphore>,
}

impl Actor {
    /// Hands effects to the executor; what must wait runs off the actor.
    fn dispatch(&mut self, effects: Vec<Effect>) {
        for e in effects {
            let Some(job) = self.exec.start(e) else {
                continue;
            };
            let outcomes = self.outcomes.clone();
            let out = self.exec.out.clone();
            match job {
                Job::Files(_) => {
                    let _ = self.files.send(job);
                }
                Job::Verify { .. } => {
                    let permits = Arc::clone(&self.verifying);
                    tokio::spawn(async move {
                        let _permit = permits.acquire_owned().await;
                        if let Some(o) = job.run(&out).await {
                            let _ = outcomes.send(o);
                        }
                    });
                }
                _ => {
                    tokio::spawn(async move {
                        if let Some(o) = job.run(&out).await {
                            let _ = outcomes.send(o);
                        }
                    });
                }
            }
        }
    }

    fn serve(&mut self, msg: Msg, now: UnixMillis) {
        let r = &mut self.exec.replies;
        let fx = match msg {
            Msg::Request(peer, req, tx) => {
                let to = r.register(Pending::Control(tx));
                self.state.handle_request(to, peer, req, now)
            }
            Msg::Decide(peer, header, disk, tx) => {
                // (A shard of the usual size with no room at all fail-stops the seeder inside.)
                let to = r.register(Pending::Intake(tx));
                self.state.decide_file(to, peer, &header, disk, now)
            }
            Msg::Progress(peer, header) => {
                self.state.transfer_progress(peer, &header, now);
                Vec::new()
            }
            Msg::Received(peer, header, part, tx) => {
                let to = r.register(Pending::Staged(tx));
                self.state.file_received(to, peer, &header, part, now)
            }
            Msg::LocalFile(peer, header, path, disk, tx) => {
                let to = r.register(Pending::Staged(tx));
                self.state
                    .accept_local_file(to, peer, &header, path, disk, now)
            }
            Msg::Snapshot(seeder, tx) => {
                let _ = tx.send(Snapshot {
                    progress: self.state.progress(seeder),
                    announcements: self.state.announcements(now),
                    finished: self.state.is_finished(),
                    invalid_deliveries: self.state.invalid_deliveries().clone(),
                });
                Vec::new()
            }
            Msg::Finalize(tx) => {
                let to = r.register(Pending::Finalized(tx));
                self.state.finalize(to)
            }
            Msg::FreeSpace(dir, free) => {
                self.state.note_free_space(&dir, free);
                Vec::new()
            }
        };
        self.dispatch(fx);
    }
}

impl CoordinatorHandle {
    /// Starts the actor. Lease changes are sent on `gossip`; it stops on `cancel`.
    pub fn spawn(
        coord: Coordinator,
        clock: Arc<dyn Clock>,
        gossip: mpsc::UnboundedSender<Gossip>,
        cancel: CancellationToken,
    ) -> Self {
        let Coordinator { state, store } = coord;
        let (tx, mut rx) = mpsc::channel::<Msg>(256);
        let (finished_tx, finished) = watch::channel(state.is_finished());
        let (storage_tx, storage) = watch::channel(None);
        let (outcomes, mut outcome_rx) = mpsc::unbounded_channel::<Outcome>();
        let (files, mut files_rx) = mpsc::unbounded_channel::<Job>();
        let out = state.config().out.clone();
        let dirs = [out.clone(), state.config().data_dir.clone()];
        let exec = Executor {
            store,
            out: out.clone(),
            data_dir: state.config().data_dir.clone(),
            gossip,
            stored: state.config().stored.clone(),
            replies: Replies::default(),
        };
        // The ordered file lane: renames, copies and deletions one after the other.
        let lane_out = out.clone();
        let lane_outcomes = outcomes.clone();
        tokio::spawn(async move {
            while let Some(job) = files_rx.recv().await {
                if let Some(o) = job.run(&lane_out).await {
                    let _ = lane_outcomes.send(o);
                }
            }
        });
        tokio::spawn(watch_free_space(dirs, tx.downgrade(), cancel.clone()));
        let mut actor = Actor {
            state,
            exec,
            files,
            outcomes,
            verifying: Arc::new(Semaphore::new(CONCURRENT_VERIFICATIONS)),
        };
        tokio::spawn(async move {
            loop {
                let now = clock.now();
                let wait = actor
                    .state
                    .poll_timeout()
                    .map(|t| t.since(now).max(Duration::from_millis(5)))
                    .unwrap_or(MAX_IDLE)
                    .min(MAX_IDLE);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {
                        let fx = actor.state.handle_timeout(clock.now());
                        actor.dispatch(fx);
                    }
                    Some(o) = outcome_rx.recv() => {
                        let fx = actor.state.handle_outcome(o, clock.now());
                        actor.dispatch(fx);
                    }
                    msg = rx.recv() => match msg {
                        None => break,
                        Some(msg) => actor.serve(msg, clock.now()),
                    },
                }
                let done = actor.state.is_finished();
                finished_tx.send_if_modified(|f| std::mem::replace(f, done) != done);
                if let Some(failure) = actor.state.storage_failure()
                    && storage_tx.borrow().is_none()
                {
                    let _ = storage_tx.send(Some(failure.clone()));
                }
            }
        });
        Self {
            tx,
            finished,
            storage,
            out,
        }
    }

    /// Answers a control request from `peer`.
    pub async fn request(&self, peer: NodeId, req: ControlRequest) -> ControlResponse {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Request(peer, req, tx)).await.is_err() {
            return stopped();
        }
        rx.await.unwrap_or_else(|_| stopped())
    }

    /// Bytes of an accepted transfer are arriving (keeps the lease being delivered live). Never
    /// waits: a full queue drops the note, the next one follows within a second.
    pub fn transfer_progress(&self, peer: NodeId, header: TransferHeader) {
        let _ = self.tx.try_send(Msg::Progress(peer, header));
    }

    /// Where to write an incoming transfer.
    pub async fn decide_file(&self, peer: NodeId, header: TransferHeader) -> IntakeDecision {
        let (tx, rx) = oneshot::channel();
        let reject = || IntakeDecision::Reject(stopped_refusal());
        let disk = measure_disk(self.out.clone()).await;
        if self
            .tx
            .send(Msg::Decide(peer, header, disk, tx))
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
        peer: NodeId,
        header: TransferHeader,
        part: PathBuf,
    ) -> Result<(), Refusal> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Received(peer, header, part, tx))
            .await
            .map_err(|_| stopped_refusal())?;
        rx.await.map_err(|_| stopped_refusal())?
    }

    /// The in-process worker hands over a finished file.
    pub async fn local_file(
        &self,
        peer: NodeId,
        header: TransferHeader,
        path: PathBuf,
    ) -> Result<(), Refusal> {
        let (tx, rx) = oneshot::channel();
        let disk = measure_disk(self.out.clone()).await;
        self.tx
            .send(Msg::LocalFile(peer, header, path, disk, tx))
            .await
            .map_err(|_| stopped_refusal())?;
        rx.await.map_err(|_| stopped_refusal())?
    }

    /// Progress and announcements, naming `seeder` as the seeder.
    pub async fn snapshot(&self, seeder: NodeId) -> Result<Snapshot, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Snapshot(seeder, tx))
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

/// Free and total bytes of `--out`, measured on a blocking thread.
pub(super) async fn measure_disk(out: PathBuf) -> DiskSpace {
    tokio::task::spawn_blocking(move || file_ops::free_disk(&out).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
}

/// Measures the free space of `--out` and the data dir every half second and tells the actor
/// (which fail-stops when one runs out).
async fn watch_free_space(
    dirs: [PathBuf; 2],
    tx: mpsc::WeakSender<Msg>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(DISK_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        for dir in &dirs {
            let d = dir.clone();
            let free = tokio::task::spawn_blocking(move || crate::layout::free_space(&d))
                .await
                .ok()
                .flatten();
            let Some(tx) = tx.upgrade() else {
                return;
            };
            if let Some(free) = free
                && tx.send(Msg::FreeSpace(dir.clone(), free)).await.is_err()
            {
                return;
            }
        }
    }
}

fn stopped_refusal() -> Refusal {
    Refusal::new(RejectReason::Busy, Stopped.to_string())
}

fn stopped() -> ControlResponse {
    ControlResponse::Rejected(stopped_refusal())
}
