//! Reads a node's control endpoint (through `crate::status_client`) and condenses its status
//! document into a [`NodeSummary`]. A node that does not answer is a summary with
//! `reachable: false` and the reason, never an error.

use crate::protocol::status::NodeStatus;

use super::NodeSummary;

/// Condenses a status document (pure).
pub fn summarize(addr: &str, status: &NodeStatus) -> NodeSummary {
    NodeSummary {
        addr: addr.to_string(),
        reachable: true,
        error: None,
        peer_id: Some(status.peer_id.clone()),
        peers: status.peers.len() as u32,
        peers_connected: status.peers.iter().filter(|p| p.connected).count() as u32,
        leases_held: status.local.leases_held,
        shards_done: status.local.shards_done,
        mb_per_s: status.local.mb_per_s,
        images_per_s: status.local.images_per_s,
        dataset_shards_done: status.datasets.iter().map(|d| d.shards_done).sum(),
        dataset_shards_total: status.datasets.iter().map(|d| d.shards_total).sum(),
    }
}

/// Asks the node at `addr` (`host:port`) for its status.
pub async fn poll(addr: &str) -> NodeSummary {
    match crate::status_client::fetch_status(addr).await {
        Ok(status) => summarize(addr, &status),
        Err(e) => NodeSummary {
            addr: addr.to_string(),
            reachable: false,
            error: Some(e.to_string()),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::status::{DatasetProgress, PeerStatus};

    #[test]
    fn counts_peers_leases_and_shards() {
        let status = NodeStatus {
            peer_id: "12D3".into(),
            local: PeerStatus {
                leases_held: 3,
                images_per_s: 12.5,
                ..Default::default()
            },
            peers: vec![
                PeerStatus {
                    connected: true,
                    ..Default::default()
                },
                PeerStatus {
                    connected: false,
                    ..Default::default()
                },
            ],
            datasets: vec![DatasetProgress {
                shards_done: 4,
                shards_total: 10,
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = summarize("127.0.0.1:1", &status);
        assert_eq!((s.peers, s.peers_connected, s.leases_held), (2, 1, 3));
        assert_eq!((s.dataset_shards_done, s.dataset_shards_total), (4, 10));
        assert!(s.reachable);
    }
}
