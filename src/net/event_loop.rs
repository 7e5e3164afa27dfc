//! The task that owns the libp2p `Swarm`: it executes [`Command`]s from the [`super::Client`],
//! turns swarm events into application [`Event`]s, dials mDNS discoveries (only towards larger
//! peer ids, so a pair ends up with one connection) and keeps bootstrap peers connected with
//! backoff. Stream protocols are served by tasks it spawns and cancels when it ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, mdns, ping};
use libp2p_stream::IncomingStreams;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace, warn};

use super::accept::StreamContext;
use super::behaviour::{Behaviour, BehaviourEvent};
use super::bootstrap::Bootstrap;
use super::gossip_guard::{GossipGuard, Verdict};
use super::metrics::NetCounters;
use super::{Event, NetError, NetTuning, control, transfer};
use crate::protocol::gossip::GOSSIP_TOPIC;

/// How often pending listen-address replies and bootstrap redials are looked at.
const TICK: Duration = Duration::from_millis(200);

/// A request from a [`super::Client`] to the event loop.
pub(crate) enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Dial(Multiaddr, oneshot::Sender<Result<(), NetError>>),
    ConnectedPeers(oneshot::Sender<Vec<(PeerId, Vec<Multiaddr>)>>),
    Publish(Vec<u8>, oneshot::Sender<Result<(), NetError>>),
    /// A request or upload to this peer found no connection: dial its `--join` addresses now.
    RedialNow(PeerId),
    Shutdown(oneshot::Sender<()>),
}

/// Everything [`EventLoop::new`] takes over.
pub(crate) struct Parts {
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) bootstrap: Vec<Multiaddr>,
    pub(crate) control_incoming: IncomingStreams,
    pub(crate) transfer_incoming: IncomingStreams,
    pub(crate) tuning: Arc<NetTuning>,
    pub(crate) counters: Arc<NetCounters>,
}

/// Owns the swarm; spawn [`EventLoop::run`] on the runtime.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    bootstrap: Bootstrap,
    incoming: Option<(IncomingStreams, IncomingStreams)>,
    tuning: Arc<NetTuning>,
    counters: Arc<NetCounters>,
    topic: gossipsub::IdentTopic,
    pending_dials: HashMap<ConnectionId, oneshot::Sender<Result<(), NetError>>>,
    pending_listen: Vec<oneshot::Sender<Vec<Multiaddr>>>,
    listen_addrs: Vec<Multiaddr>,
    connections: HashMap<PeerId, HashMap<ConnectionId, Multiaddr>>,
    /// Consecutive ping failures of each connection (removed on a success or a close).
    ping_failures: HashMap<ConnectionId, u32>,
    gossip_guard: GossipGuard,
}

/// Consecutive ping failures (timeouts of 20 s, one ping every 15 s) that close a connection.
/// One failure used to: under load a single late ping closed the worker's link to its seeder
/// and every transfer on it.
const PING_FAILURES_TO_CLOSE: u32 = 2;

/// The peer id named by an address's `/p2p/…` component, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

impl EventLoop {
    pub(crate) fn new(parts: Parts) -> Self {
        let bootstrap = Bootstrap::new(
            parts.bootstrap,
            parts.tuning.redial_initial,
            parts.tuning.redial_max,
            Instant::now(),
        );
        Self {
            swarm: parts.swarm,
            commands: parts.commands,
            events: parts.events,
            bootstrap,
            incoming: Some((parts.control_incoming, parts.transfer_incoming)),
            tuning: parts.tuning,
            counters: parts.counters,
            topic: gossipsub::IdentTopic::new(GOSSIP_TOPIC),
            pending_dials: HashMap::new(),
            pending_listen: Vec::new(),
            listen_addrs: Vec::new(),
            connections: HashMap::new(),
            ping_failures: HashMap::new(),
            gossip_guard: GossipGuard::default(),
        }
    }

    /// Runs until [`super::Client::shutdown`] is called or every client is dropped; then
    /// closes every connection and stops serving streams.
    pub async fn run(mut self) {
        let cancel = CancellationToken::new();
        if let Some((control_incoming, transfer_incoming)) = self.incoming.take() {
            let ctx = StreamContext {
                events: self.events.clone(),
                tuning: self.tuning.clone(),
                counters: self.counters.clone(),
            };
            tokio::spawn(control::serve(
                control_incoming,
                ctx.clone(),
                cancel.clone(),
            ));
            tokio::spawn(transfer::serve(transfer_incoming, ctx, cancel.clone()));
        }
        let _stop_serving = cancel.drop_guard();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.handle_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(done)) => {
                        let _ = done.send(());
                        break;
                    }
                    Some(command) => self.handle_command(command),
                    None => break,
                },
                _ = tick.tick() => self.handle_tick(Instant::now()),
            }
        }
        debug!(peer = %self.swarm.local_peer_id(), "network event loop stopped");
    }

    fn emit(&self, event: Event) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => {
                NetCounters::add(&self.counters.events_dropped, 1);
                warn!(?event, "application event queue full: event dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => trace!("no event receiver"),
        }
    }

    fn with_local_id(&self, addr: &Multiaddr) -> Multiaddr {
        let id = *self.swarm.local_peer_id();
        addr.clone().with_p2p(id).unwrap_or_else(|a| a)
    }

    fn handle_tick(&mut self, now: Instant) {
        if !self.listen_addrs.is_empty() || self.swarm.listeners().next().is_none() {
            let addrs: Vec<Multiaddr> = self
                .listen_addrs
                .iter()
                .map(|a| self.with_local_id(a))
                .collect();
            for reply in self.pending_listen.drain(..) {
                let _ = reply.send(addrs.clone());
            }
        }
        for (i, addr, peer) in self.bootstrap.due(now) {
            if peer.is_some_and(|p| self.swarm.is_connected(&p)) {
                self.bootstrap.on_already_connected(i);
                continue;
            }
            let opts = match peer {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
            };
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    debug!(%addr, "dialing bootstrap peer");
                    self.bootstrap.on_dial_started(i, id);
                }
                Err(e) => {
                    // DialPeerConditionFalse: someone else is dialing it; look again later.
                    let wait = self.bootstrap.on_dial_not_started(i, now, fastrand::f64());
                    debug!(%addr, error = %e, "bootstrap dial not started; next try in {wait:?}");
                }
            }
        }
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs(reply) => self.pending_listen.push(reply),
            Command::RedialNow(peer) => {
                if !self.swarm.is_connected(&peer) {
                    let now = Instant::now();
                    if self.bootstrap.expedite(peer, now) > 0 {
                        debug!(%peer, "no connection to a peer we need: dialing its --join addresses now");
                        self.handle_tick(now);
                    }
                }
            }
            Command::Dial(addr, reply) => {
                let peer = peer_of(&addr);
                if peer.is_some_and(|p| self.swarm.is_connected(&p)) {
                    let _ = reply.send(Ok(()));
                    return;
                }
                let opts = match peer {
                    Some(p) => DialOpts::peer_id(p)
                        .addresses(vec![addr.clone()])
                        .condition(PeerCondition::Always)
                        .build(),
                    None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
                };
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_dials.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial(format!("{addr}: {e}"))));
                    }
                }
            }
            Command::ConnectedPeers(reply) => {
                let mut peers: Vec<(PeerId, Vec<Multiaddr>)> = self
                    .connections
                    .iter()
                    .map(|(peer, conns)| {
                        let mut addrs: Vec<Multiaddr> = conns.values().cloned().collect();
                        addrs.sort();
                        addrs.dedup();
                        (*peer, addrs)
                    })
                    .collect();
                peers.sort_by_key(|(p, _)| *p);
                let _ = reply.send(peers);
            }
            Command::Publish(bytes, reply) => {
                let local = *self.swarm.local_peer_id();
                self.gossip_guard.bind_local(local, &bytes, Instant::now());
                let result = match self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(self.topic.clone(), bytes)
                {
                    Ok(_) => {
                        NetCounters::add(&self.counters.gossip_published, 1);
                        Ok(())
                    }
                    Err(PublishError::NoPeersSubscribedToTopic) => {
                        debug!("gossip not sent: no subscribed peer yet");
                        Ok(())
                    }
                    Err(PublishError::Duplicate) => {
                        debug!("gossip not sent: identical message already published");
                        Ok(())
                    }
                    Err(e) => Err(NetError::Publish(e.to_string())),
                };
                let _ = reply.send(result);
            }
            Command::Shutdown(done) => {
                let _ = done.send(());
            }
        }
    }

    fn handle_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        let now = Instant::now();
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(addr = %self.with_local_id(&address), "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| a != &address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                NetCounters::add(&self.counters.connections_opened, 1);
                let addr = endpoint.get_remote_address().clone();
                self.connections
                    .entry(peer_id)
                    .or_default()
                    .insert(connection_id, addr.clone());
                if num_established.get() == 1 {
                    NetCounters::add(&self.counters.peers_connected, 1);
                    debug!(peer = %peer_id, %addr, "peer connected");
                    self.emit(Event::PeerConnected {
                        peer: peer_id,
                        addr,
                    });
                }
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(()));
                }
                self.bootstrap.on_established(connection_id, peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                cause,
            } => {
                self.ping_failures.remove(&connection_id);
                if let Some(conns) = self.connections.get_mut(&peer_id) {
                    conns.remove(&connection_id);
                    if conns.is_empty() {
                        self.connections.remove(&peer_id);
                    }
                }
                // Every close says why: an unexplained disconnect is a bug to chase.
                let addr = endpoint.get_remote_address();
                let side = if endpoint.is_dialer() {
                    "dialed"
                } else {
                    "accepted"
                };
                match &cause {
                    None => {
                        info!(peer = %peer_id, %addr, side, num_established, "connection closed by this node")
                    }
                    Some(libp2p::swarm::ConnectionError::KeepAliveTimeout) => info!(
                        peer = %peer_id, %addr, side, num_established,
                        "connection closed: idle (no stream nor protocol needed it)"
                    ),
                    Some(e) => {
                        warn!(peer = %peer_id, %addr, side, num_established, "connection closed: {e}")
                    }
                }
                if num_established == 0 {
                    self.counters
                        .peers_connected
                        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    debug!(peer = %peer_id, ?cause, "peer disconnected");
                    self.emit(Event::PeerDisconnected { peer: peer_id });
                    for addr in self.bootstrap.on_all_closed(peer_id, now) {
                        info!(%addr, "bootstrap peer lost; will redial");
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial(error.to_string())));
                }
                if let Some((addr, wait)) =
                    self.bootstrap
                        .on_dial_failed(connection_id, now, fastrand::f64())
                {
                    warn!(%addr, %error, "bootstrap dial failed; retrying in {wait:?}");
                }
                debug!(peer = ?peer_id, %error, "outgoing connection failed");
            }
            SwarmEvent::Behaviour(event) => self.handle_behaviour_event(event),
            other => trace!(?other, "swarm event"),
        }
    }

    fn handle_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let verdict =
                    self.gossip_guard
                        .check(message.source, &message.data, Instant::now());
                let acceptance = match verdict {
                    Verdict::Accept(decoded) => {
                        NetCounters::add(&self.counters.gossip_received, 1);
                        if let Some(from) = message.source {
                            self.emit(Event::Gossip {
                                from,
                                message: decoded,
                            });
                        }
                        gossipsub::MessageAcceptance::Accept
                    }
                    Verdict::Reject(why) => {
                        debug!(peer = %propagation_source, source = ?message.source, "gossip rejected: {why}");
                        gossipsub::MessageAcceptance::Reject
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => self.dial_discovered(found),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in &info.listen_addrs {
                    self.swarm.add_peer_address(peer_id, addr.clone());
                }
                self.emit(Event::PeerIdentified {
                    peer: peer_id,
                    listen_addrs: info.listen_addrs,
                    agent: info.agent_version,
                });
            }
            BehaviourEvent::Ping(ping::Event {
                connection,
                result: Ok(_),
                ..
            }) => {
                self.ping_failures.remove(&connection);
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            }) => {
                let failures = self.ping_failures.entry(connection).or_insert(0);
                *failures += 1;
                if *failures >= PING_FAILURES_TO_CLOSE {
                    warn!(%peer, error = %e, failures = *failures, "ping failed: closing the connection");
                    self.swarm.close_connection(connection);
                } else {
                    // One late ping is a busy peer (a worker's runtime saturated by its
                    // downloads), not a dead link: closing would cut every transfer on it.
                    info!(%peer, error = %e, "ping failed; the connection is kept until the next one fails too");
                }
            }
            other => trace!(?other, "behaviour event"),
        }
    }

    /// Dials peers found by mDNS. Both sides discover each other; only the side with the
    /// smaller peer id dials, so a pair ends up with a single connection.
    fn dial_discovered(&mut self, found: Vec<(PeerId, Multiaddr)>) {
        let local = *self.swarm.local_peer_id();
        let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        for (peer, addr) in found {
            if peer != local {
                by_peer.entry(peer).or_default().push(addr);
            }
        }
        for (peer, addrs) in by_peer {
            for addr in &addrs {
                self.swarm.add_peer_address(peer, addr.clone());
            }
            if local >= peer || self.swarm.is_connected(&peer) {
                debug!(%peer, "mDNS discovery: waiting for the peer to dial us");
                continue;
            }
            debug!(%peer, ?addrs, "mDNS discovery: dialing");
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(%peer, error = %e, "mDNS dial not started");
            }
        }
    }
}
