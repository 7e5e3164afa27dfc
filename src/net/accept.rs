//! The accept loop shared by the stream protocols: every inbound stream gets its own task, so
//! libp2p-stream's unbuffered hand-off never waits on a slow handler, and every task stops
//! when the event loop ends.

use std::future::Future;

use std::sync::Arc;

use futures::StreamExt;
use libp2p::{PeerId, Stream};
use libp2p_stream::IncomingStreams;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::metrics::NetCounters;
use super::{Event, NetTuning};

/// What every stream handler needs: where events go, the limits, the counters.
#[derive(Clone)]
pub(crate) struct StreamContext {
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) tuning: Arc<NetTuning>,
    pub(crate) counters: Arc<NetCounters>,
}

/// Spawns `handle(peer, stream, ctx, slots)` for each inbound stream until `cancel` fires or
/// the protocol is deregistered; running handlers are dropped when `cancel` fires. `slots`
/// holds `bound` permits for the handlers to bound the work they do at once.
pub(crate) async fn accept_streams<F, Fut>(
    mut incoming: IncomingStreams,
    ctx: StreamContext,
    bound: usize,
    cancel: CancellationToken,
    handle: F,
) where
    F: Fn(PeerId, Stream, StreamContext, Arc<Semaphore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(bound.max(1)));
    loop {
        let (peer, stream) = tokio::select! {
            _ = cancel.cancelled() => return,
            next = incoming.next() => match next {
                Some(s) => s,
                None => return,
            },
        };
        let task = handle(peer, stream, ctx.clone(), slots.clone());
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = task => {}
            }
        });
    }
}
