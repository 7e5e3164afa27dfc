//! Measuring this machine for bids and heartbeats: cores, memory, free disk on the work
//! directory's filesystem and load (sysinfo), plus the recent download rate from the worker's
//! own counters.

use std::path::Path;
use std::sync::Mutex;

use sysinfo::{Disks, MemoryRefreshKind, RefreshKind, System};

use crate::protocol::swarm::NodeStats;

/// Reads the machine's resources; keeps the sysinfo handles between calls.
pub struct Probe {
    system: Mutex<Option<System>>,
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
        }
    }

    /// Cores, memory, free disk under `dir`, load; the caller fills the activity fields.
    pub fn measure(&self, dir: &Path) -> NodeStats {
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

/// Free bytes on the filesystem holding `dir` (the disk with the longest matching mount point).
pub fn free_disk(dir: &Path) -> u64 {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(disks) = Disks::new_with_refreshed_list() else {
        return 0;
    };
    disks
        .iter()
        .filter(|d| dir.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| d.available_space())
        .unwrap_or(0)
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
}
