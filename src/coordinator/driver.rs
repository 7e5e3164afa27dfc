//! The unit tests' way to drive the coordinator: the real [`SeederState`] and executor, with
//! each effect carried out to the end before the next (no actor, no concurrency) and the time
//! given per call, so a test reads as a sequence of requests at chosen instants.

use std::collections::VecDeque;
use std::path::Path;

use tokio::sync::{mpsc, oneshot};

use super::effects::Effect;
use super::exec::{Executor, Pending, Replies};
use super::files::IntakeDecision;
use super::handle::measure_disk;
use super::*;
use crate::model::ids::{DatasetId, NodeId};
use crate::model::lease::LostLease;
use crate::protocol::control::{ControlRequest, ControlResponse, Refusal};
use crate::protocol::gossip::Gossip;
use crate::protocol::transfer::TransferHeader;

/// A coordinator driven step by step.
pub(super) struct Driver {
    coord: Coordinator,
    exec: Executor,
    /// Keeps the gossip channel open (what is published is not looked at).
    _gossip: mpsc::UnboundedReceiver<Gossip>,
}

impl std::ops::Deref for Driver {
    type Target = Coordinator;
    fn deref(&self) -> &Coordinator {
        &self.coord
    }
}

impl std::ops::DerefMut for Driver {
    fn deref_mut(&mut self) -> &mut Coordinator {
        &mut self.coord
    }
}

impl Driver {
    pub(super) fn new(coord: Coordinator) -> Self {
        let (gossip_tx, gossip) = mpsc::unbounded_channel();
        let exec = Executor {
            store: coord.store.clone(),
            out: coord.config().out.clone(),
            data_dir: coord.config().data_dir.clone(),
            gossip: gossip_tx,
            stored: coord.config().stored.clone(),
            replies: Replies::default(),
        };
        Self {
            coord,
            exec,
            _gossip: gossip,
        }
    }

    /// The coordinator, to run as an actor.
    pub(super) fn into_inner(self) -> Coordinator {
        self.coord
    }

    /// Carries out `effects`, and those of their outcomes, until none is left.
    pub(super) async fn run(&mut self, effects: Vec<Effect>, now: UnixMillis) {
        let mut queue: VecDeque<Effect> = effects.into();
        let out = self.exec.out.clone();
        while let Some(e) = queue.pop_front() {
            if let Some(job) = self.exec.start(e)
                && let Some(outcome) = job.run(&out).await
            {
                queue.extend(self.coord.state.handle_outcome(outcome, now));
            }
        }
    }

    pub(super) async fn handle_request(
        &mut self,
        peer: NodeId,
        req: ControlRequest,
        now: UnixMillis,
    ) -> ControlResponse {
        let (tx, rx) = oneshot::channel();
        let to = self.exec.replies.register(Pending::Control(tx));
        let fx = self.coord.state.handle_request(to, peer, req, now);
        self.run(fx, now).await;
        rx.await.expect("every request is answered")
    }

    pub(super) async fn decide_file(
        &mut self,
        peer: NodeId,
        header: &TransferHeader,
        now: UnixMillis,
    ) -> IntakeDecision {
        let (tx, rx) = oneshot::channel();
        let to = self.exec.replies.register(Pending::Intake(tx));
        let disk = measure_disk(self.exec.out.clone()).await;
        let fx = self.coord.state.decide_file(to, peer, header, disk, now);
        self.run(fx, now).await;
        rx.await.expect("every transfer is decided")
    }

    pub(super) async fn accept_local_file(
        &mut self,
        peer: NodeId,
        header: &TransferHeader,
        src: &Path,
        now: UnixMillis,
    ) -> Result<(), Refusal> {
        let (tx, rx) = oneshot::channel();
        let to = self.exec.replies.register(Pending::Staged(tx));
        let disk = measure_disk(self.exec.out.clone()).await;
        let fx = self
            .coord
            .state
            .accept_local_file(to, peer, header, src.to_path_buf(), disk, now);
        self.run(fx, now).await;
        rx.await.expect("every file is answered")
    }

    /// Expires lapsed leases; returns them.
    pub(super) async fn handle_timeout(&mut self, now: UnixMillis) -> Vec<(DatasetId, LostLease)> {
        let mut fx = Vec::new();
        let lost = self.coord.state.expire(now, &mut fx);
        self.run(fx, now).await;
        lost
    }

    pub(super) async fn finalize(&mut self) -> Result<Vec<FinalReport>, CoordinatorError> {
        let (tx, rx) = oneshot::channel();
        let to = self.exec.replies.register(Pending::Finalized(tx));
        let fx = self.coord.state.finalize(to);
        self.run(fx, UnixMillis(0)).await;
        rx.await.expect("finalize is answered")
    }
}
