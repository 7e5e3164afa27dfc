//! What the seeder's decisions ask the outside world to do ([`Effect`]) and what the outside
//! world reports back ([`Outcome`]). The state ([`super::SeederState`]) never touches a file,
//! the lease database or a channel: its handlers return effects, the executor
//! ([`super::exec`]) carries them out off the actor and feeds their outcomes back in.

use std::path::PathBuf;

use super::CoordinatorError;
use super::complete::{VerifyFailure, VerifyJob};
use super::files::IntakeDecision;
use crate::model::ids::{DatasetId, Epoch, NodeId, ShardId};
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
        epoch: Epoch,
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
        live: Vec<(ShardId, Epoch)>,
        /// The dataset's next epoch when the sweep was decided.
        below_epoch: Epoch,
    },
    /// One file (a transfer refused after it arrived).
    File(PathBuf),
}

/// Commit these shard records and the dataset's epoch mark; reports [`Outcome::Committed`].
/// Commits are applied in the order they are emitted.
#[derive(Debug)]
pub struct Persist {
    /// Which commit (the state waits on it to answer).
    pub commit: CommitId,
    /// The dataset.
    pub dataset: DatasetId,
    /// The shards' records as they are now.
    pub records: Vec<(ShardId, ShardRecord)>,
    /// The dataset's next epoch.
    pub next_epoch: Epoch,
}

/// Read a shard's rows file and answer with its rows (or a storage refusal naming the shard).
#[derive(Debug)]
pub struct ReadRows {
    /// Who asked.
    pub to: RequestId,
    /// The shard (named in a refusal).
    pub shard: ShardId,
    /// Its rows file.
    pub path: PathBuf,
}

/// Set a completion's staged files aside and verify them; reports [`Outcome::Verified`].
#[derive(Debug)]
pub struct Verify {
    /// The completion.
    pub ticket: Ticket,
    /// What to read.
    pub job: VerifyJob,
}

/// Move a verified completion's files into `--out` under their final names; reports
/// [`Outcome::Promoted`].
#[derive(Debug)]
pub struct PromoteFiles {
    /// The completion.
    pub ticket: Ticket,
    /// `[archive, results]` as verified.
    pub from: [PathBuf; 2],
    /// `[archive, results]` in `--out`.
    pub to: [PathBuf; 2],
}

/// Create the staging folder, then accept the transfer into `part_path` (or refuse it when
/// the folder cannot be created).
#[derive(Debug)]
pub struct OpenStaging {
    /// Who asked.
    pub to: RequestId,
    /// The staging folder.
    pub dir: PathBuf,
    /// Where the transfer is written.
    pub part_path: PathBuf,
}

/// Rename a finished transfer to its staged name and answer.
#[derive(Debug)]
pub struct StageFile {
    /// Who asked.
    pub to: RequestId,
    /// The finished transfer.
    pub part: PathBuf,
    /// Its staged name.
    pub staged: PathBuf,
}

/// Move (or copy across filesystems) the in-process worker's file to `part`; reports
/// [`Outcome::Imported`].
#[derive(Debug)]
pub struct ImportLocal {
    /// Who asked.
    pub to: RequestId,
    /// The worker.
    pub peer: NodeId,
    /// The file's lease and kind.
    pub header: TransferHeader,
    /// The worker's file.
    pub src: PathBuf,
    /// The staging folder.
    pub dir: PathBuf,
    /// Where it goes.
    pub part: PathBuf,
}

/// Merge the datasets' results (see [`crate::results::merge`]), clear the staging area, and
/// answer with the reports.
#[derive(Debug)]
pub struct Finalize {
    /// Who asked.
    pub to: RequestId,
    /// One merge per dataset.
    pub merges: Vec<DatasetMerge>,
}

/// One piece of work the state asks for. Each is carried out off the actor; those whose
/// result matters report an [`Outcome`].
#[derive(Debug)]
pub enum Effect {
    /// See [`Persist`].
    Persist(Persist),
    /// Publish a gossip message.
    Gossip(Gossip),
    /// Answer a request.
    Reply(RequestId, Answer),
    /// See [`ReadRows`].
    ReadRows(ReadRows),
    /// See [`Verify`].
    Verify(Verify),
    /// See [`PromoteFiles`].
    PromoteFiles(PromoteFiles),
    /// Delete files.
    Discard(Discard),
    /// See [`OpenStaging`].
    OpenStaging(OpenStaging),
    /// See [`StageFile`].
    StageFile(StageFile),
    /// See [`ImportLocal`].
    ImportLocal(ImportLocal),
    /// Tell the `stored` listener (e.g. the uploader) about files now in `--out`.
    AnnounceStored(Vec<PathBuf>),
    /// See [`Finalize`].
    Finalize(Finalize),
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
        /// The import as asked for.
        import: ImportLocal,
        /// Whether the file got to `import.part`.
        result: Result<(), Refusal>,
    },
}
