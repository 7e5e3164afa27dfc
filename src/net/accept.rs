//! The accept loop shared by the stream protocols: every inbound stream gets its own task, so
//! libp2p-stream's unbuffered hand-off never waits on a slow handler, and every task stops
//! when the event loop ends.

use std::future::Future;

use futures::StreamExt;
use libp2p::{PeerId, Stream};
use libp2p_stream::IncomingStreams;
use tokio_util::sync::CancellationToken;

/// Spawns `handle(peer, stream)` for each inbound stream until `cancel` fires or the protocol
/// is deregistered; running handlers are dropped when `cancel` fires.
pub(crate) async fn accept_streams<F, Fut>(
    mut incoming: IncomingStreams,
    cancel: CancellationToken,
    handle: F,
) where
    F: Fn(PeerId, Stream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (peer, stream) = tokio::select! {
            _ = cancel.cancelled() => return,
            next = incoming.next() => match next {
                Some(s) => s,
                None => return,
            },
        };
        let task = handle(peer, stream);
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = task => {}
            }
        });
    }
}
