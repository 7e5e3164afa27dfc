//! The transport's error type: everything a [`super::Client`] call can fail with, and which of
//! those failures are worth retrying.

use crate::protocol::codec::CodecError;

use crate::protocol::control::Refusal;

/// A failure of a transport operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The remote node (or its application) refused: stale epoch, unknown dataset, busy, a
    /// dropped reply. Not retryable as such: the caller decides what to do next.
    #[error("refused by the remote node: {0}")]
    Rejected(Refusal),
    /// The received file did not match its announced size or sha256; the receiver deleted its
    /// partial copy, so a retry starts from the beginning.
    #[error("transfer verification failed: {0}")]
    Mismatch(String),
    /// A step took longer than its time limit (what is named in the message).
    #[error("timed out while {0}")]
    Timeout(&'static str),
    /// An I/O failure on a stream or a local file.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A message could not be encoded or decoded, or exceeded its size limit.
    #[error("codec error: {0}")]
    Codec(#[from] CodecError),
    /// A dial failed (the message names the address or peer).
    #[error("dial failed: {0}")]
    Dial(String),
    /// A stream to a peer could not be opened.
    #[error("cannot open a stream to {peer}: {reason}")]
    OpenStream {
        /// Its peer id (base58).
        peer: String,
        /// Why.
        reason: String,
    },
    /// The remote broke the protocol (an unexpected message or offset).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The swarm could not be built (transport, behaviour).
    #[error("cannot start the network: {0}")]
    Setup(String),
    /// A gossip message could not be published (other than "nobody is listening yet").
    #[error("gossip publish failed: {0}")]
    Publish(String),
    /// The event loop has stopped.
    #[error("the network event loop has stopped")]
    Closed,
}

impl NetError {
    /// Whether the same call may succeed if repeated later (connection trouble, timeouts,
    /// verification failures), as opposed to a refusal or a local bug.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            NetError::Mismatch(_)
                | NetError::Timeout(_)
                | NetError::Io(_)
                | NetError::Dial(_)
                | NetError::OpenStream { .. }
                | NetError::Publish(_)
        )
    }
}
