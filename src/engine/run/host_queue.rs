//! The rows read ahead of their fetch, in input order and grouped by host. The dispatcher
//! starts the oldest row; a fetch task that finished a row of host H takes H's next queued row
//! and fetches it on the connection it just used, so a host's rows share one connection
//! instead of each opening its own (a host's rows are often thousands of rows apart in a
//! list, too far apart for a pooled connection to wait for them).
//!
//! Pure bookkeeping, no I/O: the engine wraps it in a mutex.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// Rows waiting for a fetch, keyed by their host.
#[derive(Debug)]
pub(crate) struct HostQueue<T> {
    next: u64,
    /// Queued rows by arrival (input order).
    rows: BTreeMap<u64, (Arc<str>, T)>,
    /// Each host's queued rows, oldest first.
    by_host: HashMap<Arc<str>, VecDeque<u64>>,
}

impl<T> Default for HostQueue<T> {
    fn default() -> Self {
        Self {
            next: 0,
            rows: BTreeMap::new(),
            by_host: HashMap::new(),
        }
    }
}

impl<T> HostQueue<T> {
    /// Queues a row of `host`.
    pub(crate) fn push(&mut self, host: Arc<str>, item: T) {
        let seq = self.next;
        self.next += 1;
        self.by_host
            .entry(Arc::clone(&host))
            .or_default()
            .push_back(seq);
        self.rows.insert(seq, (host, item));
    }

    /// Takes the oldest queued row.
    pub(crate) fn pop_oldest(&mut self) -> Option<T> {
        let (seq, (host, item)) = self.rows.pop_first()?;
        // The oldest row overall is the oldest of its host.
        self.unlink(&host, seq);
        Some(item)
    }

    /// Takes the oldest queued row of `host`.
    pub(crate) fn pop_host(&mut self, host: &str) -> Option<T> {
        let seq = *self.by_host.get(host)?.front()?;
        let (host, item) = self.rows.remove(&seq)?;
        self.unlink(&host, seq);
        Some(item)
    }

    fn unlink(&mut self, host: &str, seq: u64) {
        if let Some(list) = self.by_host.get_mut(host) {
            debug_assert_eq!(list.front(), Some(&seq));
            list.pop_front();
            if list.is_empty() {
                self.by_host.remove(host);
            }
        }
    }

    /// Rows queued.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Hosts with a queued row.
    #[cfg(test)]
    fn hosts(&self) -> usize {
        self.by_host.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[test]
    fn oldest_first_and_a_host_s_rows_in_order() {
        let mut q = HostQueue::default();
        for (i, host) in ["a", "b", "a", "c", "a", "b"].into_iter().enumerate() {
            q.push(h(host), i);
        }
        assert_eq!(q.pop_oldest(), Some(0));
        assert_eq!(q.pop_host("a"), Some(2), "a's next row, ahead of b's");
        assert_eq!(q.pop_host("a"), Some(4));
        assert_eq!(q.pop_host("a"), None);
        assert_eq!(q.pop_oldest(), Some(1));
        assert_eq!(q.pop_host("b"), Some(5));
        assert_eq!(q.pop_oldest(), Some(3));
        assert_eq!(q.pop_oldest(), None);
        assert!(q.is_empty());
        assert_eq!(q.hosts(), 0, "no host is remembered without a queued row");
    }

    proptest! {
        /// Whatever the mix of takes, every row comes out exactly once, a host's rows in their
        /// input order, and the oldest take returns the smallest row left.
        #[test]
        fn every_row_once_in_host_order(
            hosts in proptest::collection::vec(0u8..6, 0..200),
            takes in proptest::collection::vec(0u8..7, 0..300),
        ) {
            let mut q = HostQueue::default();
            for (i, host) in hosts.iter().enumerate() {
                q.push(h(&host.to_string()), (i, *host));
            }
            let mut seen = vec![false; hosts.len()];
            let mut last = [None::<usize>; 6];
            let mut take = |item: Option<(usize, u8)>, seen: &mut Vec<bool>| -> Result<(), TestCaseError> {
                if let Some((i, host)) = item {
                    prop_assert!(!seen[i]);
                    seen[i] = true;
                    prop_assert!(last[host as usize].is_none_or(|l| l < i));
                    last[host as usize] = Some(i);
                }
                Ok(())
            };
            for t in takes {
                if t == 6 {
                    let smallest = seen.iter().position(|s| !s);
                    let item = q.pop_oldest();
                    prop_assert_eq!(item.map(|(i, _)| i), smallest);
                    take(item, &mut seen)?;
                } else {
                    let item = q.pop_host(&t.to_string());
                    prop_assert!(item.is_none_or(|(_, host)| host == t));
                    take(item, &mut seen)?;
                }
            }
            while let Some(item) = q.pop_oldest() {
                take(Some(item), &mut seen)?;
            }
            prop_assert!(seen.iter().all(|s| *s));
            prop_assert_eq!(q.len(), 0);
        }
    }
}
