//! Retry policy for WebDAV requests: which failures are worth another attempt, and the
//! exponential backoff with jitter between attempts. Pure; time is a returned value.

use std::time::Duration;

/// How many attempts and how long to wait between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts (first try included), at least 1.
    pub attempts: u32,
    /// Delay before the second attempt.
    pub base: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): `base * 2^(attempt-1)` capped at
    /// `max`, scaled by `jitter` in `[0.5, 1.0]` so that parallel uploads spread out.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        let raw = self.base.saturating_mul(factor).min(self.max);
        raw.mul_f64(jitter.clamp(0.5, 1.0))
    }
}

/// True for HTTP statuses that a later attempt may cure (server errors, throttling, timeouts).
pub fn is_retryable_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn statuses() {
        assert!(is_retryable_status(500) && is_retryable_status(503) && is_retryable_status(429));
        assert!(
            !is_retryable_status(401) && !is_retryable_status(404) && !is_retryable_status(201)
        );
    }

    proptest! {
        #[test]
        fn delay_grows_and_stays_bounded(attempt in 1u32..100, jitter in 0.0f64..2.0) {
            let p = RetryPolicy::default();
            let d = p.delay(attempt, jitter);
            prop_assert!(d <= p.max);
            prop_assert!(d >= p.base.mul_f64(0.5).min(p.max.mul_f64(0.5)));
            prop_assert!(p.delay(attempt + 1, 1.0) >= p.delay(attempt, 1.0));
        }
    }
}
