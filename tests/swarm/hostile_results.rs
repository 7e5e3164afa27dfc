//! A hostile worker against a real in-process seeder over loopback (issue 8, attacks 5–7):
//! forged, truncated, extra-member and wrong-hash deliveries are refused as invalid and the
//! shards are finished by an honest worker, with no forged member name in the merged results;
//! a transfer header announcing 1 TiB is refused before any byte; a garbage results file in
//! `--out` does not stop finalize (it is named and its rows are listed as failed), on every
//! rerun.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ldawt::archive::ArchiveWriter;
use ldawt::engine::{Compression, archive_stem};
use ldawt::fixture::{self, FixtureConfig};
use ldawt::input::UrlRow;
use ldawt::model::ids::NodeId;
use ldawt::model::naming::{safe_segment, url_stem};
use ldawt::model::shard::ShardSizing;
use ldawt::net::NetError;
use ldawt::node::{NodeConfig, NodeOutcome};
use ldawt::protocol::control::{ControlRequest, ControlResponse, Grant, RejectReason};
use ldawt::protocol::transfer::{FileKind, TransferHeader};
use ldawt::results::ResultsWriter;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::kit::{
    self, claimed_row, deliver, finished, forgery_leases, insider, rows_of, spawn_node,
    start_seeder, stats, take_lease, worker_config,
};
use super::util::{assert_exactly_once, fixture_seed, merged_results};

const ROWS: u64 = 48;

/// A seeder (no work of its own) of `ROWS` fixture rows in shards of 12.
fn seeder_config(tmp: &Path, input: PathBuf, out: &Path) -> NodeConfig {
    let mut cfg = kit::seeder_config(&tmp.join("seeder"), input, out, ShardSizing::Rows(12));
    cfg.lease = forgery_leases();
    cfg
}

/// What a forger can build without downloading anything: an archive and results consistent
/// with each other (made-up bodies), then spoiled by `variant`.
#[derive(Debug, Clone, Copy)]
enum Variant {
    /// A 1-byte archive; results claim every row ok under a traversal member name.
    Forged,
    /// The consistent archive cut in half.
    Truncated,
    /// One member more than the results name.
    ExtraMember,
    /// One row's sha256 is not its member's.
    WrongHash,
}

fn build(dir: &Path, g: &Grant, rows: &[UrlRow], variant: Variant) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let archive = dir.join(&g.archive_name);
    let results = dir.join("r.results.parquet");
    let top = archive_stem(&archive);
    let mut a =
        ArchiveWriter::create(&archive, &top, Compression::Gzip { level: 1 }, 0, false).unwrap();
    let mut w = ResultsWriter::create(&results).unwrap();
    for (n, r) in rows.iter().enumerate() {
        let url = r.url.clone().unwrap();
        let body = format!("not really image {}", r.index)
            .repeat(50)
            .into_bytes();
        let member = match variant {
            Variant::Forged => "../../../../etc/cron.d/forged".to_string(),
            _ => format!(
                "{top}/{}/{}.jpg",
                safe_segment(r.class.as_deref().unwrap()),
                url_stem(&url)
            ),
        };
        let mut sha = hex::encode(Sha256::digest(&body));
        if matches!(variant, Variant::WrongHash) && n == 3 {
            sha = hex::encode([9u8; 32]);
        }
        if !matches!(variant, Variant::Forged) {
            a.append_bytes(&member, &body, true).unwrap();
        }
        w.push(claimed_row(r, body.len(), sha, member)).unwrap();
    }
    if matches!(variant, Variant::ExtraMember) {
        a.append_bytes(&format!("{top}/extra/payload.jpg"), b"payload", false)
            .unwrap();
    }
    a.finish().unwrap();
    w.finish().unwrap();
    match variant {
        Variant::Forged => std::fs::write(&archive, b"x").unwrap(),
        Variant::Truncated => {
            let bytes = std::fs::read(&archive).unwrap();
            std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
        }
        _ => {}
    }
    (archive, results)
}

/// Every file in the seeder's staging area.
fn staged(out: &Path) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(datasets) = std::fs::read_dir(out.join(".incoming")) {
        for d in datasets.flatten() {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                names.push(f.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names
}

/// The staged files whose names contain `tag`, once none is left or after 10 s.
async fn staged_after_settling(out: &Path, tag: &str) -> Vec<String> {
    let matching = || -> Vec<String> {
        staged(out)
            .into_iter()
            .filter(|f| f.contains(tag))
            .collect()
    };
    for _ in 0..200 {
        if matching().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    matching()
}

/// Runs a seeder again on the same data dir, once the previous run has let go of its lease
/// database (it closes in the background after the node returns).
async fn rerun(cfg: NodeConfig) -> NodeOutcome {
    for _ in 0..100 {
        let run = ldawt::node::run(
            cfg.clone(),
            CancellationToken::new(),
            |_: &ldawt::node::Ready| {},
        );
        match tokio::time::timeout(Duration::from_secs(120), run).await {
            Ok(Ok(outcome)) => return outcome,
            Ok(Err(ldawt::node::NodeError::Store(_))) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Ok(Err(e)) => panic!("the rerun failed: {e}"),
            Err(_) => panic!("the rerun did not finish"),
        }
    }
    panic!("the lease database stayed locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_broken_deliveries_are_refused_and_honest_workers_finish_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture::start(FixtureConfig::default()).await.unwrap();
    let input = fixture_seed(&fx, tmp.path(), "birds", ROWS, "/p", ("species", 3));
    let out = tmp.path().join("out");
    let seeder = start_seeder(seeder_config(tmp.path(), input, &out)).await;
    let (seeder_peer, dataset) = (seeder.peer, seeder.dataset);
    // A hostile operator with many identities: each invalid delivery gets its sender backed off
    // (checked below), so every attack comes from a fresh one.
    let mut forgers = Vec::new();
    for variant in [
        Variant::Forged,
        Variant::Truncated,
        Variant::ExtraMember,
        Variant::WrongHash,
    ] {
        let evil = insider(seeder.join.clone()).await;
        let g = take_lease(&evil, seeder_peer, dataset).await;
        let rows = rows_of(&evil, seeder_peer, &g).await;
        let (archive, results) =
            build(&tmp.path().join(format!("{variant:?}")), &g, &rows, variant);
        let answer = deliver(&evil, seeder_peer, &g, [&archive, &results], 1 << 40).await;
        match &answer {
            ControlResponse::Rejected(r) => {
                assert_eq!(r.reason, RejectReason::Invalid, "{variant:?}: {r}")
            }
            other => panic!("{variant:?} was accepted: {other:?}"),
        }
        let again = evil
            .request(
                seeder_peer,
                ControlRequest::Bid {
                    dataset,
                    stats: stats(),
                },
            )
            .await
            .unwrap();
        assert!(
            !matches!(again, ControlResponse::Granted(_)),
            "{variant:?}: the sender of an invalid shard gets no new lease at once: {again:?}"
        );
        // The refusal is answered at once; the refused files are deleted off the seeder's
        // actor, in its ordered file lane, a moment later.
        let epoch_tag = format!(".e{}.", g.epoch);
        let left = staged_after_settling(&out, &epoch_tag).await;
        assert!(
            left.is_empty(),
            "{variant:?}: the refused files are deleted: {left:?}"
        );
        forgers.push(NodeId(evil.local_peer_id()));
    }

    // A header announcing 1 TiB (a sparse file: nothing is read unless the seeder accepts).
    let evil = insider(seeder.join.clone()).await;
    forgers.push(NodeId(evil.local_peer_id()));
    let g = take_lease(&evil, seeder_peer, dataset).await;
    let huge = tmp.path().join("huge.tar.gz");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let header = TransferHeader {
        dataset,
        shard: g.shard,
        epoch: g.epoch,
        kind: FileKind::Archive,
        size: 1 << 40,
        sha256: [0; 32],
    };
    let sent = tokio::time::timeout(
        Duration::from_secs(30),
        evil.send_file(seeder_peer, header, &huge),
    )
    .await
    .expect("refused at once, not streamed");
    match sent {
        Err(NetError::Rejected(r)) => assert_eq!(r.reason, RejectReason::NotAllowed, "{r}"),
        other => panic!("a 1 TiB header was not refused: {other:?}"),
    }
    assert!(
        !staged(&out).iter().any(|f| f.ends_with(".part")),
        "no partial file: {:?}",
        staged(&out)
    );
    let _ = std::fs::remove_file(&huge);
    let r = evil
        .request(
            seeder_peer,
            ControlRequest::Abandon {
                dataset,
                shard: g.shard,
                epoch: g.epoch,
                reason: "done probing".into(),
                failed: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(r, ControlResponse::Ack);

    // An honest worker finishes everything.
    let honest = worker_config(&tmp.path().join("honest"), vec![seeder.join]);
    let (_, worker) = spawn_node(honest, CancellationToken::new());
    let outcome = finished(seeder.task, Duration::from_secs(120), "the seeder finishes").await;
    let report = &outcome.reports[0];
    assert_eq!((report.ok, report.failed, report.shards_done), (ROWS, 0, 4));
    // Each refused delivery is charged to its sender (backed off, checked above), not to the
    // shard: forgers cannot use up a shard's retries (four of them would have cost four
    // attempts; an honest lease expiring on a loaded machine may still cost one).
    assert!(
        report.shards.iter().map(|s| s.failures).sum::<u32>() < 4,
        "refused deliveries cost their shards attempts: {:?}",
        report.shards
    );
    assert!(
        report
            .shards
            .iter()
            .all(|s| s.done_by.as_ref().is_some_and(|p| !forgers.contains(p))),
        "{:?}",
        report.shards
    );
    let merged = merged_results(&out);
    assert!(
        merged
            .iter()
            .all(|r| r.3.as_deref().is_some_and(|m| !m.contains("..")
                && !m.contains("etc/cron.d")
                && !m.contains("extra/"))),
        "a forged member reached the merged results"
    );
    assert_exactly_once(&out, ROWS, ROWS);
    assert!(!out.join(".incoming").exists(), "staging area cleared");
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_results_file_in_out_is_reported_and_finalize_still_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture::start(FixtureConfig::default()).await.unwrap();
    let rows = 24u64;
    let input = fixture_seed(&fx, tmp.path(), "bees", rows, "/b", ("bee", 2));
    let out = tmp.path().join("out");
    let seeder = start_seeder(seeder_config(tmp.path(), input.clone(), &out)).await;
    let honest = worker_config(&tmp.path().join("honest"), vec![seeder.join]);
    let (_, worker) = spawn_node(honest, CancellationToken::new());
    let first = finished(seeder.task, Duration::from_secs(120), "the seeder finishes").await;
    assert_eq!(first.reports[0].ok, rows);
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;

    // One shard's results file in --out is replaced by garbage; the seeder is rerun (twice).
    let bad = out.join(format!(
        "{}.results.parquet",
        archive_stem(Path::new(&first.reports[0].shards[1].archive))
    ));
    assert!(bad.exists(), "{}", bad.display());
    std::fs::write(&bad, b"PAR1 this is not parquet PAR1").unwrap();
    for _ in 0..2 {
        let outcome = rerun(seeder_config(tmp.path(), input.clone(), &out)).await;
        let r = &outcome.reports[0];
        assert_eq!((r.ok, r.failed), (rows - 12, 12), "{r:?}");
        assert_eq!(r.error_breakdown.get("results_unreadable"), Some(&12));
        assert_eq!(r.unreadable_files.len(), 1, "{:?}", r.unreadable_files);
        assert!(
            r.unreadable_files[0].contains(&bad.file_name().unwrap().to_string_lossy().to_string()),
            "the file is named: {:?}",
            r.unreadable_files
        );
        assert_eq!(merged_results(&out).len() as u64, rows);
    }
}
