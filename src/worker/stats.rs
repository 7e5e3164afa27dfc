//! Measuring this machine for bids and heartbeats: cores, memory and load (sysinfo), free
//! space of the filesystem holding the work directory (`statvfs` on that path, which tmpfs,
//! overlay, NFS and loop devices all answer), plus the recent download rate from the worker's
//! own counters; and saying once, at WARN, why a worker does not bid.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sysinfo::{MemoryRefreshKind, RefreshKind, System};

use crate::model::node_stats::NodeStats;

/// How long a measurement is reused (sysinfo walks /proc and every mount).
const CACHE_FOR: Duration = Duration::from_millis(900);

/// Reads the machine's resources; keeps the sysinfo handles and the last measurement.
pub struct Probe {
    system: Mutex<Option<System>>,
    last: Mutex<Option<(Instant, NodeStats)>>,
}

impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

impl Probe {
    /// A probe (sysinfo failures degrade to zeros, logged once).
    pub fn new() -> Self {
        let system = System::new_with_specifics(
            RefreshKind::nothing().with_memory(MemoryRefreshKind::everything()),
        )
        .map_err(|e| tracing::warn!("cannot read memory information: {e}"))
        .ok();
        Self {
            system: Mutex::new(system),
            last: Mutex::new(None),
        }
    }

    /// Cores, memory, free disk under `dir`, load; the caller fills the activity fields.
    /// Measurements less than a second old are reused.
    pub fn measure(&self, dir: &Path) -> NodeStats {
        if let Ok(last) = self.last.lock()
            && let Some((at, stats)) = last.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return stats.clone();
        }
        let stats = self.measure_now(dir);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), stats.clone()));
        }
        stats
    }

    fn measure_now(&self, dir: &Path) -> NodeStats {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let (mem_total, mem_free) = match self.system.lock() {
            Ok(mut guard) => match guard.as_mut() {
                Some(sys) => {
                    sys.refresh_memory();
                    (sys.total_memory(), sys.available_memory())
                }
                None => (0, 0),
            },
            Err(_) => (0, 0),
        };
        NodeStats {
            cores: u32::try_from(cores).unwrap_or(u32::MAX),
            mem_total,
            mem_free,
            disk_free: free_disk(dir),
            load1: System::load_average().map(|l| l.one).unwrap_or(0.0),
            ..Default::default()
        }
    }
}

/// Free bytes available to this user on the filesystem holding `dir` (`statvfs` on the
/// nearest existing ancestor of `dir`); 0 when it cannot be read.
pub fn free_disk(dir: &Path) -> u64 {
    free_space(dir).unwrap_or(0)
}

pub use crate::layout::free_space;

pub use crate::report::human_bytes;

/// Why a worker with these stats takes no shard of about `shard_bytes` (the first limit hit),
/// or `None` when it can take one.
pub fn why_not_bidding(s: &NodeStats, shard_bytes: u64, dir: &Path) -> Option<String> {
    let need = shard_bytes.saturating_add(shard_bytes / 4);
    if s.disk_free < need {
        return Some(format!(
            "not bidding: {} free on {} (its filesystem), a shard needs about {}",
            human_bytes(s.disk_free),
            dir.display(),
            human_bytes(need)
        ));
    }
    if s.mem_free < crate::model::bid::MEM_PER_LEASE {
        return Some(format!(
            "not bidding: {} of memory free, a download needs about {}",
            human_bytes(s.mem_free),
            human_bytes(crate::model::bid::MEM_PER_LEASE)
        ));
    }
    None
}

/// Logs each distinct reason for not bidding once, at WARN.
#[derive(Default)]
pub struct DeclineLog {
    last: Mutex<Option<String>>,
}

impl DeclineLog {
    /// Logs `reason` unless it was the last one logged; `None` (bidding again) re-arms it.
    pub fn note(&self, reason: Option<String>) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        match reason {
            Some(r) if last.as_deref() != Some(r.as_str()) => {
                tracing::warn!("{r}");
                *last = Some(r);
            }
            Some(_) => {}
            None => *last = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_sees_this_machine() {
        let s = Probe::new().measure(Path::new("."));
        assert!(s.cores >= 1);
        assert!(s.mem_total >= s.mem_free);
        assert!(s.mem_total > 0);
        assert!(s.disk_free > 0);
    }

    #[test]
    fn free_space_reads_the_filesystem_of_the_path_itself() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_space(dir.path()).unwrap();
        assert!(free > 0);
        // A path that does not exist yet is measured on its nearest existing ancestor.
        assert!(free_space(&dir.path().join("a/b/c")).is_some());
        // /dev/shm is a tmpfs (sysinfo's disk list leaves it out); statvfs answers for it.
        if Path::new("/dev/shm").is_dir() {
            let st = rustix::fs::statvfs("/dev/shm").unwrap();
            assert_eq!(
                free_space(Path::new("/dev/shm")),
                Some(st.f_bavail * st.f_frsize)
            );
        }
    }

    #[test]
    fn a_worker_says_why_it_does_not_bid() {
        let s = NodeStats {
            disk_free: 30_000_000,
            mem_free: 8 << 30,
            works: true,
            ..Default::default()
        };
        let why = why_not_bidding(&s, 112_000_000, Path::new("/scratch")).unwrap();
        assert!(why.contains("30.0 MB free on /scratch"), "{why}");
        assert!(why.contains("140.0 MB"), "{why}");
        assert_eq!(why_not_bidding(&s, 1_000_000, Path::new("/x")), None);
    }
}
