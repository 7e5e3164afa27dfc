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
use crate::coordinator::{CoordinatorHandle, IntakeDecision};
use crate::model::ids::NodeId;
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
                        let _ = reply.send(c.request(NodeId(peer), request).await);
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
                        let d = c.decide_file(NodeId(peer), header).await;
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
            } => match &self.coord {
                Some(c) => {
                    let c = c.clone();
                    tokio::spawn(async move {
                        let v = c.file_received(NodeId(peer), header, part_path).await;
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
                    c.transfer_progress(NodeId(peer), header);
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

#[cfg(test)]
mod tests {
    use libp2p::PeerId;
    use libp2p::identity::Keypair;
    use tokio::sync::watch;

    use super::*;
    use crate::model::ids::DatasetId;
    use crate::model::time::{ManualClock, UnixMillis};
    use crate::net::{self, NetConfig};
    use crate::protocol::gossip::Gossip;
    use crate::worker::Offer;

    fn announce(open: u32) -> Gossip {
        Gossip::Dataset {
            dataset: DatasetId([5; 16]),
            name: "d".into(),
            shards_total: 4,
            shards_done: 0,
            shards_open: open,
            shards_failed: 0,
            rows_total: 40,
            sent_at: UnixMillis(0),
        }
    }

    #[tokio::test]
    async fn an_announcement_reaches_the_offers_at_once_and_the_table_answers_queries() {
        let mut cfg = NetConfig::new(Keypair::generate_ed25519());
        cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        cfg.mdns = false;
        let (client, _events, event_loop) = net::new(cfg).unwrap();
        let net_task = tokio::spawn(event_loop.run());
        let (offers_tx, mut offers) = watch::channel(Vec::<Offer>::new());
        let publisher = OfferPublisher::new(None, &[], client.clone(), offers_tx);
        let clock = ManualClock::new(UnixMillis(1_000));
        let (d, peers) = Dispatcher::new(
            None,
            PeerTable::default(),
            Arc::new(clock.clone()),
            publisher,
        );
        let (events_tx, events) = mpsc::channel(8);
        let task = tokio::spawn(d.run(events));
        offers.borrow_and_update();

        let seeder = PeerId::random();
        let gossip = |open| Event::Gossip {
            from: seeder,
            message: announce(open),
        };
        events_tx.send(gossip(2)).await.unwrap();
        // Pushed with the event, long before any heartbeat or expiry tick.
        tokio::time::timeout(Duration::from_millis(500), offers.changed())
            .await
            .expect("offers pushed at once")
            .unwrap();
        let got: Vec<_> = offers
            .borrow_and_update()
            .iter()
            .map(|o| (o.dataset, o.open))
            .collect();
        assert_eq!(got, vec![(DatasetId([5; 16]), true)]);
        // The same announcement again changes nothing: no push.
        events_tx.send(gossip(2)).await.unwrap();
        let view = peers.view().await;
        assert!(!offers.has_changed().unwrap());
        assert_eq!(view.datasets.len(), 1);
        assert_eq!(view.peers.len(), 1);
        // All shards leased: still offered (kept shards), but closed to bids.
        events_tx.send(gossip(0)).await.unwrap();
        tokio::time::timeout(Duration::from_millis(500), offers.changed())
            .await
            .expect("offers pushed at once")
            .unwrap();
        assert!(!offers.borrow_and_update()[0].open);
        // Past the announcement's lifetime on the node's clock, it leaves the offers.
        clock.advance(Duration::from_millis(
            crate::node::peers::ANNOUNCEMENT_TTL_MS,
        ));
        tokio::time::timeout(EXPIRY_CHECK * 3, offers.changed())
            .await
            .expect("expired offers withdrawn")
            .unwrap();
        assert!(offers.borrow().is_empty());

        drop(events_tx);
        task.await.unwrap();
        client.shutdown().await;
        let _ = net_task.await;
    }
}
