//! The control protocol (`/ldawt/control/1`): the requester opens a stream, writes one
//! `ControlRequest` frame and reads one `ControlResponse` frame. The responder hands the
//! request to the application as [`Event::Request`] and answers `Rejected` itself when the
//! application drops the reply, takes too long or produces an oversize response, so a peer
//! never hangs.

use futures::AsyncWriteExt;
use libp2p::{PeerId, Stream, StreamProtocol};
use libp2p_stream::IncomingStreams;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::accept::{StreamContext, accept_streams};
use super::framing::{recv_msg, write_frame};
use super::metrics::NetCounters;
use super::offer::reopening;
use super::{Event, NetError, NetTuning};
use crate::protocol::codec::encode;
use crate::protocol::control::{
    CONTROL_PROTOCOL, ControlRequest, ControlResponse, MAX_CONTROL_REQUEST_BYTES,
    MAX_CONTROL_RESPONSE_BYTES, RejectReason,
};

/// The protocol name as libp2p wants it.
pub(crate) fn protocol() -> StreamProtocol {
    StreamProtocol::new(CONTROL_PROTOCOL)
}

/// Opens a `protocol` stream to `peer` (dialing it when disconnected) within the tuning's time.
pub(crate) async fn open_stream(
    streams: &mut libp2p_stream::Control,
    peer: PeerId,
    protocol: StreamProtocol,
    tuning: &NetTuning,
) -> Result<Stream, NetError> {
    timeout(
        tuning.open_stream_timeout,
        streams.open_stream(peer, protocol),
    )
    .await
    .map_err(|_| NetError::Timeout("opening a stream"))?
    .map_err(|e| NetError::OpenStream {
        peer: peer.to_string(),
        reason: e.to_string(),
    })
}

/// Sends `req` to `peer` and reads the answer, on a new stream when one dies unanswered
/// (see [`reopening`]; counted in `counters.streams_reopened`).
pub(crate) async fn request(
    streams: &mut libp2p_stream::Control,
    peer: PeerId,
    req: &ControlRequest,
    tuning: &NetTuning,
    counters: &NetCounters,
) -> Result<ControlResponse, NetError> {
    let bytes = encode(req, MAX_CONTROL_REQUEST_BYTES)?;
    let bytes = &bytes;
    let open = || {
        let mut streams = streams.clone();
        async move { open_stream(&mut streams, peer, protocol(), tuning).await }
    };
    reopening(
        "control",
        &counters.streams_reopened,
        open,
        |mut stream: Stream| async move {
            write_frame(&mut stream, bytes, tuning.idle_timeout).await?;
            let response = recv_msg(
                &mut stream,
                MAX_CONTROL_RESPONSE_BYTES,
                tuning.app_reply_timeout + tuning.idle_timeout,
                tuning.idle_timeout,
            )
            .await?;
            let _ = stream.close().await;
            Ok(response)
        },
    )
    .await
}

/// Accepts control streams until `cancel`, one task per stream, at most
/// `max_inbound_requests` handled at once.
pub(crate) async fn serve(
    incoming: IncomingStreams,
    ctx: StreamContext,
    cancel: CancellationToken,
) {
    let bound = ctx.tuning.max_inbound_requests;
    accept_streams(
        incoming,
        ctx,
        bound,
        cancel,
        |peer, stream, ctx, slots| async move {
            let Ok(Ok(_slot)) = timeout(ctx.tuning.idle_timeout, slots.acquire_owned()).await
            else {
                warn!(%peer, "too many control requests in progress: stream dropped");
                return;
            };
            match answer(peer, stream, &ctx.events, &ctx.tuning).await {
                Ok(()) => NetCounters::add(&ctx.counters.control_requests_served, 1),
                Err(e) => debug!(%peer, error = %e, "control request not answered"),
            }
        },
    )
    .await;
}

/// Reads one request, asks the application, writes the answer.
async fn answer(
    peer: PeerId,
    mut stream: Stream,
    events: &mpsc::Sender<Event>,
    tuning: &NetTuning,
) -> Result<(), NetError> {
    let request: ControlRequest = recv_msg(
        &mut stream,
        MAX_CONTROL_REQUEST_BYTES,
        tuning.idle_timeout,
        tuning.idle_timeout,
    )
    .await?;
    let response = ask_application(peer, request, events, tuning).await;
    let bytes = match encode(&response, MAX_CONTROL_RESPONSE_BYTES) {
        Ok(bytes) => bytes,
        Err(e) => {
            warn!(%peer, error = %e, "control response too large: answering Rejected");
            encode(
                &ControlResponse::rejected(
                    RejectReason::NotAllowed,
                    format!("the response could not be sent: {e}"),
                ),
                MAX_CONTROL_RESPONSE_BYTES,
            )?
        }
    };
    write_frame(&mut stream, &bytes, tuning.idle_timeout).await?;
    let _ = stream.close().await;
    Ok(())
}

async fn ask_application(
    peer: PeerId,
    request: ControlRequest,
    events: &mpsc::Sender<Event>,
    tuning: &NetTuning,
) -> ControlResponse {
    let rejected = |detail: &str| ControlResponse::rejected(RejectReason::Busy, detail);
    let (reply, answer) = oneshot::channel();
    let event = Event::Request {
        peer,
        request,
        reply,
    };
    match timeout(tuning.app_reply_timeout, events.send(event)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return rejected("the node is shutting down"),
        Err(_) => return rejected("the node is overloaded"),
    }
    match timeout(tuning.app_reply_timeout, answer).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => rejected("the node dropped the request without answering"),
        Err(_) => rejected("the node did not answer in time"),
    }
}
