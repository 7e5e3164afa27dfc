//! The seeder's durable state in redb: dataset records and every shard's lease entry, written
//! in one write transaction per transition, so a seeder killed with `kill -9` and restarted
//! resumes exactly (done shards stay done, in-flight leases keep holders and expiries).
//!
//! The highest epoch handed out is kept per dataset beside the shards and only grows.
//!
//! redb is synchronous and allows one writer per file, so the database is owned by one actor
//! thread (iroh style); [`Store`] is a cloneable handle that sends it messages.

mod actor;
mod records;
mod tables;

use std::path::Path;

use tokio::sync::oneshot;

use crate::model::ids::{DatasetId, Epoch, ShardId};

pub use records::{
    DATASET_RECORD_VERSION, DatasetRecord, RecordError, SeededDatasetRecord, ShardRecord,
};

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened (another process holds it, corrupt file…).
    #[error("cannot open the lease database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// The redb error.
        source: Box<redb::Error>,
    },
    /// A read or write failed.
    #[error("lease database: {0}")]
    Db(#[from] Box<redb::Error>),
    /// A stored value could not be decoded.
    #[error("lease database holds an unreadable record: {0}")]
    Decode(#[from] postcard::Error),
    /// A shard record that cannot be decoded (e.g. a holder that is not a peer id).
    #[error("lease database: the record of {shard} of dataset {dataset} is unreadable: {source}")]
    Shard {
        /// The dataset (hex).
        dataset: String,
        /// The shard, from the record's key.
        shard: ShardId,
        /// The decoding error.
        source: postcard::Error,
    },
    /// A dataset record of an unknown layout version, or unreadable.
    #[error("lease database: {0}")]
    Record(#[from] RecordError),
    /// An earlier write failed: the store takes no more writes in this run.
    #[error("the lease database stopped after an earlier failure: {0}")]
    Failed(String),
    /// The actor thread is gone.
    #[error("the lease database thread has stopped")]
    Closed,
}

/// A dataset and its shard records, as loaded.
pub type LoadedDataset = (DatasetRecord, Vec<ShardRecord>);

pub(crate) enum Msg {
    PutDataset(DatasetRecord, oneshot::Sender<Result<(), StoreError>>),
    PutShards(
        DatasetId,
        Vec<(ShardId, ShardRecord)>,
        Option<Epoch>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    NextEpoch(DatasetId, oneshot::Sender<Result<Epoch, StoreError>>),
    Load(
        DatasetId,
        oneshot::Sender<Result<Option<LoadedDataset>, StoreError>>,
    ),
    List(oneshot::Sender<Result<Vec<DatasetRecord>, StoreError>>),
}

/// A handle on the lease database; cheap to clone. The database closes when every handle is
/// dropped.
#[derive(Clone)]
pub struct Store {
    tx: std::sync::mpsc::Sender<Msg>,
}

impl Store {
    /// Opens (or creates) the database at `path` and starts its thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = redb::Database::create(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            source: Box::new(e.into()),
        })?;
        let tx = actor::spawn(db).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            source: Box::new(e.into()),
        })?;
        Ok(Self { tx })
    }

    /// Writes (or replaces) a dataset record.
    pub async fn put_dataset(&self, record: DatasetRecord) -> Result<(), StoreError> {
        self.call(|tx| Msg::PutDataset(record, tx)).await?
    }

    /// Writes shard records of one dataset in a single transaction.
    pub async fn put_shards(
        &self,
        dataset: DatasetId,
        shards: Vec<(ShardId, ShardRecord)>,
    ) -> Result<(), StoreError> {
        self.call(|tx| Msg::PutShards(dataset, shards, None, tx))
            .await?
    }

    /// Writes shard records and raises the dataset's epoch high-water mark to `next_epoch`
    /// (never lowers it), in one transaction: a grant is committed together with its epoch.
    pub async fn put_shards_with_epoch(
        &self,
        dataset: DatasetId,
        shards: Vec<(ShardId, ShardRecord)>,
        next_epoch: Epoch,
    ) -> Result<(), StoreError> {
        self.call(|tx| Msg::PutShards(dataset, shards, Some(next_epoch), tx))
            .await?
    }

    /// [`Store::put_shards_with_epoch`], sent now: writes are applied in the order they are
    /// sent, so a caller that must not wait (the seeder's actor) submits in order and awaits
    /// the returned result elsewhere.
    pub fn submit_shards_with_epoch(
        &self,
        dataset: DatasetId,
        shards: Vec<(ShardId, ShardRecord)>,
        next_epoch: Epoch,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self
            .tx
            .send(Msg::PutShards(dataset, shards, Some(next_epoch), tx));
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// The next epoch the dataset may hand out, as persisted (0 if never recorded).
    pub async fn next_epoch(&self, dataset: DatasetId) -> Result<Epoch, StoreError> {
        self.call(|tx| Msg::NextEpoch(dataset, tx)).await?
    }

    /// A dataset and all its shard records, in shard order.
    pub async fn load(&self, dataset: DatasetId) -> Result<Option<LoadedDataset>, StoreError> {
        self.call(|tx| Msg::Load(dataset, tx)).await?
    }

    /// Every dataset record.
    pub async fn list(&self) -> Result<Vec<DatasetRecord>, StoreError> {
        self.call(Msg::List).await?
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }
}

#[cfg(test)]
mod compat_tests;
#[cfg(test)]
mod tests;
