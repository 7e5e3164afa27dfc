//! Frames on a byte stream: a big-endian `u32` length prefix followed by a postcard envelope
//! (`protocol::codec::{encode, decode}`). Lengths above the protocol's limit are refused before
//! any of the body is read, and every read or write of a chunk has its own inactivity timeout,
//! so a silent peer costs at most one timeout and a large frame is never cut off for being slow.

use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::timeout;

use super::NetError;
use crate::protocol::codec::{CodecError, decode, encode};

/// Bytes moved per read or write call; each call has its own inactivity timeout.
pub(crate) const CHUNK_BYTES: usize = 256 << 10;

/// Writes `buf` in [`CHUNK_BYTES`] pieces, each within `idle`.
pub(crate) async fn write_all_timed<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &[u8],
    idle: Duration,
) -> Result<(), NetError> {
    for piece in buf.chunks(CHUNK_BYTES) {
        timeout(idle, w.write_all(piece))
            .await
            .map_err(|_| NetError::Timeout("writing to the stream"))??;
    }
    Ok(())
}

/// Fills `buf` completely, each read within `idle`; a clean end of stream before that is an
/// `UnexpectedEof` I/O error.
pub(crate) async fn read_exact_timed<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    idle: Duration,
) -> Result<(), NetError> {
    let mut filled = 0;
    while filled < buf.len() {
        let end = buf.len().min(filled + CHUNK_BYTES);
        let n = timeout(idle, r.read(&mut buf[filled..end]))
            .await
            .map_err(|_| NetError::Timeout("reading from the stream"))??;
        if n == 0 {
            return Err(NetError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "stream ended after {filled} of {} expected bytes",
                    buf.len()
                ),
            )));
        }
        filled += n;
    }
    Ok(())
}

/// Writes one length-prefixed frame and flushes.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    payload: &[u8],
    idle: Duration,
) -> Result<(), NetError> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        NetError::Codec(CodecError::TooLarge {
            size: payload.len(),
            limit: u32::MAX as usize,
        })
    })?;
    write_all_timed(w, &len.to_be_bytes(), idle).await?;
    write_all_timed(w, payload, idle).await?;
    timeout(idle, w.flush())
        .await
        .map_err(|_| NetError::Timeout("flushing the stream"))??;
    Ok(())
}

/// Reads one length-prefixed frame of at most `limit` bytes. The length prefix may take up to
/// `wait` to arrive (the peer may be working on its answer); the body then flows with `idle`
/// per chunk. The buffer grows as data arrives, so a lying length prefix costs no memory.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
    wait: Duration,
    idle: Duration,
) -> Result<Vec<u8>, NetError> {
    let mut prefix = [0u8; 4];
    let first = timeout(wait, r.read(&mut prefix))
        .await
        .map_err(|_| NetError::Timeout("waiting for the peer's message"))??;
    if first == 0 {
        return Err(NetError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the peer closed the stream without answering",
        )));
    }
    read_exact_timed(r, &mut prefix[first..], idle).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > limit {
        return Err(NetError::Codec(CodecError::TooLarge { size: len, limit }));
    }
    let mut body = Vec::with_capacity(len.min(CHUNK_BYTES));
    while body.len() < len {
        let start = body.len();
        let end = len.min(start + CHUNK_BYTES);
        body.resize(end, 0);
        read_exact_timed(r, &mut body[start..end], idle).await?;
    }
    Ok(body)
}

/// Encodes `msg` (refusing more than `limit` bytes) and writes it as one frame.
pub(crate) async fn send_msg<W: AsyncWrite + Unpin, T: Serialize + Clone>(
    w: &mut W,
    msg: &T,
    limit: usize,
    idle: Duration,
) -> Result<(), NetError> {
    let bytes = encode(msg, limit)?;
    write_frame(w, &bytes, idle).await
}

/// Reads one frame of at most `limit` bytes and decodes it.
pub(crate) async fn recv_msg<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
    limit: usize,
    wait: Duration,
    idle: Duration,
) -> Result<T, NetError> {
    let bytes = read_frame(r, limit, wait, idle).await?;
    Ok(decode(&bytes, limit)?)
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;

    use super::*;

    const T: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn frames_round_trip_back_to_back() {
        let mut buf = Cursor::new(Vec::new());
        send_msg(&mut buf, &"first".to_string(), 100, T)
            .await
            .unwrap();
        send_msg(&mut buf, &vec![7u8; 600_000], 1 << 20, T)
            .await
            .unwrap();
        buf.set_position(0);
        let a: String = recv_msg(&mut buf, 100, T, T).await.unwrap();
        let b: Vec<u8> = recv_msg(&mut buf, 1 << 20, T, T).await.unwrap();
        assert_eq!(a, "first");
        assert_eq!(b, vec![7u8; 600_000]);
    }

    #[tokio::test]
    async fn oversize_prefix_is_refused_before_reading_the_body() {
        let mut bytes = (2_000_000_000u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 16]);
        let err = read_frame(&mut Cursor::new(bytes), 1 << 20, T, T)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Codec(CodecError::TooLarge {
                    size: 2_000_000_000,
                    limit: 1_048_576
                })
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn truncated_body_and_empty_stream_are_errors() {
        let mut bytes = 10u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1, 2, 3]);
        let err = read_frame(&mut Cursor::new(bytes), 100, T, T)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("3 of 10"), "{err}");
        let err = read_frame(&mut Cursor::new(Vec::new()), 100, T, T)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("without answering"), "{err}");
    }

    #[tokio::test]
    async fn oversize_message_is_refused_before_sending() {
        let mut buf = Cursor::new(Vec::new());
        let err = send_msg(&mut buf, &vec![0u8; 200], 100, T)
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::Codec(CodecError::TooLarge { .. })));
        assert!(buf.into_inner().is_empty());
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let (mut a, _b) = tokio::io::duplex(64);
        let mut a = tokio_util::compat::TokioAsyncReadCompatExt::compat(&mut a);
        let err = read_frame(&mut a, 100, Duration::from_millis(50), T)
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::Timeout(_)), "{err}");
    }
}
