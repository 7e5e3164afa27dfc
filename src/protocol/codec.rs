//! Encoding of every swarm message: postcard inside a versioned envelope, with a size limit per
//! protocol. The framing (length prefix, timeouts) is applied by `net`.

use serde::{Deserialize, Serialize};

/// Versioned envelope around every encoded message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Envelope<T> {
    /// Version 1.
    V1(T),
}

/// Encoding/decoding failures.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The message is larger than its protocol allows.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a valid message.
    #[error("malformed message: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Encodes `msg` in a V1 envelope, refusing results over `limit` bytes.
pub fn encode<T: Serialize + Clone>(msg: &T, limit: usize) -> Result<Vec<u8>, CodecError> {
    let bytes = postcard::to_stdvec(&Envelope::V1(msg.clone()))?;
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    Ok(bytes)
}

/// Decodes a V1 envelope, refusing inputs over `limit` bytes.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let Envelope::V1(msg) = postcard::from_bytes(bytes)?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::UrlRow;
    use crate::model::ids::{DatasetId, ShardId};
    use crate::model::node_stats::NodeStats;
    use crate::model::time::UnixMillis;
    use crate::protocol::control::*;
    use crate::protocol::gossip::*;
    use crate::protocol::transfer::*;

    #[test]
    fn every_message_round_trips() {
        let d = DatasetId([7; 16]);
        let reqs = vec![
            ControlRequest::Bid {
                dataset: d,
                stats: NodeStats {
                    cores: 2,
                    works: true,
                    ..Default::default()
                },
            },
            ControlRequest::Rows {
                dataset: d,
                shard: ShardId(3),
                epoch: 9,
            },
            ControlRequest::Complete {
                dataset: d,
                shard: ShardId(3),
                epoch: 9,
                ok: 1,
                failed: 2,
                bytes: 3,
            },
        ];
        for r in reqs {
            let b = encode(&r, MAX_CONTROL_REQUEST_BYTES).unwrap();
            assert_eq!(
                decode::<ControlRequest>(&b, MAX_CONTROL_REQUEST_BYTES).unwrap(),
                r
            );
        }
        let resp = ControlResponse::Rows(vec![UrlRow {
            index: 5,
            url: Some("http://h/a.jpg".into()),
            class: None,
            extra: Vec::new(),
        }]);
        let b = encode(&resp, MAX_CONTROL_RESPONSE_BYTES).unwrap();
        assert_eq!(
            decode::<ControlResponse>(&b, MAX_CONTROL_RESPONSE_BYTES).unwrap(),
            resp
        );
        let g = Gossip::Heartbeat {
            stats: NodeStats::default(),
            nonce: 1,
            sent_at: UnixMillis(2),
        };
        let b = encode(&g, MAX_GOSSIP_BYTES).unwrap();
        assert_eq!(decode::<Gossip>(&b, MAX_GOSSIP_BYTES).unwrap(), g);
        let h = TransferHeader {
            dataset: d,
            shard: ShardId(1),
            epoch: 2,
            kind: FileKind::Archive,
            size: 10,
            sha256: [1; 32],
        };
        let b = encode(&h, MAX_TRANSFER_HEADER_BYTES).unwrap();
        assert_eq!(
            decode::<TransferHeader>(&b, MAX_TRANSFER_HEADER_BYTES).unwrap(),
            h
        );
    }

    #[test]
    fn refusals_round_trip_and_are_bounded() {
        let r = ControlResponse::rejected(RejectReason::Fenced, "é".repeat(1_000));
        let b = encode(&r, MAX_CONTROL_RESPONSE_BYTES).unwrap();
        let back = decode::<ControlResponse>(&b, MAX_CONTROL_RESPONSE_BYTES).unwrap();
        assert_eq!(back, r);
        let ControlResponse::Rejected(refusal) = back else {
            panic!("not a refusal")
        };
        assert!(refusal.detail.len() <= MAX_REFUSAL_DETAIL);
        assert!(!refusal.reason.is_retryable());
        assert!(RejectReason::Busy.is_retryable());
        assert!(RejectReason::StorageFailed.is_retryable());
    }

    #[test]
    fn oversize_and_garbage_are_refused() {
        let big = ControlResponse::rejected(RejectReason::Busy, "x".repeat(100));
        assert!(matches!(encode(&big, 10), Err(CodecError::TooLarge { .. })));
        assert!(decode::<ControlRequest>(&[0xff, 0xff, 0xff], 100).is_err());
        assert!(decode::<ControlRequest>(&[0u8; 200], 100).is_err());
    }
}
