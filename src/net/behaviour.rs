//! The libp2p behaviour (connection caps and the optional allow list first, then gossipsub,
//! mDNS, identify, ping, libp2p-stream) and the swarm built on TCP (nodelay), optionally
//! wrapped in a pnet private-network handshake (the swarm key), then Noise + Yamux, with DNS
//! resolution for `/dns4/…` join addresses.
//!
//! A swarm key is applied to every TCP connection before Noise, as in rust-libp2p's
//! `ipfs-private` example: a node without the key (or with another one) cannot get past
//! protocol negotiation, whether it was dialed through `--join` or found by mDNS.

use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, upgrade::Version};
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    PeerId, Swarm, Transport, allow_block_list, connection_limits, gossipsub, identify,
    identity::Keypair, mdns, memory_connection_limits, noise, ping, tcp, yamux,
};

use super::{ConnLimits, NetError};
use crate::protocol::gossip::{GOSSIP_TOPIC, MAX_GOSSIP_BYTES};

/// Protocol version announced by identify; nodes of other versions still connect but the
/// string shows up in `ldawt peers`.
const IDENTIFY_PROTOCOL: &str = "/ldawt/id/1";

/// Time a new connection has for the pnet, Noise and Yamux handshakes: an idle TCP client
/// holds a pending-connection slot no longer than this.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a new connection has to send its pnet nonce (a keyed peer sends it at once): an idle
/// TCP client of a private swarm is dropped after this, well before [`HANDSHAKE_TIMEOUT`].
pub(crate) const PNET_TIMEOUT: Duration = Duration::from_secs(3);

/// Every protocol a node speaks. The caps come first: a connection they deny never reaches
/// the other behaviours.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) allow: Toggle<allow_block_list::Behaviour<allow_block_list::AllowedPeers>>,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) memory: memory_connection_limits::Behaviour,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) stream: libp2p_stream::Behaviour,
}

/// The gossipsub settings for swarms of a handful to a few dozen nodes: a small mesh that
/// still forms with two peers, a fast heartbeat, and a size cap just above
/// [`MAX_GOSSIP_BYTES`] (the envelope plus signature overhead). Every message is validated by
/// the event loop before it is delivered or forwarded (see `gossip_guard`).
fn gossip_config() -> Result<gossipsub::Config, NetError> {
    gossipsub::ConfigBuilder::default()
        .mesh_n(4)
        .mesh_n_low(2)
        .mesh_n_high(8)
        .mesh_outbound_min(1)
        .heartbeat_interval(Duration::from_millis(500))
        .max_transmit_size(MAX_GOSSIP_BYTES + (4 << 10))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .build()
        .map_err(|e| NetError::Setup(format!("gossipsub config: {e}")))
}

/// TCP, then the pnet handshake when there is a swarm key, then Noise and Yamux, all within
/// [`HANDSHAKE_TIMEOUT`].
fn transport(
    key: &Keypair,
    psk: Option<PreSharedKey>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let noise = noise::Config::new(key)?;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    Ok(match psk {
        Some(psk) => tcp
            .and_then(move |socket, _| async move {
                match tokio::time::timeout(PNET_TIMEOUT, PnetConfig::new(psk).handshake(socket))
                    .await
                {
                    Ok(done) => done.map_err(std::io::Error::other),
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no swarm-key handshake within the time limit",
                    )),
                }
            })
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .timeout(HANDSHAKE_TIMEOUT)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
        None => tcp
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .timeout(HANDSHAKE_TIMEOUT)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
    })
}

/// What [`build_swarm`] needs besides the identity.
pub(crate) struct SwarmParts {
    pub(crate) psk: Option<PreSharedKey>,
    pub(crate) allow_peers: Vec<PeerId>,
    pub(crate) limits: ConnLimits,
    pub(crate) mdns: bool,
    pub(crate) idle_connection_timeout: Duration,
}

/// Builds the swarm for `keypair`, subscribed to [`GOSSIP_TOPIC`], with mDNS when asked.
pub(crate) fn build_swarm(
    keypair: Keypair,
    parts: SwarmParts,
) -> Result<Swarm<Behaviour>, NetError> {
    let gossip = gossip_config()?;
    let SwarmParts {
        psk,
        allow_peers,
        limits,
        mdns: mdns_on,
        idle_connection_timeout,
    } = parts;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| transport(key, psk))
        .map_err(|e| NetError::Setup(format!("tcp/pnet/noise: {e}")))?
        .with_dns()
        .map_err(|e| NetError::Setup(format!("dns: {e}")))?
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip,
            )?;
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config {
                        query_interval: Duration::from_secs(10),
                        ..Default::default()
                    },
                    peer_id,
                )?)
            } else {
                None
            };
            let allow = (!allow_peers.is_empty()).then(|| {
                let mut b =
                    allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
                for p in &allow_peers {
                    b.allow_peer(*p);
                }
                b
            });
            let identify = identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                    .with_agent_version(format!("ldawt/{}", env!("CARGO_PKG_VERSION"))),
            );
            Ok(Behaviour {
                allow: Toggle::from(allow),
                limits: connection_limits::Behaviour::new(limits.to_libp2p()),
                memory: memory_connection_limits::Behaviour::with_max_percentage(
                    limits.max_memory_fraction,
                ),
                gossipsub,
                mdns: Toggle::from(mdns),
                identify,
                ping: ping::Behaviour::default(),
                stream: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(|e| NetError::Setup(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_connection_timeout))
        .build();
    let topic = gossipsub::IdentTopic::new(GOSSIP_TOPIC);
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| NetError::Setup(format!("gossip subscribe: {e}")))?;
    Ok(swarm)
}
