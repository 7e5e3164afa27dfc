//! Per-host politeness, pure: an AIMD limit on the requests in flight to one host. A 429/503
//! halves the limit (at most once per cool-down, so a burst of simultaneous 429s counts once,
//! unlike LDAWT's token bucket) and can pause the host until its `Retry-After`; successes
//! raise it by one per "window" of successes, never above the configured cap. Time is an
//! argument.

use std::time::Duration;

use crate::model::time::UnixMillis;

/// The pacing state of one host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPace {
    cap: usize,
    limit: f64,
    in_flight: usize,
    paused_until: UnixMillis,
    last_decrease: Option<UnixMillis>,
    cooldown: Duration,
}

impl HostPace {
    /// A host allowed `cap` requests in flight, starting at the cap.
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            cap,
            limit: cap as f64,
            in_flight: 0,
            paused_until: UnixMillis(0),
            last_decrease: None,
            cooldown: Duration::from_secs(1),
        }
    }

    /// The current limit (whole requests).
    pub fn limit(&self) -> usize {
        (self.limit.floor() as usize).clamp(1, self.cap)
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Until when the host is paused (a `Retry-After`); `None` when it is not.
    pub fn paused_until(&self, now: UnixMillis) -> Option<UnixMillis> {
        (self.paused_until > now).then_some(self.paused_until)
    }

    /// Nothing to remember: no request in flight, the limit back at the cap and no pause. A
    /// host at rest can be forgotten and recreated later with [`Self::new`] at no loss.
    pub fn is_at_rest(&self, now: UnixMillis) -> bool {
        self.in_flight == 0 && self.limit >= self.cap as f64 && self.paused_until <= now
    }

    /// Takes a slot if one is free and the host is not paused.
    pub fn try_acquire(&mut self, now: UnixMillis) -> bool {
        if self.paused_until > now || self.in_flight >= self.limit() {
            return false;
        }
        self.in_flight += 1;
        true
    }

    /// Gives a slot back (every successful `try_acquire` is paired with one release).
    pub fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A response that was not a throttle: additive increase (+1 per `limit` successes).
    pub fn on_success(&mut self) {
        self.limit = (self.limit + 1.0 / self.limit.max(1.0)).min(self.cap as f64);
    }

    /// A 429/503: multiplicative decrease (once per cool-down) and an optional pause.
    pub fn on_throttle(&mut self, now: UnixMillis, retry_after: Option<Duration>) {
        let recent = self
            .last_decrease
            .is_some_and(|t| now.since(t) < self.cooldown);
        if !recent {
            self.limit = (self.limit / 2.0).max(1.0);
            self.last_decrease = Some(now);
        }
        if let Some(ra) = retry_after {
            let until = now.plus(ra.min(Duration::from_secs(120)));
            if until > self.paused_until {
                self.paused_until = until;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn throttling_halves_once_per_cooldown_and_recovers() {
        let mut p = HostPace::new(64);
        let t = UnixMillis(1_000_000);
        p.on_throttle(t, None);
        p.on_throttle(t, None);
        assert_eq!(p.limit(), 32, "a burst of 429s halves once");
        p.on_throttle(t.plus(Duration::from_secs(2)), None);
        assert_eq!(p.limit(), 16);
        for _ in 0..10_000 {
            p.on_success();
        }
        assert_eq!(p.limit(), 64, "recovers to the cap, never above");
    }

    #[test]
    fn retry_after_pauses_the_host() {
        let mut p = HostPace::new(4);
        let t = UnixMillis(5_000);
        p.on_throttle(t, Some(Duration::from_secs(2)));
        assert!(!p.try_acquire(t.plus(Duration::from_millis(1999))));
        assert!(p.try_acquire(t.plus(Duration::from_millis(2000))));
        assert_eq!(p.paused_until(t.plus(Duration::from_secs(3))), None);
    }

    proptest! {
        #[test]
        fn in_flight_never_exceeds_limit_or_cap(
            cap in 1usize..50,
            ops in proptest::collection::vec(0u8..4, 0..300),
        ) {
            let mut p = HostPace::new(cap);
            let mut now = UnixMillis(0);
            let mut held = 0usize;
            for op in ops {
                now = now.plus(Duration::from_millis(300));
                match op {
                    0 => if p.try_acquire(now) { held += 1 },
                    1 => if held > 0 { p.release(); held -= 1 },
                    2 => p.on_success(),
                    _ => p.on_throttle(now, None),
                }
                prop_assert_eq!(p.in_flight(), held);
                prop_assert!(p.limit() >= 1 && p.limit() <= cap);
            }
        }
    }
}
