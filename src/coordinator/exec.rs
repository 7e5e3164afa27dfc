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

use super::complete::{Verdict, run_job};
use super::effects::{
    Answer, CommitFailure, CommitId, Discard, Effect, Finalize, ImportLocal, OpenStaging, Outcome,
    PromoteFiles, ReadRows, RequestId, StageFile, Verify,
};
use super::files::IntakeDecision;
use super::{CoordinatorError, file_ops};
use crate::protocol::control::{ControlResponse, Refusal, RejectReason};
use crate::protocol::gossip::Gossip;
use crate::results::FinalReport;
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

/// Work carried out off the actor: the effect itself, with the reply channel beside it where
/// the job answers its requester directly.
pub(super) enum Job {
    /// A commit already submitted, to wait for.
    Commit {
        commit: CommitId,
        wait: CommitWait,
        data_dir: PathBuf,
    },
    /// Set aside and verify a completion's files.
    Verify(Verify),
    /// Renames, copies and deletions in the staging area and `--out`, kept in order.
    Files(FileJob),
    /// Read a shard's rows for a worker.
    Rows(Replying<ReadRows>),
    /// Merge every dataset's results, then clear the staging area.
    Finalize(Replying<Finalize>),
}

/// File work of the ordered lane.
pub(super) enum FileJob {
    Promote(PromoteFiles),
    Discard(Discard),
    OpenStaging(Replying<OpenStaging>),
    Stage(Replying<StageFile>),
    Import(ImportLocal),
}

/// An effect whose job answers its requester itself, with the requester's channel.
pub(super) struct Replying<T> {
    reply: Reply,
    work: T,
}

/// A requester's channel, taken from [`Replies`] when the job starts (`None` when nobody
/// waits any more).
pub(super) struct Reply(Option<Pending>);

impl Reply {
    /// Sends `a` to whoever waits for it (if anyone still does); work answered this way
    /// reports no outcome to the state.
    fn send(self, a: Answer) -> Option<Outcome> {
        if let Some(r) = self.0 {
            r.send(a);
        }
        None
    }
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
            Effect::Persist(p) => Some(Job::Commit {
                commit: p.commit,
                wait: Box::pin(self.store.submit_shards_with_epoch(
                    p.dataset,
                    p.records,
                    p.next_epoch,
                )),
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
            Effect::ReadRows(r) => Some(Job::Rows(self.replying(r.to, r))),
            Effect::Verify(v) => Some(Job::Verify(v)),
            Effect::PromoteFiles(p) => Some(Job::Files(FileJob::Promote(p))),
            Effect::Discard(d) => Some(Job::Files(FileJob::Discard(d))),
            Effect::OpenStaging(o) => {
                Some(Job::Files(FileJob::OpenStaging(self.replying(o.to, o))))
            }
            Effect::StageFile(s) => Some(Job::Files(FileJob::Stage(self.replying(s.to, s)))),
            Effect::ImportLocal(i) => Some(Job::Files(FileJob::Import(i))),
            Effect::Finalize(f) => Some(Job::Finalize(self.replying(f.to, f))),
        }
    }

    /// `work` with the reply channel of `to`.
    fn replying<T>(&mut self, to: RequestId, work: T) -> Replying<T> {
        Replying {
            reply: Reply(self.replies.take(to)),
            work,
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
            Job::Verify(Verify { ticket, job }) => {
                let verdict: Verdict = run_job(job).await;
                Some(Outcome::Verified { ticket, verdict })
            }
            Job::Rows(Replying {
                reply,
                work: ReadRows { shard, path, .. },
            }) => {
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
                reply.send(Answer::Control(answer))
            }
            Job::Finalize(Replying {
                reply,
                work: Finalize { merges, .. },
            }) => {
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
                reply.send(Answer::Finalized(done))
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
            FileJob::Promote(p) => Some(Outcome::Promoted {
                ticket: p.ticket,
                result: file_ops::promote(&p.from, &p.to),
            }),
            FileJob::Discard(d) => {
                file_ops::discard(out, &d);
                None
            }
            FileJob::OpenStaging(Replying {
                reply,
                work: OpenStaging { dir, part_path, .. },
            }) => {
                let decision = match file_ops::open_staging(&dir) {
                    Ok(()) => IntakeDecision::Accept { part_path },
                    Err(refusal) => IntakeDecision::Reject(refusal),
                };
                reply.send(Answer::Intake(decision))
            }
            FileJob::Stage(Replying {
                reply,
                work: StageFile { part, staged, .. },
            }) => reply.send(Answer::Staged(file_ops::stage(&part, &staged))),
            FileJob::Import(import) => Some(Outcome::Imported {
                result: file_ops::import(&import.src, &import.dir, &import.part),
                import,
            }),
        }
    }
}

/// Runs `f` on a blocking thread; `None` when it panicked.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}
