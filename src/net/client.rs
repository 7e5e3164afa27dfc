//! The cloneable handle the application drives the transport with. Swarm operations go to the
//! [`super::EventLoop`] as commands with a oneshot reply; stream operations (control requests,
//! file transfers) open libp2p-stream streams directly, so a long transfer never blocks the
//! event loop.

use std::path::Path;
use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::timeout;

use super::event_loop::Command;
use super::metrics::{NetCounters, NetMetrics};
use super::{NetError, NetTuning, control, transfer};
use crate::protocol::codec::encode;
use crate::protocol::control::{ControlRequest, ControlResponse};
use crate::protocol::gossip::{Gossip, MAX_GOSSIP_BYTES};
use crate::protocol::transfer::TransferHeader;

/// A handle to a running node's transport.
#[derive(Clone)]
pub struct Client {
    local_peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    streams: libp2p_stream::Control,
    tuning: Arc<NetTuning>,
    counters: Arc<NetCounters>,
    outbound_transfers: Arc<Semaphore>,
}

impl Client {
    pub(crate) fn new(
        local_peer_id: PeerId,
        commands: mpsc::Sender<Command>,
        streams: libp2p_stream::Control,
        tuning: Arc<NetTuning>,
        counters: Arc<NetCounters>,
    ) -> Self {
        let outbound_transfers = Arc::new(Semaphore::new(tuning.max_outbound_transfers.max(1)));
        Self {
            local_peer_id,
            commands,
            streams,
            tuning,
            counters,
            outbound_transfers,
        }
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Closed)?;
        rx.await.map_err(|_| NetError::Closed)
    }

    /// The addresses this node listens on, each with `/p2p/<peer id>` appended (waits for the
    /// listeners to report their addresses).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        timeout(
            self.tuning.open_stream_timeout,
            self.ask(Command::ListenAddrs),
        )
        .await
        .map_err(|_| NetError::Timeout("waiting for listen addresses"))?
    }

    /// Connects to `addr` (with or without `/p2p/…`); returns once the connection is up.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        timeout(
            self.tuning.open_stream_timeout,
            self.ask(|tx| Command::Dial(addr.clone(), tx)),
        )
        .await
        .map_err(|_| NetError::Timeout("dialing"))?
        .and_then(|r| r)
    }

    /// Every peer with an open connection and the remote addresses of those connections.
    pub async fn connected_peers(&self) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, NetError> {
        self.ask(Command::ConnectedPeers).await
    }

    /// Publishes `msg` on the swarm's gossip topic. Having no subscribed peer yet (a lone
    /// node) is normal and returns `Ok(())`.
    pub async fn publish(&self, msg: Gossip) -> Result<(), NetError> {
        let bytes = encode(&msg, MAX_GOSSIP_BYTES)?;
        self.ask(|tx| Command::Publish(bytes, tx)).await?
    }

    /// Sends one control request to `peer` (dialing it if needed) and returns its answer.
    pub async fn request(
        &self,
        peer: PeerId,
        req: ControlRequest,
    ) -> Result<ControlResponse, NetError> {
        let mut streams = self.streams.clone();
        let result = control::request(&mut streams, peer, &req, &self.tuning, &self.counters).await;
        NetCounters::add(&self.counters.control_requests_sent, 1);
        if let Err(e) = &result {
            NetCounters::add(&self.counters.control_requests_failed, 1);
            self.redial_if_unreachable(peer, e).await;
        }
        result
    }

    /// Pushes the file at `path` to `peer`, resuming from whatever prefix the receiver already
    /// holds. Returns once the receiver verified size and sha256 and its application stored
    /// it; `Err(NetError::Rejected)` when it refused, `Err(NetError::Mismatch)` when the bytes
    /// did not verify (the receiver dropped its copy; retrying starts over).
    pub async fn send_file(
        &self,
        peer: PeerId,
        header: TransferHeader,
        path: &Path,
    ) -> Result<(), NetError> {
        let _slot = self
            .outbound_transfers
            .acquire()
            .await
            .map_err(|_| NetError::Closed)?;
        let mut streams = self.streams.clone();
        let result = transfer::send_file(
            &mut streams,
            peer,
            &header,
            path,
            &self.tuning,
            &self.counters,
        )
        .await;
        match &result {
            Ok(()) => NetCounters::add(&self.counters.transfers_sent, 1),
            Err(e) => {
                NetCounters::add(&self.counters.transfers_failed, 1);
                self.redial_if_unreachable(peer, e).await;
            }
        }
        result
    }

    /// After a failure that was not the peer's answer (no connection, dial error, timeout):
    /// if `peer` is one of the `--join` addresses, dial it now rather than when the redial
    /// backoff (up to 30 s) says, so the caller's retry finds a connection as soon as the peer
    /// is back.
    async fn redial_if_unreachable(&self, peer: PeerId, e: &NetError) {
        if !matches!(e, NetError::Rejected(_) | NetError::Mismatch(_)) {
            let _ = self.commands.send(Command::RedialNow(peer)).await;
        }
    }

    /// The transport's counters now.
    pub fn metrics(&self) -> NetMetrics {
        self.counters.snapshot()
    }

    /// Stops the event loop: every connection closes and inbound streams stop being served.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}
