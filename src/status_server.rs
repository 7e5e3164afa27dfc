//! The node's control endpoint (`--status-addr`): a minimal HTTP/1.1 server on tokio serving
//! `GET /` (a self-contained live dashboard page that polls `/status`), `GET /status` and
//! `GET /peers` (the [`NodeStatus`] JSON document), `GET /metrics` (Prometheus text) and
//! `GET /healthz`. One request per connection, bounded request size and time, and at most
//! [`MAX_CLIENTS`] connections served at once: a connection beyond that gets a `503` at once
//! (without a task of its own) and is closed, so a flood of idle connections costs the node a
//! bounded number of sockets and tasks and `/healthz` answers again within [`HEAD_TIMEOUT`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::net::NetError;
use crate::protocol::status::NodeStatus;

/// The live dashboard: one HTML page with inline CSS and script, no external asset.
const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// Largest request head accepted.
const MAX_REQUEST_BYTES: usize = 8 << 10;
/// Time a client has to send its request and to read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to send its request head (an idle connection is closed after this).
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once.
pub const MAX_CLIENTS: usize = 64;
/// The answer to a connection beyond [`MAX_CLIENTS`].
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 5\r\nconnection: close\r\nretry-after: 1\r\n\r\nbusy\n";

/// Binds `addr` (port 0 picks a free one), serves until `shutdown` and returns the bound
/// address. `status` is the document to serve; `metrics` renders the Prometheus text.
pub async fn serve(
    addr: SocketAddr,
    status: watch::Receiver<NodeStatus>,
    metrics: impl Fn() -> String + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> Result<SocketAddr, NetError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| NetError::Listen {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    let bound = listener.local_addr()?;
    info!(addr = %bound, "status endpoint listening");
    let metrics: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(metrics);
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    tokio::spawn(async move {
        loop {
            let (socket, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        debug!(error = %e, "status endpoint accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                // Best effort, never waiting: the socket is closed right after.
                let _ = socket.try_write(BUSY);
                debug!(%peer, "status endpoint busy: connection refused");
                continue;
            };
            let (status, metrics) = (status.clone(), metrics.clone());
            tokio::spawn(async move {
                if let Err(e) = timeout(CLIENT_TIMEOUT, handle(socket, &status, &*metrics)).await {
                    debug!(%peer, error = %e, "status client timed out");
                }
                drop(permit);
            });
        }
    });
    Ok(bound)
}

/// A parsed request line.
#[derive(Debug, PartialEq, Eq)]
struct RequestLine<'a> {
    method: &'a str,
    path: &'a str,
}

/// Parses the first line of a request head (`GET /path?query HTTP/1.1`); the query is dropped.
fn parse_request_line(head: &str) -> Option<RequestLine<'_>> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    Some(RequestLine { method, path })
}

/// The status code, content type and body for a request.
fn respond(
    request: Option<RequestLine<'_>>,
    status: &watch::Receiver<NodeStatus>,
    metrics: &(dyn Fn() -> String + Send + Sync),
) -> (u16, &'static str, Vec<u8>) {
    let text = "text/plain; charset=utf-8";
    let Some(request) = request else {
        return (400, text, b"bad request\n".to_vec());
    };
    if request.method != "GET" && request.method != "HEAD" {
        return (405, text, b"only GET is supported\n".to_vec());
    }
    match request.path {
        "/status" | "/peers" => {
            let doc = status.borrow().clone();
            match serde_json::to_vec_pretty(&doc) {
                Ok(body) => (200, "application/json", body),
                Err(e) => (
                    500,
                    text,
                    format!("cannot render status: {e}\n").into_bytes(),
                ),
            }
        }
        "/" | "/dashboard" => (
            200,
            "text/html; charset=utf-8",
            DASHBOARD_HTML.as_bytes().to_vec(),
        ),
        "/metrics" => (200, "text/plain; version=0.0.4", metrics().into_bytes()),
        "/healthz" => (200, text, b"ok\n".to_vec()),
        _ => (
            404,
            text,
            b"not found: try /, /status, /peers, /metrics or /healthz\n".to_vec(),
        ),
    }
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

async fn handle(
    mut socket: TcpStream,
    status: &watch::Receiver<NodeStatus>,
    metrics: &(dyn Fn() -> String + Send + Sync),
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let head_deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let too_large = loop {
        let n = match tokio::time::timeout_at(head_deadline, socket.read(&mut buf)).await {
            Ok(n) => n?,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request head",
                ));
            }
        };
        if n == 0 {
            break false;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break false;
        }
        if head.len() > MAX_REQUEST_BYTES {
            break true;
        }
    };
    let head_text = String::from_utf8_lossy(&head);
    let (code, content_type, body) = if too_large {
        (
            431,
            "text/plain; charset=utf-8",
            b"request too large\n".to_vec(),
        )
    } else {
        respond(parse_request_line(&head_text), status, metrics)
    };
    let is_head = head_text.starts_with("HEAD ");
    let mut response = format!(
        "HTTP/1.1 {code} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n",
        reason_phrase(code),
        body.len()
    )
    .into_bytes();
    if !is_head {
        response.extend_from_slice(&body);
    }
    socket.write_all(&response).await?;
    socket.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_and_garbage_does_not() {
        assert_eq!(
            parse_request_line("GET /status?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(RequestLine {
                method: "GET",
                path: "/status"
            })
        );
        assert_eq!(parse_request_line("GET /status\r\n"), None);
        assert_eq!(parse_request_line("hello"), None);
        assert_eq!(parse_request_line("GET / SPDY/3 extra\r\n"), None);
    }

    #[tokio::test]
    async fn serves_status_metrics_health_and_errors() {
        let doc = NodeStatus {
            peer_id: "12D3KooWtest".into(),
            ..Default::default()
        };
        let (_tx, rx) = watch::channel(doc.clone());
        let stop = CancellationToken::new();
        let addr = serve(
            "127.0.0.1:0".parse().unwrap(),
            rx,
            || "ldawt_up 1\n".to_string(),
            stop.clone(),
        )
        .await
        .unwrap();
        let get = |req: &'static str| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let status = get("GET /status HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(status.starts_with("HTTP/1.1 200 OK\r\n"), "{status}");
        let body = status.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(serde_json::from_str::<NodeStatus>(body).unwrap(), doc);
        let metrics = get("GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(metrics.ends_with("\r\n\r\nldawt_up 1\n"), "{metrics}");
        assert!(get("GET /healthz HTTP/1.1\r\n\r\n").await.ends_with("ok\n"));
        let page = get("GET / HTTP/1.1\r\n\r\n").await;
        assert!(page.contains("content-type: text/html"), "{page}");
        assert!(page.contains("fetch(\"/status\""), "the page polls /status");
        assert!(!page.contains("src=\"http"), "no external asset");
        assert!(
            get("GET /nope HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 404")
        );
        assert!(
            get("POST /status HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 405")
        );
        assert!(get("nonsense\r\n\r\n").await.starts_with("HTTP/1.1 400"));
        stop.cancel();
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_get_503_and_idle_ones_are_closed() {
        let (_tx, rx) = watch::channel(NodeStatus::default());
        let stop = CancellationToken::new();
        let addr = serve(
            "127.0.0.1:0".parse().unwrap(),
            rx,
            String::new,
            stop.clone(),
        )
        .await
        .unwrap();
        let mut idle = Vec::new();
        for _ in 0..MAX_CLIENTS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        // Let the server take every idle connection before the extra one arrives.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let mut out = String::new();
        timeout(Duration::from_secs(2), extra.read_to_string(&mut out))
            .await
            .expect("answered at once")
            .unwrap();
        assert!(out.starts_with("HTTP/1.1 503"), "{out}");
        // Idle clients are dropped after HEAD_TIMEOUT; then the endpoint answers again.
        let mut buf = [0u8; 16];
        let n = timeout(
            HEAD_TIMEOUT + Duration::from_secs(2),
            idle[0].read(&mut buf),
        )
        .await
        .expect("an idle client is closed")
        .unwrap_or(0);
        assert_eq!(n, 0);
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.ends_with("ok\n"), "{out}");
        stop.cancel();
    }
}
