//! Routes the transport's events: control requests and file transfers to the coordinator
//! (each answered in its own task so a slow one never blocks the others), gossip and
//! connection changes to the peer table.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::peers::PeerTable;
use crate::coordinator::{CoordinatorHandle, IntakeDecision};
use crate::model::time::Clock;
use crate::net::{Event, FileDecision};
use crate::protocol::swarm::{ControlRequest, ControlResponse, Refusal, RejectReason};

/// The refusal of a node that seeds nothing.
const NO_DATASET: &str = "this node seeds no dataset";

/// Serves events until the transport closes its queue.
pub async fn run(
    mut events: mpsc::Receiver<Event>,
    coord: Option<CoordinatorHandle>,
    peers: Arc<Mutex<PeerTable>>,
    clock: Arc<dyn Clock>,
) {
    while let Some(ev) = events.recv().await {
        let now = clock.now();
        // Any request or transfer from a peer shows it is alive (see `PeerTable::heard`).
        let heard = match &ev {
            Event::Request { peer, .. }
            | Event::IncomingFile { peer, .. }
            | Event::TransferProgress { peer, .. }
            | Event::FileReceived { peer, .. } => Some(*peer),
            _ => None,
        };
        if let Some(peer) = heard
            && let Ok(mut p) = peers.lock()
        {
            p.heard(peer, now);
        }
        match ev {
            Event::Request {
                peer,
                request,
                reply,
            } => match &coord {
                Some(c) => {
                    if let ControlRequest::Bid { stats, .. } = &request
                        && let Ok(mut p) = peers.lock()
                    {
                        p.stats(peer, stats, now);
                    }
                    let c = c.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(c.request(&peer.to_string(), request).await);
                    });
                }
                None => {
                    let _ = reply.send(ControlResponse::rejected(
                        RejectReason::UnknownDataset,
                        NO_DATASET,
                    ));
                }
            },
            Event::IncomingFile {
                peer,
                header,
                decide,
            } => match &coord {
                Some(c) => {
                    let c = c.clone();
                    tokio::spawn(async move {
                        let d = c.decide_file(&peer.to_string(), header).await;
                        let _ = decide.send(match d {
                            IntakeDecision::Accept { part_path } => {
                                FileDecision::Accept { part_path }
                            }
                            IntakeDecision::Reject(r) => FileDecision::Reject(r),
                        });
                    });
                }
                None => {
                    let _ = decide.send(FileDecision::Reject(Refusal::new(
                        RejectReason::UnknownDataset,
                        NO_DATASET,
                    )));
                }
            },
            Event::FileReceived {
                peer,
                header,
                part_path,
                verdict,
            } => match &coord {
                Some(c) => {
                    let c = c.clone();
                    tokio::spawn(async move {
                        let v = c.file_received(&peer.to_string(), header, part_path).await;
                        let _ = verdict.send(v);
                    });
                }
                None => {
                    let _ = std::fs::remove_file(&part_path);
                    let _ =
                        verdict.send(Err(Refusal::new(RejectReason::UnknownDataset, NO_DATASET)));
                }
            },
            Event::TransferProgress { peer, header } => {
                if let Some(c) = &coord {
                    c.transfer_progress(&peer.to_string(), header);
                }
            }
            Event::Gossip { from, message } => {
                if let Ok(mut p) = peers.lock() {
                    p.gossip(from, &message, now);
                }
            }
            Event::PeerConnected { peer, addr } => {
                tracing::info!(%peer, %addr, "peer connected");
                if let Ok(mut p) = peers.lock() {
                    p.connected(peer, addr, now);
                }
            }
            Event::PeerDisconnected { peer } => {
                tracing::info!(%peer, "peer disconnected");
                if let Ok(mut p) = peers.lock() {
                    p.disconnected(peer);
                }
            }
            Event::PeerIdentified {
                peer, listen_addrs, ..
            } => {
                if let Ok(mut p) = peers.lock() {
                    p.identified(peer, listen_addrs, now);
                }
            }
        }
    }
}
