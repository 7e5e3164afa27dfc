//! Connection reuse per host, pure: should a request keep its connection open for a later row
//! of the same host, or ask the server to close it (`Connection: close`) once answered?
//!
//! An idle pooled connection costs a file descriptor and a few KB of buffers on both ends;
//! over a list of a million hosts, keeping every connection for the pool's idle timeout held
//! tens of thousands of sockets open for nothing. A connection is worth keeping only if a row
//! of its host is waiting for one: the engine registers each row with its host when it reads
//! the row (a batch of look-ahead, see [`crate::engine`]), and a request keeps its connection
//! only while the host's waiting rows outnumber the connections already being kept. A host
//! with no queued rows keeps nothing, so the connections left idle are those of hosts still
//! being downloaded (plus a few stragglers of rows that overlapped, closed by the pool's short
//! idle timeout).

/// The rows and kept connections of one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConns {
    queued: u32,
    keeping: u32,
}

impl HostConns {
    /// A row of the host was read (it is finished with [`Self::finish`]).
    pub fn enqueue(&mut self) {
        self.queued = self.queued.saturating_add(1);
    }

    /// A row of the host is finished (stored, failed or abandoned).
    pub fn finish(&mut self) {
        self.queued = self.queued.saturating_sub(1);
    }

    /// Rows registered and not finished.
    pub fn queued(&self) -> u32 {
        self.queued
    }

    /// A request starts while `in_flight` requests of the host (this one included) run:
    /// returns whether it keeps its connection for a later row. The rows not in flight are
    /// waiting (read ahead, behind the host's limit, or between retries); each kept
    /// connection serves one of them.
    pub fn begin(&mut self, in_flight: usize) -> bool {
        let in_flight = u32::try_from(in_flight).unwrap_or(u32::MAX);
        let waiting = self.queued.saturating_sub(in_flight);
        let keep = waiting > self.keeping;
        if keep {
            self.keeping += 1;
        }
        keep
    }

    /// The request started by [`Self::begin`] (which answered `keep`) is over.
    pub fn end(&mut self, keep: bool) {
        if keep {
            self.keeping = self.keeping.saturating_sub(1);
        }
    }

    /// No row queued and no kept request running: nothing to remember about the host.
    pub fn is_unused(&self) -> bool {
        self.queued == 0 && self.keeping == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_lone_row_closes_its_connection() {
        let mut c = HostConns::default();
        c.enqueue();
        assert!(!c.begin(1), "nothing else of the host is queued");
        c.end(false);
        c.finish();
        assert!(c.is_unused());
    }

    #[test]
    fn a_busy_host_keeps_connections_until_its_last_rows() {
        let mut c = HostConns::default();
        for _ in 0..1000 {
            c.enqueue();
        }
        // Four connections in flight, 996 rows waiting: all four are kept.
        let kept: Vec<bool> = (1..=4).map(|n| c.begin(n)).collect();
        assert_eq!(kept, [true; 4]);
        for k in kept {
            c.end(k);
        }
        for _ in 0..998 {
            c.finish();
        }
        // Two rows left: the first to start has one row behind it, the second has none.
        assert!(c.begin(1));
        assert!(!c.begin(2));
    }

    #[test]
    fn overlapping_rows_keep_at_most_one_connection_per_waiting_row() {
        let mut c = HostConns::default();
        for _ in 0..3 {
            c.enqueue();
        }
        // Three rows start one after the other while none finished: the first keeps its
        // connection for a waiting row; the second's waiting row is already served.
        assert!(c.begin(1));
        assert!(!c.begin(2));
        assert!(!c.begin(3));
    }

    proptest! {
        /// Kept connections never exceed the rows waiting when they started, and a host with
        /// nothing queued keeps nothing.
        #[test]
        fn keeps_are_bounded_by_waiting_rows(ops in proptest::collection::vec(0u8..4, 0..400)) {
            let mut c = HostConns::default();
            let (mut queued, mut running) = (0u32, Vec::<bool>::new());
            for op in ops {
                match op {
                    0 => { c.enqueue(); queued += 1; }
                    1 if queued as usize > running.len() => {
                        let keep = c.begin(running.len() + 1);
                        running.push(keep);
                        let kept = running.iter().filter(|k| **k).count() as u32;
                        prop_assert!(!keep || kept <= queued - running.len() as u32);
                    }
                    2 => if let Some(k) = running.pop() { c.end(k); c.finish(); queued -= 1; },
                    _ => {}
                }
                if queued == 0 {
                    prop_assert!(c.is_unused());
                }
            }
        }
    }
}
