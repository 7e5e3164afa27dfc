//! The swarm's transport: one libp2p swarm (TCP, the swarm key's pnet handshake, Noise, Yamux;
//! connection caps, an optional allow list, validated gossipsub, mDNS, identify, ping,
//! libp2p-stream) owned by an [`EventLoop`] task, driven through a cloneable [`Client`],
//! and reporting to the application through a stream of [`Event`]s — the shape of
//! rust-libp2p's file-sharing example.
//!
//! Two stream protocols ride on libp2p-stream: control requests (one length-prefixed postcard
//! frame each way, see `control`) and resumable archive transfers (see `transfer`). Framing,
//! size limits and per-chunk inactivity timeouts live in `framing`.

mod accept;
mod backoff;
mod behaviour;
mod bootstrap;
mod client;
mod control;
mod error;
mod event_loop;
mod framing;
mod gossip_guard;
mod limits;
mod metrics;
mod offer;
mod transfer;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, identity::Keypair};
use tokio::sync::{mpsc, oneshot};

pub use client::Client;
pub use error::NetError;
pub use event_loop::{EventLoop, peer_of};
pub use libp2p::pnet::PreSharedKey;
pub use limits::ConnLimits;
pub use metrics::NetMetrics;

use crate::protocol::control::{ControlRequest, ControlResponse};

use crate::protocol::gossip::Gossip;

use crate::protocol::transfer::TransferHeader;

/// Default TCP port of a node.
pub const DEFAULT_PORT: u16 = 4001;

/// What a node listens on, whom it joins and how it discovers peers.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The node's identity.
    pub keypair: Keypair,
    /// Listen addresses (default `/ip4/0.0.0.0/tcp/4001`; `/tcp/0` picks a free port).
    pub listen: Vec<Multiaddr>,
    /// `--join` addresses: dialed at start and redialed with backoff while disconnected.
    pub bootstrap: Vec<Multiaddr>,
    /// Local-network discovery by mDNS (dials discovered peers).
    pub mdns: bool,
    /// How long a connection with no open stream is kept.
    pub idle_connection_timeout: Duration,
    /// The swarm key: only nodes holding the same key complete a handshake. `None` is an
    /// open swarm that anyone who can reach the node may join.
    pub psk: Option<PreSharedKey>,
    /// When not empty, connections with any other peer are closed.
    pub allow_peers: Vec<PeerId>,
    /// Caps on pending and established connections.
    pub limits: ConnLimits,
}

impl NetConfig {
    /// The defaults for `keypair`: listen on every interface on [`DEFAULT_PORT`], no
    /// bootstrap, mDNS on, connections kept 60 s when idle, no swarm key (set
    /// [`NetConfig::psk`] for a private swarm), everyone allowed, default caps.
    pub fn new(keypair: Keypair) -> Self {
        Self {
            keypair,
            listen: vec![
                Multiaddr::empty()
                    .with(Protocol::Ip4(Ipv4Addr::UNSPECIFIED))
                    .with(Protocol::Tcp(DEFAULT_PORT)),
            ],
            bootstrap: Vec::new(),
            mdns: true,
            idle_connection_timeout: Duration::from_secs(60),
            psk: None,
            allow_peers: Vec::new(),
            limits: ConnLimits::default(),
        }
    }
}

/// Time limits and concurrency bounds of the transport. The defaults suit production; tests
/// shorten them.
#[derive(Debug, Clone)]
pub struct NetTuning {
    /// Opening a stream, including dialing a disconnected peer.
    pub open_stream_timeout: Duration,
    /// Inactivity limit for each chunk read or written on a stream.
    pub idle_timeout: Duration,
    /// How long the application may take to answer an [`Event`] (reply, decision, verdict).
    pub app_reply_timeout: Duration,
    /// Inbound control streams handled at once; more wait for a slot.
    pub max_inbound_requests: usize,
    /// Inbound file transfers written at once; more wait for a slot.
    pub max_inbound_transfers: usize,
    /// Outbound file transfers at once (per node); more wait for a slot.
    pub max_outbound_transfers: usize,
    /// First redial delay for a lost bootstrap peer.
    pub redial_initial: Duration,
    /// Longest redial delay.
    pub redial_max: Duration,
    /// Capacity of the event queue to the application.
    pub event_queue: usize,
}

impl Default for NetTuning {
    fn default() -> Self {
        Self {
            open_stream_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(30),
            app_reply_timeout: Duration::from_secs(120),
            max_inbound_requests: 64,
            max_inbound_transfers: 4,
            max_outbound_transfers: 4,
            redial_initial: Duration::from_secs(1),
            redial_max: Duration::from_secs(30),
            event_queue: 4096,
        }
    }
}

/// What the transport tells the application.
#[derive(Debug)]
pub enum Event {
    /// A peer's control request; answer through `reply` (dropping it answers
    /// `ControlResponse::Rejected`).
    Request {
        /// Who asks.
        peer: PeerId,
        request: ControlRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<ControlResponse>,
    },
    /// A peer wants to send a file: say where to write it (or refuse).
    IncomingFile {
        /// The sender.
        peer: PeerId,
        /// What it announces.
        header: TransferHeader,
        /// The decision (dropping it refuses).
        decide: oneshot::Sender<FileDecision>,
    },
    /// Bytes of an accepted transfer keep arriving (at most one event a second per transfer;
    /// dropped when the application's queue is full).
    TransferProgress {
        /// The sender.
        peer: PeerId,
        /// What it announced.
        header: TransferHeader,
    },
    /// A file arrived complete and matched its size and sha256; store it and answer with the
    /// verdict that the sender will receive.
    FileReceived {
        /// The sender.
        peer: PeerId,
        /// As announced in `IncomingFile`.
        header: TransferHeader,
        /// The verified file (the `part_path` of the decision).
        part_path: PathBuf,
        /// `Ok(())` when stored, `Err(reason)` to refuse (dropping it refuses).
        verdict: oneshot::Sender<Result<(), crate::protocol::control::Refusal>>,
    },
    /// A gossip message from `from` (its original publisher).
    Gossip {
        /// The publisher.
        from: PeerId,
        message: Gossip,
    },
    /// A first connection to a peer opened.
    PeerConnected {
        peer: PeerId,
        /// The remote address of that connection.
        addr: Multiaddr,
    },
    /// The last connection to a peer closed.
    PeerDisconnected { peer: PeerId },
    /// Identify told us who a peer is and where it listens.
    PeerIdentified {
        peer: PeerId,
        /// Its listen addresses.
        listen_addrs: Vec<Multiaddr>,
        /// Its agent string (`ldawt/<version>`).
        agent: String,
    },
}

/// The application's answer to [`Event::IncomingFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileDecision {
    /// Write to `part_path`, resuming from its current length.
    Accept {
        /// The partial file (created if missing).
        part_path: PathBuf,
    },
    /// Refuse, telling the sender why.
    Reject(crate::protocol::control::Refusal),
}

/// libp2p listens with `SO_REUSEPORT` (so dials can reuse the port), which would let a second
/// node silently share an explicit port with a running one; a plain bind first turns that
/// into a clear error. Port 0 and non-IP addresses are left to libp2p.
pub fn ensure_port_free(addr: &Multiaddr) -> Result<(), NetError> {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(t) => port = Some(t),
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) if port != 0 => std::net::TcpListener::bind((ip, port))
            .map(drop)
            .map_err(|e| NetError::Listen {
                addr: addr.to_string(),
                reason: format!("{e} (is another node running there?)"),
            }),
        _ => Ok(()),
    }
}

/// Builds the transport with the default [`NetTuning`]: binds the listen addresses and
/// returns the handle, the event stream and the loop to spawn.
pub fn new(cfg: NetConfig) -> Result<(Client, mpsc::Receiver<Event>, EventLoop), NetError> {
    new_with(cfg, NetTuning::default())
}

/// [`new`] with explicit time limits and bounds.
pub fn new_with(
    cfg: NetConfig,
    tuning: NetTuning,
) -> Result<(Client, mpsc::Receiver<Event>, EventLoop), NetError> {
    let local_peer_id = cfg.keypair.public().to_peer_id();
    let mut swarm = behaviour::build_swarm(
        cfg.keypair.clone(),
        behaviour::SwarmParts {
            psk: cfg.psk,
            allow_peers: cfg.allow_peers.clone(),
            limits: cfg.limits,
            mdns: cfg.mdns,
            idle_connection_timeout: cfg.idle_connection_timeout,
        },
    )?;
    for addr in &cfg.listen {
        ensure_port_free(addr)?;
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
    }
    let mut control = swarm.behaviour().stream.new_control();
    let control_incoming = control
        .accept(control::protocol())
        .map_err(|e| NetError::Setup(e.to_string()))?;
    let transfer_incoming = control
        .accept(transfer::protocol())
        .map_err(|e| NetError::Setup(e.to_string()))?;
    let (command_tx, command_rx) = mpsc::channel(64);
    let (event_tx, event_rx) = mpsc::channel(tuning.event_queue.max(1));
    let counters = Arc::new(metrics::NetCounters::default());
    let tuning = Arc::new(tuning);
    let client = Client::new(
        local_peer_id,
        command_tx,
        control,
        tuning.clone(),
        counters.clone(),
    );
    let event_loop = EventLoop::new(event_loop::Parts {
        swarm,
        commands: command_rx,
        events: event_tx,
        bootstrap: cfg.bootstrap,
        control_incoming,
        transfer_incoming,
        tuning,
        counters,
    });
    Ok((client, event_rx, event_loop))
}
