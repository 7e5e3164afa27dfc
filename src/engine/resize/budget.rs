//! The resize pool's two limits: how many images are decoded at once (slots, so decoding never
//! starves the network tasks) and how many decoded bytes they may hold together (the budget,
//! so a list of decompression bombs — small files declaring huge dimensions — cannot multiply
//! the per-image cap by the number of slots). A decode reserves its size, read from the image
//! header before any pixel is allocated, for as long as it holds the pixels.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's unit.
const MIB: u64 = 1 << 20;

/// The budget per slot on large machines; the budget is never below one whole image at the
/// per-image cap ([`MIN_BUDGET`]).
const BUDGET_PER_SLOT: u64 = 32 * MIB;

/// The smallest budget: the `image` crate's default per-image allocation limit, which the
/// JPEG path enforces too, so any image that may be decoded at all fits.
pub(crate) const MIN_BUDGET: u64 = 512 * MIB;

/// Slots and decoded-bytes budget shared by every resize of a run.
pub(crate) struct DecodePool {
    slots: Arc<Semaphore>,
    budget: Arc<Semaphore>,
    budget_units: u32,
    held: Arc<AtomicU64>,
    peak: AtomicU64,
}

/// Decoded bytes reserved from a [`DecodePool`]'s budget, given back when dropped.
pub(crate) struct Reservation {
    _permit: OwnedSemaphorePermit,
    bytes: u64,
    held: Arc<AtomicU64>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl DecodePool {
    /// `slots` images at once holding at most `budget` decoded bytes together (rounded up to
    /// whole MiB).
    pub(crate) fn new(slots: usize, budget: u64) -> Self {
        let units = u32::try_from(budget.div_ceil(MIB).max(1)).unwrap_or(u32::MAX);
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            budget: Arc::new(Semaphore::new(units as usize)),
            budget_units: units,
            held: Arc::default(),
            peak: AtomicU64::new(0),
        }
    }

    /// Two slots per core: one per core left a core idle in every hand-off (a finished decode
    /// wakes the next waiting row on the runtime, which then starts its blocking task); on 2
    /// cores the benchmark's resize ran at 1.6 cores with one per core and 1.8 with two, 12 %
    /// more images per second for the same CPU. The budget is 32 MiB per slot (a 12-megapixel
    /// photo decoded whole is 36 MB; the JPEG path decodes it scaled, at 2.25 MB for a 256
    /// target) and at least [`MIN_BUDGET`]: 512 MiB on up to 8 cores.
    pub(crate) fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let slots = 2 * cores;
        Self::new(slots, (slots as u64 * BUDGET_PER_SLOT).max(MIN_BUDGET))
    }

    /// Waits for a decode slot; `None` only if the pool was closed.
    pub(crate) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.slots).acquire_owned().await.ok()
    }

    /// Reserves `bytes` of the budget (at most the whole budget: an image larger than it is
    /// decoded alone), blocking this thread until they are free. For blocking-pool threads.
    pub(crate) fn reserve_blocking(&self, bytes: u64) -> Option<Reservation> {
        let units = u32::try_from(bytes.div_ceil(MIB))
            .unwrap_or(u32::MAX)
            .clamp(1, self.budget_units);
        let permit =
            futures::executor::block_on(Arc::clone(&self.budget).acquire_many_owned(units)).ok()?;
        let bytes = u64::from(units) * MIB;
        let now = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Some(Reservation {
            _permit: permit,
            bytes,
            held: Arc::clone(&self.held),
        })
    }

    /// The most budget bytes held at once so far.
    #[cfg(test)]
    pub(crate) fn peak_bytes(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// The budget in bytes.
    #[cfg(test)]
    pub(crate) fn budget_bytes(&self) -> u64 {
        u64::from(self.budget_units) * MIB
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_machine_pool_covers_one_image_at_the_cap_and_scales_with_slots() {
        assert_eq!(DecodePool::new(4, MIN_BUDGET).budget_bytes(), MIN_BUDGET);
        assert!(DecodePool::for_this_machine().budget_bytes() >= MIN_BUDGET);
        assert_eq!(
            DecodePool::new(128, 128 * BUDGET_PER_SLOT).budget_bytes(),
            4 << 30
        );
        // Rounded up to whole MiB.
        assert_eq!(DecodePool::new(1, MIB + 1).budget_bytes(), 2 * MIB);
    }

    #[test]
    fn reservations_wait_for_the_budget_and_an_oversized_one_takes_it_all() {
        let pool = Arc::new(DecodePool::new(4, 8 * MIB));
        let big = pool.reserve_blocking(10 << 30).unwrap();
        assert_eq!(pool.peak_bytes(), 8 * MIB);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                let r = pool.reserve_blocking(1);
                tx.send(()).unwrap();
                r.map(|r| r.bytes)
            })
        };
        // The second reservation waits while the whole budget is held…
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(big);
        // …and gets its one MiB once it is given back.
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(waiter.join().unwrap(), Some(MIB));
        assert_eq!(pool.peak_bytes(), 8 * MIB);
        assert_eq!(pool.held.load(Ordering::Relaxed), 0);
    }
}
