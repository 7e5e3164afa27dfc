//! Per-host concurrency gates: the runtime side of [`crate::model::host_pace::HostPace`].
//! A fetch takes a slot of its URL's host before sending; 429/503 answers shrink the host's
//! limit (and may pause it until `Retry-After`), successes grow it back up to the cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::model::host_pace::HostPace;
use crate::model::time::UnixMillis;

/// The current wall-clock time.
pub fn now() -> UnixMillis {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    UnixMillis(ms)
}

/// One host's gate.
#[derive(Debug)]
pub struct HostGate {
    pace: Mutex<HostPace>,
    notify: Notify,
}

impl HostGate {
    fn pace(&self) -> MutexGuard<'_, HostPace> {
        match self.pace.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Waits for a slot; `None` if `cancel` fires first.
    pub async fn acquire(self: &Arc<Self>, cancel: &CancellationToken) -> Option<HostPermit> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let t = now();
            let wait = {
                let mut pace = self.pace();
                if pace.try_acquire(t) {
                    return Some(HostPermit {
                        gate: Arc::clone(self),
                    });
                }
                pace.paused_until(t).map(|until| until.since(t))
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
            let mut pace = self.pace();
            let before = pace.limit();
            pace.on_success();
            pace.limit() > before
        };
        if grew {
            self.notify.notify_one();
        }
    }

    /// Reports a 429/503.
    pub fn on_throttle(&self, retry_after: Option<Duration>) {
        self.pace().on_throttle(now(), retry_after);
    }

    /// The host's current limit.
    pub fn limit(&self) -> usize {
        self.pace().limit()
    }
}

/// A held slot; released on drop.
#[derive(Debug)]
pub struct HostPermit {
    gate: Arc<HostGate>,
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        self.gate.pace().release();
        self.gate.notify.notify_one();
    }
}

/// Gates for every host seen, created on first use with the per-host cap.
#[derive(Debug)]
pub struct HostGates {
    cap: usize,
    gates: Mutex<HashMap<String, Arc<HostGate>>>,
}

impl HostGates {
    /// Gates allowing `cap` requests in flight per host.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// The gate of `host` (`host:port`).
    pub fn gate(&self, host: &str) -> Arc<HostGate> {
        let mut gates = match self.gates.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(g) = gates.get(host) {
            return Arc::clone(g);
        }
        let gate = Arc::new(HostGate {
            pace: Mutex::new(HostPace::new(self.cap)),
            notify: Notify::new(),
        });
        gates.insert(host.to_string(), Arc::clone(&gate));
        gate
    }
}
