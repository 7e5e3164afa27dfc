//! Per-host concurrency gates: the runtime side of [`crate::model::host_pace::HostPace`] and
//! [`crate::model::host_conns::HostConns`]. A fetch takes a slot of its URL's host before
//! sending; 429/503 answers shrink the host's limit (and may pause it until `Retry-After`),
//! successes grow it back up to the cap. Each slot also says whether its request keeps its
//! connection for a later row of the host.
//!
//! Memory follows the hosts being downloaded, not the hosts seen: the engine registers each
//! row it reads with [`HostGates::enqueue`], and a host is forgotten when its last queued row
//! is finished and its pacing is back at rest (a throttled or paused host is remembered).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::model::host_conns::HostConns;
use crate::model::host_pace::HostPace;
use crate::model::time::UnixMillis;

/// `host:port` of a URL: the key of its host's gate.
pub fn host_key(url: &reqwest::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// The current wall-clock time.
pub fn now() -> UnixMillis {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    UnixMillis(ms)
}

/// What a host's gate guards: its pacing and its connection reuse.
#[derive(Debug)]
struct HostState {
    pace: HostPace,
    conns: HostConns,
}

/// The total cap on kept connections (in flight or idle in the pool), shared by every gate.
#[derive(Debug)]
struct KeptCap {
    cap: usize,
    kept: AtomicUsize,
    /// Parked connections of hosts with no row left: still open until the pool closes them
    /// (`(closed_by, count)`, oldest first, and their sum), counted until then.
    stragglers: Mutex<(VecDeque<(UnixMillis, u32)>, usize)>,
}

impl KeptCap {
    /// True while the kept connections and the live stragglers are under the cap.
    fn room(&self, now: UnixMillis) -> bool {
        let mut guard = lock(&self.stragglers);
        let (list, live) = &mut *guard;
        while let Some(&(by, n)) = list.front()
            && by <= now
        {
            list.pop_front();
            *live -= n as usize;
        }
        self.kept.load(Ordering::Relaxed) + *live < self.cap
    }

    /// Counts `count` parked connections of a host with no row left until `closed_by`.
    fn add_stragglers(&self, closed_by: UnixMillis, count: u32) {
        let mut guard = lock(&self.stragglers);
        guard.0.push_back((closed_by, count));
        guard.1 += count as usize;
    }
}

/// One host's gate.
#[derive(Debug)]
pub struct HostGate {
    key: Arc<str>,
    state: Mutex<HostState>,
    notify: Notify,
    kept: Arc<KeptCap>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl HostGate {
    fn new(key: Arc<str>, cap: usize, kept: Arc<KeptCap>) -> Self {
        Self {
            key,
            state: Mutex::new(HostState {
                pace: HostPace::new(cap),
                conns: HostConns::default(),
            }),
            notify: Notify::new(),
            kept,
        }
    }

    fn state(&self) -> MutexGuard<'_, HostState> {
        lock(&self.state)
    }

    /// Runs `f` on the host's connections, keeping the total of kept connections in step.
    fn with_conns<R>(&self, state: &mut HostState, f: impl FnOnce(&mut HostConns) -> R) -> R {
        let before = state.conns.kept() as usize;
        let r = f(&mut state.conns);
        let after = state.conns.kept() as usize;
        if after > before {
            self.kept.kept.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            self.kept.kept.fetch_sub(before - after, Ordering::Relaxed);
        }
        r
    }

    /// Waits for a slot; `None` if `cancel` fires first.
    pub async fn acquire(self: &Arc<Self>, cancel: &CancellationToken) -> Option<HostPermit> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let t = now();
            let wait = {
                let mut state = self.state();
                if state.pace.try_acquire(t) {
                    let in_flight = state.pace.in_flight();
                    let room = self.kept.room(t);
                    let keep_alive = self.with_conns(&mut state, |c| c.begin(in_flight, room, t));
                    return Some(HostPermit {
                        gate: Arc::clone(self),
                        keep_alive,
                    });
                }
                state.pace.paused_until(t).map(|until| until.since(t))
            };
            // Re-check at least every second: a pause ends without any notification.
            let wait = wait
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = &mut notified => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Reports a response that was not a throttle.
    pub fn on_success(&self) {
        let grew = {
            let mut state = self.state();
            let before = state.pace.limit();
            state.pace.on_success();
            state.pace.limit() > before
        };
        if grew {
            self.notify.notify_one();
        }
    }

    /// Reports a 429/503.
    pub fn on_throttle(&self, retry_after: Option<Duration>) {
        self.state().pace.on_throttle(now(), retry_after);
    }

    /// The host's key (`host:port`).
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// The host's current limit.
    pub fn limit(&self) -> usize {
        self.state().pace.limit()
    }
}

/// A held slot; released on drop.
#[derive(Debug)]
pub struct HostPermit {
    gate: Arc<HostGate>,
    keep_alive: bool,
}

impl HostPermit {
    /// Whether the request keeps its connection for a later row of the host (otherwise it
    /// asks for `Connection: close`: no row of the host waits for it).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        {
            let mut state = self.gate.state();
            state.pace.release();
            let keep = self.keep_alive;
            self.gate.with_conns(&mut state, |c| c.end(keep, now()));
        }
        self.gate.notify.notify_one();
    }
}

type GateMap = Mutex<HashMap<Arc<str>, Arc<HostGate>>>;

/// Connections kept idle in the pool at most, over all hosts, besides those of requests in
/// flight (see [`HostGates::with_idle_cap`]).
pub const IDLE_CONNECTIONS_CAP: usize = 256;

/// Gates for the hosts being downloaded, created on first use with the per-host cap.
#[derive(Debug)]
pub struct HostGates {
    cap: usize,
    gates: Arc<GateMap>,
    kept: Arc<KeptCap>,
}

impl HostGates {
    /// Gates allowing `cap` requests in flight per host; at most `cap` +
    /// [`IDLE_CONNECTIONS_CAP`] connections are kept open for later rows.
    pub fn new(cap: usize) -> Self {
        Self::with_idle_cap(cap, cap + IDLE_CONNECTIONS_CAP)
    }

    /// Like [`Self::new`], keeping at most `kept_cap` connections open for later rows over
    /// all hosts (requests in flight that keep theirs plus idle ones): the engine passes its
    /// concurrency + [`IDLE_CONNECTIONS_CAP`].
    pub fn with_idle_cap(cap: usize, kept_cap: usize) -> Self {
        Self {
            cap,
            gates: Arc::new(Mutex::new(HashMap::new())),
            kept: Arc::new(KeptCap {
                cap: kept_cap,
                kept: AtomicUsize::new(0),
                stragglers: Mutex::new((VecDeque::new(), 0)),
            }),
        }
    }

    /// Connections counted as kept now (requests in flight keeping theirs, idle ones).
    pub fn kept(&self) -> usize {
        self.kept.kept.load(Ordering::Relaxed)
    }

    fn gate_in(&self, gates: &mut HashMap<Arc<str>, Arc<HostGate>>, host: &str) -> Arc<HostGate> {
        if let Some(g) = gates.get(host) {
            return Arc::clone(g);
        }
        let key: Arc<str> = Arc::from(host);
        let gate = Arc::new(HostGate::new(
            Arc::clone(&key),
            self.cap,
            Arc::clone(&self.kept),
        ));
        gates.insert(key, Arc::clone(&gate));
        gate
    }

    /// The gate of `host` (`host:port`). A gate taken this way (no queued row) is kept for the
    /// whole run; rows of a download go through [`Self::enqueue`] instead.
    pub fn gate(&self, host: &str) -> Arc<HostGate> {
        self.gate_in(&mut lock(&self.gates), host)
    }

    /// Registers one row of `host` (`host:port`) read ahead of its fetch; the ticket holds the
    /// host's gate and finishes the row when dropped.
    pub fn enqueue(&self, host: &str) -> HostTicket {
        let mut gates = lock(&self.gates);
        let gate = self.gate_in(&mut gates, host);
        gate.state().conns.enqueue();
        HostTicket {
            gate,
            gates: Arc::clone(&self.gates),
        }
    }

    /// Hosts remembered now (queued rows, running requests or pacing state).
    pub fn len(&self) -> usize {
        lock(&self.gates).len()
    }

    /// True when no host is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One queued row of a host; dropping it finishes the row (and forgets the host when nothing
/// is left to remember about it).
#[derive(Debug)]
pub struct HostTicket {
    gate: Arc<HostGate>,
    gates: Arc<GateMap>,
}

impl HostTicket {
    /// The host's gate.
    pub fn gate(&self) -> &Arc<HostGate> {
        &self.gate
    }
}

impl Drop for HostTicket {
    fn drop(&mut self) {
        // The map is locked first (as in `enqueue`) so no row registers between the check
        // and the removal.
        let mut gates = lock(&self.gates);
        let forget = {
            let mut state = self.gate.state();
            if let Some((count, closed_by)) = self.gate.with_conns(&mut state, HostConns::finish) {
                self.gate.kept.add_stragglers(closed_by, count);
            }
            state.conns.is_unused() && state.pace.is_at_rest(now())
        };
        if forget
            && gates
                .get(&self.gate.key)
                .is_some_and(|g| Arc::ptr_eq(g, &self.gate))
        {
            gates.remove(&self.gate.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_forgotten_when_their_last_row_is_finished() {
        let gates = HostGates::new(4);
        let a1 = gates.enqueue("a:80");
        let a2 = gates.enqueue("a:80");
        let b = gates.enqueue("b:80");
        assert_eq!(gates.len(), 2);
        assert!(Arc::ptr_eq(a1.gate(), a2.gate()));
        drop(a1);
        assert_eq!(gates.len(), 2, "a still has a queued row");
        drop((a2, b));
        assert!(gates.is_empty());
    }

    #[test]
    fn a_throttled_host_is_remembered() {
        let gates = HostGates::new(4);
        let t = gates.enqueue("slow:80");
        t.gate().on_throttle(Some(Duration::from_secs(60)));
        drop(t);
        assert_eq!(gates.len(), 1);
        assert_eq!(gates.enqueue("slow:80").gate().limit(), 2);
    }

    #[tokio::test]
    async fn only_a_host_with_waiting_rows_keeps_connections() {
        let gates = HostGates::new(4);
        let cancel = CancellationToken::new();
        let lone = gates.enqueue("lone:80");
        let permit = lone.gate().acquire(&cancel).await.expect("a slot");
        assert!(!permit.keep_alive());
        let busy: Vec<HostTicket> = (0..3).map(|_| gates.enqueue("busy:80")).collect();
        let first = busy[0].gate().acquire(&cancel).await.expect("a slot");
        assert!(first.keep_alive(), "two rows wait behind it");
        assert_eq!(gates.kept(), 1);
        drop(first);
        assert_eq!(gates.kept(), 1, "parked for the rows still queued");
        drop(busy);
        drop((permit, lone));
        assert!(gates.is_empty());
        assert_eq!(gates.kept(), 0);
    }

    #[tokio::test]
    async fn the_total_cap_bounds_kept_connections_over_all_hosts() {
        let gates = HostGates::with_idle_cap(4, 3);
        let cancel = CancellationToken::new();
        let mut tickets = Vec::new();
        let mut kept = 0;
        for h in 0..10 {
            let host = format!("h{h}:80");
            tickets.push(gates.enqueue(&host));
            tickets.push(gates.enqueue(&host));
            let permit = tickets[tickets.len() - 1]
                .gate()
                .acquire(&cancel)
                .await
                .expect("a slot");
            kept += usize::from(permit.keep_alive());
            drop(permit);
        }
        assert_eq!(kept, 3, "each host has a waiting row, the cap allows three");
        assert_eq!(gates.kept(), 3);
        drop(tickets);
        assert_eq!(gates.kept(), 0);
    }
}
