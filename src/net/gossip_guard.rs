//! Validation of every gossip message before it is delivered or forwarded: undecodable or
//! unsigned messages are rejected, and a dataset id is bound to the first peer that announced
//! it, so a later announcer of the same id is rejected instead of taking the dataset over.
//! A binding lapses only after its seeder has not announced for [`BINDING_TTL`]. Pure: time
//! is an argument.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

use crate::model::ids::DatasetId;
use crate::protocol::codec::decode;
use crate::protocol::gossip::{Gossip, MAX_GOSSIP_BYTES};

/// A dataset whose seeder stayed silent this long may be announced by another peer.
pub(crate) const BINDING_TTL: Duration = Duration::from_secs(600);

/// Most dataset bindings kept; the least recently announced one is dropped beyond that.
pub(crate) const MAX_BINDINGS: usize = 1024;

/// What to do with a message.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Deliver and forward it.
    Accept(Gossip),
    /// Drop it and tell gossipsub it is invalid (not forwarded).
    Reject(String),
}

/// The dataset → first announcer bindings.
#[derive(Debug, Default)]
pub(crate) struct GossipGuard {
    owners: HashMap<DatasetId, (PeerId, Instant)>,
}

impl GossipGuard {
    /// Judges a message published by `source` (the signed author).
    pub(crate) fn check(&mut self, source: Option<PeerId>, data: &[u8], now: Instant) -> Verdict {
        let Some(source) = source else {
            return Verdict::Reject("unsigned message".into());
        };
        let message = match decode::<Gossip>(data, MAX_GOSSIP_BYTES) {
            Ok(m) => m,
            Err(e) => return Verdict::Reject(format!("undecodable: {e}")),
        };
        if let Gossip::Dataset { dataset, .. } = &message {
            match self.owners.get_mut(dataset) {
                Some((owner, seen))
                    if *owner != source && now.saturating_duration_since(*seen) < BINDING_TTL =>
                {
                    return Verdict::Reject(format!(
                        "dataset {dataset} is announced by {owner}, not by {source}"
                    ));
                }
                Some(entry) => *entry = (source, now),
                None => {
                    if self.owners.len() >= MAX_BINDINGS {
                        self.evict_oldest();
                    }
                    self.owners.insert(*dataset, (source, now));
                }
            }
        }
        Verdict::Accept(message)
    }

    /// Records this node's own announcement: its datasets are bound to itself, so announcements
    /// of them by others are neither delivered nor forwarded.
    pub(crate) fn bind_local(&mut self, local: PeerId, data: &[u8], now: Instant) {
        if let Ok(Gossip::Dataset { dataset, .. }) = decode::<Gossip>(data, MAX_GOSSIP_BYTES) {
            if !self.owners.contains_key(&dataset) && self.owners.len() >= MAX_BINDINGS {
                self.evict_oldest();
            }
            self.owners.insert(dataset, (local, now));
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(oldest) = self
            .owners
            .iter()
            .min_by_key(|(_, (_, seen))| *seen)
            .map(|(id, _)| *id)
        {
            self.owners.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::encode;
    use crate::protocol::gossip::sample_dataset_advert;

    fn announce(id: u8) -> Vec<u8> {
        encode(
            &sample_dataset_advert(DatasetId([id; 16]), "d"),
            MAX_GOSSIP_BYTES,
        )
        .unwrap()
    }

    #[test]
    fn the_first_announcer_keeps_its_dataset_and_garbage_is_rejected() {
        let (seeder, rogue) = (PeerId::random(), PeerId::random());
        let mut g = GossipGuard::default();
        let t0 = Instant::now();
        assert!(matches!(
            g.check(Some(seeder), &announce(1), t0),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            g.check(Some(rogue), &announce(1), t0),
            Verdict::Reject(_)
        ));
        // The rogue may announce ids of its own, and the seeder keeps announcing its own.
        assert!(matches!(
            g.check(Some(rogue), &announce(2), t0),
            Verdict::Accept(_)
        ));
        let later = t0 + BINDING_TTL / 2;
        assert!(matches!(
            g.check(Some(seeder), &announce(1), later),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            g.check(Some(rogue), &announce(1), later),
            Verdict::Reject(_)
        ));
        // A seeder silent for the whole TTL lets the id go.
        let gone = later + BINDING_TTL;
        assert!(matches!(
            g.check(Some(rogue), &announce(1), gone),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            g.check(Some(seeder), &[0xff; 7], gone),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            g.check(None, &announce(3), gone),
            Verdict::Reject(_)
        ));
    }

    #[test]
    fn bindings_are_bounded() {
        let mut g = GossipGuard::default();
        let t0 = Instant::now();
        for i in 0..(MAX_BINDINGS + 10) {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let data = encode(&sample_dataset_advert(DatasetId(id), ""), MAX_GOSSIP_BYTES).unwrap();
            let _ = g.check(
                Some(PeerId::random()),
                &data,
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(g.owners.len(), MAX_BINDINGS);
    }
}
