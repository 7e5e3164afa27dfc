//! A real single-host Slurm for the tests: slurmctld + slurmd from Debian's `slurm-wlm`,
//! configured in a temp dir on free loopback ports. Authentication is `auth/none` (Slurm
//! 22.05 ships it), so no munge key or daemon is needed. Daemons are killed on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{free_port, have};

/// A running single-node cluster.
pub struct Slurm {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
    /// The node's name (this host's name).
    pub node: String,
}

fn hostname() -> String {
    let out = Command::new("hostname")
        .arg("-s")
        .output()
        .expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Slurm {
    /// Starts the cluster, or skips (see `common::skip`) and returns None when Slurm is missing
    /// or we are not root; installed daemons that do not come up fail the test.
    pub fn start() -> Option<Slurm> {
        for tool in ["slurmctld", "slurmd", "sbatch", "scontrol", "sinfo"] {
            if !have(tool) {
                crate::common::skip(format!(
                    "{tool} is not installed (scripts/install-test-deps.sh installs slurm-wlm)"
                ));
                return None;
            }
        }
        // SAFETY-free check of the effective uid through `id -u`.
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            crate::common::skip("the Slurm test needs root to run slurmd");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let node = hostname();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        for sub in ["state", "spool", "log"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let d = dir.path().display();
        let conf = format!(
            "ClusterName=ldawttest\nSlurmctldHost={node}(127.0.0.1)\nSlurmctldPort={}\nSlurmdPort={}\n\
             SlurmUser=root\nSlurmdUser=root\nAuthType=auth/none\nCredType=cred/none\n\
             StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\nSlurmctldPidFile={d}/ctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\nSlurmctldLogFile={d}/log/slurmctld.log\nSlurmdLogFile={d}/log/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core_Memory\nMpiDefault=none\nReturnToService=2\n\
             JobCompType=jobcomp/none\nAccountingStorageType=accounting_storage/none\n\
             NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 State=UNKNOWN\n\
             PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP\n",
            free_port(),
            free_port()
        );
        std::fs::write(dir.path().join("slurm.conf"), conf).expect("write slurm.conf");
        let mut slurm = Slurm {
            dir,
            daemons: Vec::new(),
            node,
        };
        let spawn = |cmd: &mut Command| cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        match spawn(
            Command::new("slurmctld")
                .args(["-D", "-i", "-f"])
                .arg(slurm.conf()),
        ) {
            Ok(c) => slurm.daemons.push(c),
            Err(e) => panic!("Slurm is installed but slurmctld cannot start: {e}"),
        }
        std::thread::sleep(Duration::from_millis(500));
        match spawn(
            Command::new("slurmd")
                .args(["-D", "-N", &slurm.node.clone(), "-f"])
                .arg(slurm.conf()),
        ) {
            Ok(c) => slurm.daemons.push(c),
            Err(e) => panic!("Slurm is installed but slurmd cannot start: {e}"),
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            let out = slurm.cmd("sinfo").args(["-h", "-o", "%T"]).output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle") {
                return Some(slurm);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!(
            "Slurm is installed but its node did not become idle within 30 s; slurmd log:\n{}",
            std::fs::read_to_string(slurm.dir.path().join("log/slurmd.log")).unwrap_or_default()
        );
    }

    /// The slurm.conf path.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// A Slurm client command bound to this cluster.
    pub fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.env("SLURM_CONF", self.conf());
        c
    }

    /// Submits `script` (from `cwd`) and returns the job id.
    pub fn submit(&self, script: &Path, cwd: &Path) -> String {
        let out = self
            .cmd("sbatch")
            .arg("--parsable")
            .arg(script)
            .current_dir(cwd)
            .output()
            .expect("sbatch");
        assert!(
            out.status.success(),
            "sbatch failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits for the job to end; returns its final state (COMPLETED, FAILED, …).
    pub fn wait(&self, job: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let out = self
                .cmd("scontrol")
                .args(["show", "job", job])
                .output()
                .expect("scontrol");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let state = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix("JobState="))
                .unwrap_or("UNKNOWN")
                .to_string();
            if !matches!(
                state.as_str(),
                "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "UNKNOWN"
            ) {
                return state;
            }
            assert!(
                start.elapsed() < limit,
                "job {job} still {state} after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        for d in self.daemons.iter_mut().rev() {
            let _ = Command::new("kill").arg(d.id().to_string()).status();
            let start = Instant::now();
            while d.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}
