//! The announcer: publishes this node's heartbeat and its coordinator's dataset announcements
//! every heartbeat period, and forwards the coordinator's lease gossip as it comes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::status::Own;
use crate::model::time::Clock;
use crate::net::Client;
use crate::protocol::gossip::Gossip;

/// Publishes until `stop`.
pub(super) async fn run(
    client: Client,
    own: Own,
    clock: Arc<dyn Clock>,
    heartbeat: Duration,
    mut gossip: mpsc::UnboundedReceiver<Gossip>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(heartbeat);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(g) = gossip.recv() => {
                if let Err(e) = client.publish(g).await {
                    tracing::debug!("cannot publish: {e}");
                }
            }
            _ = tick.tick() => {
                let hb = Gossip::Heartbeat {
                    stats: own.stats(),
                    nonce: fastrand::u64(..),
                    sent_at: clock.now(),
                };
                let _ = client.publish(hb).await;
                if let Some(c) = &own.coord
                    && let Ok(snap) = c.snapshot(own.me).await
                {
                    for a in snap.announcements {
                        let _ = client.publish(a).await;
                    }
                }
            }
        }
    }
}
