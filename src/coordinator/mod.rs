//! The seeder's logic: it owns the lease books of the datasets this node seeds, answers
//! workers' control requests (bid, rows, renew, complete, abandon), accepts their archive
//! transfers into `<out>/.incoming/` (bounded in size), verifies a completed shard's files
//! off the actor ([`crate::verify`]), then moves both files into `--out` and marks the shard
//! done in the same step (persisted in redb before answering).
//!
//! Fair leasing: a peer holds at most what its recorded completions earn (see
//! [`crate::model::lease`]); faults back a peer off and then exclude it from the dataset. Fail-stop:
//! the first failed lease-database commit, or no space left in `--out` or the data dir, stops
//! all granting and renewing; every request is then refused with `StorageFailed` and the node
//! exits with code 4, leaving the committed state for a rerun.
//!
//! It performs no networking: the node runtime feeds it requests and file events (from `net` or
//! from the in-process worker) with the current time, and publishes what it returns.

mod complete;
mod files;
mod finalize;
mod handle;
mod requests;
pub mod retry_rounds;
pub mod sim;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::model::bid;
use crate::model::ids::{DatasetId, Epoch, ShardId};
use crate::model::lease::{LeaseBook, LeaseConfig, LostLease, ShardPhase};
use crate::model::node_stats::NodeStats;
use crate::model::swarm_budget::SwarmBudget;
use crate::model::time::UnixMillis;
use crate::protocol::gossip::{Gossip, LeaseState};
use crate::protocol::settings::DatasetSettings;
use crate::protocol::status::DatasetProgress;
use crate::seed::SeededDataset;
use crate::store::{DatasetRecord, ShardRecord, Store, StoreError};

pub use complete::{CompleteKey, VerifyFailure, VerifyJob};
pub use files::{DEFAULT_DISK_RESERVE, FileDecision, IntakeLimits};
pub use finalize::{FINAL_ROW_GROUP_ROWS, FailedShard, FinalReport, write_final_files};
pub use handle::{CoordinatorHandle, Snapshot, Stopped};

/// How long a worker with nothing to do waits before asking again.
pub const NO_WORK_RETRY_MS: u64 = 1_000;

/// Below this much free space on the filesystem of `--out` or of the data dir the seeder
/// fail-stops (ENOSPC there means it can neither store shards nor commit leases).
pub const MIN_FREE_BYTES: u64 = 1 << 20;

/// How often the seeder checks its own free space.
const DISK_CHECK_MS: u64 = 500;

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
    pub local_peer: Option<String>,
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

struct Dataset {
    seeded: SeededDataset,
    book: LeaseBook,
    records: Vec<ShardRecord>,
    /// The swarm-wide per-host budget (`--swarm-per-host`).
    budget: Option<SwarmBudget>,
    /// Open retry rounds by shard number (see [`retry_rounds`]).
    retry: HashMap<u32, retry_rounds::RetryRound>,
}

impl Dataset {
    fn bytes_per_row(&self) -> u64 {
        let (ok, bytes) = self
            .records
            .iter()
            .fold((0u64, 0u64), |(o, b), r| (o + r.ok, b + r.bytes));
        bytes.checked_div(ok).unwrap_or(bid::DEFAULT_BYTES_PER_ROW)
    }
}

/// The seeder state of every dataset this node seeds.
pub struct Coordinator {
    cfg: CoordinatorConfig,
    store: Store,
    datasets: BTreeMap<DatasetId, Dataset>,
    peer_stats: HashMap<String, NodeStats>,
    outbox: Vec<Gossip>,
    invalid_deliveries: BTreeMap<String, u64>,
    reserved: files::Reservations,
    storage_failed: Option<StorageFailure>,
    next_disk_check: UnixMillis,
    /// The webdataset delivery rules (class table as a lookup), built at the first completion
    /// rather than at every one: the settings do not change while the seeder runs.
    sample_rules: std::sync::OnceLock<std::sync::Arc<crate::verify::SampleRules>>,
}

impl Coordinator {
    /// A coordinator with no dataset yet. Keeps what workers had delivered before a restart
    /// (see [`files::recover_incoming`]).
    pub fn new(cfg: CoordinatorConfig, store: Store) -> Self {
        files::recover_incoming(&cfg.out);
        Self {
            cfg,
            store,
            datasets: BTreeMap::new(),
            peer_stats: HashMap::new(),
            outbox: Vec::new(),
            invalid_deliveries: BTreeMap::new(),
            reserved: files::Reservations::default(),
            storage_failed: None,
            next_disk_check: UnixMillis(0),
            sample_rules: std::sync::OnceLock::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.cfg
    }

    /// Adds a seeded dataset: resumes its lease book from the store when it was seen before
    /// (under this run's lease policy: a restart may change `--lease-ttl` or `--max-retries`),
    /// else records it with every shard free. Returns true when it was resumed.
    pub async fn add_dataset(
        &mut self,
        seeded: SeededDataset,
        now: UnixMillis,
    ) -> Result<bool, CoordinatorError> {
        if let Some((mut rec, shards)) = self.store.load(seeded.id).await?
            && shards.len() == seeded.shard_rows.len()
        {
            if rec.lease != self.cfg.lease {
                rec.lease = self.cfg.lease;
                self.store.put_dataset(rec).await?;
            }
            let next_epoch = self.store.next_epoch(seeded.id).await?;
            let failed_before = shards
                .iter()
                .filter(|s| s.entry.phase == ShardPhase::Failed)
                .count();
            let mut book = LeaseBook::restore(
                self.cfg.lease,
                shards.iter().map(|s| s.entry.clone()).collect(),
                next_epoch,
                now,
            );
            if self.cfg.retry_failed {
                book.reopen_failed();
            }
            let retry = self.plan_retry_rounds(&seeded, &mut book);
            let c = book.counts();
            if failed_before > 0 {
                tracing::info!(dataset = %seeded.id, reopened = failed_before - c.failed as usize, still_failed = c.failed, "failed shards: reopened with --retry-failed or a raised --max-retries");
            }
            tracing::info!(dataset = %seeded.id, done = c.done, leased = c.leased, next_epoch = book.next_epoch(), "resumed from the lease database; holders have one lease TTL to renew");
            let id = seeded.id;
            let n = shards.len();
            let budget = self.budget_for(&seeded);
            self.datasets.insert(
                id,
                Dataset {
                    seeded,
                    book,
                    records: shards,
                    budget,
                    retry,
                },
            );
            let all: Vec<ShardId> = (0..n).map(shard).collect();
            self.persist_checked(id, &all).await?;
            return Ok(true);
        }
        let book = LeaseBook::new(self.cfg.lease, &seeded.shard_rows);
        let records: Vec<ShardRecord> = book
            .shards()
            .iter()
            .map(|e| ShardRecord::new(e.clone()))
            .collect();
        self.store
            .put_dataset(DatasetRecord {
                seeded: seeded.clone(),
                lease: self.cfg.lease,
                created_at: now,
            })
            .await?;
        self.store
            .put_shards_with_epoch(
                seeded.id,
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (shard(i), r.clone()))
                    .collect(),
                book.next_epoch(),
            )
            .await?;
        let budget = self.budget_for(&seeded);
        self.datasets.insert(
            seeded.id,
            Dataset {
                seeded,
                book,
                records,
                budget,
                retry: HashMap::new(),
            },
        );
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
    ) -> HashMap<u32, retry_rounds::RetryRound> {
        let dir = crate::seed::dataset_dir(&self.cfg.data_dir, seeded.id);
        let mut rounds = HashMap::new();
        for (i, name) in seeded.archive_names.iter().enumerate() {
            let done = book
                .shard(shard(i))
                .is_some_and(|e| e.phase == ShardPhase::Done);
            if done && !self.cfg.retry_failed {
                continue;
            }
            match retry_rounds::plan(&self.cfg.out, &dir, shard(i), name) {
                Ok(Some(r)) => {
                    if done {
                        book.reopen_done(shard(i));
                    }
                    tracing::info!(dataset = %seeded.id, shard = i, round = r.round, rows = r.rows, "retry round: the rows that failed retryably are open again");
                    rounds.insert(i as u32, r);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(dataset = %seeded.id, shard = i, "no retry round: {e}")
                }
            }
        }
        rounds
    }

    /// The swarm's per-host budget of a dataset (`--swarm-per-host`), knowing its shards'
    /// hosts (recorded while seeding).
    fn budget_for(&self, seeded: &SeededDataset) -> Option<SwarmBudget> {
        let dir = crate::seed::dataset_dir(&self.cfg.data_dir, seeded.id);
        self.cfg.swarm_per_host.map(|n| {
            SwarmBudget::with_hosts(n, &crate::seed::hosts::load(&dir, seeded.shard_rows.len()))
        })
    }

    /// The ids of the datasets seeded here.
    pub fn dataset_ids(&self) -> Vec<DatasetId> {
        self.datasets.keys().copied().collect()
    }

    /// True when every shard of every dataset is done or failed.
    pub fn is_finished(&self) -> bool {
        self.datasets.values().all(|d| d.book.is_finished())
    }

    /// Leases held by `peer` across every dataset.
    pub fn leases_held_by(&self, peer: &str) -> u32 {
        self.datasets.values().map(|d| d.book.held_by(peer)).sum()
    }

    /// The earliest lease expiry across datasets.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.datasets
            .values()
            .filter_map(|d| d.book.poll_timeout())
            .min()
    }

    /// The storage failure that stopped this seeder, if any.
    pub fn storage_failure(&self) -> Option<&StorageFailure> {
        self.storage_failed.as_ref()
    }

    /// Expires lapsed leases and persists the shards concerned (nothing once storage failed:
    /// the committed state is what a rerun resumes).
    pub async fn handle_timeout(&mut self, now: UnixMillis) -> Vec<(DatasetId, LostLease)> {
        let mut all = Vec::new();
        if self.storage_failed.is_some() {
            return all;
        }
        let ids = self.dataset_ids();
        for id in ids {
            let lost = match self.datasets.get_mut(&id) {
                Some(d) => d.book.handle_timeout(now),
                None => continue,
            };
            for l in &lost {
                tracing::warn!(dataset = %id, shard = %l.shard, peer = %l.peer, epoch = l.epoch, phase = ?l.phase_after, "lease expired (charged to the peer)");
            }
            let shards: Vec<ShardId> = lost.iter().map(|l| l.shard).collect();
            if !shards.is_empty() {
                self.sweep_incoming(id);
            }
            self.persist(id, &shards).await;
            all.extend(lost.into_iter().map(|l| (id, l)));
        }
        all
    }

    /// Takes the gossip produced since the last call (lease changes).
    pub fn drain_gossip(&mut self) -> Vec<Gossip> {
        std::mem::take(&mut self.outbox)
    }

    /// One `Gossip::Dataset` announcement per dataset.
    pub fn announcements(&self, now: UnixMillis) -> Vec<Gossip> {
        self.datasets
            .values()
            .map(|d| {
                let c = d.book.counts();
                Gossip::Dataset {
                    dataset: d.seeded.id,
                    name: d.seeded.name.clone(),
                    shards_total: c.free + c.leased + c.done + c.failed,
                    shards_done: c.done,
                    shards_open: d.book.open_count(now),
                    shards_failed: c.failed,
                    rows_total: d.seeded.rows_total,
                    sent_at: now,
                }
            })
            .collect()
    }

    /// Progress of every dataset seeded here, for the status document.
    pub fn progress(&self, seeder: &str) -> Vec<DatasetProgress> {
        self.datasets
            .values()
            .map(|d| {
                let c = d.book.counts();
                DatasetProgress {
                    dataset_id: d.seeded.id.to_hex(),
                    seeder: seeder.to_string(),
                    name: d.seeded.name.clone(),
                    shards_total: c.free + c.leased + c.done + c.failed,
                    shards_done: c.done,
                    shards_leased: c.leased,
                    shards_failed: c.failed,
                    rows_total: d.seeded.rows_total,
                    rows_ok: d.records.iter().map(|r| r.ok).sum(),
                    rows_failed: d.records.iter().map(|r| r.failed).sum(),
                }
            })
            .collect()
    }

    fn lease_gossip(
        &mut self,
        dataset: DatasetId,
        shard: ShardId,
        holder: &str,
        epoch: u64,
        state: LeaseState,
        now: UnixMillis,
    ) {
        let expires_at = self
            .datasets
            .get(&dataset)
            .and_then(|d| d.book.shard(shard))
            .and_then(|e| e.holder(epoch).map(|h| h.expires_at))
            .unwrap_or(now);
        self.outbox.push(Gossip::Lease {
            dataset,
            shard,
            // Peers are named by their peer id; anything else (a unit test's "a") is none.
            holder: holder.parse().ok(),
            epoch: Epoch(epoch),
            expires_at,
            state,
        });
    }

    async fn persist(&mut self, dataset: DatasetId, shards: &[ShardId]) {
        let _ = self.persist_checked(dataset, shards).await;
    }

    /// Commits the shards' entries and the epoch mark. The first failure stops the seeder
    /// (fail-stop): every later request is refused with `StorageFailed`.
    async fn persist_checked(
        &mut self,
        dataset: DatasetId,
        shards: &[ShardId],
    ) -> Result<(), StoreError> {
        if let Some(e) = &self.storage_failed {
            return Err(StoreError::Failed(e.to_string()));
        }
        let r = self.commit(dataset, shards).await;
        if let Err(e) = &r {
            self.fail_storage(&self.cfg.data_dir.clone(), e.to_string());
        }
        r
    }

    /// Fail-stops when `--out` or the data dir has (almost) no space left; checked at most
    /// every half second.
    pub fn check_storage(&mut self, now: UnixMillis) {
        if self.storage_failed.is_some() || now < self.next_disk_check {
            return;
        }
        self.next_disk_check = UnixMillis(now.0.saturating_add(DISK_CHECK_MS));
        for dir in [self.cfg.out.clone(), self.cfg.data_dir.clone()] {
            if let Some(free) = crate::layout::free_space(&dir)
                && free < MIN_FREE_BYTES
            {
                self.fail_storage(
                    &dir,
                    format!(
                        "no space left on its filesystem (below the {} minimum)",
                        crate::report::human_bytes(MIN_FREE_BYTES)
                    ),
                );
                return;
            }
        }
    }

    /// Enters fail-stop: logs one clear error naming `dir` and its free space.
    pub(crate) fn fail_storage(&mut self, dir: &std::path::Path, cause: String) {
        if self.storage_failed.is_some() {
            return;
        }
        let free = crate::layout::free_space(dir)
            .map(crate::report::human_bytes)
            .unwrap_or_else(|| "unknown".into());
        let err = StorageFailure {
            dir: dir.display().to_string(),
            free,
            cause,
        };
        tracing::error!("{err}");
        self.storage_failed = Some(err);
    }

    async fn commit(&mut self, dataset: DatasetId, shards: &[ShardId]) -> Result<(), StoreError> {
        if shards.is_empty() {
            return Ok(());
        }
        let Some(d) = self.datasets.get_mut(&dataset) else {
            return Ok(());
        };
        let mut batch = Vec::with_capacity(shards.len());
        for s in shards {
            let idx = s.0 as usize;
            if let (Some(entry), Some(rec)) = (d.book.shards().get(idx), d.records.get_mut(idx)) {
                rec.entry = entry.clone();
                batch.push((*s, rec.clone()));
            }
        }
        let next_epoch = d.book.next_epoch();
        self.store
            .put_shards_with_epoch(dataset, batch, next_epoch)
            .await
    }

    /// The phase of one shard of a dataset seeded here.
    pub fn phase_of(&self, dataset: DatasetId, shard: ShardId) -> Option<ShardPhase> {
        self.datasets
            .get(&dataset)
            .and_then(|d| d.book.shard(shard))
            .map(|e| e.phase)
    }
}

fn shard(i: usize) -> ShardId {
    ShardId(u32::try_from(i).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod budget_tests;
#[cfg(test)]
mod finalize_tests;
#[cfg(test)]
mod intake_tests;
#[cfg(test)]
mod tests;
