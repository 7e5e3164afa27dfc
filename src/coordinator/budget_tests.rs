//! `--swarm-per-host` through the coordinator's request handling: grants carry the dataset's
//! settings with each lease's share of the budget, no grant is made while the budget is taken,
//! and a renewal reporting slow-downs lowers the shares of later grants.

use super::test_support::{coordinator, grant, setup, worker_stats};
use crate::engine::EngineConfig;
use crate::model::ids::seeded_node_id as node;
use crate::model::time::UnixMillis;
use crate::protocol::control::{ControlRequest, ControlResponse};
use crate::protocol::settings::DatasetSettings;
use crate::store::Store;

#[tokio::test]
async fn grants_share_the_swarm_budget_and_slow_downs_lower_it() {
    let s = setup(40, 10);
    let mut c = coordinator(
        &s,
        60_000,
        Store::open(&s.data.join("leases.redb")).unwrap(),
    );
    c.cfg.swarm_per_host = Some(8);
    let seeder = EngineConfig {
        concurrency: 32,
        ..EngineConfig::default()
    };
    c.cfg.settings = Some(DatasetSettings::from_engine(&seeder));
    let ds = s.seeded.id;
    c.add_dataset(s.seeded.clone(), UnixMillis(1_000))
        .await
        .unwrap();

    // Alone, "a" gets the whole budget; "b" waits while it is taken.
    let ga = grant(&mut c, node(1), ds, 1_000).await;
    let sa = ga.settings.clone().expect("settings travel with the grant");
    assert_eq!((sa.per_host, sa.concurrency), (8, 32));
    let answer = c
        .handle_request(
            node(2),
            ControlRequest::Bid {
                dataset: ds,
                stats: worker_stats(),
            },
            UnixMillis(1_100),
        )
        .await;
    assert!(
        matches!(
            answer,
            ControlResponse::NoWork {
                finished: false,
                ..
            }
        ),
        "{answer:?}"
    );

    // "a" reports slow-downs: the swarm's budget halves (8 → 4).
    let renewed = c
        .handle_request(
            node(1),
            ControlRequest::Renew {
                dataset: ds,
                shard: ga.shard,
                epoch: ga.epoch,
                rows_done: 3,
                throttled: 5,
            },
            UnixMillis(2_000),
        )
        .await;
    assert!(
        matches!(renewed, ControlResponse::Renewed { .. }),
        "{renewed:?}"
    );
    // "a" gives its lease back: the next grants split the lowered budget between a and b.
    let ack = c
        .handle_request(
            node(1),
            ControlRequest::Abandon {
                dataset: ds,
                shard: ga.shard,
                epoch: ga.epoch,
                reason: "test".into(),
                failed: false,
            },
            UnixMillis(2_100),
        )
        .await;
    assert!(matches!(ack, ControlResponse::Ack), "{ack:?}");
    let gb = grant(&mut c, node(2), ds, 2_200).await;
    assert_eq!(gb.settings.unwrap().per_host, 2, "4 split between a and b");
    let ga2 = grant(&mut c, node(1), ds, 2_300).await;
    assert_eq!(ga2.settings.unwrap().per_host, 2);
}
