//! The seeder's decision state, sans-IO: the lease books and shard records of the datasets
//! seeded here, the completions in flight, and the commits whose outcome gates an answer.
//! Every handler takes `now` and returns [`Effect`]s; nothing here reads a file, writes the
//! lease database or waits. The outcomes of the effects come back through
//! [`SeederState::handle_outcome`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::effects::{
    Answer, CommitFailure, CommitId, Discard, Effect, Outcome, Persist, RequestId, Ticket,
};
use super::{CoordinatorConfig, MIN_FREE_BYTES, StorageFailure, retry_rounds};
use crate::model::bid;
use crate::model::ids::{DatasetId, Epoch, NodeId, ShardId};
use crate::model::lease::{LeaseBook, LostLease, ShardPhase};
use crate::model::lease_state::LeaseState;
use crate::model::node_stats::NodeStats;
use crate::model::swarm_budget::SwarmBudget;
use crate::model::time::UnixMillis;
use crate::protocol::control::{ControlResponse, RejectReason};
use crate::protocol::gossip::Gossip;
use crate::protocol::status::DatasetProgress;
use crate::seed::SeededDataset;
use crate::store::ShardRecord;

pub(super) struct Dataset {
    pub(super) seeded: SeededDataset,
    pub(super) book: LeaseBook,
    pub(super) records: Vec<ShardRecord>,
    /// The swarm-wide per-host budget (`--swarm-per-host`).
    pub(super) budget: Option<SwarmBudget>,
    /// Open retry rounds by shard number (see [`retry_rounds`]).
    pub(super) retry: HashMap<ShardId, retry_rounds::RetryRound>,
}

impl Dataset {
    pub(super) fn bytes_per_row(&self) -> u64 {
        let (ok, bytes) = self
            .records
            .iter()
            .fold((0u64, 0u64), |(o, b), r| (o + r.ok, b + r.bytes));
        bytes.checked_div(ok).unwrap_or(bid::DEFAULT_BYTES_PER_ROW)
    }

    /// The archive name a lease on `shard` delivers (a retry round's, if one is open).
    pub(super) fn archive_name(&self, shard: ShardId) -> String {
        match self.retry.get(&shard) {
            Some(r) => r.archive_name.clone(),
            None => self
                .seeded
                .archive_names
                .get(shard.0 as usize)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// What to do once a commit is known.
#[derive(Debug, Default)]
pub(super) struct AfterCommit {
    /// The answer, and what to answer instead when the commit failed.
    pub(super) reply: Option<(RequestId, ControlResponse, OnFailure)>,
    /// Gossip published only once committed.
    pub(super) gossip: Vec<Gossip>,
    /// Files announced as stored only once committed.
    pub(super) stored: Vec<std::path::PathBuf>,
}

/// The answer to a request whose commit failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnFailure {
    /// The planned answer all the same (the change is not the requester's to rely on).
    AnswerAnyway,
    /// A `StorageFailed` refusal, `"<prefix>: <error>"`.
    Refuse(&'static str),
}

impl AfterCommit {
    pub(super) fn reply(to: RequestId, answer: ControlResponse, on_failure: OnFailure) -> Self {
        Self {
            reply: Some((to, answer, on_failure)),
            ..Self::default()
        }
    }
}

/// The seeder state of every dataset this node seeds.
pub struct SeederState {
    pub(super) cfg: CoordinatorConfig,
    pub(super) datasets: BTreeMap<DatasetId, Dataset>,
    pub(super) peer_stats: HashMap<NodeId, NodeStats>,
    pub(super) invalid_deliveries: BTreeMap<NodeId, u64>,
    pub(super) reserved: super::files::Reservations,
    pub(super) storage_failed: Option<StorageFailure>,
    /// The webdataset delivery rules (class table as a lookup), built at the first completion
    /// rather than at every one: the settings do not change while the seeder runs.
    pub(super) sample_rules: std::sync::OnceLock<std::sync::Arc<crate::verify::SampleRules>>,
    next_id: u64,
    after_commit: HashMap<CommitId, AfterCommit>,
    /// Completions being verified or promoted.
    pub(super) completions: HashMap<Ticket, super::complete::Completion>,
    /// The completion whose files are being promoted, per shard: another completion of the
    /// same shard waits for its outcome (in `deferred`).
    pub(super) promoting: HashMap<(DatasetId, ShardId), Ticket>,
    pub(super) deferred: Vec<(Ticket, super::complete::Verdict)>,
}

impl SeederState {
    /// A state with no dataset yet.
    pub fn new(cfg: CoordinatorConfig) -> Self {
        Self {
            cfg,
            datasets: BTreeMap::new(),
            peer_stats: HashMap::new(),
            invalid_deliveries: BTreeMap::new(),
            reserved: super::files::Reservations::default(),
            storage_failed: None,
            sample_rules: std::sync::OnceLock::new(),
            next_id: 0,
            after_commit: HashMap::new(),
            completions: HashMap::new(),
            promoting: HashMap::new(),
            deferred: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.cfg
    }

    pub(super) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
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
    pub fn leases_held_by(&self, peer: NodeId) -> u32 {
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

    /// The phase of one shard of a dataset seeded here.
    pub fn phase_of(&self, dataset: DatasetId, shard: ShardId) -> Option<ShardPhase> {
        self.datasets
            .get(&dataset)
            .and_then(|d| d.book.shard(shard))
            .map(|e| e.phase)
    }

    /// Deliveries refused as invalid, per peer.
    pub fn invalid_deliveries(&self) -> &BTreeMap<NodeId, u64> {
        &self.invalid_deliveries
    }

    /// Expires lapsed leases: persists the shards concerned and sweeps their staged files
    /// (nothing once storage failed: the committed state is what a rerun resumes).
    pub fn handle_timeout(&mut self, now: UnixMillis) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.expire(now, &mut fx);
        fx
    }

    pub(super) fn expire(
        &mut self,
        now: UnixMillis,
        fx: &mut Vec<Effect>,
    ) -> Vec<(DatasetId, LostLease)> {
        let mut all = Vec::new();
        if self.storage_failed.is_some() {
            return all;
        }
        for id in self.dataset_ids() {
            let lost = match self.datasets.get_mut(&id) {
                Some(d) => d.book.handle_timeout(now),
                None => continue,
            };
            if lost.is_empty() {
                continue;
            }
            for l in &lost {
                tracing::warn!(dataset = %id, shard = %l.shard, peer = %l.peer, epoch = %l.epoch, phase = ?l.phase_after, "lease expired (charged to the peer)");
            }
            let shards: Vec<ShardId> = lost.iter().map(|l| l.shard).collect();
            self.sweep(id, fx);
            self.persist(id, &shards, AfterCommit::default(), fx);
            all.extend(lost.into_iter().map(|l| (id, l)));
        }
        all
    }

    /// Deletes the staged files of `dataset` whose lease epoch is no longer held.
    pub(super) fn sweep(&self, dataset: DatasetId, fx: &mut Vec<Effect>) {
        let Some(d) = self.datasets.get(&dataset) else {
            return;
        };
        let live = d
            .book
            .shards()
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.holders.iter().map(move |h| (super::shard(i), h.epoch)))
            .collect();
        fx.push(Effect::Discard(Discard::Sweep {
            dataset,
            live,
            below_epoch: d.book.next_epoch(),
        }));
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
    pub fn progress(&self, seeder: NodeId) -> Vec<DatasetProgress> {
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

    /// The `Gossip::Lease` message of a lease change, with the holder's expiry as it is now.
    pub(super) fn lease_gossip(
        &self,
        dataset: DatasetId,
        shard: ShardId,
        holder: NodeId,
        epoch: Epoch,
        state: LeaseState,
        now: UnixMillis,
    ) -> Gossip {
        let expires_at = self
            .datasets
            .get(&dataset)
            .and_then(|d| d.book.shard(shard))
            .and_then(|e| e.holder(epoch).map(|h| h.expires_at))
            .unwrap_or(now);
        Gossip::Lease {
            dataset,
            shard,
            holder: Some(holder),
            epoch,
            expires_at,
            state,
        }
    }

    /// Commits the shards' entries and the epoch mark, then does `after`. Once storage has
    /// failed nothing more is written (fail-stop): `after` is resolved as failed at once.
    pub(super) fn persist(
        &mut self,
        dataset: DatasetId,
        shards: &[ShardId],
        after: AfterCommit,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(e) = &self.storage_failed {
            let cause = crate::store::StoreError::Failed(e.to_string()).to_string();
            resolve(after, Err(cause), fx);
            return;
        }
        let Some(d) = self.datasets.get_mut(&dataset) else {
            resolve(after, Ok(()), fx);
            return;
        };
        let mut records = Vec::with_capacity(shards.len());
        for s in shards {
            let idx = s.0 as usize;
            if let (Some(entry), Some(rec)) = (d.book.shards().get(idx), d.records.get_mut(idx)) {
                rec.entry = entry.clone();
                records.push((*s, rec.clone()));
            }
        }
        if records.is_empty() {
            resolve(after, Ok(()), fx);
            return;
        }
        let next_epoch = d.book.next_epoch();
        let commit = CommitId(self.next_id());
        self.after_commit.insert(commit, after);
        fx.push(Effect::Persist(Persist {
            commit,
            dataset,
            records,
            next_epoch,
        }));
    }

    /// Feeds the outcome of an effect back in.
    pub fn handle_outcome(&mut self, outcome: Outcome, now: UnixMillis) -> Vec<Effect> {
        let mut fx = Vec::new();
        match outcome {
            Outcome::Committed { commit, result } => self.committed(commit, result, &mut fx),
            Outcome::Verified { ticket, verdict } => self.verified(ticket, verdict, now, &mut fx),
            Outcome::Promoted { ticket, result } => self.promoted(ticket, result, now, &mut fx),
            Outcome::Imported { import, result } => match result {
                Ok(()) => self.file_received_into(
                    import.to,
                    import.peer,
                    &import.header,
                    import.part,
                    now,
                    &mut fx,
                ),
                Err(refusal) => fx.push(Effect::Reply(import.to, Answer::Staged(Err(refusal)))),
            },
        }
        fx
    }

    fn committed(
        &mut self,
        commit: CommitId,
        result: Result<(), CommitFailure>,
        fx: &mut Vec<Effect>,
    ) {
        let after = self.after_commit.remove(&commit).unwrap_or_default();
        let result = result.map_err(|f| {
            let data_dir = self.cfg.data_dir.clone();
            self.fail_storage(&data_dir, f.free, f.cause.clone());
            f.cause
        });
        resolve(after, result, fx);
    }

    /// Fail-stops when `dir` (`--out` or the data dir) has (almost) no space left; the node
    /// measures both every half second.
    pub fn note_free_space(&mut self, dir: &Path, free: u64) {
        if free < MIN_FREE_BYTES {
            self.fail_storage(
                dir,
                Some(free),
                format!(
                    "no space left on its filesystem (below the {} minimum)",
                    crate::report::human_bytes(MIN_FREE_BYTES)
                ),
            );
        }
    }

    /// Enters fail-stop: logs one clear error naming `dir` and its free space.
    pub fn fail_storage(&mut self, dir: &Path, free: Option<u64>, cause: String) {
        if self.storage_failed.is_some() {
            return;
        }
        let err = StorageFailure {
            dir: dir.display().to_string(),
            free: free
                .map(crate::report::human_bytes)
                .unwrap_or_else(|| "unknown".into()),
            cause,
        };
        tracing::error!("{err}");
        self.storage_failed = Some(err);
    }
}

/// Carries out what waited on a commit.
fn resolve(after: AfterCommit, result: Result<(), String>, fx: &mut Vec<Effect>) {
    if let Some((to, answer, on_failure)) = after.reply {
        let answer = match (&result, on_failure) {
            (Err(e), OnFailure::Refuse(prefix)) => {
                ControlResponse::rejected(RejectReason::StorageFailed, format!("{prefix}: {e}"))
            }
            _ => answer,
        };
        fx.push(Effect::Reply(to, Answer::Control(answer)));
    }
    if result.is_ok() {
        fx.extend(after.gossip.into_iter().map(Effect::Gossip));
        if !after.stored.is_empty() {
            fx.push(Effect::AnnounceStored(after.stored));
        }
    }
}
