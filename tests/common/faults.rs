//! Fault-injection helpers: small tmpfs mounts (a full disk on demand, resizable in place) and
//! POSIX signals to processes. Mounting needs root; [`Tmpfs::mount`] says why it cannot, and
//! [`unavailable`] turns that into a skip locally and a failure under `CI`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test; unmounted (lazily) on drop.
pub struct Tmpfs {
    /// The mount point.
    pub path: PathBuf,
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount`'s syntax: `30m`) at `path` (created if missing).
    pub fn mount(path: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(path).map_err(|e| format!("cannot create {path:?}: {e}"))?;
        let p = path.display().to_string();
        run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &p],
        )?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Changes the size in place, keeping the files (`mount -o remount,size=…`).
    pub fn resize(&self, size: &str) -> Result<(), String> {
        let p = self.path.display().to_string();
        run("mount", &["-o", &format!("remount,size={size}"), &p])
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", &self.path.display().to_string()]);
    }
}

/// A test that cannot run here: fails under `CI` (where it must run), else prints why it skips.
/// Returns true when the caller should return (skip).
pub fn unavailable(test: &str, why: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{test} cannot run: {why}");
    }
    eprintln!("skipping {test}: {why}");
    true
}

/// Mounts a tmpfs of `size` at `path` for `test`; when that cannot be done here, says why
/// through [`unavailable`] (a failure under `CI`) and returns `None`: the caller returns.
pub fn tmpfs_or_skip(test: &str, path: &Path, size: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(path, size) {
        Ok(m) => Some(m),
        Err(e) => {
            unavailable(test, &e);
            None
        }
    }
}

/// Sends `sig` (`STOP`, `CONT`, `KILL`, `TERM`…) to `pid`.
pub fn signal(pid: u32, sig: &str) -> Result<(), String> {
    run("kill", &[&format!("-{sig}"), &pid.to_string()])
}
