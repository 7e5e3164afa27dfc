//! The values kept in the lease database (postcard-encoded), and the stored layout of a dataset
//! record: its own versioned type ([`SeededDatasetRecord`] behind [`DATASET_RECORD_VERSION`]),
//! so a change to the seed manifest's type cannot silently change what redb holds.

use serde::{Deserialize, Serialize};

use crate::model::ids::DatasetId;
use crate::model::lease::{LeaseConfig, ShardEntry};
use crate::model::time::UnixMillis;
use crate::seed::SeededDataset;

/// The layout of the dataset records this build writes and reads (the `datasets-2` table).
pub const DATASET_RECORD_VERSION: u32 = 1;

/// A seeded dataset (as in its manifest) with its lease policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// Id, name, source, rows and shards.
    pub seeded: SeededDataset,
    /// Lease policy.
    pub lease: LeaseConfig,
    /// When it was first seeded.
    pub created_at: UnixMillis,
}

/// A seeded dataset as the lease database stores it (version 1 of the layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededDatasetRecord {
    /// The dataset.
    pub id: DatasetId,
    /// Human name (the seed's stem).
    pub name: String,
    /// The seed path.
    pub source: String,
    /// Rows in total.
    pub rows_total: u64,
    /// Rows per shard.
    pub shard_rows: Vec<u64>,
    /// Archive name per shard.
    pub archive_names: Vec<String>,
}

/// Version 1 of a stored dataset record; also the layout of the unversioned `datasets-1`
/// table of earlier builds, which is read as such.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredDatasetV1 {
    seeded: SeededDatasetRecord,
    lease: LeaseConfig,
    created_at: UnixMillis,
}

/// A stored dataset record that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Written by a build with another layout.
    #[error(
        "the record of dataset {dataset} has layout version {found}; this build reads version \
         {supported} (written by another ldawt version? use that version, or another --data-dir)"
    )]
    UnknownVersion {
        /// The dataset (hex), from the record's key.
        dataset: String,
        /// The version found.
        found: u32,
        /// [`DATASET_RECORD_VERSION`].
        supported: u32,
    },
    /// Not a record of the version it claims.
    #[error("the record of dataset {dataset} is unreadable: {source}")]
    Malformed {
        /// The dataset (hex), from the record's key.
        dataset: String,
        /// The decoding error.
        source: postcard::Error,
    },
}

impl From<&DatasetRecord> for StoredDatasetV1 {
    fn from(r: &DatasetRecord) -> Self {
        let s = &r.seeded;
        Self {
            seeded: SeededDatasetRecord {
                id: s.id,
                name: s.name.clone(),
                source: s.source.clone(),
                rows_total: s.rows_total,
                shard_rows: s.shard_rows.clone(),
                archive_names: s.archive_names.clone(),
            },
            lease: r.lease,
            created_at: r.created_at,
        }
    }
}

impl From<StoredDatasetV1> for DatasetRecord {
    fn from(r: StoredDatasetV1) -> Self {
        let s = r.seeded;
        Self {
            seeded: SeededDataset {
                id: s.id,
                name: s.name,
                source: s.source,
                rows_total: s.rows_total,
                shard_rows: s.shard_rows,
                archive_names: s.archive_names,
            },
            lease: r.lease,
            created_at: r.created_at,
        }
    }
}

/// The stored bytes of `rec`: the layout version, then the record.
pub(super) fn encode_dataset(rec: &DatasetRecord) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(&(DATASET_RECORD_VERSION, StoredDatasetV1::from(rec)))
}

/// Reads a versioned record stored under `key`.
pub(super) fn decode_dataset(key: &[u8], bytes: &[u8]) -> Result<DatasetRecord, RecordError> {
    let malformed = |source| RecordError::Malformed {
        dataset: hex::encode(key),
        source,
    };
    let (version, rest) = postcard::take_from_bytes::<u32>(bytes).map_err(malformed)?;
    if version != DATASET_RECORD_VERSION {
        return Err(RecordError::UnknownVersion {
            dataset: hex::encode(key),
            found: version,
            supported: DATASET_RECORD_VERSION,
        });
    }
    let rec: StoredDatasetV1 = postcard::from_bytes(rest).map_err(malformed)?;
    Ok(rec.into())
}

/// Reads a record of the unversioned table of earlier builds (the version 1 layout).
pub(super) fn decode_legacy_dataset(
    key: &[u8],
    bytes: &[u8],
) -> Result<DatasetRecord, RecordError> {
    let rec: StoredDatasetV1 =
        postcard::from_bytes(bytes).map_err(|source| RecordError::Malformed {
            dataset: hex::encode(key),
            source,
        })?;
    Ok(rec.into())
}

/// A shard's lease entry plus the outcome its completion reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// Lease state.
    pub entry: ShardEntry,
    /// Rows stored (once done).
    pub ok: u64,
    /// Rows failed (once done).
    pub failed: u64,
    /// Bytes stored (once done).
    pub bytes: u64,
}

impl ShardRecord {
    /// A record with no outcome yet.
    pub fn new(entry: ShardEntry) -> Self {
        Self {
            entry,
            ok: 0,
            failed: 0,
            bytes: 0,
        }
    }
}
