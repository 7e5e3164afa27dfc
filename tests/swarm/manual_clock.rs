//! The node's clock is injected (`NodeConfig::clock`): an in-process seeder on a
//! [`ManualClock`] keeps a lease through any amount of real time and lets it lapse only when
//! the test moves the clock past its TTL — lease expiry driven deterministically, with the
//! real transport, coordinator and redb underneath.

use std::sync::Arc;
use std::time::Duration;

use ldawt::model::lease::LeaseConfig;
use ldawt::model::shard::ShardSizing;
use ldawt::model::time::{ManualClock, UnixMillis};
use ldawt::protocol::control::{ControlRequest, ControlResponse, RejectReason};
use tokio_util::sync::CancellationToken;

use super::kit::{finished, insider, seeder_config, start_seeder_until, stats};
use super::util::write_seed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lapses_when_the_manual_clock_passes_its_ttl_and_not_before() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("one.parquet");
    write_seed(
        &input,
        4,
        |i| format!("http://127.0.0.1:9/{i}.jpg"),
        |_| "c".into(),
    );
    let clock = ManualClock::new(UnixMillis(1_700_000_000_000));
    let mut cfg = seeder_config(
        &tmp.path().join("seeder"),
        input,
        &tmp.path().join("out"),
        ShardSizing::Rows(4),
    );
    cfg.work = false;
    cfg.keep_serving = true;
    cfg.lease = LeaseConfig {
        ttl: Duration::from_secs(2),
        max_retries: 3,
        speculative: false,
        copy_after: Duration::ZERO,
    };
    cfg.clock = Arc::new(clock.clone());
    let stop = CancellationToken::new();
    let seeder = start_seeder_until(cfg, stop.clone()).await;
    let (first, second) = (
        insider(seeder.join.clone()).await,
        insider(seeder.join.clone()).await,
    );
    let bid = ControlRequest::Bid {
        dataset: seeder.dataset,
        stats: stats(),
    };
    // Each insider's first answer (the connection comes up in the background).
    let mut answers = Vec::new();
    for g in [&first, &second] {
        let mut answer = None;
        for _ in 0..100 {
            if let Ok(a) = g.request(seeder.peer, bid.clone()).await {
                answer = Some(a);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        answers.push(answer.expect("the insider reaches the seeder"));
    }
    let ControlResponse::Granted(grant) = answers.remove(0) else {
        panic!("the first insider gets the only shard: {answers:?}")
    };
    assert!(
        matches!(answers[0], ControlResponse::NoWork { .. }),
        "{answers:?}"
    );
    // Twice the TTL of real time: the node's clock stands still, so the lease holds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = second.request(seeder.peer, bid.clone()).await.unwrap();
    assert!(matches!(held, ControlResponse::NoWork { .. }), "{held:?}");
    // The clock passes the expiry: the shard is free again, for the other insider.
    clock.advance(Duration::from_secs(3));
    let mut regrant = None;
    for _ in 0..50 {
        if let Ok(ControlResponse::Granted(g)) = second.request(seeder.peer, bid.clone()).await {
            regrant = Some(g);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let regrant = regrant.expect("the lapsed shard is granted again");
    assert_eq!(regrant.shard, grant.shard);
    assert!(regrant.epoch > grant.epoch, "{regrant:?} after {grant:?}");
    let late = first
        .request(
            seeder.peer,
            ControlRequest::Renew {
                dataset: seeder.dataset,
                shard: grant.shard,
                epoch: grant.epoch,
                rows_done: 0,
                throttled: 0,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(&late, ControlResponse::Rejected(r) if r.reason == RejectReason::Fenced),
        "{late:?}"
    );
    stop.cancel();
    finished(seeder.task, Duration::from_secs(30), "the seeder stops").await;
}
