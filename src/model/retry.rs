//! The retry policy, pure: which failures are worth another attempt, how long to wait
//! (exponential backoff with jitter, never less than the server's `Retry-After`), and parsing
//! `Retry-After`. Randomness and the current time are arguments. It is the one policy of every
//! retry in ldawt: a row's HTTP attempts (full jitter), WebDAV requests
//! ([`RetryPolicy::webdav`]) and the redials of `--join` addresses (`net::backoff`).

use std::time::Duration;

use crate::model::time::UnixMillis;

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with a non-200 status.
    Http(u16),
    /// No connection could be made within the connect timeout, or it was refused.
    Connect,
    /// No response headers within the first-byte timeout.
    FirstByteTimeout,
    /// The body stalled longer than the idle timeout.
    IdleTimeout,
    /// The attempt exceeded the total timeout.
    TotalTimeout,
    /// The connection broke while reading the response (reset, early EOF).
    Broken,
    /// The body ended before its announced length, or an image ended without its end marker.
    Truncated,
    /// The URL cannot be fetched at all (unparseable, unsupported scheme).
    InvalidUrl,
    /// Too many redirects (or a loop).
    Redirects,
    /// The body exceeded the maximum file size.
    TooLarge,
    /// The body is not an accepted image type (an HTML page served with 200, say).
    NotImage,
    /// The server's TLS certificate was rejected (unknown issuer, wrong name, expired):
    /// retrying cannot cure it.
    Tls,
    /// The host name does not exist (NXDOMAIN) or has no address records.
    DnsNxDomain,
    /// The name server answered with an error (SERVFAIL, REFUSED) or an unusable answer.
    DnsServFail,
    /// No name server answered in time (or none could be reached).
    DnsTimeout,
    /// The URL's host is, or resolves only to, an internal address (loopback, private,
    /// link-local…) and the run blocks those (`FetchConfig::block_private_addresses`).
    BlockedAddress,
    /// The response's `X-Robots-Tag` carries a disallowed directive (`noai`…): the creator
    /// opted out, the body is not stored.
    OptedOut,
}

impl Failure {
    /// The short, machine-readable kind recorded in the results (`http_404`, `timeout_idle`…).
    pub fn kind(&self) -> String {
        match self {
            Self::Http(s) => format!("http_{s}"),
            Self::Connect => "connect".into(),
            Self::FirstByteTimeout => "timeout_first_byte".into(),
            Self::IdleTimeout => "timeout_idle".into(),
            Self::TotalTimeout => "timeout_total".into(),
            Self::Broken => "connection_broken".into(),
            Self::Truncated => "truncated".into(),
            Self::InvalidUrl => "invalid_url".into(),
            Self::Redirects => "too_many_redirects".into(),
            Self::TooLarge => "too_large".into(),
            Self::NotImage => "not_image".into(),
            Self::Tls => "tls_certificate".into(),
            Self::DnsNxDomain => "dns_nxdomain".into(),
            Self::DnsServFail => "dns_servfail".into(),
            Self::DnsTimeout => "dns_timeout".into(),
            Self::BlockedAddress => "blocked_address".into(),
            Self::OptedOut => "opted_out".into(),
        }
    }

    /// True for failures another attempt may cure: timeouts, broken connections, 5xx (except
    /// 501/505), 408, 425 and 429, DNS SERVFAIL and DNS timeouts. 404/403/invalid URL/too
    /// large/not an image/NXDOMAIN/blocked address are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Http(s) => matches!(s, 408 | 425 | 429) || (*s >= 500 && !matches!(s, 501 | 505)),
            Self::Connect
            | Self::FirstByteTimeout
            | Self::IdleTimeout
            | Self::TotalTimeout
            | Self::Broken
            | Self::Truncated
            | Self::DnsServFail
            | Self::DnsTimeout => true,
            Self::InvalidUrl
            | Self::Redirects
            | Self::TooLarge
            | Self::NotImage
            | Self::Tls
            | Self::DnsNxDomain
            | Self::BlockedAddress
            | Self::OptedOut => false,
        }
    }

    /// True when the host asks us to slow down (429, 503): feeds the per-host pacing.
    pub fn is_throttle(&self) -> bool {
        matches!(self, Self::Http(429 | 503))
    }
}

/// When and whether to retry. `Default` is a row's policy in the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (1 = never retry).
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry; doubles per attempt.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub cap: Duration,
    /// A `Retry-After` longer than this makes the failure final (the host is gone for now).
    pub max_retry_after: Duration,
    /// The wait is the ceiling times a factor drawn in this range, in percent: `(0, 100)` is
    /// full jitter (rows), `(50, 100)` keeps at least half (WebDAV), `(100, 150)` stretches
    /// (redials).
    pub jitter_percent: (u32, u32),
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(120),
            jitter_percent: (0, 100),
        }
    }
}

impl RetryPolicy {
    /// WebDAV requests (`ldawt upload`, `compare`, result uploads): five attempts, waits from
    /// 0.25–0.5 s up to 15–30 s, so parallel uploads spread out.
    pub fn webdav() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            jitter_percent: (50, 100),
            ..Self::default()
        }
    }

    /// The backoff ceiling after `failures` failed attempts (≥ 1): `base · 2^(failures−1)`,
    /// at most `cap`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// The wait after `failures` failed attempts: the [`Self::ceiling`] scaled into
    /// [`Self::jitter_percent`] by `jitter` (uniform in `[0, 1)`).
    pub fn wait(&self, failures: u32, jitter: f64) -> Duration {
        let (lo, hi) = self.jitter_percent;
        let (lo, hi) = (f64::from(lo) / 100.0, f64::from(hi.max(lo)) / 100.0);
        self.ceiling(failures)
            .mul_f64(lo + (hi - lo) * jitter.clamp(0.0, 1.0))
    }

    /// Whether another attempt may cure an HTTP response with `status` (the engine's rule:
    /// [`Failure::is_retryable`]).
    pub fn is_retryable_status(status: u16) -> bool {
        Failure::Http(status).is_retryable()
    }

    /// The wait before the next attempt, or `None` when the row is finished. `attempts` is the
    /// number made so far (≥ 1); `jitter` is uniform in `[0, 1)`.
    pub fn next_delay(
        &self,
        failure: &Failure,
        attempts: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if !failure.is_retryable() || attempts >= self.max_attempts {
            return None;
        }
        if retry_after.is_some_and(|ra| ra > self.max_retry_after) {
            return None;
        }
        Some(
            self.wait(attempts, jitter)
                .max(retry_after.unwrap_or_default()),
        )
    }
}

/// Parses a `Retry-After` value: delta-seconds or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, compared with `now`).
pub fn parse_retry_after(value: &str, now: UnixMillis) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_imf_fixdate(value)?;
    Some(Duration::from_millis(at.saturating_sub(now.0)))
}

/// Milliseconds since the epoch of an IMF-fixdate.
fn parse_imf_fixdate(value: &str) -> Option<u64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| m == month)? as u64 + 1;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy as i64;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(secs * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn classification() {
        for s in [429, 500, 502, 503, 504, 408] {
            assert!(Failure::Http(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 501] {
            assert!(!Failure::Http(s).is_retryable(), "{s}");
        }
        assert!(Failure::Broken.is_retryable());
        assert!(!Failure::NotImage.is_retryable());
        assert!(!Failure::Redirects.is_retryable());
        assert!(Failure::Http(429).is_throttle() && !Failure::Http(500).is_throttle());
        assert_eq!(Failure::Http(404).kind(), "http_404");
        assert!(!Failure::DnsNxDomain.is_retryable());
        assert!(Failure::DnsServFail.is_retryable() && Failure::DnsTimeout.is_retryable());
        assert!(!Failure::BlockedAddress.is_retryable());
        assert_eq!(Failure::DnsNxDomain.kind(), "dns_nxdomain");
        assert_eq!(Failure::DnsServFail.kind(), "dns_servfail");
        assert_eq!(Failure::DnsTimeout.kind(), "dns_timeout");
        assert_eq!(Failure::BlockedAddress.kind(), "blocked_address");
    }

    #[test]
    fn webdav_statuses_follow_the_engine_rule() {
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert!(RetryPolicy::is_retryable_status(s), "{s}");
        }
        for s in [200, 201, 207, 401, 403, 404, 409, 501, 505] {
            assert!(!RetryPolicy::is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn webdav_waits_keep_at_least_half_the_ceiling() {
        let p = RetryPolicy::webdav();
        assert_eq!(p.wait(1, 0.0), Duration::from_millis(250));
        assert_eq!(p.wait(1, 1.0), Duration::from_millis(500));
        assert_eq!(p.wait(3, 1.0), Duration::from_secs(2));
        assert_eq!(p.wait(50, 1.0), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_wins_and_attempts_are_bounded() {
        let p = RetryPolicy::default();
        let ra = Some(Duration::from_secs(2));
        assert_eq!(
            p.next_delay(&Failure::Http(429), 1, ra, 0.0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(p.next_delay(&Failure::Http(429), 4, ra, 0.0), None);
        assert_eq!(p.next_delay(&Failure::Http(404), 1, None, 0.5), None);
        let too_long = Some(Duration::from_secs(3600));
        assert_eq!(p.next_delay(&Failure::Http(503), 1, too_long, 0.5), None);
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = UnixMillis(784_111_777_000); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    proptest! {
        #[test]
        fn backoff_is_within_the_exponential_ceiling(attempt in 1u32..4, jitter in 0.0f64..1.0) {
            let p = RetryPolicy { max_attempts: 10, ..RetryPolicy::default() };
            let d = p.next_delay(&Failure::Connect, attempt, None, jitter).unwrap();
            let ceiling = p.base * (1 << (attempt - 1));
            prop_assert!(d <= ceiling.min(p.cap));
        }
    }
}
