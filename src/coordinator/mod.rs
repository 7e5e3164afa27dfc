//! The seeder's logic: it owns the lease books of the datasets this node seeds, answers
//! workers' control requests (bid, rows, renew, complete, abandon), accepts their archive
//! transfers into `<out>/.incoming/` (bounded in size), has a completed shard's files verified
//! ([`crate::verify`]), then moved into `--out`, then marks the shard done (persisted in redb
//! before answering).
//!
//! The coordinator decides; others do I/O. [`SeederState`] is sans-IO: its handlers take `now`
//! and return [`Effect`]s (persist, gossip, verify, promote files, discard, reply…); the actor
//! ([`CoordinatorHandle`]) hands them to the executor ([`exec`]), which carries them out off the
//! actor and feeds their [`Outcome`]s back. [`Coordinator`] is the seeder before it runs: the
//! state plus the lease database, loading or recording each dataset at start.
//!
//! Fair leasing: a peer holds at most what its recorded completions earn (see
//! [`crate::model::lease`]); faults back a peer off and then exclude it from the dataset. Fail-stop:
//! the first failed lease-database commit, or no space left in `--out` or the data dir, stops
//! all granting and renewing; every request is then refused with `StorageFailed` and the node
//! exits with code 4, leaving the committed state for a rerun.
//!
//! It performs no networking: the node runtime feeds it requests and file events (from `net` or
//! from the in-process worker) and publishes what it returns; peers are named by their
//! [`NodeId`](crate::model::ids::NodeId), epochs are [`Epoch`](crate::model::ids::Epoch)s.

mod complete;
pub mod effects;
mod exec;
mod file_ops;
mod files;
mod finalize;
mod handle;
mod requests;
pub mod retry_rounds;
pub mod sim;
mod state;

use std::collections::HashMap;
use std::path::PathBuf;

use crate::layout::DataDir;
use crate::model::ids::{NodeId, ShardId};
use crate::model::lease::{LeaseBook, LeaseConfig, ShardPhase};
use crate::model::swarm_budget::SwarmBudget;
use crate::model::time::UnixMillis;
use crate::protocol::settings::DatasetSettings;
use crate::seed::SeededDataset;
use crate::store::{DatasetRecord, ShardRecord, Store, StoreError};

pub use complete::{CompleteKey, Verdict, VerifyFailure, VerifyJob};
pub use effects::{Effect, Outcome};
pub use files::{DEFAULT_DISK_RESERVE, DiskSpace, IntakeDecision, IntakeLimits};
pub use finalize::write_final_files;
pub use handle::{CoordinatorHandle, Snapshot, Stopped};
pub use state::SeederState;
// The dataset's final files are written by `results`; re-exported for the node.
pub use crate::results::{FINAL_ROW_GROUP_ROWS, FailedShard, FinalReport};

/// How long a worker with nothing to do waits before asking again.
pub const NO_WORK_RETRY_MS: u64 = 1_000;

/// Below this much free space on the filesystem of `--out` or of the data dir the seeder
/// fail-stops (ENOSPC there means it can neither store shards nor commit leases).
pub const MIN_FREE_BYTES: u64 = 1 << 20;

/// Where the seeder writes and how it leases.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// The `--out` directory (archives, results, final report).
    pub out: PathBuf,
    /// The data dir holding the seeded row files.
    pub data_dir: PathBuf,
    /// Lease policy for newly seeded datasets.
    pub lease: LeaseConfig,
    /// Told the path of every file stored into `--out` (archives and shard results), e.g. to
    /// upload them as they arrive.
    pub stored: Option<tokio::sync::mpsc::UnboundedSender<PathBuf>>,
    /// Bounds on the files accepted from workers.
    pub intake: IntakeLimits,
    /// Reopen failed shards of a resumed dataset (`--retry-failed`).
    pub retry_failed: bool,
    /// This node's own peer id: its in-process worker is trusted with its measured capacity
    /// (no per-peer cap from completions).
    pub local_peer: Option<NodeId>,
    /// The dataset's engine settings, sent with every grant (`None`: workers use their own).
    pub settings: Option<DatasetSettings>,
    /// `--swarm-per-host`: requests in flight to one host, summed over every worker (see
    /// [`crate::model::swarm_budget`]).
    pub swarm_per_host: Option<u32>,
}

/// Coordinator failures (storage only: bad requests are answered, not raised).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// The lease database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The seeder's storage failed mid-run: it stopped granting and renewing.
    #[error(transparent)]
    StorageFailed(StorageFailure),
    /// A file in `--out` could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The seeder's storage failed mid-run (first failed lease-database commit, or no space left
/// in `--out`): it stopped granting and renewing; the state committed so far is what a rerun
/// resumes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "seeder storage failed in {dir} ({free} free): {cause}; nothing more was granted or \
     renewed; free some space (or move --data-dir/--out) and rerun the same command to resume"
)]
pub struct StorageFailure {
    /// The directory whose storage failed.
    pub dir: String,
    /// Its free space, human-readable.
    pub free: String,
    /// The first error.
    pub cause: String,
}

/// The seeder before it runs: its decision state and the lease database. Datasets are
/// loaded or recorded here, at start; [`CoordinatorHandle::spawn`] then runs it.
pub struct Coordinator {
    state: SeederState,
    store: Store,
}

impl std::ops::Deref for Coordinator {
    type Target = SeederState;
    fn deref(&self) -> &SeederState {
        &self.state
    }
}

impl std::ops::DerefMut for Coordinator {
    fn deref_mut(&mut self) -> &mut SeederState {
        &mut self.state
    }
}

impl Coordinator {
    /// A coordinator with no dataset yet. Keeps what workers had delivered before a restart
    /// (see [`file_ops::recover_incoming`]).
    pub fn new(cfg: CoordinatorConfig, store: Store) -> Self {
        file_ops::recover_incoming(&cfg.out);
        Self {
            state: SeederState::new(cfg),
            store,
        }
    }

    /// Adds a seeded dataset: resumes its lease book from the store when it was seen before
    /// (under this run's lease policy: a restart may change `--lease-ttl` or `--max-retries`),
    /// else records it with every shard free. Returns true when it was resumed.
    pub async fn add_dataset(
        &mut self,
        seeded: SeededDataset,
        now: UnixMillis,
    ) -> Result<bool, CoordinatorError> {
        let cfg = self.state.cfg.clone();
        if let Some((mut rec, shards)) = self.store.load(seeded.id).await?
            && shards.len() == seeded.shard_rows.len()
        {
            if rec.lease != cfg.lease {
                rec.lease = cfg.lease;
                self.store.put_dataset(rec).await?;
            }
            let next_epoch = self.store.next_epoch(seeded.id).await?;
            let failed_before = shards
                .iter()
                .filter(|s| s.entry.phase == ShardPhase::Failed)
                .count();
            let mut book = LeaseBook::restore(
                cfg.lease,
                shards.iter().map(|s| s.entry.clone()).collect(),
                next_epoch,
                now,
            );
            if cfg.retry_failed {
                book.reopen_failed();
            }
            let retry = self.plan_retry_rounds(&seeded, &mut book);
            let c = book.counts();
            if failed_before > 0 {
                tracing::info!(dataset = %seeded.id, reopened = failed_before - c.failed as usize, still_failed = c.failed, "failed shards: reopened with --retry-failed or a raised --max-retries");
            }
            tracing::info!(dataset = %seeded.id, done = c.done, leased = c.leased, next_epoch = %book.next_epoch(), "resumed from the lease database; holders have one lease TTL to renew");
            let id = seeded.id;
            let all: Vec<(ShardId, ShardRecord)> = book
                .shards()
                .iter()
                .zip(&shards)
                .enumerate()
                .map(|(i, (e, r))| {
                    let mut r = r.clone();
                    r.entry = e.clone();
                    (shard(i), r)
                })
                .collect();
            let records = all.iter().map(|(_, r)| r.clone()).collect();
            self.state.datasets.insert(
                id,
                state::Dataset {
                    budget: budget_for(&cfg, &seeded),
                    seeded,
                    book,
                    records,
                    retry,
                },
            );
            let next = self.state.datasets[&id].book.next_epoch();
            if let Err(e) = self.store.put_shards_with_epoch(id, all, next).await {
                let free = crate::layout::free_space(&cfg.data_dir);
                self.state.fail_storage(&cfg.data_dir, free, e.to_string());
                return Err(e.into());
            }
            return Ok(true);
        }
        let d = fresh_dataset(&cfg, seeded);
        self.store
            .put_dataset(DatasetRecord {
                seeded: d.seeded.clone(),
                lease: cfg.lease,
                created_at: now,
            })
            .await?;
        self.store
            .put_shards_with_epoch(
                d.seeded.id,
                d.records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (shard(i), r.clone()))
                    .collect(),
                d.book.next_epoch(),
            )
            .await?;
        self.state.datasets.insert(d.seeded.id, d);
        Ok(false)
    }

    /// The retry rounds of a resumed dataset: with `--retry-failed`, of every done shard whose
    /// outcomes leave rows worth another try (the shard is reopened); always, of a shard that
    /// is not done but whose results are in `--out` (a round in progress when the seeder
    /// stopped). A shard whose files cannot be read is left as it is (logged).
    fn plan_retry_rounds(
        &self,
        seeded: &SeededDataset,
        book: &mut LeaseBook,
    ) -> HashMap<ShardId, retry_rounds::RetryRound> {
        let cfg = &self.state.cfg;
        let dir = DataDir::new(&cfg.data_dir).dataset(seeded.id);
        let mut rounds = HashMap::new();
        for (i, name) in seeded.archive_names.iter().enumerate() {
            let done = book
                .shard(shard(i))
                .is_some_and(|e| e.phase == ShardPhase::Done);
            if done && !cfg.retry_failed {
                continue;
            }
            match retry_rounds::plan(&cfg.out, dir.path(), shard(i), name) {
                Ok(Some(r)) => {
                    if done {
                        book.reopen_done(shard(i));
                    }
                    tracing::info!(dataset = %seeded.id, shard = i, round = r.round, rows = r.rows, "retry round: the rows that failed retryably are open again");
                    rounds.insert(shard(i), r);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(dataset = %seeded.id, shard = i, "no retry round: {e}")
                }
            }
        }
        rounds
    }
}

/// A dataset seen for the first time: every shard free.
fn fresh_dataset(cfg: &CoordinatorConfig, seeded: SeededDataset) -> state::Dataset {
    let book = LeaseBook::new(cfg.lease, &seeded.shard_rows);
    let records = book
        .shards()
        .iter()
        .map(|e| ShardRecord::new(e.clone()))
        .collect();
    state::Dataset {
        budget: budget_for(cfg, &seeded),
        seeded,
        book,
        records,
        retry: HashMap::new(),
    }
}

/// The swarm's per-host budget of a dataset (`--swarm-per-host`), knowing its shards' hosts
/// (recorded while seeding).
fn budget_for(cfg: &CoordinatorConfig, seeded: &SeededDataset) -> Option<SwarmBudget> {
    let dir = DataDir::new(&cfg.data_dir).dataset(seeded.id);
    cfg.swarm_per_host.map(|n| {
        SwarmBudget::with_hosts(
            n,
            &crate::seed::hosts::load(dir.path(), seeded.shard_rows.len()),
        )
    })
}

fn shard(i: usize) -> ShardId {
    ShardId(u32::try_from(i).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod budget_tests;
#[cfg(test)]
mod driver;
#[cfg(test)]
mod finalize_tests;
#[cfg(test)]
mod intake_tests;
#[cfg(test)]
mod state_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
