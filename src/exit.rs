//! Process exit codes shared by every subcommand, and the mapping from errors to them.
//!
//! `0` everything done; `1` the run completed but some rows, shards or files failed;
//! `2` bad input or usage (missing file, missing column, unwritable output, bad credentials,
//! unreachable server): nothing was attempted; `3` an internal failure; `4` a seeder's storage
//! failed mid-run (lease database commit or no space left): it stopped cleanly and a rerun
//! resumes; `130` interrupted.

/// The run completed and every item succeeded.
pub const OK: u8 = 0;
/// The run completed but some items failed (they are listed in the report).
pub const PARTIAL: u8 = 1;
/// Bad input or usage: the command refused to start. No partial output is left behind.
pub const BAD_INPUT: u8 = 2;
/// An internal failure (I/O error mid-run, runtime failure).
pub const INTERNAL: u8 = 3;
/// A seeder's storage failed mid-run (the first failed lease-database commit, or no space left
/// in `--out`): it stopped granting and renewing at once and left the committed state, which a
/// rerun with more space resumes.
pub const STORAGE_FAILED: u8 = 4;
/// Interrupted by SIGINT/SIGTERM after writing a consistent, resumable state.
pub const INTERRUPTED: u8 = 130;

/// An error that carries its own exit code; commands wrap user-input problems in it so that
/// `main` exits with [`BAD_INPUT`] instead of [`INTERNAL`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    /// What is wrong, naming the file/row/column/peer concerned.
    pub message: String,
}

impl UsageError {
    /// Wraps a message as a bad-input error (exit code 2).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Chooses the exit code for an error that reached `main`: [`BAD_INPUT`] when any error in the
/// chain is a [`UsageError`] or says it is bad input, [`STORAGE_FAILED`] for a seeder's storage
/// failure, [`INTERNAL`] otherwise.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause
            .downcast_ref::<crate::coordinator::StorageFailure>()
            .is_some()
        {
            return STORAGE_FAILED;
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return BAD_INPUT;
        }
        if let Some(input) = cause.downcast_ref::<crate::input::InputError>()
            && input.is_bad_input()
        {
            return BAD_INPUT;
        }
    }
    INTERNAL
}
