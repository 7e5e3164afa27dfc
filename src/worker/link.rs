//! How a worker talks to a seeder: over the network (`net::Client`) or, for the seeder's own
//! in-process worker, straight to its coordinator (no network hop).

use std::path::Path;

use libp2p::PeerId;

use crate::coordinator::CoordinatorHandle;
use crate::model::ids::NodeId;
use crate::net::{Client, NetError};
use crate::protocol::control::{ControlRequest, ControlResponse, Refusal};
use crate::protocol::transfer::TransferHeader;

/// A route to the seeder of one dataset.
#[derive(Clone)]
pub enum SeederLink {
    /// A remote seeder.
    Remote {
        /// The transport.
        client: Client,
        /// The seeder.
        peer: PeerId,
    },
    /// This node's own coordinator.
    Local {
        /// The coordinator.
        coord: CoordinatorHandle,
    },
}

/// Why a call to the seeder did not go through.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The seeder refused; [`Refusal::reason`] says whether to stop (fenced, invalid) or to
    /// retry later (busy, storage failed).
    #[error("refused by the seeder: {0}")]
    Refused(Refusal),
    /// The seeder could not be reached or the transfer broke: try again later.
    #[error("seeder unreachable: {0}")]
    Transient(String),
}

impl SeederLink {
    /// The seeder: the remote peer, or `me` for the in-process coordinator.
    pub fn seeder(&self, me: NodeId) -> NodeId {
        match self {
            SeederLink::Remote { peer, .. } => NodeId(*peer),
            SeederLink::Local { .. } => me,
        }
    }

    /// Sends a control request as `me`.
    pub async fn request(
        &self,
        me: NodeId,
        req: ControlRequest,
    ) -> Result<ControlResponse, LinkError> {
        match self {
            SeederLink::Remote { client, peer } => client
                .request(*peer, req)
                .await
                .map_err(|e| LinkError::Transient(e.to_string())),
            SeederLink::Local { coord } => Ok(coord.request(me, req).await),
        }
    }

    /// Delivers a finished file as `me`.
    pub async fn send_file(
        &self,
        me: NodeId,
        header: TransferHeader,
        path: &Path,
    ) -> Result<(), LinkError> {
        match self {
            SeederLink::Remote { client, peer } => {
                match client.send_file(*peer, header, path).await {
                    Ok(()) => Ok(()),
                    Err(NetError::Rejected(r)) => Err(LinkError::Refused(r)),
                    Err(e) => Err(LinkError::Transient(e.to_string())),
                }
            }
            SeederLink::Local { coord } => coord
                .local_file(me, header, path.to_path_buf())
                .await
                .map_err(LinkError::Refused),
        }
    }
}
