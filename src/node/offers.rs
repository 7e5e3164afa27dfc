//! The worker's offers: this node's own datasets (through its coordinator) plus the datasets
//! other seeders announce, pushed on a `watch` channel whenever the announced set changes, so a
//! new announcement reaches the worker at once instead of at the next heartbeat tick.

use libp2p::PeerId;
use tokio::sync::watch;

use crate::coordinator::CoordinatorHandle;
use crate::model::ids::DatasetId;
use crate::net::Client;
use crate::worker::Offer;
use crate::worker::link::SeederLink;

/// An announced dataset: its id, its seeder and whether shards are open (see
/// `PeerTable::announced`).
pub(super) type Announced = (DatasetId, PeerId, bool);

/// Builds and pushes the offers.
pub struct OfferPublisher {
    local: Vec<Offer>,
    client: Client,
    tx: watch::Sender<Vec<Offer>>,
    /// The announced set the current offers were built from.
    last: Option<Vec<Announced>>,
}

impl OfferPublisher {
    /// A publisher offering `local` datasets through `coord`, and announced ones through
    /// `client`; the local offers are pushed at once.
    pub(super) fn new(
        coord: Option<&CoordinatorHandle>,
        local: &[DatasetId],
        client: Client,
        tx: watch::Sender<Vec<Offer>>,
    ) -> Self {
        let local: Vec<Offer> = coord
            .map(|c| {
                local
                    .iter()
                    .map(|d| Offer {
                        dataset: *d,
                        link: SeederLink::Local { coord: c.clone() },
                        open: true,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut p = Self {
            local,
            client,
            tx,
            last: None,
        };
        p.refresh(Vec::new());
        p
    }

    /// Pushes new offers when `announced` differs from the set the current ones came from.
    pub(super) fn refresh(&mut self, announced: Vec<Announced>) {
        if self.last.as_ref() == Some(&announced) {
            return;
        }
        let mut offers = self.local.clone();
        for (dataset, seeder, open) in &announced {
            if !self.local.iter().any(|o| o.dataset == *dataset) {
                offers.push(Offer {
                    dataset: *dataset,
                    link: SeederLink::Remote {
                        client: self.client.clone(),
                        peer: *seeder,
                    },
                    open: *open,
                });
            }
        }
        self.last = Some(announced);
        self.tx.send_replace(offers);
    }
}
