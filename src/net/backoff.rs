//! Redial schedule for bootstrap (`--join`) addresses: the shared retry policy's exponential
//! backoff ([`RetryPolicy`], each wait stretched by up to +50 %), reset by a successful
//! connection. Pure: the caller passes the current time and a jitter fraction.

use std::time::Duration;

use tokio::time::Instant;

use crate::model::retry::RetryPolicy;

/// When to dial one bootstrap address next.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    failures: u32,
    next_at: Option<Instant>,
}

impl Backoff {
    /// A schedule whose first attempt is due immediately: waits from `initial` doubling up to
    /// `max`.
    pub(crate) fn new(initial: Duration, max: Duration, now: Instant) -> Self {
        Self {
            policy: RetryPolicy {
                max_attempts: u32::MAX,
                base: initial,
                cap: max.max(initial),
                jitter_percent: (100, 150),
                ..RetryPolicy::default()
            },
            failures: 0,
            next_at: Some(now),
        }
    }

    /// Whether an attempt is due at `now`.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.next_at.is_some_and(|at| now >= at)
    }

    /// An attempt has started: nothing is due until it fails or the connection drops.
    pub(crate) fn on_attempt(&mut self) {
        self.next_at = None;
    }

    /// The attempt failed: wait the current delay (stretched by `jitter` in `0.0..=1.0`, up to
    /// +50 %); the next one is twice as long, up to the maximum.
    pub(crate) fn on_failure(&mut self, now: Instant, jitter: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = self.policy.wait(self.failures, jitter);
        self.next_at = Some(now + wait);
        wait
    }

    /// Someone needs the peer now (an upload found no connection): a waiting redial is due at
    /// once; the delay keeps growing if it fails. An attempt in flight is left alone.
    pub(crate) fn expedite(&mut self, now: Instant) {
        if let Some(at) = self.next_at
            && at > now
        {
            self.next_at = Some(now);
        }
    }

    /// Connected: the delay goes back to its initial value and nothing is due.
    pub(crate) fn on_connected(&mut self) {
        self.failures = 0;
        self.next_at = None;
    }

    /// A live connection dropped: try again after the initial delay.
    pub(crate) fn on_disconnected(&mut self, now: Instant) {
        self.failures = 0;
        self.next_at = Some(now + self.policy.base);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets_on_connect() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5), t0);
        assert!(b.is_due(t0));
        b.on_attempt();
        assert!(!b.is_due(t0 + Duration::from_secs(3600)));
        let waits: Vec<u64> = (0..5).map(|_| b.on_failure(t0, 0.0).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 5, 5]);
        b.on_connected();
        assert!(!b.is_due(t0 + Duration::from_secs(3600)));
        b.on_disconnected(t0);
        assert!(!b.is_due(t0));
        assert!(b.is_due(t0 + Duration::from_secs(1)));
        assert_eq!(b.on_failure(t0, 0.0), Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn waits_stay_within_bounds(jitters in proptest::collection::vec(0.0f64..=1.0, 1..40)) {
            let t0 = Instant::now();
            let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10), t0);
            let mut previous_base = Duration::ZERO;
            for j in jitters {
                let wait = b.on_failure(t0, j);
                prop_assert!(wait >= Duration::from_millis(200));
                prop_assert!(wait <= Duration::from_secs(15));
                prop_assert!(!b.is_due(t0 + wait - Duration::from_millis(1)));
                prop_assert!(b.is_due(t0 + wait));
                let base = wait.mul_f64(1.0 / (1.0 + 0.5 * j));
                prop_assert!(base + Duration::from_millis(1) >= previous_base);
                previous_base = base;
            }
        }
    }
}
