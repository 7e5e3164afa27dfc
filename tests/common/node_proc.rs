//! A real `ldawt node` process for tests: started with piped stdout (read line by line on a
//! thread) and stderr in a file, its start-up lines parsed (peer id, `--join` address, swarm key
//! file, status address), killed when dropped. Optionally under a lowered open-file limit.
//! The one node-process helper of the `net` and `swarm` test binaries, with [`NodeArgs`], the
//! one place their `ldawt node` command lines are built.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// An `ldawt node` command line for a test node: no mDNS, its status endpoint on a free
/// loopback port; the rest flag by flag.
#[derive(Debug, Clone)]
pub struct NodeArgs(Vec<String>);

impl NodeArgs {
    /// `node --no-mdns --status-addr 127.0.0.1:0`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A `--no-work` seeder of `input` (classes from `taxon_name`) into `out`, listening on
    /// loopback port `port` (0: any), with a 0.3 s heartbeat.
    pub fn seeder(input: &Path, out: &Path, port: u16) -> Self {
        Self::new()
            .seed(input, out)
            .listen(port)
            .with(&["--no-work", "--heartbeat", "0.3"])
    }

    /// A worker joining `join` (with `key` as its `--swarm-key` when given), keeping its state
    /// in `data`, listening on any loopback port, allowed to fetch from the loopback fixture,
    /// with a 0.3 s heartbeat.
    pub fn worker(join: &str, key: Option<&str>, data: &Path) -> Self {
        Self::new().join(join, key).data_dir(data).listen(0).with(&[
            "--allow-private-urls",
            "--heartbeat",
            "0.3",
        ])
    }

    /// `--seed input --class-col taxon_name --out out`.
    pub fn seed(self, input: &Path, out: &Path) -> Self {
        let (input, out) = (input.display().to_string(), out.display().to_string());
        self.with(&["--seed", &input, "--class-col", "taxon_name", "--out", &out])
    }

    /// `--join join`, and `--swarm-key key` when given.
    pub fn join(self, join: &str, key: Option<&str>) -> Self {
        let this = self.with(&["--join", join]);
        match key {
            Some(k) => this.with(&["--swarm-key", k]),
            None => this,
        }
    }

    /// `--data-dir data`.
    pub fn data_dir(self, data: &Path) -> Self {
        self.with(&["--data-dir", &data.display().to_string()])
    }

    /// `--listen /ip4/127.0.0.1/tcp/<port>` (0: any port).
    pub fn listen(self, port: u16) -> Self {
        self.with(&["--listen", &format!("/ip4/127.0.0.1/tcp/{port}")])
    }

    /// Appends `extra` as they are.
    pub fn with(mut self, extra: &[&str]) -> Self {
        self.0.extend(extra.iter().map(|s| s.to_string()));
        self
    }

    /// The arguments after the binary's name.
    pub fn args(&self) -> &[String] {
        &self.0
    }

    /// Starts the node with its stderr in `stderr`.
    pub fn start(&self, stderr: PathBuf) -> NodeProc {
        NodeProc::start(&self.0, stderr)
    }
}

impl Default for NodeArgs {
    fn default() -> Self {
        Self(Vec::new()).with(&["node", "--no-mdns", "--status-addr", "127.0.0.1:0"])
    }
}

/// What a node prints when it is up.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Its peer id.
    pub peer_id: String,
    /// The first `--join` address.
    pub join: String,
    /// The `--swarm-key` file of the join line (`None` for an open or env-keyed node).
    pub key: Option<String>,
    /// The status endpoint (`127.0.0.1:port`).
    pub status: String,
}

/// A running node.
pub struct NodeProc {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl NodeProc {
    /// Starts `ldawt <args> --no-progress`.
    pub fn start(args: &[String], stderr: PathBuf) -> Self {
        Self::start_with_nofile(args, stderr, None)
    }

    /// Starts `ldawt <args> --no-progress` with its open-file limit (soft and hard) set to
    /// `nofile` by the shell before it execs.
    pub fn start_with_nofile(args: &[String], stderr: PathBuf, nofile: Option<u64>) -> Self {
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(super::common::ldawt_bin());
                c
            }
            None => Command::new(super::common::ldawt_bin()),
        };
        let mut child = cmd
            .args(args)
            .arg("--no-progress")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn ldawt node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lines printed until one contains `needle` (panics after `timeout`).
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no line containing {needle:?}; stderr:\n{}", self.log()),
            }
        }
    }

    /// Reads the start-up lines: (peer id, first `--join` address, status address).
    pub fn ready(&self) -> (String, String, String) {
        let r = self.ready_info();
        (r.peer_id, r.join, r.status)
    }

    /// Reads the start-up lines: (peer id, first `--join` address, the `--swarm-key` file of
    /// the join line, status address); panics when the join line names no key file.
    pub fn ready_with_key(&self) -> (String, String, String, String) {
        let r = self.ready_info();
        let key = r
            .key
            .unwrap_or_else(|| panic!("no --swarm-key in the join line; stderr:\n{}", self.log()));
        (r.peer_id, r.join, key, r.status)
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// Reads the start-up lines.
    pub fn ready_info(&self) -> Ready {
        let t = Duration::from_secs(60);
        let id = self.wait_line("ldawt node ", t);
        let peer_id = id.split_whitespace().last().unwrap_or_default().to_string();
        let join_line = self.wait_line("--join ", t);
        let words: Vec<&str> = join_line.split_whitespace().collect();
        let after = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .and_then(|i| words.get(i + 1))
                .map(|w| w.to_string())
        };
        let join = after("--join").expect("an address after --join");
        let key = after("--swarm-key");
        let status = self.wait_line("status: http://", t);
        let status = status
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .trim_start_matches("http://")
            .trim_end_matches("/status")
            .to_string();
        Ready {
            peer_id,
            join,
            key,
            status,
        }
    }

    /// Waits for exit; returns the code and the rest of stdout.
    pub fn wait(mut self, timeout: Duration) -> (i32, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let rest: Vec<String> = self.lines.try_iter().collect();
                // The reader thread may still be draining: give it a moment.
                std::thread::sleep(Duration::from_millis(200));
                let more: Vec<String> = self.lines.try_iter().collect();
                return (
                    status.code().unwrap_or(-1),
                    [rest, more].concat().join("\n"),
                );
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("node did not exit in {timeout:?}; stderr:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on a status endpoint with short timeouts: the status code, or `None` when the
/// node did not answer.
pub fn http_get_code(addr: &str, path: &str) -> Option<u16> {
    let addr: SocketAddr = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

/// Polls `fetch` every 200 ms until what it returns satisfies `ok`, and returns that; panics
/// after `limit` naming `what` and showing the last value.
pub fn poll_until<T: std::fmt::Debug>(
    limit: Duration,
    what: &str,
    fetch: impl Fn() -> Option<T>,
    ok: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = fetch()
            && ok(&v)
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last: {:#?}",
            fetch()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
