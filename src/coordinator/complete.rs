//! Completing a shard, as decisions between effects so the actor never waits on a file: the
//! request checks the lease and asks for the staged files to be set aside and verified
//! ([`Effect::Verify`], see [`crate::verify`]); the verdict checks the lease again and asks
//! for the files to be moved into `--out` ([`Effect::PromoteFiles`]; the lease is kept alive
//! meanwhile, and another completion of the same shard waits for the outcome); once promoted,
//! the shard is done and committed with the verified counts, and the answer follows the
//! commit. A delivery that failed verification is refused as `Invalid`, its files deleted, the
//! shard freed for another worker (a failed attempt charged to the sender) and the sender
//! recorded. A promotion that fails is the seeder's own storage problem: nobody is charged,
//! the lease stays, and the worker is told to retry later.

use std::path::{Path, PathBuf};

use super::effects::{Answer, Discard, Effect, PromoteFiles, RequestId, Ticket, Verify};
use super::files;
use super::state::{AfterCommit, OnFailure, SeederState};
use crate::archive::{Compression, archive_stem, compression_for};
use crate::engine::OutputFormat;
use crate::layout::DataDir;
use crate::model::ids::{DatasetId, Epoch, NodeId, ShardId};
use crate::model::lease_state::LeaseState;
use crate::model::time::UnixMillis;
use crate::protocol::control::{ControlResponse, RejectReason};
use crate::protocol::settings::DatasetSettings;
use crate::seed::rowfile;
use crate::verify::{DeliveryFormat, Invalid, SampleRules, ShardSpec, Verified, verify_shard};

/// Peers whose invalid deliveries are counted (the table stays bounded under a flood of
/// fresh identities; the log still names every one).
const MAX_PEERS_COUNTED: usize = 4096;

/// Which lease a completion is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompleteKey {
    /// The dataset the shard belongs to.
    pub dataset: DatasetId,
    /// The shard whose lease the completion closes.
    pub shard: ShardId,
    /// The lease epoch.
    pub epoch: Epoch,
}

/// The files of one completion to verify, read off the actor.
#[derive(Debug, Clone)]
pub struct VerifyJob {
    spec: ShardSpec,
    rows_file: PathBuf,
    /// `[archive, results]` as staged, set aside before reading.
    staged: [PathBuf; 2],
    /// `[archive, results]` set aside: what is verified, then promoted.
    verifying: [PathBuf; 2],
}

/// A verification's result.
pub type Verdict = Result<Verified, VerifyFailure>;

/// A completion in flight.
#[derive(Debug, Clone)]
pub(super) struct Completion {
    to: RequestId,
    peer: NodeId,
    key: CompleteKey,
    /// Its verified counts, once promotion is under way.
    verified: Option<Verified>,
}

/// Why a completion could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyFailure {
    /// The delivery is wrong: the sender's fault.
    Invalid(Invalid),
    /// The seeder could not read its own rows: nobody's fault, retry later.
    Seeder(String),
}

impl VerifyJob {
    /// Sets the staged files aside (a file set aside by an earlier attempt is kept when
    /// nothing newer was staged), then verifies them (blocking: run it on a blocking thread).
    pub fn run(self) -> Result<Verified, VerifyFailure> {
        for (staged, verifying) in self.staged.iter().zip(&self.verifying) {
            super::file_ops::set_aside(staged, verifying);
        }
        let [archive, results] = &self.verifying;
        let rows = rowfile::read_rows(&self.rows_file).map_err(|e| {
            VerifyFailure::Seeder(format!("cannot read {}: {e}", self.rows_file.display()))
        })?;
        verify_shard(&self.spec, &rows, results, archive).map_err(VerifyFailure::Invalid)
    }
}

/// The webdataset delivery rules of the dataset's settings: its class table as a lookup.
fn sample_rules(s: &DatasetSettings) -> SampleRules {
    SampleRules {
        class_ids: s
            .class_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), u32::try_from(i).unwrap_or(u32::MAX)))
            .collect(),
        captions: s.caption_col.is_some(),
    }
}

/// The delivery rules of a shard whose archive is `archive_name`, in `format`.
fn shard_spec(archive_name: &str, max_member_bytes: u64, format: DeliveryFormat) -> ShardSpec {
    let path = Path::new(archive_name);
    ShardSpec {
        top: archive_stem(path),
        gzip: compression_for(path) != Compression::None,
        max_member_bytes,
        format,
    }
}

impl SeederState {
    /// How the dataset's shards are delivered (classdirs without settings); the webdataset
    /// rules are built once.
    fn delivery_format(&self) -> DeliveryFormat {
        match self.cfg.settings.as_ref() {
            Some(s) if s.format == OutputFormat::Webdataset => {
                DeliveryFormat::Webdataset(std::sync::Arc::clone(
                    self.sample_rules
                        .get_or_init(|| std::sync::Arc::new(sample_rules(s))),
                ))
            }
            Some(s) if s.format == OutputFormat::Parquet => DeliveryFormat::Parquet,
            _ => DeliveryFormat::Classdirs,
        }
    }

    /// A completion request: if `key` is a live lease of `peer`, its files are verified.
    pub(super) fn start_complete(
        &mut self,
        to: RequestId,
        peer: NodeId,
        key: CompleteKey,
        now: UnixMillis,
        fx: &mut Vec<Effect>,
    ) {
        let job = match self.verify_job(peer, key, now) {
            Ok(job) => job,
            Err(refused) => return fx.push(Effect::Reply(to, Answer::Control(refused))),
        };
        let ticket = Ticket(self.next_id());
        self.completions.insert(
            ticket,
            Completion {
                to,
                peer,
                key,
                verified: None,
            },
        );
        fx.push(Effect::Verify(Verify { ticket, job }));
    }

    /// The files to verify for a completion, if `key` is a live lease of `peer`.
    fn verify_job(
        &self,
        peer: NodeId,
        key: CompleteKey,
        now: UnixMillis,
    ) -> Result<VerifyJob, ControlResponse> {
        let d = self.live_lease(peer, key.dataset, key.shard, key.epoch, now)?;
        let archive_name = d.archive_name(key.shard);
        let rows_file = match d.retry.get(&key.shard) {
            Some(r) => r.rows_file.clone(),
            None => DataDir::new(&self.cfg.data_dir)
                .dataset(key.dataset)
                .shard_rows(key.shard),
        };
        let (staged, verifying) =
            files::verification_paths(&self.cfg.out, key.dataset, key.shard, key.epoch);
        Ok(VerifyJob {
            spec: shard_spec(
                &archive_name,
                self.cfg.intake.max_file_size,
                self.delivery_format(),
            ),
            rows_file,
            staged,
            verifying,
        })
    }

    /// A verdict: a valid delivery whose lease is still live has its files promoted; anything
    /// else is answered (and, when invalid, charged to the sender).
    pub(super) fn verified(
        &mut self,
        ticket: Ticket,
        verdict: Verdict,
        now: UnixMillis,
        fx: &mut Vec<Effect>,
    ) {
        let Some(c) = self.completions.get(&ticket).cloned() else {
            return;
        };
        let CompleteKey {
            dataset,
            shard,
            epoch,
        } = c.key;
        let refuse = |this: &mut Self, fx: &mut Vec<Effect>, r: ControlResponse| {
            this.completions.remove(&ticket);
            fx.push(Effect::Reply(c.to, Answer::Control(r)));
        };
        let v = match verdict {
            Ok(v) => v,
            Err(VerifyFailure::Seeder(e)) => {
                tracing::error!(dataset = %dataset, shard = %shard, "cannot verify a delivery: {e}");
                let r = ControlResponse::rejected(
                    RejectReason::StorageFailed,
                    "the seeder cannot read the shard's rows; retry later",
                );
                return refuse(self, fx, r);
            }
            Err(VerifyFailure::Invalid(Invalid::NotReceived(what))) => {
                // Not a forgery, just out of order: the lease stays (it expires if nothing
                // follows) and nobody is charged.
                let r = ControlResponse::rejected(
                    RejectReason::Invalid,
                    format!("the {what} of {shard} epoch {epoch} has not been received"),
                );
                return refuse(self, fx, r);
            }
            Err(VerifyFailure::Invalid(e)) => {
                self.completions.remove(&ticket);
                return self.refuse_delivery(c.to, c.peer, c.key, &e, now, fx);
            }
        };
        if self.promoting.contains_key(&(dataset, shard)) {
            // Another completion of this shard is being stored: this one is decided after it.
            self.deferred.push((ticket, Ok(v)));
            return;
        }
        let archive_name = match self.live_lease(c.peer, dataset, shard, epoch, now) {
            Ok(d) => d.archive_name(shard),
            Err(refused) => {
                fx.push(Effect::Discard(Discard::Epoch {
                    dataset,
                    shard,
                    epoch,
                }));
                return refuse(self, fx, refused);
            }
        };
        // The holder is delivering: its lease must not lapse while its files are moved.
        if let Some(d) = self.datasets.get_mut(&dataset) {
            let _ = d.book.handle_delivering(shard, epoch, c.peer, now);
        }
        self.promoting.insert((dataset, shard), ticket);
        if let Some(c) = self.completions.get_mut(&ticket) {
            c.verified = Some(v);
        }
        let (_, from) = files::verification_paths(&self.cfg.out, dataset, shard, epoch);
        fx.push(Effect::PromoteFiles(PromoteFiles {
            ticket,
            from,
            to: files::final_paths(&self.cfg.out, &archive_name),
        }));
    }

    /// A promotion's outcome: the shard is done and committed (answered once committed), or
    /// the worker is told to retry later. Completions of the same shard that waited are then
    /// decided.
    pub(super) fn promoted(
        &mut self,
        ticket: Ticket,
        result: Result<[PathBuf; 2], String>,
        now: UnixMillis,
        fx: &mut Vec<Effect>,
    ) {
        let Some(c) = self.completions.remove(&ticket) else {
            return;
        };
        let key = c.key;
        self.promoting.remove(&(key.dataset, key.shard));
        let answer = match (result, c.verified) {
            (Ok(stored), Some(v)) => self.store_done(c.peer, key, v, stored, c.to, now, fx),
            (Err(reason), _) => {
                tracing::error!(dataset = %key.dataset, shard = %key.shard, "{reason}");
                Some(ControlResponse::rejected(
                    RejectReason::StorageFailed,
                    "the seeder cannot store the shard; retry later",
                ))
            }
            (Ok(_), None) => None,
        };
        if let Some(r) = answer {
            fx.push(Effect::Reply(c.to, Answer::Control(r)));
        }
        let (waiting, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|(t, _)| {
                self.completions
                    .get(t)
                    .is_some_and(|w| (w.key.dataset, w.key.shard) == (key.dataset, key.shard))
            });
        self.deferred = rest;
        for (t, verdict) in waiting {
            self.verified(t, verdict, now, fx);
        }
    }

    /// Stores a promoted shard as done; `None` when the answer waits on the commit.
    #[allow(clippy::too_many_arguments)]
    fn store_done(
        &mut self,
        peer: NodeId,
        key: CompleteKey,
        v: Verified,
        stored: [PathBuf; 2],
        to: RequestId,
        now: UnixMillis,
        fx: &mut Vec<Effect>,
    ) -> Option<ControlResponse> {
        let CompleteKey {
            dataset,
            shard,
            epoch,
        } = key;
        let Some(d) = self.datasets.get_mut(&dataset) else {
            return Some(super::requests::unknown(dataset));
        };
        let cancelled = match d.book.handle_complete(shard, epoch, peer, now) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(dataset = %dataset, shard = %shard, peer = %peer, epoch = %epoch, "stored files of a lease that ended meanwhile: {e}");
                return Some(super::requests::rejected(e));
            }
        };
        let round = d.retry.remove(&shard);
        if let Some(r) = d.records.get_mut(shard.0 as usize) {
            if round.is_some() {
                // A retry round's rows were all failed before: they move to their new outcome.
                r.ok += v.ok;
                r.failed = r.failed.saturating_sub(v.ok + v.skipped);
                r.bytes += v.bytes;
            } else {
                r.ok = v.ok;
                r.failed = v.failed;
                r.bytes = v.bytes;
            }
        }
        if let Some(round) = &round {
            tracing::info!(dataset = %dataset, shard = %shard, round = round.round, ok = v.ok, "retry round stored beside the shard");
        }
        for c in &cancelled {
            tracing::info!(dataset = %dataset, shard = %shard, peer = %c.peer, "copy cancelled: another completion won");
        }
        fx.push(Effect::Discard(Discard::Shard { dataset, shard }));
        tracing::info!(dataset = %dataset, shard = %shard, peer = %peer, epoch = %epoch, ok = v.ok, failed = v.failed, bytes = v.bytes, "shard verified and done");
        fx.push(Effect::Gossip(self.lease_gossip(
            dataset,
            shard,
            peer,
            epoch,
            LeaseState::Done,
            now,
        )));
        let mut after = AfterCommit::reply(
            to,
            ControlResponse::Ack,
            OnFailure::Refuse("seeder storage failure"),
        );
        if self.cfg.stored.is_some() {
            after.stored = stored.to_vec();
        }
        self.persist(dataset, &[shard], after, fx);
        None
    }

    /// A delivery that failed verification: files deleted, shard freed for another worker as
    /// a failed attempt of `peer`, `peer` recorded, `Invalid` answered.
    fn refuse_delivery(
        &mut self,
        to: RequestId,
        peer: NodeId,
        key: CompleteKey,
        why: &Invalid,
        now: UnixMillis,
        fx: &mut Vec<Effect>,
    ) {
        let CompleteKey {
            dataset,
            shard,
            epoch,
        } = key;
        tracing::warn!(dataset = %dataset, shard = %shard, peer = %peer, epoch = %epoch, reason = %why, "delivery failed verification: refused, shard re-leased");
        if self.invalid_deliveries.len() < MAX_PEERS_COUNTED
            || self.invalid_deliveries.contains_key(&peer)
        {
            *self.invalid_deliveries.entry(peer).or_default() += 1;
        }
        fx.push(Effect::Discard(Discard::Epoch {
            dataset,
            shard,
            epoch,
        }));
        let answer = ControlResponse::rejected(RejectReason::Invalid, why.to_string());
        let freed = self.datasets.get_mut(&dataset).map(|d| {
            d.book.handle_abandon(
                shard,
                epoch,
                peer,
                &format!("invalid delivery: {why}"),
                true,
                now,
            )
        });
        if let Some(Ok(lost)) = freed {
            let g = self.lease_gossip(dataset, shard, lost.peer, epoch, LeaseState::Free, now);
            fx.push(Effect::Gossip(g));
            let after = AfterCommit::reply(to, answer, OnFailure::AnswerAnyway);
            self.persist(dataset, &[shard], after, fx);
        } else {
            fx.push(Effect::Reply(to, Answer::Control(answer)));
        }
    }
}

/// Runs a verification on a blocking thread; a panic while reading the sender's files counts
/// as an invalid delivery.
pub async fn run_job(job: VerifyJob) -> Result<Verified, VerifyFailure> {
    tokio::task::spawn_blocking(move || job.run())
        .await
        .unwrap_or_else(|e| {
            Err(VerifyFailure::Invalid(Invalid::Unverifiable(format!(
                "the reader stopped: {e}"
            ))))
        })
}
