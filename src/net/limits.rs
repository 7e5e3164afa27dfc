//! Caps on connections, so that a flood of TCP connections or of half-open handshakes costs a
//! node a bounded number of file descriptors and bytes: pending (handshaking) and established
//! connections, incoming and outgoing, per peer and in total, plus a process-memory ceiling
//! above which new connections are refused.

use libp2p::connection_limits::ConnectionLimits;

/// The connection caps of a node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnLimits {
    /// Incoming connections still in their handshake (each holds one socket for at most
    /// `HANDSHAKE_TIMEOUT`).
    pub pending_incoming: u32,
    /// Outgoing dials still in their handshake.
    pub pending_outgoing: u32,
    /// Established incoming connections.
    pub established_incoming: u32,
    /// Established outgoing connections.
    pub established_outgoing: u32,
    /// Established connections in total.
    pub established_total: u32,
    /// Established connections with one peer (mDNS and `--join` may both dial it).
    pub per_peer: u32,
    /// New connections are refused while the process uses more than this share of the
    /// machine's physical memory.
    pub max_memory_fraction: f64,
}

impl Default for ConnLimits {
    /// Room for a swarm of several hundred workers around one seeder, well under a
    /// default `ulimit -n` of 1024 for the pending ones.
    fn default() -> Self {
        Self {
            pending_incoming: 64,
            pending_outgoing: 64,
            established_incoming: 512,
            established_outgoing: 256,
            established_total: 640,
            per_peer: 4,
            max_memory_fraction: 0.9,
        }
    }
}

impl ConnLimits {
    /// The libp2p form of the connection counts.
    pub(crate) fn to_libp2p(self) -> ConnectionLimits {
        ConnectionLimits::default()
            .with_max_pending_incoming(Some(self.pending_incoming))
            .with_max_pending_outgoing(Some(self.pending_outgoing))
            .with_max_established_incoming(Some(self.established_incoming))
            .with_max_established_outgoing(Some(self.established_outgoing))
            .with_max_established(Some(self.established_total))
            .with_max_established_per_peer(Some(self.per_peer))
    }
}
