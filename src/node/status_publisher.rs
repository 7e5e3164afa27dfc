//! The status publisher: every half second, builds the status document from the node itself,
//! its coordinator and the dispatcher's peer table, logs peers that stalled or recovered, and
//! publishes the document on a `watch` channel (read by the HTTP endpoint, `/metrics` and the
//! node's reporter).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::dispatch::Peers;
use super::status::{self, Inputs, Own};
use crate::model::time::{Clock, UnixMillis};
use crate::protocol::status::NodeStatus;

/// Time between two documents.
pub(super) const PERIOD: Duration = Duration::from_millis(500);

/// Publishes until `stop`.
pub(super) async fn run(
    own: Own,
    peers: Peers,
    clock: Arc<dyn Clock>,
    started: UnixMillis,
    join_addrs: Vec<String>,
    tx: watch::Sender<NodeStatus>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let view = peers.view().await;
        status::log_liveness(&view.liveness);
        let inputs = Inputs {
            join_addrs: &join_addrs,
            started,
            now: clock.now(),
            peers: view.peers,
            datasets: view.datasets,
        };
        let doc = status::build(&own, inputs).await;
        tx.send_replace(doc);
    }
}
