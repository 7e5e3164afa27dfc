//! When the worker bids next on each offer, and when it must wake up to do so. Bidding is
//! driven by events (offers pushed by the node, a lease ending, a download slot freed); the
//! only deadlines are the ones an answer sets: the seeder's `retry_after` for "no work", a
//! pause after a refusal or an unreachable seeder, a growing pause for a seeder that did not
//! answer in time, and a re-measure of this node's capacity while it has no free slot.
//! Pure bookkeeping: the caller passes `now`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::Offer;
use super::link::LinkError;
use crate::model::ids::{DatasetId, NodeId};
use crate::protocol::control::ControlResponse;

/// Longest wait for a seeder's answer to a bid.
pub const BID_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause before a seeder that did not answer is tried again.
const SILENT_PAUSE_MAX: Duration = Duration::from_secs(60);
/// Pause after a refused bid (or an unexpected answer).
const REFUSED_PAUSE: Duration = Duration::from_secs(5);
/// Pause after a seeder that could not be reached.
const UNREACHABLE_PAUSE: Duration = Duration::from_secs(2);
/// Shortest pause after "no work" for a dataset that is finished.
const FINISHED_PAUSE: Duration = Duration::from_secs(5);
/// Bounds on the pause a seeder's "no work, ask again in …" sets: a seeder asking for none
/// does not make the worker bid in a tight loop, one asking for ages does not overflow a
/// deadline nor park the offer for good.
const NO_WORK_PAUSE: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(600));
/// While open offers wait and this idle node cannot bid (disk or memory short), how soon its
/// capacity is measured again.
pub const CAPACITY_RECHECK: Duration = Duration::from_secs(2);

/// An offer's identity: the dataset and who seeds it.
pub type OfferKey = (DatasetId, NodeId);

/// The bid deadlines of the offers.
#[derive(Debug, Default)]
pub struct Pacing {
    /// No bid on this offer before then.
    next_bid: HashMap<OfferKey, Instant>,
    /// Bids in a row the offer's seeder did not answer in time.
    silent: HashMap<OfferKey, u32>,
}

/// What came of one bid, as far as its pacing goes.
pub enum BidResult<'a> {
    /// The seeder answered (or its link failed) within [`BID_TIMEOUT`].
    Answered(&'a Result<ControlResponse, LinkError>),
    /// No answer within [`BID_TIMEOUT`].
    Silent,
}

impl Pacing {
    /// The offers (all open) due for a bid at `now`, at most `slots` of them, seeders that
    /// answered first.
    pub fn due(
        &self,
        offers: Vec<Offer>,
        key: impl Fn(&Offer) -> OfferKey,
        now: Instant,
        slots: usize,
    ) -> Vec<Offer> {
        let mut due: Vec<Offer> = offers
            .into_iter()
            .filter(|o| self.next_bid.get(&key(o)).is_none_or(|t| *t <= now))
            .collect();
        due.sort_by_key(|o| self.silent.get(&key(o)).copied().unwrap_or(0));
        due.truncate(slots);
        due
    }

    /// Records a bid's result at `now`; the pause before the next bid on that offer.
    pub fn record(&mut self, k: OfferKey, result: BidResult<'_>, now: Instant) -> Duration {
        let pause = match result {
            BidResult::Silent => {
                let strikes = self.silent.entry(k).or_insert(0);
                *strikes += 1;
                silent_pause(*strikes)
            }
            BidResult::Answered(answer) => {
                self.silent.remove(&k);
                answer_pause(answer)
            }
        };
        self.next_bid.insert(k, now + pause);
        pause
    }

    /// When a bid on one of `open` (keys of the open offers) is next due; or, when this node
    /// has no free slot (`recheck` given), when its capacity is to be measured again. `None`
    /// with nothing open: the worker waits for offers.
    pub fn next_wake(
        &self,
        open: &[OfferKey],
        recheck: Option<Duration>,
        now: Instant,
    ) -> Option<Instant> {
        if open.is_empty() {
            return None;
        }
        if let Some(after) = recheck {
            return Some(now + after);
        }
        open.iter()
            .map(|k| self.next_bid.get(k).copied().unwrap_or(now))
            .min()
    }

    /// Forgets the pauses of offers no longer offered (the maps stay as small as the offers).
    pub fn keep_only(&mut self, live: &HashSet<OfferKey>) {
        self.next_bid.retain(|k, _| live.contains(k));
        self.silent.retain(|k, _| live.contains(k));
    }
}

/// The pause after an answer: none after a grant (bid again while slots are free), the
/// seeder's `retry_after` after "no work" (within [`NO_WORK_PAUSE`]; at least
/// [`FINISHED_PAUSE`] once it is finished).
fn answer_pause(answer: &Result<ControlResponse, LinkError>) -> Duration {
    match answer {
        Ok(ControlResponse::Granted(_)) => Duration::ZERO,
        Ok(ControlResponse::NoWork {
            retry_after_ms,
            finished,
        }) => {
            let pause =
                Duration::from_millis(*retry_after_ms).clamp(NO_WORK_PAUSE.0, NO_WORK_PAUSE.1);
            if *finished {
                pause.max(FINISHED_PAUSE)
            } else {
                pause
            }
        }
        Ok(_) => REFUSED_PAUSE,
        Err(_) => UNREACHABLE_PAUSE,
    }
}

/// The pause after `strikes` unanswered bids in a row: 5 s, 10 s, 20 s … up to a minute.
pub fn silent_pause(strikes: u32) -> Duration {
    (BID_TIMEOUT * 2u32.saturating_pow(strikes.saturating_sub(1).min(8))).min(SILENT_PAUSE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> OfferKey {
        (
            DatasetId([n; 16]),
            crate::model::ids::seeded_node_id(u64::from(n)),
        )
    }

    fn no_work(ms: u64, finished: bool) -> Result<ControlResponse, LinkError> {
        Ok(ControlResponse::NoWork {
            retry_after_ms: ms,
            finished,
        })
    }

    #[test]
    fn silent_seeders_wait_longer_each_time_up_to_a_minute() {
        assert_eq!(silent_pause(1), BID_TIMEOUT);
        assert_eq!(silent_pause(2), BID_TIMEOUT * 2);
        assert_eq!(silent_pause(3), BID_TIMEOUT * 4);
        assert_eq!(silent_pause(50), SILENT_PAUSE_MAX);
    }

    #[test]
    fn the_worker_wakes_only_for_a_deadline_an_answer_set() {
        let now = Instant::now();
        let mut p = Pacing::default();
        // Nothing offered: no deadline at all (offers are pushed).
        assert_eq!(p.next_wake(&[], None, now), None);
        // An offer never bid on is due at once.
        assert_eq!(p.next_wake(&[key(1)], None, now), Some(now));
        // "No work, ask again in 700 ms" and a refusal: the earliest of their deadlines.
        let ms = |n| Duration::from_millis(n);
        let pause = p.record(key(1), BidResult::Answered(&no_work(700, false)), now);
        assert_eq!(pause, ms(700));
        let refused = Ok(ControlResponse::rejected(
            crate::protocol::control::RejectReason::Invalid,
            "x",
        ));
        assert_eq!(
            p.record(key(2), BidResult::Answered(&refused), now),
            REFUSED_PAUSE
        );
        assert_eq!(
            p.next_wake(&[key(1), key(2)], None, now),
            Some(now + ms(700))
        );
        // A finished dataset is asked again no sooner than FINISHED_PAUSE.
        p.record(key(1), BidResult::Answered(&no_work(10, true)), now);
        assert_eq!(
            p.next_wake(&[key(1)], None, now),
            Some(now + FINISHED_PAUSE)
        );
        // No free slot: the capacity is measured again, whatever the offers' deadlines.
        assert_eq!(
            p.next_wake(&[key(1)], Some(CAPACITY_RECHECK), now),
            Some(now + CAPACITY_RECHECK)
        );
        // Silence pushes the offer back and puts it after the ones that answered.
        assert_eq!(p.record(key(3), BidResult::Silent, now), BID_TIMEOUT);
        assert_eq!(p.record(key(3), BidResult::Silent, now), BID_TIMEOUT * 2);
        // A seeder asking for no pause, or for ages, gets a bounded one.
        assert_eq!(
            p.record(key(4), BidResult::Answered(&no_work(0, false)), now),
            NO_WORK_PAUSE.0
        );
        assert_eq!(
            p.record(key(4), BidResult::Answered(&no_work(u64::MAX, false)), now),
            NO_WORK_PAUSE.1
        );
        // Offers that are gone are forgotten.
        p.keep_only(&HashSet::from([key(3)]));
        assert_eq!(p.next_wake(&[key(1)], None, now), Some(now));
        assert_eq!(
            p.next_wake(&[key(3)], None, now),
            Some(now + BID_TIMEOUT * 2)
        );
    }
}
