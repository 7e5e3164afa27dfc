//! A lease whose archive is arriving stays live even when no renewal gets through.

use std::time::Duration;

use super::*;
use crate::model::ids::seeded_node_id as node;

const TTL: u64 = 1_000;

fn book() -> LeaseBook {
    LeaseBook::new(
        LeaseConfig {
            ttl: Duration::from_millis(TTL),
            max_retries: 1,
            speculative: false,
            copy_after: Duration::ZERO,
        },
        &[10],
    )
}

#[test]
fn bytes_of_a_delivery_keep_its_lease_live_without_renewals() {
    let mut book = book();
    let a = book.handle_bid(node(1), true, UnixMillis(0)).unwrap();
    // Delivery notes every 800 ms for 5 TTLs, no renewal: the lease never lapses.
    for ms in (800..5_000).step_by(800) {
        assert!(book.handle_timeout(UnixMillis(ms)).is_empty(), "at {ms}");
        assert_eq!(
            book.handle_delivering(a.shard, a.epoch, node(1), UnixMillis(ms)),
            Ok(UnixMillis(ms + TTL))
        );
    }
    // The bytes stop: one TTL later the lease expires as usual.
    assert_eq!(book.handle_timeout(UnixMillis(4_800 + TTL)).len(), 1);
}

#[test]
fn only_the_live_holder_keeps_a_lease_alive() {
    let mut book = book();
    let a = book.handle_bid(node(1), true, UnixMillis(0)).unwrap();
    assert_eq!(
        book.handle_delivering(a.shard, a.epoch, node(99), UnixMillis(10)),
        Err(LeaseError::NotHolder {
            shard: a.shard,
            epoch: a.epoch
        })
    );
    assert!(
        book.handle_delivering(a.shard, a.epoch.next(), node(1), UnixMillis(10))
            .is_err()
    );
    assert_eq!(book.handle_timeout(UnixMillis(TTL)).len(), 1);
    assert!(
        book.handle_delivering(a.shard, a.epoch, node(1), UnixMillis(TTL + 1))
            .is_err()
    );
}
