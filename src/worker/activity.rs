//! The worker's activity counters: leases held, shards done, and bytes / images downloaded,
//! with a sliding-window rate for heartbeats, bids and the status document.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::ShardCounters;

/// Window over which the rate is measured.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Shared activity of one worker.
#[derive(Default)]
pub struct Activity {
    /// Leases held now.
    pub leases_held: AtomicU32,
    /// Leases whose shard is downloading now (the others are being returned).
    pub downloading: AtomicU32,
    /// Notified when a download ends (its slot is free for the next shard).
    pub slot_freed: tokio::sync::Notify,
    /// Shards completed since start.
    pub shards_done: AtomicU64,
    finished_bytes: AtomicU64,
    finished_images: AtomicU64,
    live: Mutex<Vec<Arc<ShardCounters>>>,
    samples: Mutex<VecDeque<(Instant, u64, u64)>>,
}

impl Activity {
    /// A fresh set of counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Starts following a running shard's counters.
    pub fn track(&self, c: &Arc<ShardCounters>) {
        if let Ok(mut live) = self.live.lock() {
            live.push(c.clone());
        }
    }

    /// Stops following a shard, keeping what it downloaded in the totals.
    pub fn untrack(&self, c: &Arc<ShardCounters>) {
        if let Ok(mut live) = self.live.lock() {
            live.retain(|x| !Arc::ptr_eq(x, c));
        }
        let (_, ok, _, bytes, _) = c.snapshot();
        self.finished_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.finished_images.fetch_add(ok, Ordering::Relaxed);
    }

    /// Bytes and images downloaded since start.
    pub fn totals(&self) -> (u64, u64) {
        let (mut bytes, mut images) = (
            self.finished_bytes.load(Ordering::Relaxed),
            self.finished_images.load(Ordering::Relaxed),
        );
        if let Ok(live) = self.live.lock() {
            for c in live.iter() {
                let (_, ok, _, b, _) = c.snapshot();
                bytes += b;
                images += ok;
            }
        }
        (bytes, images)
    }

    /// (bytes/s, images/s) over the last few seconds; records a sample.
    pub fn rate(&self) -> (f64, f64) {
        let now = Instant::now();
        let (bytes, images) = self.totals();
        let Ok(mut s) = self.samples.lock() else {
            return (0.0, 0.0);
        };
        s.push_back((now, bytes, images));
        while s.len() > 2
            && s.front()
                .is_some_and(|f| now.duration_since(f.0) > RATE_WINDOW)
        {
            s.pop_front();
        }
        match s.front() {
            Some((t0, b0, i0)) if now.duration_since(*t0) > Duration::from_millis(200) => {
                let dt = now.duration_since(*t0).as_secs_f64();
                (
                    bytes.saturating_sub(*b0) as f64 / dt,
                    images.saturating_sub(*i0) as f64 / dt,
                )
            }
            _ => (0.0, 0.0),
        }
    }
}
