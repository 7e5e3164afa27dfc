//! The decision state alone, with time as an argument and outcomes fed by hand: what each
//! event asks for, in which order, and that nothing waits on file work.

use super::effects::{Answer, CommitId, Discard, Effect, Outcome, RequestId, Ticket};
use super::test_support::{Setup, setup, worker_stats};
use super::*;
use crate::model::ids::seeded_node_id as node;
use crate::model::lease::Admission;
use crate::model::lease_state::LeaseState;
use crate::protocol::control::{ControlRequest, ControlResponse, Grant, RejectReason};
use crate::protocol::gossip::Gossip;
use crate::verify::{Invalid, Verified};

fn state(s: &Setup) -> SeederState {
    let cfg = super::test_support::config(s, 1_000);
    let mut st = SeederState::new(cfg.clone());
    st.datasets
        .insert(s.seeded.id, fresh_dataset(&cfg, s.seeded.clone()));
    st
}

fn t(ms: u64) -> UnixMillis {
    UnixMillis(ms)
}

fn commits(fx: &[Effect]) -> Vec<CommitId> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Persist(p) => Some(p.commit),
            _ => None,
        })
        .collect()
}

fn answers(fx: &[Effect]) -> Vec<(RequestId, ControlResponse)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Reply(to, Answer::Control(r)) => Some((*to, r.clone())),
            _ => None,
        })
        .collect()
}

/// Reports every commit of `fx` as done; the effects that follow.
fn commit_ok(st: &mut SeederState, fx: &[Effect], now: u64) -> Vec<Effect> {
    commits(fx)
        .into_iter()
        .flat_map(|commit| {
            st.handle_outcome(
                Outcome::Committed {
                    commit,
                    result: Ok(()),
                },
                t(now),
            )
        })
        .collect()
}

fn grant(st: &mut SeederState, to: u64, peer: NodeId, now: u64) -> Grant {
    let bid = ControlRequest::Bid {
        dataset: st.dataset_ids()[0],
        stats: worker_stats(),
    };
    let fx = st.handle_request(RequestId(to), peer, bid, t(now));
    assert!(
        answers(&fx).is_empty(),
        "a grant waits for its commit: {fx:?}"
    );
    let after = commit_ok(st, &fx, now);
    assert!(
        after
            .iter()
            .any(|e| matches!(e, Effect::Gossip(Gossip::Lease { state, .. }) if *state == LeaseState::Leased)),
        "{after:?}"
    );
    match answers(&after).as_slice() {
        [(r, ControlResponse::Granted(g))] if *r == RequestId(to) => g.clone(),
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn complete(g: &Grant) -> ControlRequest {
    super::test_support::complete_request(g, 1)
}

/// A completion's verification ticket.
fn verify_ticket(fx: &[Effect]) -> Ticket {
    match fx {
        [Effect::Verify(v)] => v.ticket,
        other => panic!("expected only a verification, got {other:?}"),
    }
}

/// `a`'s holder asks (request 2) to complete it at 10 ms and the verification answers
/// `verdict` at 20 ms: the verification's ticket and the effects of its outcome.
fn complete_then_verify(
    st: &mut SeederState,
    a: &Grant,
    verdict: Result<Verified, VerifyFailure>,
) -> (Ticket, Vec<Effect>) {
    let ticket = verify_ticket(&st.handle_request(RequestId(2), node(1), complete(a), t(10)));
    let fx = st.handle_outcome(Outcome::Verified { ticket, verdict }, t(20));
    (ticket, fx)
}

fn verified(rows: u64) -> Verified {
    Verified {
        ok: rows,
        failed: 0,
        skipped: 0,
        bytes: 7 * rows,
    }
}

#[test]
fn a_completion_promotes_then_commits_and_a_renewal_meanwhile_is_not_held_back() {
    let s = setup(20, 10);
    let mut st = state(&s);
    let a = grant(&mut st, 1, node(1), 0);
    let b = grant(&mut st, 2, node(2), 0);
    assert_ne!(a.shard, b.shard);

    let fx = st.handle_request(RequestId(3), node(1), complete(&a), t(10));
    let ticket = verify_ticket(&fx);
    let fx = st.handle_outcome(
        Outcome::Verified {
            ticket,
            verdict: Ok(verified(a.rows)),
        },
        t(20),
    );
    let to = match fx.as_slice() {
        [Effect::PromoteFiles(p)] if p.ticket == ticket => p.to.clone(),
        other => panic!("expected the promotion, got {other:?}"),
    };
    assert_eq!(to[0], s.out.join(&a.archive_name));
    assert_eq!(st.phase_of(a.dataset, a.shard), Some(ShardPhase::Leased));

    // The promotion is outstanding: b's renewal is decided at once (its commit, then its answer).
    let renew = ControlRequest::Renew {
        dataset: b.dataset,
        shard: b.shard,
        epoch: b.epoch,
        rows_done: 3,
        throttled: 0,
    };
    let fx = st.handle_request(RequestId(4), node(2), renew, t(30));
    assert_eq!(commits(&fx).len(), 1, "{fx:?}");
    let after = commit_ok(&mut st, &fx, 30);
    assert!(matches!(
        answers(&after).as_slice(),
        [(RequestId(4), ControlResponse::Renewed { .. })]
    ));

    // The files are in place: done, gossiped, staging cleared, committed, then answered.
    let fx = st.handle_outcome(
        Outcome::Promoted {
            ticket,
            result: Ok(to.clone()),
        },
        t(40),
    );
    assert_eq!(st.phase_of(a.dataset, a.shard), Some(ShardPhase::Done));
    assert!(
        answers(&fx).is_empty(),
        "answered only once committed: {fx:?}"
    );
    assert_eq!(commits(&fx).len(), 1);
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Gossip(Gossip::Lease { state, .. }) if *state == LeaseState::Done
    )));
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Discard(Discard::Shard { shard, .. }) if *shard == a.shard
    )));
    let after = commit_ok(&mut st, &fx, 40);
    assert_eq!(answers(&after), vec![(RequestId(3), ControlResponse::Ack)]);
    assert_eq!(
        st.datasets[&a.dataset].records[a.shard.0 as usize].ok,
        a.rows
    );
}

#[test]
fn a_failed_promotion_charges_nobody_and_keeps_the_lease() {
    let s = setup(10, 10);
    let mut st = state(&s);
    let a = grant(&mut st, 1, node(1), 0);
    let (ticket, fx) = complete_then_verify(&mut st, &a, Ok(verified(a.rows)));
    assert!(matches!(fx.as_slice(), [Effect::PromoteFiles(_)]));
    let fx = st.handle_outcome(
        Outcome::Promoted {
            ticket,
            result: Err("seeder cannot store x: disk on fire".into()),
        },
        t(30),
    );
    match answers(&fx).as_slice() {
        [(RequestId(2), ControlResponse::Rejected(r))] => {
            assert_eq!(r.reason, RejectReason::StorageFailed);
            assert!(r.detail.contains("retry later"), "{r}");
        }
        other => panic!("{other:?}"),
    }
    assert!(commits(&fx).is_empty(), "nothing to commit: {fx:?}");
    let d = &st.datasets[&a.dataset];
    let entry = d.book.shard(a.shard).unwrap();
    assert_eq!(entry.phase, ShardPhase::Leased);
    assert!(entry.holder(a.epoch).is_some(), "the lease stays");
    assert_eq!(entry.failures, 0);
    assert!(entry.failed_by.is_empty());
    assert_eq!(d.book.admission(node(1), t(30)), Admission::Admitted);
    assert!(st.invalid_deliveries().is_empty());
    // The worker asks again: verified again.
    let fx = st.handle_request(RequestId(3), node(1), complete(&a), t(40));
    verify_ticket(&fx);
}

#[test]
fn an_invalid_delivery_is_charged_to_its_sender_and_frees_the_shard() {
    let s = setup(10, 10);
    let mut st = state(&s);
    let a = grant(&mut st, 1, node(1), 0);
    let (_, fx) = complete_then_verify(
        &mut st,
        &a,
        Err(VerifyFailure::Invalid(Invalid::WrongUrl(3))),
    );
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Discard(Discard::Epoch { epoch, .. }) if *epoch == a.epoch
    )));
    assert!(!fx.iter().any(|e| matches!(e, Effect::PromoteFiles(_))));
    let after = commit_ok(&mut st, &fx, 20);
    match answers(&after).as_slice() {
        [(RequestId(2), ControlResponse::Rejected(r))] => {
            assert_eq!(r.reason, RejectReason::Invalid)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(st.invalid_deliveries().get(&node(1)), Some(&1));
    let entry = st.datasets[&a.dataset].book.shard(a.shard).unwrap().clone();
    assert_eq!(entry.phase, ShardPhase::Free);
    assert_eq!(entry.failed_by, vec![node(1)]);
}

#[test]
fn a_copy_verified_while_the_first_completion_is_stored_waits_then_is_fenced() {
    let s = setup(10, 10);
    let mut st = state(&s);
    let a = grant(&mut st, 1, node(1), 0);
    let b = grant(&mut st, 2, node(2), 0);
    assert_eq!(a.shard, b.shard, "b holds a copy");
    let ta = verify_ticket(&st.handle_request(RequestId(3), node(1), complete(&a), t(10)));
    let tb = verify_ticket(&st.handle_request(RequestId(4), node(2), complete(&b), t(10)));
    let fx = st.handle_outcome(
        Outcome::Verified {
            ticket: ta,
            verdict: Ok(verified(a.rows)),
        },
        t(20),
    );
    let to = match fx.as_slice() {
        [Effect::PromoteFiles(p)] => p.to.clone(),
        other => panic!("{other:?}"),
    };
    let fx = st.handle_outcome(
        Outcome::Verified {
            ticket: tb,
            verdict: Ok(verified(b.rows)),
        },
        t(21),
    );
    assert!(fx.is_empty(), "b waits for a's promotion: {fx:?}");
    let fx = st.handle_outcome(
        Outcome::Promoted {
            ticket: ta,
            result: Ok(to),
        },
        t(30),
    );
    assert_eq!(
        fx.iter()
            .filter(|e| matches!(e, Effect::PromoteFiles(_)))
            .count(),
        0,
        "b's files are never promoted over a's: {fx:?}"
    );
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Discard(Discard::Epoch { epoch, .. }) if *epoch == b.epoch
    )));
    match answers(&fx).as_slice() {
        [(RequestId(4), ControlResponse::Rejected(r))] => {
            assert_eq!(r.reason, RejectReason::Fenced)
        }
        other => panic!("{other:?}"),
    }
    let after = commit_ok(&mut st, &fx, 30);
    assert_eq!(answers(&after), vec![(RequestId(3), ControlResponse::Ack)]);
}

#[test]
fn after_a_storage_failure_nothing_is_committed_and_every_request_is_refused() {
    let s = setup(10, 10);
    let mut st = state(&s);
    let bid = ControlRequest::Bid {
        dataset: s.seeded.id,
        stats: worker_stats(),
    };
    let fx = st.handle_request(RequestId(1), node(1), bid.clone(), t(0));
    let commit = commits(&fx)[0];
    let fx = st.handle_outcome(
        Outcome::Committed {
            commit,
            result: Err(super::effects::CommitFailure {
                cause: "disk full".into(),
                free: Some(0),
            }),
        },
        t(1),
    );
    match answers(&fx).as_slice() {
        [(RequestId(1), ControlResponse::Rejected(r))] => {
            assert_eq!(r.reason, RejectReason::StorageFailed);
            assert!(r.detail.contains("disk full"), "{r}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Gossip(_))),
        "an uncommitted grant is not gossiped"
    );
    assert!(st.storage_failure().is_some());
    let fx = st.handle_request(RequestId(2), node(2), bid, t(2));
    assert!(commits(&fx).is_empty());
    assert!(matches!(
        answers(&fx).as_slice(),
        [(RequestId(2), ControlResponse::Rejected(r))] if r.reason == RejectReason::StorageFailed
    ));
    assert!(st.handle_timeout(t(1 << 40)).is_empty());
}
