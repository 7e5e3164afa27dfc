//! A TCP proxy on loopback that can be frozen: while frozen it stops moving bytes in both
//! directions but keeps every connection open (no FIN, no RST), as a stalled link or a
//! black-holing middlebox does; thawed, it forwards what queued up. Threads only (no runtime),
//! each loop bounded by the proxy's lifetime; dropping the proxy closes everything.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// How often a pump looks at the freeze and stop flags.
const TICK: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Flags {
    frozen: AtomicBool,
    stopped: AtomicBool,
    connections: AtomicU64,
    bytes: AtomicU64,
}

/// A running proxy from [`FreezableProxy::addr`] to its upstream.
pub struct FreezableProxy {
    /// Where clients connect (`127.0.0.1:port`).
    pub addr: SocketAddr,
    flags: Arc<Flags>,
}

impl FreezableProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let flags = Arc::new(Flags::default());
        let f = flags.clone();
        thread::spawn(move || {
            while !f.stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) =
                            TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                        else {
                            continue;
                        };
                        f.connections.fetch_add(1, Ordering::Relaxed);
                        for (from, to) in [
                            (client.try_clone(), server.try_clone()),
                            (server.try_clone(), client.try_clone()),
                        ] {
                            if let (Ok(from), Ok(to)) = (from, to) {
                                let f = f.clone();
                                thread::spawn(move || pump(from, to, &f));
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(TICK),
                    Err(_) => thread::sleep(TICK),
                }
            }
        });
        Self { addr, flags }
    }

    /// Stops forwarding (connections stay open; bytes queue in the kernel buffers).
    pub fn freeze(&self) {
        self.flags.frozen.store(true, Ordering::SeqCst);
    }

    /// Forwards again, starting with whatever queued up.
    pub fn thaw(&self) {
        self.flags.frozen.store(false, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.flags.connections.load(Ordering::Relaxed)
    }

    /// Bytes forwarded so far (both directions).
    pub fn bytes(&self) -> u64 {
        self.flags.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.flags.stopped.store(true, Ordering::SeqCst);
        self.flags.frozen.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` → `to` until either side closes or the proxy stops; reads nothing while
/// frozen, so the sender sees a window that never opens rather than a closed connection.
fn pump(mut from: TcpStream, mut to: TcpStream, flags: &Flags) {
    let _ = from.set_read_timeout(Some(TICK));
    let mut buf = vec![0u8; 64 * 1024];
    while !flags.stopped.load(Ordering::Relaxed) {
        if flags.frozen.load(Ordering::Relaxed) {
            thread::sleep(TICK);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                flags.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
