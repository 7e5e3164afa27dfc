//! Takes [`Sample`]s of this machine with sysinfo: CPU (two refreshes apart), memory, the
//! filesystem holding the watched path, network rates (deltas of interface counters between
//! samples, loopback excluded) and the watched process's memory and file descriptors.

use std::path::{Path, PathBuf};

use sysinfo::{Disks, Networks, Pid, ProcessesToUpdate, System};

use super::{Sample, procfs};

/// Why sampling cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    /// The disk path does not exist or cannot be resolved.
    #[error("--disk-path {path}: {reason}")]
    DiskPath {
        /// The `--disk-path` given.
        path: String,
        /// Why.
        reason: String,
    },
    /// sysinfo does not support this system.
    #[error("system statistics are unavailable here: {0}")]
    Unsupported(String),
}

/// Bytes per second between two counter readings; 0 when the counter went back (reset) or
/// no time passed.
pub fn rate(prev: u64, now: u64, secs: f64) -> f64 {
    if now < prev || secs <= 0.0 {
        0.0
    } else {
        (now - prev) as f64 / secs
    }
}

/// The mount point among `mounts` that holds `path`: the longest one that is a prefix of it.
pub fn mount_for<'a>(path: &Path, mounts: impl Iterator<Item = &'a Path>) -> Option<&'a Path> {
    mounts
        .filter(|m| path.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
}

/// Stateful sampler (keeps the previous counters for rates).
pub struct Sampler {
    sys: System,
    disks: Disks,
    networks: Networks,
    disk_path: PathBuf,
    prev_net: Option<(u64, u64, u64)>,
}

fn net_totals(networks: &Networks) -> (u64, u64) {
    networks
        .iter()
        .filter(|(name, _)| name.to_str() != Some("lo"))
        .fold((0, 0), |(rx, tx), (_, data)| {
            (rx + data.total_received(), tx + data.total_transmitted())
        })
}

impl Sampler {
    /// A sampler watching the filesystem of `disk_path` (which must exist).
    pub fn new(disk_path: &Path) -> Result<Self, SamplerError> {
        let disk_path = std::fs::canonicalize(disk_path).map_err(|e| SamplerError::DiskPath {
            path: disk_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let unsupported = |e: sysinfo::Error| SamplerError::Unsupported(e.to_string());
        let mut sys = System::new().map_err(unsupported)?;
        sys.refresh_cpu_usage();
        Ok(Self {
            sys,
            disks: Disks::new_with_refreshed_list().map_err(unsupported)?,
            networks: Networks::new_with_refreshed_list().map_err(unsupported)?,
            disk_path,
            prev_net: None,
        })
    }

    /// Takes a sample at `now_ms` (the caller's clock), watching process `pid` if given.
    /// Rates are 0 on the first sample.
    pub fn sample(&mut self, now_ms: u64, pid: Option<u32>) -> Sample {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        self.disks.refresh(true);
        self.networks.refresh(true);
        let total = self.sys.total_memory();
        let available = self.sys.available_memory();
        let mut s = Sample {
            ts_ms: now_ms,
            cpu_percent: f64::from(self.sys.global_cpu_usage()),
            mem_total_bytes: total,
            mem_available_bytes: available,
            mem_used_percent: if total == 0 {
                0.0
            } else {
                100.0 * (total.saturating_sub(available)) as f64 / total as f64
            },
            disk_path: self.disk_path.display().to_string(),
            pid,
            ..Default::default()
        };
        let mount = mount_for(&self.disk_path, self.disks.iter().map(|d| d.mount_point()));
        if let Some(disk) = self.disks.iter().find(|d| Some(d.mount_point()) == mount) {
            s.disk_mount = disk.mount_point().display().to_string();
            s.disk_total_bytes = disk.total_space();
            s.disk_free_bytes = disk.available_space();
            if s.disk_total_bytes > 0 {
                s.disk_used_percent = 100.0
                    * s.disk_total_bytes.saturating_sub(s.disk_free_bytes) as f64
                    / s.disk_total_bytes as f64;
            }
        }
        // The filesystem of the path itself, counted like `df`; the disk list above is only
        // the fallback (it may pick another device, and ignores blocks reserved for root).
        if let Ok(v) = rustix::fs::statvfs(&self.disk_path) {
            s.disk_total_bytes = v.f_blocks.saturating_mul(v.f_frsize);
            s.disk_free_bytes = v.f_bavail.saturating_mul(v.f_frsize);
            s.disk_used_percent = df_used_percent(v.f_blocks, v.f_bfree, v.f_bavail);
        }
        let (rx, tx) = net_totals(&self.networks);
        if let Some((prx, ptx, pms)) = self.prev_net {
            let secs = now_ms.saturating_sub(pms) as f64 / 1000.0;
            s.net_rx_bytes_per_s = rate(prx, rx, secs);
            s.net_tx_bytes_per_s = rate(ptx, tx, secs);
        }
        self.prev_net = Some((rx, tx, now_ms));
        if let Some(pid) = pid {
            s.fds = procfs::fd_count(pid);
            let spid = Pid::from_u32(pid);
            self.sys
                .refresh_processes(ProcessesToUpdate::Some(&[spid]), true);
            s.rss_bytes = self.sys.process(spid).map(|p| p.memory());
        }
        s
    }
}

/// Disk use as `df` reports it: used / (used + available to users), where used = blocks −
/// free. Blocks reserved for root count neither as used nor as available.
pub fn df_used_percent(blocks: u64, free: u64, avail: u64) -> f64 {
    let used = blocks.saturating_sub(free);
    let denominator = used + avail;
    if denominator == 0 {
        0.0
    } else {
        100.0 * used as f64 / denominator as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_mounts() {
        assert_eq!(rate(100, 300, 2.0), 100.0);
        assert_eq!(rate(300, 100, 2.0), 0.0);
        assert_eq!(rate(1, 2, 0.0), 0.0);
        let mounts = [Path::new("/"), Path::new("/work"), Path::new("/work2")];
        assert_eq!(
            mount_for(Path::new("/work/x"), mounts.into_iter()),
            Some(Path::new("/work"))
        );
        assert_eq!(
            mount_for(Path::new("/work2"), mounts.into_iter()),
            Some(Path::new("/work2"))
        );
        assert_eq!(
            mount_for(Path::new("/tmp"), mounts.into_iter()),
            Some(Path::new("/"))
        );
    }

    #[test]
    fn disk_use_is_counted_like_df() {
        // 100 blocks, 30 free of which 5 reserved for root: df says 70 / (70 + 25) = 74 %.
        assert!((df_used_percent(100, 30, 25) - 73.684).abs() < 0.01);
        assert_eq!(df_used_percent(0, 0, 0), 0.0);
        // And it agrees with the real `df` on this machine (df rounds up to a whole percent).
        let Ok(out) = std::process::Command::new("df")
            .args(["--output=pcent", "."])
            .output()
        else {
            eprintln!("SKIP (partial): no df command");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let df: f64 = text
            .lines()
            .nth(1)
            .and_then(|l| l.trim().trim_end_matches('%').parse().ok())
            .expect("df output");
        let ours = Sampler::new(Path::new("."))
            .unwrap()
            .sample(0, None)
            .disk_used_percent;
        assert!(df - 1.0 <= ours && ours <= df + 0.01, "df {df}% vs {ours}%");
    }

    #[test]
    fn samples_this_machine_and_process() {
        let mut s = Sampler::new(Path::new(".")).unwrap();
        let a = s.sample(1_000, Some(std::process::id()));
        assert!(a.mem_total_bytes > 0 && a.mem_used_percent > 0.0 && a.mem_used_percent <= 100.0);
        assert!(a.fds.unwrap() >= 3 && a.rss_bytes.unwrap() > 0);
        assert_eq!(a.net_rx_bytes_per_s, 0.0);
        assert!(s.sample(2_000, None).cpu_percent >= 0.0);
    }
}
