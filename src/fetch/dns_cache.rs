//! The DNS answer cache, pure (the current instant is an argument): positive and negative
//! answers kept until their clamped TTL runs out, at most a fixed number of names, evicting
//! expired entries first and then the one that expires soonest. Also the TTL policy: how long
//! each kind of answer is kept.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Shortest time a positive answer is kept, whatever its record TTL (CDNs answer with TTLs of a
/// few seconds; re-resolving a host every few seconds during a shard gains nothing).
pub const POSITIVE_MIN_TTL: Duration = Duration::from_secs(30);
/// Longest time a positive answer is kept.
pub const POSITIVE_MAX_TTL: Duration = Duration::from_secs(3600);
/// NXDOMAIN / no-address answers without an SOA minimum are kept this long.
pub const NEGATIVE_DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Bounds of how long a NXDOMAIN / no-address answer is kept.
pub const NEGATIVE_MIN_TTL: Duration = Duration::from_secs(30);
/// See [`NEGATIVE_MIN_TTL`].
pub const NEGATIVE_MAX_TTL: Duration = Duration::from_secs(900);
/// SERVFAIL and timeouts are kept this long: a row's retries (backoff 0.25–2 s) and the other
/// rows of the host reuse the failure instead of asking again, yet an outage of the name server
/// is forgotten quickly.
pub const TRANSIENT_TTL: Duration = Duration::from_secs(5);

/// How long to keep a positive answer whose records say `record_ttl`.
pub fn positive_ttl(record_ttl: Duration) -> Duration {
    record_ttl.clamp(POSITIVE_MIN_TTL, POSITIVE_MAX_TTL)
}

/// How long to keep a NXDOMAIN / no-address answer, given the zone's negative TTL (SOA
/// minimum) when the answer carried one.
pub fn negative_ttl(soa_ttl: Option<Duration>) -> Duration {
    soa_ttl
        .unwrap_or(NEGATIVE_DEFAULT_TTL)
        .clamp(NEGATIVE_MIN_TTL, NEGATIVE_MAX_TTL)
}

/// Answers by lower-case host name, each with the instant it expires.
#[derive(Debug)]
pub struct DnsCache<V> {
    capacity: usize,
    entries: HashMap<Box<str>, (Instant, V)>,
}

impl<V: Clone> DnsCache<V> {
    /// A cache holding at most `capacity` names (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    /// The answer for `name` if it has not expired at `now` (an expired one is dropped).
    pub fn get(&mut self, name: &str, now: Instant) -> Option<V> {
        match self.entries.get(name) {
            Some((expires, value)) if *expires > now => Some(value.clone()),
            Some(_) => {
                self.entries.remove(name);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` for `name` until `now + ttl`. When the cache is full, expired entries are
    /// dropped first, then the entry expiring soonest.
    pub fn insert(&mut self, name: &str, value: V, ttl: Duration, now: Instant) {
        if !self.entries.contains_key(name) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, (expires, _)| *expires > now);
            if self.entries.len() >= self.capacity {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (expires, _))| *expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(name.into(), (now + ttl, value));
    }

    /// Names held (expired ones included until they are looked up or evicted).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn answers_expire_with_their_ttl() {
        let t0 = Instant::now();
        let mut c = DnsCache::new(10);
        c.insert("a.test", 1, 30 * S, t0);
        assert_eq!(c.get("a.test", t0 + 29 * S), Some(1));
        assert_eq!(c.get("a.test", t0 + 30 * S), None);
        assert!(c.is_empty(), "an expired entry is dropped when looked up");
        assert_eq!(c.get("b.test", t0), None);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_soonest_to_expire() {
        let t0 = Instant::now();
        let mut c = DnsCache::new(3);
        c.insert("short", 1, 5 * S, t0);
        c.insert("long", 2, 100 * S, t0);
        c.insert("mid", 3, 50 * S, t0);
        // Full, nothing expired: the soonest to expire ("short") goes.
        c.insert("new", 4, 60 * S, t0);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("short", t0), None);
        assert_eq!(c.get("long", t0), Some(2));
        // Later, "mid" has expired: it is the one swept, however many are inserted.
        let t1 = t0 + 55 * S;
        c.insert("newer", 5, 60 * S, t1);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("mid", t1), None);
        for (i, name) in ["x1", "x2", "x3", "x4", "x5"].iter().enumerate() {
            c.insert(name, 10 + i, 60 * S, t1);
            assert!(c.len() <= 3);
        }
        assert_eq!(c.get("x5", t1), Some(14));
        // Replacing an existing name never evicts another.
        c.insert("x5", 99, 60 * S, t1);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("x5", t1), Some(99));
    }

    #[test]
    fn ttls_are_clamped() {
        assert_eq!(positive_ttl(Duration::ZERO), POSITIVE_MIN_TTL);
        assert_eq!(positive_ttl(120 * S), 120 * S);
        assert_eq!(positive_ttl(86_400 * S), POSITIVE_MAX_TTL);
        assert_eq!(negative_ttl(None), NEGATIVE_DEFAULT_TTL);
        assert_eq!(negative_ttl(Some(S)), NEGATIVE_MIN_TTL);
        assert_eq!(negative_ttl(Some(120 * S)), 120 * S);
        assert_eq!(negative_ttl(Some(86_400 * S)), NEGATIVE_MAX_TTL);
    }
}
