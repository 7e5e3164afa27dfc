//! The `--join` addresses and their connection state: which are connected, which are being
//! dialed, and when each disconnected one is due for a redial ([`Backoff`]). Pure bookkeeping;
//! the event loop feeds it connection events and dials what it says is due.

use std::time::Duration;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::event_loop::peer_of;

/// One `--join` address.
#[derive(Debug)]
struct Entry {
    addr: Multiaddr,
    /// From `/p2p/…` in the address, or learnt on the first connection.
    peer: Option<PeerId>,
    dialing: Option<ConnectionId>,
    connected: bool,
    backoff: Backoff,
}

/// Every bootstrap address of a node.
#[derive(Debug)]
pub(crate) struct Bootstrap {
    entries: Vec<Entry>,
}

impl Bootstrap {
    /// Every address due for a first dial at `now`.
    pub(crate) fn new(
        addrs: Vec<Multiaddr>,
        initial: Duration,
        max: Duration,
        now: Instant,
    ) -> Self {
        let entries = addrs
            .into_iter()
            .map(|addr| Entry {
                peer: peer_of(&addr),
                addr,
                dialing: None,
                connected: false,
                backoff: Backoff::new(initial, max, now),
            })
            .collect();
        Self { entries }
    }

    /// Indices of the addresses to dial now, with their address and known peer id.
    pub(crate) fn due(&self, now: Instant) -> Vec<(usize, Multiaddr, Option<PeerId>)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.connected && e.dialing.is_none() && e.backoff.is_due(now))
            .map(|(i, e)| (i, e.addr.clone(), e.peer))
            .collect()
    }

    /// Makes every disconnected address of `peer` (and every address whose peer is not known
    /// yet) due at `now`: a caller needs that peer and will not wait for the redial backoff.
    /// Returns how many addresses became due.
    pub(crate) fn expedite(&mut self, peer: PeerId, now: Instant) -> usize {
        let mut n = 0;
        for e in &mut self.entries {
            if !e.connected && e.dialing.is_none() && e.peer.is_none_or(|p| p == peer) {
                e.backoff.expedite(now);
                n += 1;
            }
        }
        n
    }

    /// A dial of entry `i` started as connection `conn`.
    pub(crate) fn on_dial_started(&mut self, i: usize, conn: ConnectionId) {
        if let Some(e) = self.entries.get_mut(i) {
            e.dialing = Some(conn);
            e.backoff.on_attempt();
        }
    }

    /// Entry `i`'s peer turned out to be connected already (via mDNS or an inbound dial).
    pub(crate) fn on_already_connected(&mut self, i: usize) {
        if let Some(e) = self.entries.get_mut(i) {
            e.connected = true;
            e.backoff.on_connected();
        }
    }

    /// Entry `i` could not even start a dial; returns the wait before the next attempt.
    pub(crate) fn on_dial_not_started(&mut self, i: usize, now: Instant, jitter: f64) -> Duration {
        self.entries
            .get_mut(i)
            .map(|e| e.backoff.on_failure(now, jitter))
            .unwrap_or_default()
    }

    /// A connection to `peer` opened (dialed by us as `conn`, or by anyone).
    pub(crate) fn on_established(&mut self, conn: ConnectionId, peer: PeerId) {
        for e in &mut self.entries {
            if e.dialing == Some(conn) || e.peer == Some(peer) {
                e.peer = Some(peer);
                e.dialing = None;
                e.connected = true;
                e.backoff.on_connected();
            }
        }
    }

    /// The last connection to `peer` closed; returns the bootstrap addresses now lost.
    pub(crate) fn on_all_closed(&mut self, peer: PeerId, now: Instant) -> Vec<Multiaddr> {
        let mut lost = Vec::new();
        for e in &mut self.entries {
            if e.peer == Some(peer) && e.connected {
                e.connected = false;
                e.backoff.on_disconnected(now);
                lost.push(e.addr.clone());
            }
        }
        lost
    }

    /// Our dial `conn` failed; returns the address and the wait before the next attempt.
    pub(crate) fn on_dial_failed(
        &mut self,
        conn: ConnectionId,
        now: Instant,
        jitter: f64,
    ) -> Option<(Multiaddr, Duration)> {
        let e = self.entries.iter_mut().find(|e| e.dialing == Some(conn))?;
        e.dialing = None;
        Some((e.addr.clone(), e.backoff.on_failure(now, jitter)))
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    #[test]
    fn a_caller_that_needs_the_peer_makes_its_redial_due_at_once() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let other = Keypair::generate_ed25519().public().to_peer_id();
        let addr: Multiaddr = format!("/ip4/10.0.0.5/tcp/4001/p2p/{peer}")
            .parse()
            .unwrap();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = Bootstrap::new(vec![addr], s(1), s(30), t0);
        b.on_dial_started(0, ConnectionId::new_unchecked(1));
        // An attempt in flight is left alone.
        assert_eq!(b.expedite(peer, t0), 0);
        let (_, wait) = b
            .on_dial_failed(ConnectionId::new_unchecked(1), t0, 0.0)
            .unwrap();
        assert!(wait >= s(1));
        assert!(b.due(t0).is_empty());
        // Another peer's need changes nothing; this peer's makes it due now.
        assert_eq!(b.expedite(other, t0), 0);
        assert!(b.due(t0).is_empty());
        assert_eq!(b.expedite(peer, t0), 1);
        assert_eq!(b.due(t0).len(), 1);
    }

    #[test]
    fn redials_after_failures_and_after_a_lost_connection() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let with_id: Multiaddr = format!("/ip4/10.0.0.5/tcp/4001/p2p/{peer}")
            .parse()
            .unwrap();
        let without_id: Multiaddr = "/ip4/10.0.0.6/tcp/4001".parse().unwrap();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = Bootstrap::new(vec![with_id.clone(), without_id], s(1), s(8), t0);
        let due = b.due(t0);
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].2, Some(peer));
        assert_eq!(due[1].2, None);
        let (c0, c1) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        b.on_dial_started(0, c0);
        b.on_dial_started(1, c1);
        assert!(b.due(t0 + s(100)).is_empty(), "nothing while dialing");
        // The first fails twice, backing off 1 s then 2 s.
        assert_eq!(b.on_dial_failed(c0, t0, 0.0), Some((with_id.clone(), s(1))));
        assert_eq!(
            b.due(t0 + s(1)).iter().map(|d| d.0).collect::<Vec<_>>(),
            vec![0]
        );
        let c2 = ConnectionId::new_unchecked(3);
        b.on_dial_started(0, c2);
        assert_eq!(b.on_dial_failed(c2, t0 + s(1), 0.0).unwrap().1, s(2));
        // The second connects and learns its peer id; losing it makes it due again after 1 s.
        let other = Keypair::generate_ed25519().public().to_peer_id();
        b.on_established(c1, other);
        assert!(
            b.on_all_closed(peer, t0).is_empty(),
            "entry 0 was not connected"
        );
        assert_eq!(b.on_all_closed(other, t0 + s(10)).len(), 1);
        assert!(!b.due(t0 + s(10)).iter().any(|d| d.0 == 1));
        assert!(
            b.due(t0 + s(11))
                .iter()
                .any(|d| d.0 == 1 && d.2 == Some(other))
        );
        // A connection to entry 0's peer made by someone else counts as connected.
        b.on_established(ConnectionId::new_unchecked(9), peer);
        assert!(!b.due(t0 + s(100)).iter().any(|d| d.0 == 0));
        assert_eq!(
            b.on_dial_failed(ConnectionId::new_unchecked(42), t0, 0.0),
            None
        );
    }
}
