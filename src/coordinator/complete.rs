//! Completing a shard, in three steps so the actor never waits on file reads: [`prepare`]
//! checks the lease and names the files to verify (in the actor), [`VerifyJob::run`] verifies
//! them (on a blocking thread, see [`crate::verify`]), and [`commit`] checks the lease again
//! and stores the shard as done with the verified counts, or, for a delivery that failed
//! verification, refuses it as `Invalid`, deletes its files, frees the shard for another
//! worker (a failed attempt charged to the sender) and records the sender.
//!
//! [`prepare`]: Coordinator::prepare_complete
//! [`commit`]: Coordinator::commit_complete

use std::path::{Path, PathBuf};

use super::{Coordinator, files};
use crate::archive::{Compression, archive_stem, compression_for};
use crate::engine::OutputFormat;
use crate::model::ids::{DatasetId, ShardId};
use crate::model::time::UnixMillis;
use crate::protocol::control::{ControlResponse, RejectReason};
use crate::protocol::gossip::LeaseState;
use crate::protocol::settings::DatasetSettings;
use crate::seed::{dataset_dir, rowfile, shard_path};
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
    pub epoch: u64,
}

/// The files of one completion to verify, read off the actor.
#[derive(Debug, Clone)]
pub struct VerifyJob {
    spec: ShardSpec,
    rows_file: PathBuf,
    results: PathBuf,
    archive: PathBuf,
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
    /// Verifies the staged files (blocking: run it on a blocking thread).
    pub fn run(self) -> Result<Verified, VerifyFailure> {
        let rows = rowfile::read_rows(&self.rows_file).map_err(|e| {
            VerifyFailure::Seeder(format!("cannot read {}: {e}", self.rows_file.display()))
        })?;
        verify_shard(&self.spec, &rows, &self.results, &self.archive)
            .map_err(VerifyFailure::Invalid)
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

impl Coordinator {
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

    /// The files to verify for a completion, if `key` is a live lease of `peer`.
    pub fn prepare_complete(
        &self,
        peer: &str,
        key: CompleteKey,
        now: UnixMillis,
    ) -> Result<VerifyJob, ControlResponse> {
        let d = self.live_lease(peer, key.dataset, key.shard, key.epoch, now)?;
        let round = d.retry.get(&key.shard.0);
        let archive_name = match round {
            Some(r) => r.archive_name.clone(),
            None => d
                .seeded
                .archive_names
                .get(key.shard.0 as usize)
                .cloned()
                .unwrap_or_default(),
        };
        let rows_file = match round {
            Some(r) => r.rows_file.clone(),
            None => shard_path(&dataset_dir(&self.cfg.data_dir, key.dataset), key.shard),
        };
        let [archive, results] =
            files::take_for_verification(&self.cfg.out, key.dataset, key.shard, key.epoch);
        Ok(VerifyJob {
            spec: shard_spec(
                &archive_name,
                self.cfg.intake.max_file_size,
                self.delivery_format(),
            ),
            rows_file,
            results,
            archive,
        })
    }

    /// Stores a verified shard as done (if the lease is still live), or refuses the delivery.
    pub async fn commit_complete(
        &mut self,
        peer: &str,
        key: CompleteKey,
        verdict: Result<Verified, VerifyFailure>,
        now: UnixMillis,
    ) -> ControlResponse {
        let CompleteKey {
            dataset,
            shard,
            epoch,
        } = key;
        let v = match verdict {
            Ok(v) => v,
            Err(VerifyFailure::Seeder(e)) => {
                tracing::error!(dataset = %dataset, shard = %shard, "cannot verify a delivery: {e}");
                return ControlResponse::rejected(
                    RejectReason::StorageFailed,
                    "the seeder cannot read the shard's rows; retry later",
                );
            }
            Err(VerifyFailure::Invalid(Invalid::NotReceived(what))) => {
                // Not a forgery, just out of order: the lease stays (it expires if nothing
                // follows) and nobody is charged.
                return ControlResponse::rejected(
                    RejectReason::Invalid,
                    format!("the {what} of {shard} epoch {epoch} has not been received"),
                );
            }
            Err(VerifyFailure::Invalid(e)) => {
                return self.refuse_delivery(peer, key, &e, now).await;
            }
        };
        let archive_name = match self.live_lease(peer, dataset, shard, epoch, now) {
            Ok(d) => match d.retry.get(&shard.0) {
                Some(r) => r.archive_name.clone(),
                None => d
                    .seeded
                    .archive_names
                    .get(shard.0 as usize)
                    .cloned()
                    .unwrap_or_default(),
            },
            Err(refused) => {
                files::discard_epoch(&self.cfg.out, dataset, shard, epoch);
                return refused;
            }
        };
        let stored = match files::promote(&self.cfg.out, dataset, shard, epoch, &archive_name) {
            Ok(paths) => paths,
            Err(reason) => {
                tracing::error!(dataset = %dataset, shard = %shard, "{reason}");
                return ControlResponse::rejected(
                    RejectReason::StorageFailed,
                    "the seeder cannot store the shard; retry later",
                );
            }
        };
        let Some(d) = self.datasets.get_mut(&dataset) else {
            return super::requests::unknown(dataset);
        };
        let cancelled = match d.book.handle_complete(shard, epoch, peer, now) {
            Ok(c) => c,
            Err(e) => return super::requests::rejected(e),
        };
        let round = d.retry.remove(&shard.0);
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
        files::discard_staged(&self.cfg.out, dataset, shard);
        tracing::info!(dataset = %dataset, shard = %shard, peer, epoch, ok = v.ok, failed = v.failed, bytes = v.bytes, "shard verified and done");
        self.lease_gossip(dataset, shard, peer, epoch, LeaseState::Done, now);
        if let Err(e) = self.persist_checked(dataset, &[shard]).await {
            return ControlResponse::rejected(
                RejectReason::StorageFailed,
                format!("seeder storage failure: {e}"),
            );
        }
        if let Some(tx) = &self.cfg.stored {
            for p in stored {
                let _ = tx.send(p);
            }
        }
        ControlResponse::Ack
    }

    /// A delivery that failed verification: files deleted, shard freed for another worker as
    /// a failed attempt of `peer`, `peer` recorded, `Invalid` answered.
    async fn refuse_delivery(
        &mut self,
        peer: &str,
        key: CompleteKey,
        why: &Invalid,
        now: UnixMillis,
    ) -> ControlResponse {
        let CompleteKey {
            dataset,
            shard,
            epoch,
        } = key;
        tracing::warn!(dataset = %dataset, shard = %shard, peer, epoch, reason = %why, "delivery failed verification: refused, shard re-leased");
        if self.invalid_deliveries.len() < MAX_PEERS_COUNTED
            || self.invalid_deliveries.contains_key(peer)
        {
            *self.invalid_deliveries.entry(peer.to_string()).or_default() += 1;
        }
        files::discard_epoch(&self.cfg.out, dataset, shard, epoch);
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
            self.lease_gossip(dataset, shard, &lost.peer, epoch, LeaseState::Free, now);
            self.persist(dataset, &[shard]).await;
        }
        ControlResponse::rejected(RejectReason::Invalid, why.to_string())
    }

    /// Prepares, verifies (on a blocking thread) and commits in one call: the path of callers
    /// that drive the coordinator directly. The actor splits these steps instead.
    pub(super) async fn complete(
        &mut self,
        peer: &str,
        key: CompleteKey,
        now: UnixMillis,
    ) -> ControlResponse {
        let job = match self.prepare_complete(peer, key, now) {
            Ok(job) => job,
            Err(refused) => return refused,
        };
        let verdict = run_job(job).await;
        self.commit_complete(peer, key, verdict, now).await
    }

    /// Deliveries refused as invalid, per peer (peer id → count).
    pub fn invalid_deliveries(&self) -> &std::collections::BTreeMap<String, u64> {
        &self.invalid_deliveries
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
