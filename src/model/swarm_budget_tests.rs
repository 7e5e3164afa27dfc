//! Unit tests of [`super::SwarmBudget`]: shares per host, slow-downs, restored leases, and a
//! property test that no host's reserved caps ever sum above the budget.

use super::*;
use crate::model::ids::seeded_node_id as node;
use proptest::prelude::*;

const T: UnixMillis = UnixMillis(1_000_000);

// Peers: `node(1..=3)` are the `a`, `b`, `c` of the comments, `node(11..=13)` are `w1`..`w3`.

fn hosts(list: &[&str], other: bool) -> ShardHosts {
    ShardHosts {
        hosts: list.iter().map(|h| h.to_string()).collect(),
        other,
    }
}

/// Asks for a lease of `peer` on `shard` and reserves it when granted.
fn take(b: &mut SwarmBudget, peer: NodeId, shard: u32, epoch: u64, now: UnixMillis) -> Option<u32> {
    let shard = ShardId(shard);
    let cap = b.bid(peer, now).cap_for(shard);
    b.note_wanted(peer, shard, now);
    if let Some(c) = cap {
        b.reserve(shard, Epoch(epoch), peer, c);
    }
    cap
}

#[test]
fn without_host_knowledge_the_budget_is_split_among_the_peers_bidding() {
    let mut b = SwarmBudget::new(4);
    assert_eq!(
        take(&mut b, node(1), 0, 1, T),
        Some(4),
        "alone: the whole budget"
    );
    assert_eq!(take(&mut b, node(2), 1, 2, T), None, "the budget is taken");
    // a's lease ends; b wanted a shard meanwhile, so a's next lease gets half.
    b.sync(std::iter::empty());
    assert_eq!(take(&mut b, node(1), 2, 3, T), Some(2));
    assert_eq!(take(&mut b, node(2), 3, 4, T), Some(2));
    assert_eq!(b.reserved(), 4);
    assert_eq!(take(&mut b, node(3), 4, 5, T), None);
}

#[test]
fn a_worker_on_host_a_gets_the_whole_budget_of_a_while_another_fetches_from_b() {
    let shards = [hosts(&["a:80"], false), hosts(&["b:80"], false)];
    let mut b = SwarmBudget::with_hosts(4, &shards);
    assert_eq!(take(&mut b, node(11), 0, 1, T), Some(4));
    assert_eq!(
        take(&mut b, node(12), 1, 2, T),
        Some(4),
        "b is another host"
    );
    assert_eq!(b.peak_host_load(), 4);
    // A third worker finds both hosts taken.
    let view = b.bid(node(13), T);
    assert_eq!(
        (view.cap_for(ShardId(0)), view.cap_for(ShardId(1))),
        (None, None)
    );
}

#[test]
fn peers_on_the_same_host_split_it_and_a_shard_of_two_hosts_takes_the_smaller_room() {
    let shards = [
        hosts(&["a:80"], false),
        hosts(&["a:80"], false),
        hosts(&["a:80", "b:80"], false),
        hosts(&["b:80"], false),
    ];
    let mut b = SwarmBudget::with_hosts(8, &shards);
    b.note_wanted(node(12), ShardId(1), T);
    assert_eq!(
        take(&mut b, node(11), 0, 1, T),
        Some(4),
        "w2 wants a as well"
    );
    assert_eq!(take(&mut b, node(12), 1, 2, T), Some(4));
    let view = b.bid(node(13), T);
    assert_eq!(view.cap_for(ShardId(2)), None, "a is fully reserved");
    assert_eq!(view.cap_for(ShardId(3)), Some(8), "b is free");
}

#[test]
fn a_shard_with_other_hosts_counts_against_every_host() {
    let shards = [hosts(&["a:80"], false), hosts(&["z:80"], true)];
    let mut b = SwarmBudget::with_hosts(6, &shards);
    assert_eq!(take(&mut b, node(11), 0, 1, T), Some(6));
    assert_eq!(
        b.bid(node(12), T).cap_for(ShardId(1)),
        None,
        "its unlisted rows may be on a, which is taken"
    );
    b.sync(std::iter::empty());
    assert_eq!(
        take(&mut b, node(12), 1, 2, T),
        Some(3),
        "w1 wanted a shard of a"
    );
    assert_eq!(take(&mut b, node(11), 0, 3, T), Some(3));
    assert!(b.peak_host_load() <= 6);
}

#[test]
fn slow_downs_halve_the_swarm_limit_once_per_cooldown_then_it_recovers() {
    let mut b = SwarmBudget::new(8);
    b.on_throttled(3, T);
    b.on_throttled(5, T.plus(Duration::from_secs(1)));
    assert_eq!(b.limit(), 4);
    b.on_throttled(1, T.plus(COOLDOWN));
    assert_eq!(b.limit(), 2);
    b.on_throttled(0, T.plus(COOLDOWN * 3));
    assert_eq!(b.limit(), 2, "no slow-down reported");
    assert_eq!(take(&mut b, node(1), 0, 1, T.plus(COOLDOWN)), Some(2));
    let later = T.plus(COOLDOWN).plus(RECOVER_EVERY * 3);
    b.sync(std::iter::empty());
    b.note_wanted(node(1), ShardId(1), later);
    assert_eq!(
        b.bid(node(2), later).cap_for(ShardId(2)),
        Some(2),
        "5 split by two peers"
    );
    assert_eq!(b.limit(), 5, "three steps of recovery");
    let _ = b.bid(node(24), later.plus(RECOVER_EVERY * 100));
    assert_eq!(b.limit(), 8, "never above the configured budget");
}

#[test]
fn restored_leases_hold_the_whole_limit_until_they_end() {
    let mut b = SwarmBudget::new(4);
    b.sync([(ShardId(3), Epoch(9), node(40))]);
    assert_eq!(b.bid(node(1), T).cap_for(ShardId(0)), None);
    b.sync(std::iter::empty());
    assert_eq!(b.bid(node(1), T).cap_for(ShardId(0)), Some(4));
}

#[test]
fn wants_expire_after_the_active_window() {
    let mut b = SwarmBudget::new(4);
    b.note_wanted(node(41), ShardId(0), T);
    assert_eq!(b.bid(node(1), T).cap_for(ShardId(1)), Some(2));
    assert_eq!(
        b.bid(node(1), T.plus(ACTIVE_WINDOW)).cap_for(ShardId(1)),
        Some(4)
    );
}

proptest! {
    /// Whatever the shards' hosts and the order of bids, slow-downs and lease ends, the caps
    /// of the live leases that may touch one host never sum above the configured budget.
    #[test]
    fn no_host_is_reserved_above_the_budget(
        cap in 1u32..20,
        layout in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..3), any::<bool>()), 1..8),
        ops in proptest::collection::vec((0u8..4, 0usize..5, 0usize..8), 0..300),
    ) {
        let shards: Vec<ShardHosts> = layout
            .iter()
            .map(|(hs, other)| ShardHosts {
                hosts: hs.iter().map(|h| format!("h{h}")).collect(),
                other: *other,
            })
            .collect();
        let mut b = SwarmBudget::with_hosts(cap, &shards);
        let mut now = T;
        let mut live: Vec<(u32, u64, NodeId)> = Vec::new();
        let mut next = 0u64;
        for (op, peer, shard) in ops {
            now = now.plus(Duration::from_millis(700));
            let peer = node(peer as u64);
            // Shards past the table's end may touch any host.
            let shard = u32::try_from(shard).unwrap_or(0);
            match op {
                0 | 1 => {
                    next += 1;
                    if let Some(c) = take(&mut b, peer, shard, next, now) {
                        prop_assert!(c >= 1);
                        live.push((shard, next, peer));
                    }
                }
                2 => {
                    if !live.is_empty() { live.remove(0); }
                    b.sync(live.iter().map(|(s, e, p)| (ShardId(*s), Epoch(*e), *p)));
                }
                _ => b.on_throttled(1, now),
            }
            prop_assert!(b.peak_host_load() <= cap, "{:?}", b);
            prop_assert!(b.limit() >= 1 && b.limit() <= cap);
        }
    }
}
