//! WebDAV servers for the toolbox tests: a real `rclone serve webdav` on loopback over a temp
//! directory, and a small fault-injecting HTTP proxy in front of it that fails chosen PUTs.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::{free_port, have, wait_port};

/// User and password of every test server.
pub const USER: &str = "ldawt";
/// The password (passed to ldawt through LDAWT_PASSWORD only).
pub const PASS: &str = "s3cret-pw";

/// A running `rclone serve webdav`, killed on drop.
pub struct DavServer {
    child: Child,
    /// The directory served.
    pub root: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl DavServer {
    /// Starts rclone, or skips (see `common::skip`) and returns None when rclone is missing; an
    /// installed rclone that fails to start fails the test.
    pub fn start() -> Option<DavServer> {
        if !have("rclone") {
            crate::common::skip(
                "rclone is not installed (scripts/install-test-deps.sh installs it)",
            );
            return None;
        }
        let root = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new("rclone")
            .args(["serve", "webdav", "--addr", &format!("127.0.0.1:{port}")])
            .arg(root.path())
            .args(["--user", USER, "--pass", PASS, "--config", "/dev/null"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rclone");
        let mut server = DavServer { child, root, port };
        if !wait_port(port, Duration::from_secs(20)) {
            let _ = server.child.kill();
            panic!("rclone is installed but `rclone serve webdav` did not start on port {port}");
        }
        Some(server)
    }

    /// `http://127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// A path inside the served directory.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
}

impl Drop for DavServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which PUTs the proxy fails with HTTP 500.
#[derive(Debug, Clone)]
pub enum FailPuts {
    /// The first PUT of every path; later attempts pass.
    FirstOfEachPath,
    /// Every PUT whose path contains this text.
    Always(String),
}

/// A fault-injecting proxy on 127.0.0.1 in front of `upstream_port`; one request per
/// connection (it answers `Connection: close`). Its thread ends with the test process.
pub struct FaultProxy {
    /// Its port.
    pub port: u16,
    /// PUTs failed so far.
    pub injected: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Starts the proxy.
    pub fn start(upstream_port: u16, mode: FailPuts) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let injected = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let counter = injected.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (mode, seen, counter) = (mode.clone(), seen.clone(), counter.clone());
                std::thread::spawn(move || {
                    let _ = serve_one(conn, upstream_port, &mode, &seen, &counter);
                });
            }
        });
        FaultProxy { port, injected }
    }

    /// `http://127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }
}

fn serve_one(
    mut client: TcpStream,
    upstream_port: u16,
    mode: &FailPuts,
    seen: &Mutex<HashSet<String>>,
    injected: &AtomicUsize,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") {
            headers.push(line);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("").to_string(),
    );
    let fail = method == "PUT"
        && match mode {
            FailPuts::FirstOfEachPath => seen.lock().expect("lock").insert(path.clone()),
            FailPuts::Always(text) => path.contains(text.as_str()),
        };
    if fail {
        injected.fetch_add(1, Ordering::SeqCst);
        client.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    upstream.write_all(request_line.as_bytes())?;
    for h in &headers {
        upstream.write_all(h.as_bytes())?;
    }
    upstream.write_all(b"Connection: close\r\n\r\n")?;
    upstream.write_all(&body)?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    client.write_all(&response)?;
    Ok(())
}

/// Every file under `root`, as sorted relative paths with their bytes.
pub fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}
