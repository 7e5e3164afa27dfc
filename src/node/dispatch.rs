//! The dispatcher: the one task that reads the transport's events and the one owner of the
//! [`PeerTable`]. Control requests and file transfers go to the coordinator (each answered in
//! its own task so a slow one never blocks the others); gossip and connection changes update
//! the table; a changed set of announced datasets is pushed to the worker's offers at once
//! (see [`OfferPublisher`]). Other tasks read the table through a [`Peers`] handle.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::offers::OfferPublisher;
use super::peers::{Liveness, PeerTable};
use crate::coordinator::CoordinatorHandle;
use crate::model::time::Clock;
use crate::net::{Event, FileDecision};
use crate::protocol::control::{ControlRequest, ControlResponse, Refusal, RejectReason};
use crate::protocol::status::{DatasetProgress, PeerStatus};

/// The refusal of a node that seeds nothing.
const NO_DATASET: &str = "this node seeds no dataset";

/// How often announcements are checked for expiry (an expired one leaves the offers).
const EXPIRY_CHECK: Duration = Duration::from_secs(1);

/// The peer table as the status document shows it, with the liveness changes since the last
/// look (each stall is reported once).
#[derive(Debug, Default)]
pub struct PeerView {
    /// Every known peer.
    pub peers: Vec<PeerStatus>,
    /// Datasets announced by others.
    pub datasets: Vec<DatasetProgress>,
    /// Peers that stalled or recovered since the previous view.
    pub liveness: Vec<Liveness>,
}

/// A question to the dispatcher about its peer table.
enum Query {
    /// The table's current view.
    View(oneshot::Sender<PeerView>),
}

/// A handle on the dispatcher's peer table; cheap to clone.
#[derive(Clone)]
pub struct Peers {
    tx: mpsc::Sender<Query>,
}

impl Peers {
    /// The table's current view (empty once the dispatcher has stopped).
    pub async fn view(&self) -> PeerView {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Query::View(tx)).await.is_err() {
            return PeerView::default();
        }
        rx.await.unwrap_or_default()
    }
}

/// The dispatcher, before it runs.
pub struct Dispatcher {
    coord: Option<CoordinatorHandle>,
    table: PeerTable,
    clock: Arc<dyn Clock>,
    offers: OfferPublisher,
    queries: mpsc::Receiver<Query>,
}

impl Dispatcher {
    /// A dispatcher owning `table`, and the handle to read it.
    pub(super) fn new(
        coord: Option<CoordinatorHandle>,
        table: PeerTable,
        clock: Arc<dyn Clock>,
        offers: OfferPublisher,
    ) -> (Self, Peers) {
        let (tx, queries) = mpsc::channel(16);
        let d = Self {
            coord,
            table,
            clock,
            offers,
            queries,
        };
        (d, Peers { tx })
    }

    /// Serves events until the transport closes its queue.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        let mut expiry = tokio::time::interval(EXPIRY_CHECK);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => self.event(ev),
                    None => break,
                },
                Some(q) = self.queries.recv() => match q {
                    Query::View(reply) => {
                        let now = self.clock.now();
                        let _ = reply.send(PeerView {
                            liveness: self.table.check_liveness(now),
                            peers: self.table.statuses(now),
                            datasets: self.table.datasets(),
                        });
                    }
                },
                _ = expiry.tick() => self.offers.refresh(self.table.announced(self.clock.now())),
            }
        }
    }

    fn event(&mut self, ev: Event) {
        let now = self.clock.now();
        // Any request or transfer from a peer shows it is alive (see `PeerTable::heard`).
        if let Event::Request { peer, .. }
        | Event::IncomingFile { peer, .. }
        | Event::TransferProgress { peer, .. }
        | Event::FileReceived { peer, .. } = &ev
        {
            self.table.heard(*peer, now);
        }
        match ev {
            Event::Request {
                peer,
                request,
                reply,
            } => match &self.coord {
                Some(c) => {
                    if let ControlRequest::Bid { stats, .. } = &request {
                        self.table.stats(peer, stats, now);
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
            } => match &self.coord {
                Some(c) => {
                    let c = c.clone();
                    tokio::spawn(async move {
                        let _ = decide.send(c.decide_file(&peer.to_string(), header).await);
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
            } => match &self.coord {
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
                if let Some(c) = &self.coord {
                    c.transfer_progress(&peer.to_string(), header);
                }
            }
            Event::Gossip { from, message } => {
                self.table.gossip(from, &message, now);
                // A new or changed announcement reaches the worker now, not at the next tick.
                self.offers.refresh(self.table.announced(now));
            }
            Event::PeerConnected { peer, addr } => {
                tracing::info!(%peer, %addr, "peer connected");
                self.table.connected(peer, addr, now);
            }
            Event::PeerDisconnected { peer } => {
                tracing::info!(%peer, "peer disconnected");
                self.table.disconnected(peer);
            }
            Event::PeerIdentified {
                peer, listen_addrs, ..
            } => self.table.identified(peer, listen_addrs, now),
        }
    }
}
