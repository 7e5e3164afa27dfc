//! Shard records written before the lease book was typed (holders and completers as `String`,
//! epochs as `u64`) read back exactly: the typed record has the same postcard bytes.

use serde::Serialize;

use super::tables::{SHARDS, shard_key};
use super::*;
use crate::model::ids::{NodeId, ShardId, seeded_node_id as node};
use crate::model::lease::{Holder, LeaseConfig, ShardEntry, ShardPhase};
use crate::model::time::UnixMillis;
use crate::seed::SeededDataset;

/// The holder as earlier builds declared it.
#[derive(Serialize)]
struct OldHolder {
    peer: String,
    epoch: u64,
    granted_at: UnixMillis,
    expires_at: UnixMillis,
    rows_done: u64,
    progress_at: UnixMillis,
    speculative: bool,
}

/// The shard entry as earlier builds declared it.
#[derive(Serialize)]
struct OldShardEntry {
    rows: u64,
    phase: ShardPhase,
    holders: Vec<OldHolder>,
    failures: u32,
    failed_by: Vec<String>,
    done_epoch: Option<u64>,
    done_by: Option<String>,
    last_error: Option<String>,
}

/// The shard record as earlier builds declared it.
#[derive(Serialize)]
struct OldShardRecord {
    entry: OldShardEntry,
    ok: u64,
    failed: u64,
    bytes: u64,
}

/// A leased shard (a holder and a copy, one earlier loser) and a done one, in the old shape,
/// with the typed records they must read as.
fn old_and_typed(a: NodeId, b: NodeId, c: NodeId) -> Vec<(OldShardRecord, ShardRecord)> {
    let old_holder = |peer: NodeId, epoch: u64, speculative: bool| OldHolder {
        peer: peer.to_string(),
        epoch,
        granted_at: UnixMillis(10),
        expires_at: UnixMillis(5_000 + epoch),
        rows_done: 3,
        progress_at: UnixMillis(20),
        speculative,
    };
    let holder = |peer: NodeId, epoch: u64, speculative: bool| Holder {
        peer,
        epoch: Epoch(epoch),
        granted_at: UnixMillis(10),
        expires_at: UnixMillis(5_000 + epoch),
        rows_done: 3,
        progress_at: UnixMillis(20),
        speculative,
    };
    let leased_old = OldShardRecord {
        entry: OldShardEntry {
            rows: 7,
            phase: ShardPhase::Leased,
            holders: vec![old_holder(a, 300, false), old_holder(b, 301, true)],
            failures: 1,
            failed_by: vec![c.to_string()],
            done_epoch: None,
            done_by: None,
            last_error: Some("lease expired".into()),
        },
        ok: 0,
        failed: 0,
        bytes: 0,
    };
    let leased = ShardRecord::new(ShardEntry {
        rows: 7,
        phase: ShardPhase::Leased,
        holders: vec![holder(a, 300, false), holder(b, 301, true)],
        failures: 1,
        failed_by: vec![c],
        done_epoch: None,
        done_by: None,
        last_error: Some("lease expired".into()),
    });
    let done_old = OldShardRecord {
        entry: OldShardEntry {
            rows: 9,
            phase: ShardPhase::Done,
            holders: vec![],
            failures: 0,
            failed_by: vec![],
            done_epoch: Some(1 << 40),
            done_by: Some(b.to_string()),
            last_error: None,
        },
        ok: 8,
        failed: 1,
        bytes: 12_345,
    };
    let done = ShardRecord {
        entry: ShardEntry {
            rows: 9,
            phase: ShardPhase::Done,
            holders: vec![],
            failures: 0,
            failed_by: vec![],
            done_epoch: Some(Epoch(1 << 40)),
            done_by: Some(b),
            last_error: None,
        },
        ok: 8,
        failed: 1,
        bytes: 12_345,
    };
    vec![(leased_old, leased), (done_old, done)]
}

fn dataset(id: DatasetId) -> DatasetRecord {
    DatasetRecord {
        seeded: SeededDataset {
            id,
            name: "ds".into(),
            source: "/x/ds.parquet".into(),
            rows_total: 16,
            shard_rows: vec![7, 9],
            archive_names: vec!["ds-00000.tar.gz".into(), "ds-00001.tar.gz".into()],
        },
        lease: LeaseConfig::default(),
        created_at: UnixMillis(1),
    }
}

/// A store at `path` whose dataset `ds` has `pairs`' old-shape records written straight into
/// redb, as a build before the typed ids left them.
async fn store_with_old_records(
    path: &std::path::Path,
    ds: DatasetId,
    pairs: &[(OldShardRecord, ShardRecord)],
) -> Store {
    let old: Vec<Vec<u8>> = pairs
        .iter()
        .map(|(o, _)| postcard::to_stdvec(o).unwrap())
        .collect();
    write_shards(path, ds, &old);
    let store = Store::open(path).unwrap();
    store.put_dataset(dataset(ds)).await.unwrap();
    store
}

/// Writes raw shard values of `ds` into a database at `path`, bypassing the store.
fn write_shards(path: &std::path::Path, ds: DatasetId, values: &[Vec<u8>]) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(SHARDS).unwrap();
        for (i, v) in values.iter().enumerate() {
            let key = shard_key(ds, ShardId(i as u32));
            t.insert(key.as_slice(), v.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}

#[test]
fn typed_records_encode_to_the_bytes_of_the_old_shape() {
    for (old, typed) in old_and_typed(node(1), node(2), node(3)) {
        assert_eq!(
            postcard::to_stdvec(&typed).unwrap(),
            postcard::to_stdvec(&old).unwrap()
        );
    }
}

#[tokio::test]
async fn records_written_by_the_old_shape_load_as_typed_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.redb");
    let ds = DatasetId([5; 16]);
    let pairs = old_and_typed(node(1), node(2), node(3));
    let store = store_with_old_records(&path, ds, &pairs).await;
    let (_, shards) = store.load(ds).await.unwrap().unwrap();
    let typed: Vec<ShardRecord> = pairs.into_iter().map(|(_, t)| t).collect();
    assert_eq!(shards, typed);
}

#[tokio::test]
async fn a_stored_holder_that_is_no_peer_id_is_an_error_naming_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.redb");
    let ds = DatasetId([6; 16]);
    let mut pairs = old_and_typed(node(1), node(2), node(3));
    pairs[1].0.entry.done_by = Some("peer-a".into());
    let store = store_with_old_records(&path, ds, &pairs).await;
    let err = store.load(ds).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Shard { shard: ShardId(1), dataset, .. } if *dataset == ds.to_hex()),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("the record of shard-00001 of dataset"),
        "{err}"
    );
}
