//! A first exchange on a fresh stream — a control request and its response, a transfer's
//! header and its `Accept`/`Reject` — with a new stream when one ends or is reset before any
//! answer. libp2p-stream hands inbound streams to the receiver over a one-slot channel and
//! silently drops those that arrive while it is full, so under load (a worker at ~19,000
//! rows/s renews, fetches rows and delivers four shards at once) a fresh stream can die
//! unanswered: before this, the worker logged it as "seeder unreachable … connection is closed"
//! every ~10 s and waited a backoff. For a transfer nothing is committed on either side before
//! the answer (and it resumes from the receiver's partial copy anyway); a control request that
//! died unanswered is sent again, as the worker's own retries already did one backoff later:
//! renewals, rows, completions and give-backs are fenced by their lease epoch, and in the rare
//! case where a bid was granted but its answer lost, the unknown lease lapses at its TTL.

use std::future::Future;
use std::io::ErrorKind;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use tracing::debug;

use super::NetError;
use super::framing::{recv_msg, send_msg};
use super::metrics::NetCounters;
use super::transfer::Reply;
use crate::model::retry::RetryPolicy;
use crate::protocol::transfer::{MAX_TRANSFER_HEADER_BYTES, TransferHeader};

/// When to open a new stream: at most 6 streams for one exchange, waits drawn in 50–150 % of
/// 50 ms doubling (25–75 ms first, 400–1,200 ms last; 2.3 s at most in all). The jitter
/// matters: the streams a burst lost are reopened together, and without it they arrive as
/// another burst; in the four-worker burst test a third of the first streams are dropped.
fn reopen_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base: Duration::from_millis(50),
        cap: Duration::from_millis(800),
        jitter_percent: (50, 150),
        ..RetryPolicy::default()
    }
}

/// Whether `e` means the stream died before the receiver said anything.
fn died_unanswered(e: &NetError) -> bool {
    matches!(e, NetError::Io(io) if matches!(
        io.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::WriteZero
    ))
}

/// Opens a stream with `open` and runs `exchange` on it, opening a new stream (after a
/// [`reopen_policy`] wait) when one dies before any answer, counting each new stream in
/// `reopened`. `what` names the exchange in the log.
pub(crate) async fn reopening<S, T, F, Fut, X, XFut>(
    what: &str,
    reopened: &AtomicU64,
    mut open: F,
    mut exchange: X,
) -> Result<T, NetError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<S, NetError>>,
    X: FnMut(S) -> XFut,
    XFut: Future<Output = Result<T, NetError>>,
{
    let policy = reopen_policy();
    let mut attempt = 1;
    loop {
        let stream = open().await?;
        match exchange(stream).await {
            Ok(answer) => return Ok(answer),
            Err(e) if attempt < policy.max_attempts && died_unanswered(&e) => {
                debug!(attempt, error = %e, "{what} stream died before any answer; reopening");
                tokio::time::sleep(policy.wait(attempt, fastrand::f64())).await;
                NetCounters::add(reopened, 1);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Opens a stream with `open`, sends `header` and returns the stream with the receiver's
/// reply (waiting up to `wait` for it), opening a new stream when one dies unanswered
/// (counted in `reopened`).
pub(crate) async fn offer<S, F, Fut>(
    reopened: &AtomicU64,
    open: F,
    header: &TransferHeader,
    wait: Duration,
    idle: Duration,
) -> Result<(S, Reply), NetError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<S, NetError>>,
{
    reopening("transfer", reopened, open, |mut stream| async move {
        send_msg(&mut stream, header, MAX_TRANSFER_HEADER_BYTES, idle).await?;
        let reply = recv_msg(&mut stream, MAX_TRANSFER_HEADER_BYTES, wait, idle).await?;
        Ok((stream, reply))
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    use super::*;
    use crate::model::ids::{DatasetId, Epoch, ShardId};
    use crate::protocol::control::{Refusal, RejectReason};
    use crate::protocol::transfer::FileKind;

    const T: Duration = Duration::from_secs(2);

    fn header() -> TransferHeader {
        TransferHeader {
            dataset: DatasetId([1; 16]),
            shard: ShardId(2),
            epoch: Epoch(3),
            kind: FileKind::Results,
            size: 10,
            sha256: [4; 32],
        }
    }

    /// A stream whose receiver behaves as `answer` says: `None` drops it unanswered.
    fn stream(answer: Option<Reply>) -> Compat<tokio::io::DuplexStream> {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let mut theirs = theirs.compat();
            let got: TransferHeader = recv_msg(&mut theirs, MAX_TRANSFER_HEADER_BYTES, T, T)
                .await
                .unwrap();
            assert_eq!(got, header());
            if let Some(reply) = answer {
                send_msg(&mut theirs, &reply, MAX_TRANSFER_HEADER_BYTES, T)
                    .await
                    .unwrap();
                // Keep the stream open while the sender reads.
                tokio::time::sleep(T).await;
            }
        });
        ours.compat()
    }

    #[tokio::test]
    async fn a_stream_dropped_before_answering_is_reopened() {
        let reopened = AtomicU64::new(0);
        let opened = AtomicU32::new(0);
        let open = || {
            let n = opened.fetch_add(1, Ordering::SeqCst);
            let answer = (n >= 2).then_some(Reply::Accept { offset: 7 });
            async move { Ok::<_, NetError>(stream(answer)) }
        };
        let (_stream, reply) = offer(&reopened, open, &header(), T, T).await.unwrap();
        assert_eq!(reply, Reply::Accept { offset: 7 });
        assert_eq!(opened.load(Ordering::SeqCst), 3);
        assert_eq!(reopened.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_is_given_up_on() {
        let reopened = AtomicU64::new(0);
        let opened = AtomicU32::new(0);
        let open = || {
            opened.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, NetError>(stream(None)) }
        };
        let err = offer(&reopened, open, &header(), T, T).await.unwrap_err();
        assert!(died_unanswered(&err), "{err}");
        assert_eq!(opened.load(Ordering::SeqCst), reopen_policy().max_attempts);
        assert_eq!(
            reopened.load(Ordering::SeqCst),
            u64::from(reopen_policy().max_attempts - 1)
        );
    }

    #[tokio::test]
    async fn refusals_and_timeouts_are_not_retried() {
        let reopened = AtomicU64::new(0);
        let opened = AtomicU32::new(0);
        let open = || {
            opened.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, NetError>(stream(Some(Reply::Reject(Refusal::new(
                    RejectReason::Fenced,
                    "no",
                )))))
            }
        };
        let (_s, reply) = offer(&reopened, open, &header(), T, T).await.unwrap();
        assert_eq!(
            reply,
            Reply::Reject(Refusal::new(RejectReason::Fenced, "no"))
        );
        assert_eq!(opened.load(Ordering::SeqCst), 1);

        // A receiver that holds the stream without answering costs one wait, not four.
        let (ours, _held) = tokio::io::duplex(1 << 16);
        let mut once = Some(ours.compat());
        let open = || {
            let s = once.take();
            async move { s.ok_or(NetError::Closed) }
        };
        let err = offer(&reopened, open, &header(), Duration::from_millis(100), T)
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::Timeout(_)), "{err}");
        assert_eq!(reopened.load(Ordering::SeqCst), 0);
    }
}
