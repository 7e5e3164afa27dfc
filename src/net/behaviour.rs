//! The libp2p behaviour (gossipsub, mDNS, identify, ping, libp2p-stream) and the swarm built
//! on TCP (nodelay) + Noise + Yamux, with DNS resolution for `/dns4/…` join addresses.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{Swarm, gossipsub, identify, identity::Keypair, mdns, noise, ping, tcp, yamux};

use super::NetError;
use crate::protocol::swarm::{GOSSIP_TOPIC, MAX_GOSSIP_BYTES};

/// Protocol version announced by identify; nodes of other versions still connect but the
/// string shows up in `ldawt peers`.
const IDENTIFY_PROTOCOL: &str = "/ldawt/id/1";

/// Every protocol a node speaks.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) stream: libp2p_stream::Behaviour,
}

/// The gossipsub settings for swarms of a handful to a few dozen nodes: a small mesh that
/// still forms with two peers, a fast heartbeat, and a size cap just above
/// [`MAX_GOSSIP_BYTES`] (the envelope plus signature overhead).
fn gossip_config() -> Result<gossipsub::Config, NetError> {
    gossipsub::ConfigBuilder::default()
        .mesh_n(4)
        .mesh_n_low(2)
        .mesh_n_high(8)
        .mesh_outbound_min(1)
        .heartbeat_interval(Duration::from_millis(500))
        .max_transmit_size(MAX_GOSSIP_BYTES + (4 << 10))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .build()
        .map_err(|e| NetError::Setup(format!("gossipsub config: {e}")))
}

/// Builds the swarm for `keypair`, subscribed to [`GOSSIP_TOPIC`], with mDNS when asked.
pub(crate) fn build_swarm(
    keypair: Keypair,
    mdns_on: bool,
    idle_connection_timeout: Duration,
) -> Result<Swarm<Behaviour>, NetError> {
    let gossip = gossip_config()?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Setup(format!("tcp/noise: {e}")))?
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
            let identify = identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                    .with_agent_version(format!("ldawt/{}", env!("CARGO_PKG_VERSION"))),
            );
            Ok(Behaviour {
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
