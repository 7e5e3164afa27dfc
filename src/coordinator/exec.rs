//! Carries out the state's [`Effect`]s: answers, gossip and announcements at once; commits
//! submitted to the lease database in the order they were decided; file work and reads on
//! blocking threads. [`Executor::start`] does what needs no waiting and returns the rest as a
//! [`Job`], whose [`Job::run`] reports an [`Outcome`] when the state must hear of it. The actor
//! ([`super::handle`]) runs jobs concurrently (file moves in one ordered lane, verifications
//! a few at a time); the tests' driver runs them one after the other.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

use super::complete::{Verdict, VerifyJob, run_job};
use super::effects::{
    Answer, CommitFailure, CommitId, Discard, Effect, Outcome, RequestId, Ticket,
};
use super::files::IntakeDecision;
use super::{CoordinatorError, file_ops};
use crate::model::ids::ShardId;
use crate::protocol::control::{ControlResponse, Refusal, RejectReason};
use crate::protocol::gossip::Gossip;
use crate::protocol::transfer::TransferHeader;
use crate::results::{DatasetMerge, FinalReport};
use crate::seed::rowfile;
use crate::store::{Store, StoreError};

/// Where an answer goes.
pub(super) enum Pending {
    Control(oneshot::Sender<ControlResponse>),
    Intake(oneshot::Sender<IntakeDecision>),
    Staged(oneshot::Sender<Result<(), Refusal>>),
    Finalized(oneshot::Sender<Result<Vec<FinalReport>, CoordinatorError>>),
}

impl Pending {
    /// Sends `answer` if it is of the kind awaited (anything else is a bug: logged, dropped).
    fn send(self, answer: Answer) {
        let sent = match (self, answer) {
            (Self::Control(tx), Answer::Control(a)) => tx.send(a).is_ok(),
            (Self::Intake(tx), Answer::Intake(a)) => tx.send(a).is_ok(),
            (Self::Staged(tx), Answer::Staged(a)) => tx.send(a).is_ok(),
            (Self::Finalized(tx), Answer::Finalized(a)) => tx.send(a).is_ok(),
            (_, a) => {
                tracing::error!("coordinator answer of the wrong kind dropped: {a:?}");
                true
            }
        };
        if !sent {
            tracing::debug!("a coordinator answer found its requester gone");
        }
    }
}

/// The requests waiting for an answer.
#[derive(Default)]
pub(super) struct Replies {
    next: u64,
    waiting: HashMap<RequestId, Pending>,
}

impl Replies {
    /// Registers a reply channel; its id goes to the state with the request.
    pub(super) fn register(&mut self, pending: Pending) -> RequestId {
        self.next += 1;
        let id = RequestId(self.next);
        self.waiting.insert(id, pending);
        id
    }

    fn take(&mut self, to: RequestId) -> Option<Pending> {
        self.waiting.remove(&to)
    }

    fn answer(&mut self, to: RequestId, answer: Answer) {
        if let Some(p) = self.take(to) {
            p.send(answer);
        }
    }
}

type CommitWait = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// Work carried out off the actor.
pub(super) enum Job {
    /// A commit already submitted, to wait for.
    Commit {
        commit: CommitId,
        wait: CommitWait,
        data_dir: PathBuf,
    },
    /// Set aside and verify a completion's files.
    Verify { ticket: Ticket, job: VerifyJob },
    /// Renames, copies and deletions in the staging area and `--out`, kept in order.
    Files(FileJob),
    /// Read a shard's rows for a worker.
    Rows {
        reply: Option<Pending>,
        shard: ShardId,
        path: PathBuf,
    },
    /// Merge every dataset's results, then clear the staging area.
    Finalize {
        reply: Option<Pending>,
        merges: Vec<DatasetMerge>,
    },
}

/// File work of the ordered lane.
pub(super) enum FileJob {
    Promote {
        ticket: Ticket,
        from: [PathBuf; 2],
        to: [PathBuf; 2],
    },
    Discard(Discard),
    OpenStaging {
        reply: Option<Pending>,
        dir: PathBuf,
        part_path: PathBuf,
    },
    Stage {
        reply: Option<Pending>,
        part: PathBuf,
        staged: PathBuf,
    },
    Import {
        to: RequestId,
        peer: String,
        header: TransferHeader,
        src: PathBuf,
        dir: PathBuf,
        part: PathBuf,
    },
}

/// What the executor needs to reach: the lease database, the gossip and stored-file
/// listeners, the reply channels, and `--out`.
pub(super) struct Executor {
    pub(super) store: Store,
    pub(super) out: PathBuf,
    pub(super) data_dir: PathBuf,
    pub(super) gossip: mpsc::UnboundedSender<Gossip>,
    pub(super) stored: Option<mpsc::UnboundedSender<PathBuf>>,
    pub(super) replies: Replies,
}

impl Executor {
    /// Does what needs no waiting (answers, gossip, announcements, submitting a commit in
    /// order) and returns the rest.
    pub(super) fn start(&mut self, effect: Effect) -> Option<Job> {
        match effect {
            Effect::Persist {
                commit,
                dataset,
                records,
                next_epoch,
            } => Some(Job::Commit {
                commit,
                wait: Box::pin(
                    self.store
                        .submit_shards_with_epoch(dataset, records, next_epoch),
                ),
                data_dir: self.data_dir.clone(),
            }),
            Effect::Gossip(g) => {
                let _ = self.gossip.send(g);
                None
            }
            Effect::Reply(to, answer) => {
                self.replies.answer(to, answer);
                None
            }
            Effect::AnnounceStored(paths) => {
                if let Some(tx) = &self.stored {
                    for p in paths {
                        let _ = tx.send(p);
                    }
                }
                None
            }
            Effect::ReadRows { to, shard, path } => Some(Job::Rows {
                reply: self.replies.take(to),
                shard,
                path,
            }),
            Effect::Verify { ticket, job } => Some(Job::Verify { ticket, job }),
            Effect::PromoteFiles { ticket, from, to } => {
                Some(Job::Files(FileJob::Promote { ticket, from, to }))
            }
            Effect::Discard(d) => Some(Job::Files(FileJob::Discard(d))),
            Effect::OpenStaging { to, dir, part_path } => Some(Job::Files(FileJob::OpenStaging {
                reply: self.replies.take(to),
                dir,
                part_path,
            })),
            Effect::StageFile { to, part, staged } => Some(Job::Files(FileJob::Stage {
                reply: self.replies.take(to),
                part,
                staged,
            })),
            Effect::ImportLocal {
                to,
                peer,
                header,
                src,
                dir,
                part,
            } => Some(Job::Files(FileJob::Import {
                to,
                peer,
                header,
                src,
                dir,
                part,
            })),
            Effect::Finalize { to, merges } => Some(Job::Finalize {
                reply: self.replies.take(to),
                merges,
            }),
        }
    }
}

impl Job {
    /// Carries the job out; the outcome the state must hear of, if any.
    pub(super) async fn run(self, out: &Path) -> Option<Outcome> {
        match self {
            Job::Commit {
                commit,
                wait,
                data_dir,
            } => {
                let result = match wait.await {
                    Ok(()) => Ok(()),
                    Err(e) => Err(CommitFailure {
                        cause: e.to_string(),
                        free: blocking(move || crate::layout::free_space(&data_dir))
                            .await
                            .flatten(),
                    }),
                };
                Some(Outcome::Committed { commit, result })
            }
            Job::Verify { ticket, job } => {
                let verdict: Verdict = run_job(job).await;
                Some(Outcome::Verified { ticket, verdict })
            }
            Job::Rows { reply, shard, path } => {
                let read = blocking(move || rowfile::read_rows(&path))
                    .await
                    .unwrap_or_else(|| Err(std::io::Error::other("the reader stopped")));
                let answer = match read {
                    Ok(rows) => ControlResponse::Rows(rows),
                    Err(e) => ControlResponse::rejected(
                        RejectReason::StorageFailed,
                        format!("seeder cannot read the rows of {shard}: {e}"),
                    ),
                };
                if let Some(r) = reply {
                    r.send(Answer::Control(answer));
                }
                None
            }
            Job::Finalize { reply, merges } => {
                let out = out.to_path_buf();
                let done = blocking(move || {
                    let mut reports = Vec::new();
                    for m in merges {
                        reports.push(m.write().map_err(super::finalize::finalize_error)?);
                    }
                    file_ops::clear_incoming(&out);
                    Ok(reports)
                })
                .await
                .unwrap_or_else(|| {
                    Err(CoordinatorError::Io {
                        path: "results.parquet".into(),
                        source: std::io::Error::other("the writer stopped"),
                    })
                });
                if let Some(r) = reply {
                    r.send(Answer::Finalized(done));
                }
                None
            }
            Job::Files(f) => {
                let out = out.to_path_buf();
                blocking(move || f.run(&out)).await.flatten()
            }
        }
    }
}

impl FileJob {
    /// Carries the file work out (blocking).
    fn run(self, out: &Path) -> Option<Outcome> {
        match self {
            FileJob::Promote { ticket, from, to } => Some(Outcome::Promoted {
                ticket,
                result: file_ops::promote(&from, &to),
            }),
            FileJob::Discard(d) => {
                file_ops::discard(out, &d);
                None
            }
            FileJob::OpenStaging {
                reply,
                dir,
                part_path,
            } => {
                let decision = match file_ops::open_staging(&dir) {
                    Ok(()) => IntakeDecision::Accept { part_path },
                    Err(refusal) => IntakeDecision::Reject(refusal),
                };
                answer(reply, Answer::Intake(decision))
            }
            FileJob::Stage {
                reply,
                part,
                staged,
            } => answer(reply, Answer::Staged(file_ops::stage(&part, &staged))),
            FileJob::Import {
                to,
                peer,
                header,
                src,
                dir,
                part,
            } => Some(Outcome::Imported {
                to,
                peer,
                header,
                result: file_ops::import(&src, &dir, &part),
                part,
            }),
        }
    }
}

/// Sends `a` to whoever waits for it (if anyone still does); file work answered this way
/// reports no outcome to the state.
fn answer(reply: Option<Pending>, a: Answer) -> Option<Outcome> {
    if let Some(r) = reply {
        r.send(a);
    }
    None
}

/// Runs `f` on a blocking thread; `None` when it panicked.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}
