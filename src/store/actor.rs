//! The thread that owns the redb database and serves [`Msg`]s one at a time; every write is a
//! committed transaction before the reply is sent.

use std::sync::mpsc;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::records::{decode_dataset, decode_legacy_dataset, encode_dataset};
use super::tables::{DATASETS, EPOCHS, LEGACY_DATASETS, SHARDS, shard_key};
use super::{DatasetRecord, Msg, ShardRecord, StoreError};
use crate::model::ids::{DatasetId, Epoch, ShardId};

pub(super) fn spawn(db: Database) -> std::io::Result<mpsc::Sender<Msg>> {
    let (tx, rx) = mpsc::channel::<Msg>();
    std::thread::Builder::new()
        .name("ldawt-store".into())
        .spawn(move || {
            // The first failed write stops all later ones: what is committed stays a state
            // the seeder passed through.
            let mut failed: Option<String> = None;
            let mut write = |f: &mut dyn FnMut() -> Result<(), StoreError>| {
                if let Some(e) = &failed {
                    return Err(StoreError::Failed(e.clone()));
                }
                let r = f();
                if let Err(e) = &r {
                    failed = Some(e.to_string());
                }
                r
            };
            while let Ok(msg) = rx.recv() {
                match msg {
                    Msg::PutDataset(rec, reply) => {
                        let _ = reply.send(write(&mut || put_dataset(&db, &rec)));
                    }
                    Msg::PutShards(ds, shards, next_epoch, reply) => {
                        let r = write(&mut || put_shards(&db, ds, &shards, next_epoch));
                        let _ = reply.send(r);
                    }
                    Msg::NextEpoch(ds, reply) => {
                        let _ = reply.send(next_epoch(&db, ds));
                    }
                    Msg::Load(ds, reply) => {
                        let _ = reply.send(load(&db, ds));
                    }
                    Msg::List(reply) => {
                        let _ = reply.send(list(&db));
                    }
                }
            }
        })?;
    Ok(tx)
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(Box::new(e.into()))
}

fn put_dataset(db: &Database, rec: &DatasetRecord) -> Result<(), StoreError> {
    let bytes = encode_dataset(rec)?;
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut table = txn.open_table(DATASETS).map_err(db_err)?;
        table
            .insert(rec.seeded.id.0.as_slice(), bytes.as_slice())
            .map_err(db_err)?;
    }
    txn.commit().map_err(db_err)
}

fn put_shards(
    db: &Database,
    ds: DatasetId,
    shards: &[(ShardId, ShardRecord)],
    next_epoch: Option<Epoch>,
) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut table = txn.open_table(SHARDS).map_err(db_err)?;
        for (id, rec) in shards {
            let bytes = postcard::to_stdvec(rec)?;
            table
                .insert(shard_key(ds, *id).as_slice(), bytes.as_slice())
                .map_err(db_err)?;
        }
    }
    if let Some(next) = next_epoch {
        let mut table = txn.open_table(EPOCHS).map_err(db_err)?;
        let stored = table
            .get(ds.0.as_slice())
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0);
        table
            .insert(ds.0.as_slice(), next.0.max(stored))
            .map_err(db_err)?;
    }
    txn.commit().map_err(db_err)
}

fn next_epoch(db: &Database, ds: DatasetId) -> Result<Epoch, StoreError> {
    let txn = db.begin_read().map_err(db_err)?;
    let table = match txn.open_table(EPOCHS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Epoch(0)),
        Err(e) => return Err(db_err(e)),
    };
    Ok(Epoch(
        table
            .get(ds.0.as_slice())
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0),
    ))
}

fn load(
    db: &Database,
    ds: DatasetId,
) -> Result<Option<(DatasetRecord, Vec<ShardRecord>)>, StoreError> {
    let txn = db.begin_read().map_err(db_err)?;
    let Some(rec) = dataset(&txn, ds)? else {
        return Ok(None);
    };
    let mut shards = Vec::with_capacity(rec.seeded.shard_rows.len());
    let table = match txn.open_table(SHARDS) {
        Ok(t) => Some(t),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(db_err(e)),
    };
    if let Some(table) = table {
        let start = shard_key(ds, ShardId(0));
        let end = shard_key(ds, ShardId(u32::MAX));
        for item in table
            .range(start.as_slice()..=end.as_slice())
            .map_err(db_err)?
        {
            let (k, v) = item.map_err(db_err)?;
            let record = postcard::from_bytes(v.value()).map_err(|source| {
                let key = k.value();
                let shard = key.get(16..20).and_then(|b| <[u8; 4]>::try_from(b).ok());
                StoreError::Shard {
                    dataset: ds.to_hex(),
                    shard: ShardId(shard.map_or(u32::MAX, u32::from_be_bytes)),
                    source,
                }
            })?;
            shards.push(record);
        }
    }
    Ok(Some((rec, shards)))
}

/// The record of `ds`: from the versioned table, else from the legacy one.
fn dataset(
    txn: &redb::ReadTransaction,
    ds: DatasetId,
) -> Result<Option<DatasetRecord>, StoreError> {
    let key = ds.0.as_slice();
    for (table, legacy) in [(DATASETS, false), (LEGACY_DATASETS, true)] {
        let t = match txn.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => continue,
            Err(e) => return Err(db_err(e)),
        };
        if let Some(raw) = t.get(key).map_err(db_err)? {
            let rec = if legacy {
                decode_legacy_dataset(key, raw.value())?
            } else {
                decode_dataset(key, raw.value())?
            };
            return Ok(Some(rec));
        }
    }
    Ok(None)
}

fn list(db: &Database) -> Result<Vec<DatasetRecord>, StoreError> {
    let txn = db.begin_read().map_err(db_err)?;
    let mut out = std::collections::BTreeMap::new();
    // Legacy records first: a dataset written since by this build replaces its legacy record.
    for (table, legacy) in [(LEGACY_DATASETS, true), (DATASETS, false)] {
        let t = match txn.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => continue,
            Err(e) => return Err(db_err(e)),
        };
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let rec = if legacy {
                decode_legacy_dataset(k.value(), v.value())?
            } else {
                decode_dataset(k.value(), v.value())?
            };
            out.insert(rec.seeded.id, rec);
        }
    }
    Ok(out.into_values().collect())
}
