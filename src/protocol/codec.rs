//! Encoding of every swarm message: postcard inside a versioned envelope, with a size limit per
//! protocol. The framing (length prefix, timeouts) is applied by `net`.

use serde::{Deserialize, Serialize};

/// Versioned envelope around every encoded message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Envelope<T> {
    /// Version 1.
    V1(T),
}

/// The envelope as it is encoded: it borrows the message, so a 256 MiB `Rows` response is
/// serialised in place, never copied first. Same bytes as [`Envelope`].
#[derive(Serialize)]
enum EnvelopeRef<'a, T> {
    /// Version 1.
    V1(&'a T),
}

/// Encoding/decoding failures.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The message is larger than its protocol allows.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The protocol's maximum in bytes.
        limit: usize,
    },
    /// Not a valid message.
    #[error("malformed message: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Encodes `msg` in a V1 envelope, refusing results over `limit` bytes.
pub fn encode<T: Serialize>(msg: &T, limit: usize) -> Result<Vec<u8>, CodecError> {
    let bytes = postcard::to_stdvec(&EnvelopeRef::V1(msg))?;
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
    use crate::model::ids::{DatasetId, Epoch, ShardId};
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
                epoch: Epoch(9),
            },
            ControlRequest::Complete {
                dataset: d,
                shard: ShardId(3),
                epoch: Epoch(9),
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
            epoch: Epoch(2),
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

    /// Counts the allocations of the threads that ask for it (the test's own), so encoding can
    /// be shown not to copy a response row by row.
    #[allow(unsafe_code)]
    mod counting {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        pub struct Counting;

        thread_local! {
            static ON: Cell<bool> = const { Cell::new(false) };
            static COUNT: Cell<u64> = const { Cell::new(0) };
        }

        fn note() {
            let _ = ON.try_with(|on| {
                if on.get() {
                    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
                }
            });
        }

        // SAFETY: every call is forwarded unchanged to the system allocator.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                note();
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                unsafe { System.dealloc(ptr, layout) }
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                note();
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        }

        /// Allocations made by this thread while `f` runs.
        pub fn allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
            COUNT.with(|c| c.set(0));
            ON.with(|on| on.set(true));
            let r = f();
            ON.with(|on| on.set(false));
            (r, COUNT.with(|c| c.get()))
        }
    }

    #[global_allocator]
    static ALLOC: counting::Counting = counting::Counting;

    #[test]
    fn a_64_mib_rows_response_is_encoded_without_being_copied() {
        let url = format!("http://h.example/{}", "a".repeat(1_000));
        let rows: Vec<UrlRow> = (0..(64u64 << 20) / 1_000)
            .map(|index| UrlRow {
                index,
                url: Some(url.clone()),
                class: None,
                extra: Vec::new(),
            })
            .collect();
        let n = rows.len();
        // The counter counts: a copy of a thousand rows costs at least a thousand allocations.
        let (_, copying) = counting::allocations(|| rows[..1_000].to_vec());
        assert!(copying >= 1_000, "{copying}");
        let resp = ControlResponse::Rows(rows);
        let (bytes, allocs) =
            counting::allocations(|| encode(&resp, MAX_CONTROL_RESPONSE_BYTES).unwrap());
        assert!(bytes.len() > 64 << 20);
        // The output buffer grows by doubling (a few dozen reallocations); a copy of the
        // response would allocate at least once per row.
        assert!(
            allocs < 100,
            "{allocs} allocations to encode {n} rows: the response was copied"
        );
        // Same bytes as the owned envelope.
        let ControlResponse::Rows(rows) = resp else {
            unreachable!()
        };
        let owned = postcard::to_stdvec(&Envelope::V1(ControlResponse::Rows(rows))).unwrap();
        assert!(owned == bytes);
    }

    #[test]
    fn oversize_and_garbage_are_refused() {
        let big = ControlResponse::rejected(RejectReason::Busy, "x".repeat(100));
        assert!(matches!(encode(&big, 10), Err(CodecError::TooLarge { .. })));
        assert!(decode::<ControlRequest>(&[0xff, 0xff, 0xff], 100).is_err());
        assert!(decode::<ControlRequest>(&[0u8; 200], 100).is_err());
    }
}
