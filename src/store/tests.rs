//! Store tests on a temporary file, including a reopen.

use std::time::Duration;

use super::*;
use crate::model::ids::seeded_node_id as node;
use crate::model::lease::{LeaseBook, LeaseConfig, ShardPhase};
use crate::model::time::UnixMillis;
use crate::seed::SeededDataset;

fn record(id: DatasetId, rows: &[u64]) -> DatasetRecord {
    DatasetRecord {
        seeded: SeededDataset {
            id,
            name: "ds".into(),
            source: "/x/ds.parquet".into(),
            rows_total: rows.iter().sum(),
            shard_rows: rows.to_vec(),
            archive_names: (0..rows.len())
                .map(|i| format!("ds-{i:05}.tar.gz"))
                .collect(),
        },
        lease: LeaseConfig {
            ttl: Duration::from_secs(5),
            max_retries: 2,
            speculative: true,
            copy_after: Duration::ZERO,
        },
        created_at: UnixMillis(1),
    }
}

#[tokio::test]
async fn reopening_restores_the_lease_book() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.redb");
    let ds = DatasetId([3; 16]);
    let other = DatasetId([4; 16]);
    let rec = record(ds, &[5, 6, 7]);
    let mut book = LeaseBook::new(rec.lease, &rec.seeded.shard_rows);
    let a = book.handle_bid(node(1), true, UnixMillis(100)).unwrap();
    let b = book.handle_bid(node(2), true, UnixMillis(100)).unwrap();
    book.handle_complete(b.shard, b.epoch, node(2), UnixMillis(200))
        .unwrap();
    {
        let store = Store::open(&path).unwrap();
        assert!(store.load(ds).await.unwrap().is_none());
        store.put_dataset(rec.clone()).await.unwrap();
        store.put_dataset(record(other, &[1])).await.unwrap();
        let shards: Vec<_> = book
            .shards()
            .iter()
            .enumerate()
            .map(|(i, e)| (ShardId(i as u32), ShardRecord::new(e.clone())))
            .collect();
        store.put_shards(ds, shards.clone()).await.unwrap();
        assert_eq!(store.next_epoch(ds).await.unwrap(), Epoch(0));
        store
            .put_shards_with_epoch(ds, shards.clone(), Epoch(9))
            .await
            .unwrap();
        // The mark never goes down.
        store
            .put_shards_with_epoch(ds, shards, Epoch(4))
            .await
            .unwrap();
        // A second open while the first handle lives is refused (one writer per file).
        assert!(Store::open(&path).is_err());
    }
    // Let the actor thread drop the database.
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(s) = Store::open(&path) {
            reopened = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = reopened.expect("database reopens after the handle is dropped");
    let (got, shards) = store.load(ds).await.unwrap().unwrap();
    assert_eq!(got, rec);
    assert_eq!(shards.len(), 3);
    let restored = LeaseBook::restore(
        got.lease,
        shards.into_iter().map(|s| s.entry).collect(),
        store.next_epoch(ds).await.unwrap(),
        UnixMillis(100),
    );
    // Holders keep their leases, with at least the restart grace to renew.
    let grace = UnixMillis(100).plus(got.lease.ttl.max(crate::model::lease::MIN_RESTART_GRACE));
    let mut expected = book.shards().to_vec();
    for h in expected.iter_mut().flat_map(|s| s.holders.iter_mut()) {
        h.expires_at = h.expires_at.max(grace);
    }
    assert_eq!(restored.shards(), expected.as_slice());
    assert_eq!(restored.shard(b.shard).unwrap().phase, ShardPhase::Done);
    let h = restored
        .check(a.shard, a.epoch, node(1), UnixMillis(101))
        .unwrap();
    assert_eq!(h.expires_at, a.expires_at.max(grace));
    assert!(restored.next_epoch() > b.epoch);
    assert_eq!(store.next_epoch(ds).await.unwrap(), Epoch(9));
    assert_eq!(restored.next_epoch(), Epoch(9), "the persisted mark wins");
    let mut names: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.seeded.id)
        .collect();
    names.sort();
    assert_eq!(names, vec![ds, other]);
    // The other dataset's shards do not leak into this one's.
    let (_, none) = store.load(other).await.unwrap().unwrap();
    assert!(none.is_empty());
}

/// Writes `bytes` under `ds` into `table` of a fresh database at `path`, bypassing the store.
fn write_raw(
    path: &std::path::Path,
    table: redb::TableDefinition<&[u8], &[u8]>,
    ds: DatasetId,
    bytes: &[u8],
) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(table).unwrap();
        t.insert(ds.0.as_slice(), bytes).unwrap();
    }
    txn.commit().unwrap();
}

#[tokio::test]
async fn a_dataset_record_of_an_unknown_version_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.redb");
    let ds = DatasetId([9; 16]);
    let mut bytes = postcard::to_stdvec(&99u32).unwrap();
    bytes.extend_from_slice(&[1, 2, 3]);
    write_raw(&path, super::tables::DATASETS, ds, &bytes);
    let store = Store::open(&path).unwrap();
    let err = store.load(ds).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Record(RecordError::UnknownVersion {
                found: 99,
                supported: DATASET_RECORD_VERSION,
                ..
            })
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("layout version 99") && text.contains(&ds.to_hex()),
        "{text}"
    );
    assert!(store.list().await.is_err());
}

#[tokio::test]
async fn a_record_of_an_earlier_build_is_read_and_rewritten_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.redb");
    let ds = DatasetId([8; 16]);
    let rec = record(ds, &[2, 3]);
    // Earlier builds stored the record itself, unversioned, in `datasets-1`.
    let legacy = postcard::to_stdvec(&rec).unwrap();
    write_raw(&path, super::tables::LEGACY_DATASETS, ds, &legacy);
    let store = Store::open(&path).unwrap();
    let (got, _) = store.load(ds).await.unwrap().unwrap();
    assert_eq!(got, rec);
    let mut changed = rec.clone();
    changed.created_at = UnixMillis(77);
    store.put_dataset(changed.clone()).await.unwrap();
    assert_eq!(store.load(ds).await.unwrap().unwrap().0, changed);
    assert_eq!(store.list().await.unwrap(), vec![changed]);
}
