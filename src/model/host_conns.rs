//! Connection reuse per host, pure: should a request keep its connection open for a later row
//! of the same host, or ask the server to close it (`Connection: close`) once answered?
//!
//! An idle pooled connection costs a file descriptor and a few KB of buffers on both ends;
//! over a list of a million hosts, keeping every connection for the pool's idle timeout held
//! tens of thousands of sockets open for nothing. A connection is worth keeping only if a row
//! of its host is waiting for one: the engine registers each row with its host when it reads
//! the row (up to 16,384 rows of look-ahead; the task that kept the connection fetches the
//! host's next queued row on it), and a request keeps its connection only while the host's
//! waiting rows outnumber the connections already being kept. A host
//! with no queued rows keeps nothing, so the connections left idle are those of hosts still
//! being downloaded (plus a few stragglers of rows that overlapped, closed by the pool's short
//! idle timeout). A total cap on kept connections (in flight or parked) bounds the idle ones
//! whatever the host count.

use std::time::Duration;

use crate::model::time::UnixMillis;

/// How long the HTTP pool keeps an idle connection (the client is configured with it). Short:
/// a connection is kept only for a waiting row, which takes it within milliseconds.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a parked connection may really stay open: the pool refuses it after
/// [`POOL_IDLE_TIMEOUT`] but closes it only at its next sweep, one timeout later.
pub const PARKED_LIFETIME: Duration = Duration::from_secs(2 * POOL_IDLE_TIMEOUT.as_secs());

/// The rows and kept connections of one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConns {
    queued: u32,
    /// Requests in flight that keep their connection.
    keeping: u32,
    /// Kept connections now idle in the pool, waiting for a row of the host.
    parked: u32,
    parked_at: UnixMillis,
}

impl HostConns {
    /// A row of the host was read (it is finished with [`Self::finish`]).
    pub fn enqueue(&mut self) {
        self.queued = self.queued.saturating_add(1);
    }

    /// A row of the host is finished (stored, failed or abandoned). With no row left, the
    /// host's parked connections serve nobody: they are handed back as `(count, closed_by)`
    /// for the caller to count until the pool has closed them ([`PARKED_LIFETIME`]).
    pub fn finish(&mut self) -> Option<(u32, UnixMillis)> {
        self.queued = self.queued.saturating_sub(1);
        if self.queued == 0 && self.parked > 0 {
            let stragglers = (self.parked, self.parked_at.plus(PARKED_LIFETIME));
            self.parked = 0;
            return Some(stragglers);
        }
        None
    }

    /// Rows registered and not finished.
    pub fn queued(&self) -> u32 {
        self.queued
    }

    /// Connections counted against the total cap: kept requests in flight plus parked ones.
    pub fn kept(&self) -> u32 {
        self.keeping + self.parked
    }

    fn expire(&mut self, now: UnixMillis) {
        if self.parked > 0 && now.since(self.parked_at) >= PARKED_LIFETIME {
            self.parked = 0;
        }
    }

    /// A request starts while `in_flight` requests of the host (this one included) run:
    /// returns whether it keeps its connection for a later row. It reuses a parked
    /// connection if there is one. The rows not in flight are waiting (read ahead, behind
    /// the host's limit, or between retries); each kept connection serves one of them, and
    /// none is kept without `room` under the total cap.
    pub fn begin(&mut self, in_flight: usize, room: bool, now: UnixMillis) -> bool {
        self.expire(now);
        self.parked = self.parked.saturating_sub(1);
        let in_flight = u32::try_from(in_flight).unwrap_or(u32::MAX);
        let waiting = self.queued.saturating_sub(in_flight);
        let keep = room && waiting > self.kept();
        if keep {
            self.keeping += 1;
        }
        keep
    }

    /// The request started by [`Self::begin`] is over; a kept connection is parked.
    pub fn end(&mut self, keep: bool, now: UnixMillis) {
        if keep {
            self.keeping = self.keeping.saturating_sub(1);
            if self.queued > 0 {
                self.parked += 1;
                self.parked_at = now;
            }
        }
    }

    /// Nothing queued, kept or parked: nothing to remember about the host.
    pub fn is_unused(&self) -> bool {
        self.queued == 0 && self.kept() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: UnixMillis = UnixMillis(1_000_000);

    #[test]
    fn a_lone_row_closes_its_connection() {
        let mut c = HostConns::default();
        c.enqueue();
        assert!(!c.begin(1, true, T), "nothing else of the host is queued");
        c.end(false, T);
        assert_eq!(c.finish(), None);
        assert!(c.is_unused());
    }

    #[test]
    fn a_busy_host_keeps_connections_until_its_last_rows() {
        let mut c = HostConns::default();
        for _ in 0..1000 {
            c.enqueue();
        }
        // Four connections in flight, 996 rows waiting: all four are kept, then parked.
        let kept: Vec<bool> = (1..=4).map(|n| c.begin(n, true, T)).collect();
        assert_eq!(kept, [true; 4]);
        for k in kept {
            c.end(k, T);
        }
        assert_eq!(c.kept(), 4);
        for _ in 0..998 {
            assert_eq!(c.finish(), None);
        }
        // Two rows left, four parked connections: each row reuses one and closes it (the
        // other parked ones already serve the waiting row).
        assert!(!c.begin(1, true, T));
        assert!(!c.begin(2, true, T));
        assert_eq!(c.kept(), 2);
        assert_eq!(c.finish(), None);
        assert_eq!(c.finish(), Some((2, T.plus(PARKED_LIFETIME))));
        assert!(c.is_unused());
    }

    #[test]
    fn no_room_under_the_total_cap_means_close() {
        let mut c = HostConns::default();
        for _ in 0..10 {
            c.enqueue();
        }
        assert!(!c.begin(1, false, T));
    }

    #[test]
    fn parked_connections_expire_with_the_pool_and_vanish_with_the_last_row() {
        let mut c = HostConns::default();
        for _ in 0..3 {
            c.enqueue();
        }
        assert!(c.begin(1, true, T));
        c.end(true, T);
        assert_eq!(c.kept(), 1);
        // The pool closed it meanwhile: the next request opens a new connection, kept again.
        let later = T.plus(PARKED_LIFETIME);
        assert!(c.begin(1, true, later));
        c.end(true, later);
        assert_eq!(c.finish(), None);
        assert_eq!(c.finish(), None);
        assert_eq!(c.kept(), 1);
        assert_eq!(
            c.finish(),
            Some((1, later.plus(PARKED_LIFETIME))),
            "no row left: the parked one is handed back until the pool closes it"
        );
        assert!(c.is_unused());
    }

    proptest! {
        /// Kept connections never exceed the rows waiting when they started, and a host with
        /// nothing queued counts nothing.
        #[test]
        fn keeps_are_bounded_by_waiting_rows(ops in proptest::collection::vec(0u8..4, 0..400)) {
            let mut c = HostConns::default();
            let (mut queued, mut running) = (0u32, Vec::<bool>::new());
            for op in ops {
                match op {
                    0 => { c.enqueue(); queued += 1; }
                    1 if queued as usize > running.len() => {
                        let keep = c.begin(running.len() + 1, true, T);
                        running.push(keep);
                        prop_assert!(!keep || c.kept() <= queued - running.len() as u32);
                    }
                    2 => if let Some(k) = running.pop() { c.end(k, T); let _ = c.finish(); queued -= 1; },
                    _ => {}
                }
                if queued == 0 && running.is_empty() {
                    prop_assert!(c.is_unused());
                }
            }
        }
    }
}
