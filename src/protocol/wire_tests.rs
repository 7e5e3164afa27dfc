//! The wire stays byte-identical: one sample of every message, encoded, compared with the bytes
//! the code produced before the protocol was split and typed (captured then, pasted here).

use super::codec::encode;
use super::control::*;
use super::gossip::*;
use super::transfer::*;
use crate::input::UrlRow;
use crate::model::ids::{DatasetId, Epoch, NodeId, ShardId};
use crate::model::node_stats::NodeStats;
use crate::model::time::UnixMillis;

/// A lease holder, as announced.
fn holder() -> Option<NodeId> {
    Some(
        "12D3KooWLRPJAA5o6Z6ZtDUXRF2jdSPaxi3RgVV5QiXsC9RsWprZ"
            .parse()
            .unwrap(),
    )
}

/// One sample of every message (and every lease state), named.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let d = DatasetId([0xA5; 16]);
    let stats = NodeStats {
        cores: 8,
        mem_total: 16 << 30,
        mem_free: 3 << 30,
        disk_free: 1 << 40,
        load1: 0.75,
        bytes_per_s: 12.5e6,
        images_per_s: 310.0,
        leases_held: 2,
        shards_done: 17,
        free_slots: 1,
        works: true,
        seeds: false,
    };
    let grant = Grant {
        dataset: d,
        shard: ShardId(42),
        epoch: Epoch(9),
        expires_at: UnixMillis(1_700_000_060_000),
        ttl_ms: 60_000,
        rows: 1_000,
        archive_name: "00042.tar.gz".into(),
        speculative: true,
        settings: None,
    };
    let g = |m: &Gossip| encode(m, MAX_GOSSIP_BYTES).unwrap();
    let rq = |m: &ControlRequest| encode(m, MAX_CONTROL_REQUEST_BYTES).unwrap();
    let rs = |m: &ControlResponse| encode(m, MAX_CONTROL_RESPONSE_BYTES).unwrap();
    let th = |m: &TransferHeader| encode(m, MAX_TRANSFER_HEADER_BYTES).unwrap();
    let lease = |holder: Option<NodeId>, state: LeaseState| Gossip::Lease {
        dataset: d,
        shard: ShardId(42),
        holder,
        epoch: Epoch(9),
        expires_at: UnixMillis(1_700_000_060_000),
        state,
    };
    vec![
        (
            "gossip_heartbeat",
            g(&Gossip::Heartbeat {
                stats: stats.clone(),
                nonce: 0x0102_0304_0506_0708,
                sent_at: UnixMillis(1_700_000_000_000),
            }),
        ),
        (
            "gossip_dataset",
            g(&Gossip::Dataset {
                dataset: d,
                name: "laion-part".into(),
                shards_total: 100,
                shards_done: 40,
                shards_open: 50,
                shards_failed: 1,
                rows_total: 100_000,
                sent_at: UnixMillis(1_700_000_000_000),
            }),
        ),
        (
            "gossip_lease_leased",
            g(&lease(holder(), LeaseState::Leased)),
        ),
        ("gossip_lease_done", g(&lease(holder(), LeaseState::Done))),
        ("gossip_lease_free", g(&lease(None, LeaseState::Free))),
        ("gossip_lease_failed", g(&lease(None, LeaseState::Failed))),
        (
            "control_bid",
            rq(&ControlRequest::Bid {
                dataset: d,
                stats: stats.clone(),
            }),
        ),
        (
            "control_rows",
            rq(&ControlRequest::Rows {
                dataset: d,
                shard: ShardId(42),
                epoch: Epoch(9),
            }),
        ),
        (
            "control_renew",
            rq(&ControlRequest::Renew {
                dataset: d,
                shard: ShardId(42),
                epoch: Epoch(9),
                rows_done: 500,
                throttled: 3,
            }),
        ),
        (
            "control_complete",
            rq(&ControlRequest::Complete {
                dataset: d,
                shard: ShardId(42),
                epoch: Epoch(9),
                ok: 990,
                failed: 10,
                bytes: 123_456_789,
            }),
        ),
        (
            "control_abandon",
            rq(&ControlRequest::Abandon {
                dataset: d,
                shard: ShardId(42),
                epoch: Epoch(9),
                reason: "disk full".into(),
                failed: true,
            }),
        ),
        ("response_granted", rs(&ControlResponse::Granted(grant))),
        (
            "response_no_work",
            rs(&ControlResponse::NoWork {
                retry_after_ms: 2_000,
                finished: false,
            }),
        ),
        (
            "response_rows",
            rs(&ControlResponse::Rows(vec![
                UrlRow {
                    index: 7,
                    url: Some("http://h.example/a.jpg".into()),
                    class: Some("cat".into()),
                    extra: vec![Some("caption".into()), None],
                },
                UrlRow {
                    index: 8,
                    url: None,
                    class: None,
                    extra: Vec::new(),
                },
            ])),
        ),
        (
            "response_renewed",
            rs(&ControlResponse::Renewed {
                expires_at: UnixMillis(1_700_000_120_000),
            }),
        ),
        ("response_ack", rs(&ControlResponse::Ack)),
        (
            "response_rejected",
            rs(&ControlResponse::rejected(
                RejectReason::NotAllowed,
                "over the lease cap",
            )),
        ),
        (
            "transfer_archive",
            th(&TransferHeader {
                dataset: d,
                shard: ShardId(42),
                epoch: Epoch(9),
                kind: FileKind::Archive,
                size: 300 << 20,
                sha256: [0x3C; 32],
            }),
        ),
        (
            "transfer_results",
            th(&TransferHeader {
                dataset: d,
                shard: ShardId(42),
                epoch: Epoch(9),
                kind: FileKind::Results,
                size: 4096,
                sha256: [0x11; 32],
            }),
        ),
    ]
}

/// The samples' bytes as encoded before the split: the message types of `protocol/swarm.rs`
/// at commit 3128794, copied verbatim into a scratch crate with the same serde and postcard.
const BEFORE: &[(&str, &str)] = &[
    (
        "gossip_heartbeat",
        "0000088080808040808080800c808080808020000000000000e83f0000000084d7674100000000006073400211010100888e98a8c0e080810180d095ffbc31",
    ),
    (
        "gossip_dataset",
        "0001a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a50a6c61696f6e2d7061727464283201a08d0680d095ffbc31",
    ),
    (
        "gossip_lease_leased",
        "0002a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a52a34313244334b6f6f574c52504a4141356f365a365a744455585246326a64535061786933526756563551695873433952735770725a09e0a499ffbc31066c6561736564",
    ),
    (
        "gossip_lease_done",
        "0002a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a52a34313244334b6f6f574c52504a4141356f365a365a744455585246326a64535061786933526756563551695873433952735770725a09e0a499ffbc3104646f6e65",
    ),
    (
        "gossip_lease_free",
        "0002a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a52a0009e0a499ffbc310466726565",
    ),
    (
        "gossip_lease_failed",
        "0002a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a52a0009e0a499ffbc31066661696c6564",
    ),
    (
        "control_bid",
        "0000a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5088080808040808080800c808080808020000000000000e83f0000000084d7674100000000006073400211010100",
    ),
    ("control_rows", "0001a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a52a09"),
    (
        "control_renew",
        "0002a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a52a09f40303",
    ),
    (
        "control_complete",
        "0003a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a52a09de070a959aef3a",
    ),
    (
        "control_abandon",
        "0004a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a52a09096469736b2066756c6c01",
    ),
    (
        "response_granted",
        "0000a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a52a09e0a499ffbc31e0d403e8070c30303034322e7461722e677a0100",
    ),
    ("response_no_work", "0001d00f00"),
    (
        "response_rows",
        "000202070116687474703a2f2f682e6578616d706c652f612e6a7067010363617402010763617074696f6e0008000000",
    ),
    ("response_renewed", "0003c0f99cffbc31"),
    ("response_ack", "0004"),
    (
        "response_rejected",
        "000504126f76657220746865206c6561736520636170",
    ),
    (
        "transfer_archive",
        "00a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a52a090080808096013c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c",
    ),
    (
        "transfer_results",
        "00a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a52a090180201111111111111111111111111111111111111111111111111111111111111111",
    ),
];

#[test]
fn every_message_encodes_to_the_bytes_of_the_pre_split_code() {
    let now = samples();
    assert_eq!(now.len(), BEFORE.len());
    for ((name, bytes), (before_name, before)) in now.iter().zip(BEFORE) {
        assert_eq!(name, before_name);
        assert_eq!(&hex::encode(bytes), before, "{name} changed on the wire");
    }
}

#[test]
fn typed_lease_gossip_round_trips_and_refuses_unknown_states_and_ids() {
    use super::codec::decode;
    for (name, bytes) in samples() {
        if name.starts_with("gossip_lease") {
            let g = decode::<Gossip>(&bytes, MAX_GOSSIP_BYTES).unwrap();
            assert_eq!(encode(&g, MAX_GOSSIP_BYTES).unwrap(), bytes, "{name}");
        }
    }
    // The same message with state "lost" or holder "nobody" (as an older or hostile peer might
    // send) is malformed, not silently read.
    let before =
        |name: &str| hex::decode(BEFORE.iter().find(|(n, _)| *n == name).unwrap().1).unwrap();
    let free = before("gossip_lease_free");
    let mut lost = free[..free.len() - 5].to_vec();
    lost.extend_from_slice(b"\x04lost");
    assert!(decode::<Gossip>(&lost, MAX_GOSSIP_BYTES).is_err());
    // Envelope, variant, 16 bytes of dataset, shard: the holder's length is byte 19.
    assert_eq!(free[19], 0, "an empty holder");
    let mut nobody = free[..19].to_vec();
    nobody.extend_from_slice(b"\x06nobody");
    nobody.extend_from_slice(&free[20..]);
    assert!(decode::<Gossip>(&nobody, MAX_GOSSIP_BYTES).is_err());
    assert!(decode::<Gossip>(&free, MAX_GOSSIP_BYTES).is_ok());
}
