//! Reads a running node's control endpoint (`GET /status` on `--status-addr`) with a minimal
//! HTTP/1.1 client on tokio: one request, bounded time and size, clear errors naming the
//! address. Used by `ldawt peers`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::protocol::status::NodeStatus;

/// Time allowed to connect, and then to receive the whole answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer accepted.
const MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// Why a node's status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusClientError {
    /// Nothing accepted the connection.
    #[error("no ldawt node answers at {addr}: {source}")]
    Unreachable {
        /// The address tried.
        addr: String,
        /// The connection error.
        source: std::io::Error,
    },
    /// The node did not answer in time.
    #[error("the node at {addr} did not answer within {TIMEOUT:?}")]
    Timeout {
        /// The address tried.
        addr: String,
    },
    /// Something answered, but not with a status document.
    #[error("{addr} is not an ldawt status endpoint: {detail}")]
    NotAStatusEndpoint {
        /// The address tried.
        addr: String,
        /// What was wrong with the answer.
        detail: String,
    },
}

/// Fetches `path` from `addr` (`host:port`) and returns the body of a `200` answer.
pub async fn get(addr: &str, path: &str) -> Result<Vec<u8>, StatusClientError> {
    let timed_out = || StatusClientError::Timeout {
        addr: addr.to_string(),
    };
    let not_status = |detail: String| StatusClientError::NotAStatusEndpoint {
        addr: addr.to_string(),
        detail,
    };
    let mut socket = timeout(TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| StatusClientError::Unreachable {
            addr: addr.to_string(),
            source,
        })?;
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\naccept: */*\r\n\r\n");
    let mut response = Vec::new();
    timeout(TIMEOUT, async {
        socket.write_all(request.as_bytes()).await?;
        (&mut socket)
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut response)
            .await
    })
    .await
    .map_err(|_| timed_out())?
    .map_err(|e| not_status(format!("connection failed mid-answer: {e}")))?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| not_status("no HTTP header in the answer".into()))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line.split(' ').nth(1).unwrap_or_default();
    if !status_line.starts_with("HTTP/1.") || code != "200" {
        return Err(not_status(format!("{path} answered {status_line:?}")));
    }
    Ok(response[split + 4..].to_vec())
}

/// Fetches and parses the node's [`NodeStatus`].
pub async fn fetch_status(addr: &str) -> Result<NodeStatus, StatusClientError> {
    let body = get(addr, "/status").await?;
    serde_json::from_slice(&body).map_err(|e| StatusClientError::NotAStatusEndpoint {
        addr: addr.to_string(),
        detail: format!("the /status document does not parse: {e}"),
    })
}
