//! Table definitions, versioned by name: a change of value layout gets a new table name.

use redb::TableDefinition;

use crate::model::ids::{DatasetId, ShardId};

/// Dataset id (16 bytes) → postcard (layout version, record): see `records::encode_dataset`.
pub(super) const DATASETS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("datasets-2");
/// The unversioned dataset table of earlier builds: read when `DATASETS` lacks a dataset, never
/// written (the next write of the dataset goes to `DATASETS`).
pub(super) const LEGACY_DATASETS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("datasets-1");
/// Dataset id (16 bytes) ++ shard number (4 bytes, big-endian) → postcard `ShardRecord`
/// (`-2`: holders carry `progress_at`, entries `failed_by`).
pub(super) const SHARDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shards-2");
/// Dataset id (16 bytes) → the next epoch to hand out (never decreases): written in the same
/// transaction as every grant, so an epoch is never issued twice whatever the restart pattern.
pub(super) const EPOCHS: TableDefinition<&[u8], u64> = TableDefinition::new("epochs-1");

/// The key of one shard; big-endian so a dataset's shards sort by number.
pub(super) fn shard_key(dataset: DatasetId, shard: ShardId) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..16].copy_from_slice(&dataset.0);
    k[16..].copy_from_slice(&shard.0.to_be_bytes());
    k
}
