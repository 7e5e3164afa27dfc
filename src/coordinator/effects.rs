//! What the seeder's decisions ask the outside world to do ([`Effect`]) and what the outside
//! world reports back ([`Outcome`]). The state ([`super::SeederState`]) never touches a file,
//! the lease database or a channel: its handlers return effects, the executor
//! ([`super::exec`]) carries them out off the actor and feeds their outcomes back in.

use std::path::PathBuf;

use super::CoordinatorError;
use super::complete::{VerifyFailure, VerifyJob};
use super::files::IntakeDecision;
use crate::model::ids::{DatasetId, ShardId};
use crate::protocol::control::{ControlResponse, Refusal};
use crate::protocol::gossip::Gossip;
use crate::protocol::transfer::TransferHeader;
use crate::results::{DatasetMerge, FinalReport};
use crate::store::ShardRecord;
use crate::verify::Verified;

/// A request waiting for its answer (allocated by whoever holds the reply channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A lease-database commit whose outcome gates an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommitId(pub u64);

/// One completion on its way through verification and promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(pub u64);

/// An answer to a request.
#[derive(Debug)]
pub enum Answer {
    /// To a control request.
    Control(ControlResponse),
    /// To an announced transfer.
    Intake(IntakeDecision),
    /// To a finished transfer or an in-process worker's file.
    Staged(Result<(), Refusal>),
    /// To a finalize request.
    Finalized(Result<Vec<FinalReport>, CoordinatorError>),
}

/// Files to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discard {
    /// The staged, partial and set-aside files of one ended epoch of a shard.
    Epoch {
        /// The dataset.
        dataset: DatasetId,
        /// The shard.
        shard: ShardId,
        /// The ended lease epoch.
        epoch: u64,
    },
    /// Every staging file of a shard (after its completion: losing copies, old epochs).
    Shard {
        /// The dataset.
        dataset: DatasetId,
        /// The shard.
        shard: ShardId,
    },
    /// Every staging file of the dataset whose lease is not in `live` and whose epoch is below
    /// `below_epoch` (leases granted after the decision are never touched), and any file that
    /// is not a staging file.
    Sweep {
        /// The dataset.
        dataset: DatasetId,
        /// Leases held when the sweep was decided.
        live: Vec<(ShardId, u64)>,
        /// The dataset's next epoch when the sweep was decided.
        below_epoch: u64,
    },
    /// One file (a transfer refused after it arrived).
    File(PathBuf),
}

/// One piece of work the state asks for. Each is carried out off the actor; those whose
/// result matters report an [`Outcome`].
#[derive(Debug)]
pub enum Effect {
    /// Commit these shard records and the dataset's epoch mark; reports
    /// [`Outcome::Committed`]. Commits are applied in the order they are emitted.
    Persist {
        /// Which commit (the state waits on it to answer).
        commit: CommitId,
        /// The dataset.
        dataset: DatasetId,
        /// The shards' records as they are now.
        records: Vec<(ShardId, ShardRecord)>,
        /// The dataset's next epoch.
        next_epoch: u64,
    },
    /// Publish a gossip message.
    Gossip(Gossip),
    /// Answer a request.
    Reply(RequestId, Answer),
    /// Read a shard's rows file and answer with its rows (or a storage refusal naming the
    /// shard).
    ReadRows {
        /// Who asked.
        to: RequestId,
        /// The shard (named in a refusal).
        shard: ShardId,
        /// Its rows file.
        path: PathBuf,
    },
    /// Set a completion's staged files aside and verify them; reports [`Outcome::Verified`].
    Verify {
        /// The completion.
        ticket: Ticket,
        /// What to read.
        job: VerifyJob,
    },
    /// Move a verified completion's files into `--out` under their final names; reports
    /// [`Outcome::Promoted`].
    PromoteFiles {
        /// The completion.
        ticket: Ticket,
        /// `[archive, results]` as verified.
        from: [PathBuf; 2],
        /// `[archive, results]` in `--out`.
        to: [PathBuf; 2],
    },
    /// Delete files.
    Discard(Discard),
    /// Create the staging folder, then accept the transfer into `part_path` (or refuse it
    /// when the folder cannot be created).
    OpenStaging {
        /// Who asked.
        to: RequestId,
        /// The staging folder.
        dir: PathBuf,
        /// Where the transfer is written.
        part_path: PathBuf,
    },
    /// Rename a finished transfer to its staged name and answer.
    StageFile {
        /// Who asked.
        to: RequestId,
        /// The finished transfer.
        part: PathBuf,
        /// Its staged name.
        staged: PathBuf,
    },
    /// Move (or copy across filesystems) the in-process worker's file to `part`; reports
    /// [`Outcome::Imported`].
    ImportLocal {
        /// Who asked.
        to: RequestId,
        /// The worker.
        peer: String,
        /// The file's lease and kind.
        header: TransferHeader,
        /// The worker's file.
        src: PathBuf,
        /// The staging folder.
        dir: PathBuf,
        /// Where it goes.
        part: PathBuf,
    },
    /// Tell the `stored` listener (e.g. the uploader) about files now in `--out`.
    AnnounceStored(Vec<PathBuf>),
    /// Merge the datasets' results (see [`crate::results::merge`]), clear the staging area,
    /// and answer with the reports.
    Finalize {
        /// Who asked.
        to: RequestId,
        /// One merge per dataset.
        merges: Vec<DatasetMerge>,
    },
}

/// Why a commit failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitFailure {
    /// The store's error.
    pub cause: String,
    /// Free bytes on the data dir when it failed, if measurable.
    pub free: Option<u64>,
}

/// What the executor reports back.
#[derive(Debug)]
pub enum Outcome {
    /// A [`Effect::Persist`] finished.
    Committed {
        /// Which.
        commit: CommitId,
        /// Its result.
        result: Result<(), CommitFailure>,
    },
    /// A [`Effect::Verify`] finished.
    Verified {
        /// Which completion.
        ticket: Ticket,
        /// The verdict.
        verdict: Result<Verified, VerifyFailure>,
    },
    /// A [`Effect::PromoteFiles`] finished: the final paths, or why not.
    Promoted {
        /// Which completion.
        ticket: Ticket,
        /// `[archive, results]` in `--out`, or the error.
        result: Result<[PathBuf; 2], String>,
    },
    /// A [`Effect::ImportLocal`] finished.
    Imported {
        /// Who asked.
        to: RequestId,
        /// The worker.
        peer: String,
        /// The file's lease and kind.
        header: TransferHeader,
        /// Where it is now.
        part: PathBuf,
        /// Whether it got there.
        result: Result<(), Refusal>,
    },
}
