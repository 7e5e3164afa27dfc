//! Network-namespace test networks: a hub namespace holding a bridge, and `n` node namespaces
//! each joined to it by a veth pair, with addresses in `10.77.<k>.0/24` (deps.md §4). Names
//! carry the test process id and a counter so concurrent runs never collide, and everything
//! is removed on drop. Nothing is configured in the root namespace: multicast (mDNS) and
//! shaping stay inside the namespaces.
//!
//! Needs root and `ip`; [`TestNet::unavailable`] says why not so tests can skip with a reason.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A bridge namespace and `n` node namespaces on it.
pub struct TestNet {
    /// The hub namespace (bridge `br0`).
    pub hub: String,
    /// Node namespaces, in order.
    pub nodes: Vec<String>,
    /// The third octet of every address.
    pub subnet: u8,
}

/// Runs `ip args…` and fails with its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl TestNet {
    /// Why namespace tests cannot run here, if they cannot.
    pub fn unavailable() -> Option<String> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Some("network namespaces need root".into());
        }
        match Command::new("ip").arg("-V").output() {
            Ok(o) if o.status.success() => None,
            _ => Some("the `ip` command (iproute2) is missing".into()),
        }
    }

    /// Creates the hub and `n` node namespaces (node `i` gets `10.77.<k>.<i+1>/24`).
    pub fn create(n: usize) -> Result<Self, String> {
        let seq = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let prefix = format!("ldawt-{pid}-{seq}");
        let subnet = ((pid + seq * 37) % 250 + 1) as u8;
        let mut net = TestNet {
            hub: format!("{prefix}-hub"),
            nodes: Vec::new(),
            subnet,
        };
        // From here on `net` is dropped (and cleaned) on any error.
        ip(&["netns", "add", &net.hub])?;
        ip(&["-n", &net.hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &net.hub, "link", "set", "br0", "up"])?;
        ip(&["-n", &net.hub, "link", "set", "lo", "up"])?;
        for i in 0..n {
            let ns = format!("{prefix}-n{}", i + 1);
            ip(&["netns", "add", &ns])?;
            net.nodes.push(ns.clone());
            let port = format!("p{}", i + 1);
            ip(&[
                "link", "add", "veth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &net.hub,
            ])?;
            ip(&["-n", &net.hub, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &net.hub, "link", "set", &port, "up"])?;
            let cidr = format!("{}/24", net.addr(i));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "veth0"])?;
            ip(&["-n", &ns, "link", "set", "veth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.subnet, (i + 1) as u8)
    }

    /// A command running `program` inside node `i`'s namespace.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.nodes[i], program]);
        c
    }

    /// Runs a shell snippet inside node `i`'s namespace and returns its output.
    pub fn sh(&self, i: usize, script: &str) -> Output {
        self.command(i, "sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("run sh in a namespace")
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Deleting the namespaces removes the veths and the bridge with them.
        for ns in self.nodes.iter().chain(std::iter::once(&self.hub)) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lists the namespaces whose name starts with `prefix` (to check cleanup).
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// One namespace with only `lo` up and, optionally, its own `/etc/netns/<name>/resolv.conf`
/// (which `ip netns exec` mounts over `/etc/resolv.conf`, deps.md §6). Its name is
/// `<tag><pid>-<n>` so concurrent runs never collide; it and its `/etc/netns` folder are
/// removed on drop.
pub struct LoneNs {
    /// The namespace name.
    pub name: String,
    etc_dir: Option<std::path::PathBuf>,
}

impl LoneNs {
    /// Creates the namespace and brings `lo` up.
    pub fn create(tag: &str) -> Result<Self, String> {
        let seq = NEXT.fetch_add(1, Ordering::Relaxed);
        let ns = LoneNs {
            name: format!("{tag}{}-{seq}", std::process::id()),
            etc_dir: None,
        };
        ip(&["netns", "add", &ns.name])?;
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Adds `cidr` (`198.51.100.7/32`) to the namespace's `lo`.
    pub fn add_lo_address(&self, cidr: &str) -> Result<(), String> {
        ip(&["-n", &self.name, "addr", "add", cidr, "dev", "lo"])
    }

    /// Gives commands run with [`LoneNs::command`] this `/etc/resolv.conf`.
    pub fn set_resolv_conf(&mut self, text: &str) -> Result<(), String> {
        let dir = std::path::Path::new("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        self.etc_dir = Some(dir.clone());
        let file = dir.join("resolv.conf");
        std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))
    }

    /// A command running `program` inside the namespace (with its resolv.conf).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Moves the calling thread (and the threads it starts later) into the namespace: sockets
    /// it creates from then on live there.
    pub fn enter_current_thread(&self) -> Result<(), String> {
        enter_netns(&self.name)
    }
}

/// Moves the calling thread (and the threads it starts later) into the named namespace.
pub fn enter_netns(name: &str) -> Result<(), String> {
    let path = std::path::Path::new("/var/run/netns").join(name);
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| format!("setns {name}: {e}"))
}

impl Drop for LoneNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        if let Some(dir) = &self.etc_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
