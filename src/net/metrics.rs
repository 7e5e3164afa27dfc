//! Transport counters (connections, gossip, control requests, transferred bytes), shared by
//! the event loop, the stream tasks and the [`super::Client`], and rendered in the Prometheus
//! text format for the status endpoint's `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters; cheap to bump from any task.
#[derive(Debug, Default)]
pub(crate) struct NetCounters {
    pub(crate) peers_connected: AtomicU64,
    pub(crate) connections_opened: AtomicU64,
    pub(crate) gossip_published: AtomicU64,
    pub(crate) gossip_received: AtomicU64,
    pub(crate) control_requests_sent: AtomicU64,
    pub(crate) control_requests_failed: AtomicU64,
    pub(crate) control_requests_served: AtomicU64,
    pub(crate) transfer_bytes_sent: AtomicU64,
    pub(crate) transfer_bytes_received: AtomicU64,
    pub(crate) transfers_sent: AtomicU64,
    pub(crate) transfers_received: AtomicU64,
    pub(crate) transfers_failed: AtomicU64,
    pub(crate) transfer_bytes_resumed: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) streams_reopened: AtomicU64,
}

impl NetCounters {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A consistent-enough copy of every counter.
    pub(crate) fn snapshot(&self) -> NetMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetMetrics {
            peers_connected: get(&self.peers_connected),
            connections_opened: get(&self.connections_opened),
            gossip_published: get(&self.gossip_published),
            gossip_received: get(&self.gossip_received),
            control_requests_sent: get(&self.control_requests_sent),
            control_requests_failed: get(&self.control_requests_failed),
            control_requests_served: get(&self.control_requests_served),
            transfer_bytes_sent: get(&self.transfer_bytes_sent),
            transfer_bytes_received: get(&self.transfer_bytes_received),
            transfers_sent: get(&self.transfers_sent),
            transfers_received: get(&self.transfers_received),
            transfers_failed: get(&self.transfers_failed),
            transfer_bytes_resumed: get(&self.transfer_bytes_resumed),
            events_dropped: get(&self.events_dropped),
            streams_reopened: get(&self.streams_reopened),
        }
    }
}

/// A copy of the transport's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetMetrics {
    /// Peers with at least one open connection.
    pub peers_connected: u64,
    /// Connections opened since start (both directions).
    pub connections_opened: u64,
    /// Gossip messages published by this node.
    pub gossip_published: u64,
    /// Gossip messages received from peers.
    pub gossip_received: u64,
    /// Control requests this node sent (bids, rows, renewals, completions, give-backs).
    pub control_requests_sent: u64,
    /// Control requests sent that failed (transport errors, not refusals).
    pub control_requests_failed: u64,
    /// Control requests answered for peers.
    pub control_requests_served: u64,
    /// File bytes sent on transfer streams.
    pub transfer_bytes_sent: u64,
    /// File bytes received on transfer streams.
    pub transfer_bytes_received: u64,
    /// Files sent and accepted by the receiver.
    pub transfers_sent: u64,
    /// Files received, verified and accepted by the application.
    pub transfers_received: u64,
    /// Transfers (either direction) that ended in an error.
    pub transfers_failed: u64,
    /// Bytes not sent again because a receiver resumed from its partial copy.
    pub transfer_bytes_resumed: u64,
    /// Events dropped because the application's event queue was full.
    pub events_dropped: u64,
    /// Streams opened again (control requests and transfer offers) because the previous one
    /// died before any answer: the peer's libp2p-stream dropped it while its accept loop was
    /// busy (see `net::offer`).
    pub streams_reopened: u64,
}

impl NetMetrics {
    /// Appends the counters in the Prometheus text exposition format (`ldawt_net_*`).
    pub fn render_prometheus(&self, out: &mut String) {
        let rows: [(&str, &str, &str, u64); 15] = [
            (
                "peers_connected",
                "gauge",
                "Peers with an open connection.",
                self.peers_connected,
            ),
            (
                "connections_opened_total",
                "counter",
                "Connections opened.",
                self.connections_opened,
            ),
            (
                "gossip_published_total",
                "counter",
                "Gossip messages published.",
                self.gossip_published,
            ),
            (
                "gossip_received_total",
                "counter",
                "Gossip messages received.",
                self.gossip_received,
            ),
            (
                "control_requests_sent_total",
                "counter",
                "Control requests sent.",
                self.control_requests_sent,
            ),
            (
                "control_requests_failed_total",
                "counter",
                "Control requests that failed.",
                self.control_requests_failed,
            ),
            (
                "control_requests_served_total",
                "counter",
                "Control requests answered.",
                self.control_requests_served,
            ),
            (
                "transfer_bytes_sent_total",
                "counter",
                "File bytes sent.",
                self.transfer_bytes_sent,
            ),
            (
                "transfer_bytes_received_total",
                "counter",
                "File bytes received.",
                self.transfer_bytes_received,
            ),
            (
                "transfers_sent_total",
                "counter",
                "Files sent and accepted.",
                self.transfers_sent,
            ),
            (
                "transfers_received_total",
                "counter",
                "Files received and verified.",
                self.transfers_received,
            ),
            (
                "transfers_failed_total",
                "counter",
                "Transfers that failed.",
                self.transfers_failed,
            ),
            (
                "transfer_bytes_resumed_total",
                "counter",
                "Bytes skipped thanks to resumption.",
                self.transfer_bytes_resumed,
            ),
            (
                "events_dropped_total",
                "counter",
                "Events dropped on a full queue.",
                self.events_dropped,
            ),
            (
                "streams_reopened_total",
                "counter",
                "Streams opened again after the peer dropped one unanswered.",
                self.streams_reopened,
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP ldawt_net_{name} {help}");
            let _ = writeln!(out, "# TYPE ldawt_net_{name} {kind}");
            let _ = writeln!(out, "ldawt_net_{name} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter_once_with_its_value() {
        let c = NetCounters::default();
        NetCounters::add(&c.transfer_bytes_sent, 42);
        NetCounters::add(&c.gossip_received, 3);
        NetCounters::add(&c.streams_reopened, 5);
        let mut out = String::new();
        c.snapshot().render_prometheus(&mut out);
        assert!(out.contains("\nldawt_net_transfer_bytes_sent_total 42\n"));
        assert!(out.contains("\nldawt_net_gossip_received_total 3\n"));
        assert!(out.contains("\nldawt_net_streams_reopened_total 5\n"));
        assert_eq!(out.matches("# TYPE ").count(), 15);
        assert!(
            out.lines()
                .all(|l| l.starts_with('#') || l.split(' ').count() == 2)
        );
    }
}
