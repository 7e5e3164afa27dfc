//! What a seeder checks before it accepts a shard from a worker: the results file against the
//! rows it seeded ([`rows`]), then the archive against those results ([`members`]), each file
//! streamed once (an archive is never held in memory). The counts and bytes of an accepted
//! shard are the ones verified here, never the worker's own.
//!
//! Every output format a seeder collects is checked: classdirs and webdataset tars (the
//! webdataset side members `KEY.json`/`KEY.cls`/`KEY.txt` bounded and parsed, `.cls` against
//! the seeder's class table, see [`samples`] and [`classes`]), and images parquets
//! ([`parquet`]). `--format files` is not collected by a swarm.
//!
//! This module reads files; the rules themselves are pure and live in [`rows`],
//! [`members`] and [`samples`].

pub mod classes;
pub mod members;
pub mod parquet;
pub mod rows;
pub mod samples;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::input::UrlRow;
use crate::results::{check_foreign_results, read_results};
use members::{ArchiveCheck, EntryKind};
use rows::{MemberKind, ResultsCheck};
pub use samples::SampleRules;

/// Zero bytes accepted after the end-of-archive block (a tar is padded to its record size).
const MAX_TRAILING_ZEROS: u64 = 1 << 20;
/// Uncompressed results bytes allowed per row (URL, class, error text, member, hash) and per
/// file, checked from the footer before any row is decoded.
const MAX_RESULT_BYTES_PER_ROW: u64 = 64 << 10;
const MAX_RESULT_BYTES_PER_FILE: u64 = 1 << 20;
/// Longest GNU long name read (member paths are three names of at most 255 bytes).
const MAX_LONG_NAME: u64 = 1024;
/// Read size while hashing members.
const READ_CHUNK: usize = 1 << 16;

/// What the delivered files of one shard must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    /// The archive's top folder (its name without `.tar.gz`/`.tar`).
    pub top: String,
    /// True for a gzip-compressed archive (chosen by the archive name, as the engine does).
    pub gzip: bool,
    /// Largest member accepted (the dataset's largest file).
    pub max_member_bytes: u64,
    /// The dataset's output format.
    pub format: DeliveryFormat,
}

/// The output formats a seeder verifies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DeliveryFormat {
    /// A tar of `<top>/<class folder>/<file>`.
    #[default]
    Classdirs,
    /// A tar of samples `KEY.<ext>`, `KEY.json`, `KEY.cls`, `KEY.txt`.
    Webdataset(std::sync::Arc<SampleRules>),
    /// An images parquet (one row per stored image, see [`parquet`]).
    Parquet,
}

/// The counts of a verified shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Rows stored (their members are in the archive, hashes checked).
    pub ok: u64,
    /// Rows failed.
    pub failed: u64,
    /// Rows skipped (no URL).
    pub skipped: u64,
    /// Bytes of the stored members.
    pub bytes: u64,
}

/// Why a delivery is refused. Every variant is the sender's fault; the detail names the row
/// or member concerned (never a path on the seeder's disk).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// A file was never transferred.
    #[error("the {0} has not been received")]
    NotReceived(&'static str),
    /// The results file is not a readable results parquet.
    #[error("unreadable results file: {0}")]
    UnreadableResults(String),
    /// A result for a row index the shard does not hold.
    #[error("row {0} is not in this shard")]
    UnknownRow(u64),
    /// Two results for one row.
    #[error("row {0} has more than one result")]
    DuplicateRow(u64),
    /// Rows without a result.
    #[error("{missing} rows have no result (first: row {first})")]
    MissingRows {
        /// Lowest missing index.
        first: u64,
        /// How many.
        missing: usize,
    },
    /// The URL differs from the seeded one.
    #[error("row {0}: not the seeded URL")]
    WrongUrl(u64),
    /// The class differs from the seeded one.
    #[error("row {0}: not the seeded class")]
    WrongClass(u64),
    /// Something else wrong with a row.
    #[error("row {index}: {why}")]
    BadRow {
        /// The row.
        index: u64,
        /// What.
        why: String,
    },
    /// An `ok` row's member name is not one the engine would give it.
    #[error("row {index}: member '{member}': {why}")]
    BadMember {
        /// The row.
        index: u64,
        /// The name (cut to 200 characters).
        member: String,
        /// What.
        why: String,
    },
    /// Two rows name the same member.
    #[error("member '{0}' is named by two rows")]
    DuplicateMember(String),
    /// The archive is not a readable tar of the expected compression.
    #[error("unreadable archive: {0}")]
    UnreadableArchive(String),
    /// An archive member no `ok` row names (or a second copy of one).
    #[error("archive member '{0}' is not a stored row's (or is there twice)")]
    UnexpectedMember(String),
    /// An entry that is not a file or folder of the shard.
    #[error("archive entry '{path}': {why}")]
    UnexpectedEntry {
        /// The entry's path.
        path: String,
        /// What.
        why: String,
    },
    /// A member's size differs from its row's.
    #[error("archive member '{member}' holds {found} bytes, its row says {expected}")]
    MemberSize {
        /// The member's path inside the archive.
        member: String,
        /// The row's size.
        expected: u64,
        /// The archive's.
        found: u64,
    },
    /// A member's sha256 differs from its row's.
    #[error("archive member '{0}' does not have its row's sha256")]
    MemberHash(String),
    /// An `ok` row's member is not in the archive.
    #[error("archive member '{0}' is missing")]
    MissingMember(String),
    /// Reading the files failed in a way no check foresaw (the reader gave up on them).
    #[error("the delivered files could not be verified: {0}")]
    Unverifiable(String),
    /// Bytes after the end of the tar (other than its zero padding).
    #[error("data after the end of the archive")]
    TrailingData,
}

/// Verifies a delivered shard: `results` against the seeded `rows`, then `archive` against
/// the results. Returns the verified counts.
pub fn verify_shard(
    spec: &ShardSpec,
    rows: &[UrlRow],
    results: &Path,
    archive: &Path,
) -> Result<Verified, Invalid> {
    if !results.exists() {
        return Err(Invalid::NotReceived("results file"));
    }
    if !archive.exists() {
        return Err(Invalid::NotReceived("archive"));
    }
    let max_rows = rows.len() as u64;
    check_foreign_results(
        results,
        max_rows,
        max_rows.saturating_mul(MAX_RESULT_BYTES_PER_ROW) + MAX_RESULT_BYTES_PER_FILE,
    )
    .map_err(|e| Invalid::UnreadableResults(format_error(&e.to_string(), results)))?;
    let mut check = ResultsCheck::new(spec, rows);
    let mut first_error = None;
    read_results(results, |r| {
        if first_error.is_none()
            && let Err(e) = check.push(&r)
        {
            first_error = Some(e);
        }
    })
    .map_err(|e| Invalid::UnreadableResults(format_error(&e.to_string(), results)))?;
    if let Some(e) = first_error {
        return Err(e);
    }
    let expected = check.finish()?;
    if spec.format == DeliveryFormat::Parquet {
        parquet::check_images(archive, &expected)?;
        return Ok(expected.verified);
    }
    let mut members = ArchiveCheck::new(&expected);
    check_archive(archive, spec.gzip, &mut members)?;
    members.finish()?;
    Ok(expected.verified)
}

/// Drops the seeder's own path from an error text (refusals never name local paths).
fn format_error(text: &str, path: &Path) -> String {
    let local = path.display().to_string();
    text.replace(&format!("{local}: "), "").replace(&local, "")
}

fn unreadable(e: impl std::fmt::Display) -> Invalid {
    Invalid::UnreadableArchive(e.to_string())
}

/// Streams the archive at `path` through `check`.
fn check_archive(path: &Path, gzip: bool, check: &mut ArchiveCheck) -> Result<(), Invalid> {
    let file = File::open(path).map_err(|_| Invalid::NotReceived("archive"))?;
    let input = BufReader::with_capacity(READ_CHUNK, file);
    if gzip {
        let mut gz = flate2::bufread::GzDecoder::new(input);
        walk_tar(&mut gz, check)?;
        let mut rest = gz.into_inner();
        if !rest.fill_buf().map_err(unreadable)?.is_empty() {
            return Err(Invalid::TrailingData);
        }
        Ok(())
    } else {
        let mut input = input;
        walk_tar(&mut input, check)
    }
}

/// Checks every entry of the tar stream `input`, then that only zero padding follows (read to
/// its end, so a gzip stream's checksum is verified too).
fn walk_tar<R: Read>(input: &mut R, check: &mut ArchiveCheck) -> Result<(), Invalid> {
    let mut archive = tar::Archive::new(&mut *input);
    let mut buf = vec![0u8; READ_CHUNK];
    // Raw entries: the tar crate would read a long-name or PAX header of any announced size
    // into memory; here a GNU long name is read with a bound and PAX headers are refused (the
    // engine never writes them).
    let mut long_name: Option<Vec<u8>> = None;
    for entry in archive.entries().map_err(unreadable)?.raw(true) {
        let mut entry = entry.map_err(unreadable)?;
        let t = entry.header().entry_type();
        if t.is_gnu_longname() {
            if long_name.is_some() || entry.size() > MAX_LONG_NAME {
                return Err(unreadable("an oversized or repeated GNU long name"));
            }
            let mut name = Vec::new();
            entry.read_to_end(&mut name).map_err(unreadable)?;
            while name.last() == Some(&0) {
                name.pop();
            }
            long_name = Some(name);
            continue;
        }
        let kind = if t.is_file() {
            EntryKind::File
        } else if t.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::Other(t.as_byte())
        };
        let size = entry.size();
        let path = match long_name.take() {
            Some(name) => name,
            None => entry.path_bytes().into_owned(),
        };
        let Some((member, want)) = check.entry(&path, kind, size)? else {
            continue;
        };
        if want.kind != MemberKind::Image {
            // A side member: bounded by `entry`, read whole and parsed.
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
            (&mut entry)
                .take(size)
                .read_to_end(&mut data)
                .map_err(unreadable)?;
            samples::check_side(&member, &want, &data)?;
            continue;
        }
        let mut hasher = Sha256::new();
        let mut read = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            read += n as u64;
        }
        check.content(&member, &want, read, hasher.finalize().into())?;
    }
    if long_name.is_some() {
        return Err(unreadable("a GNU long name describes no entry"));
    }
    let input = archive.into_inner();
    let mut trailing = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(unreadable)?;
        if n == 0 {
            return Ok(());
        }
        trailing += n as u64;
        if trailing > MAX_TRAILING_ZEROS || buf[..n].iter().any(|b| *b != 0) {
            return Err(Invalid::TrailingData);
        }
    }
}

#[cfg(test)]
mod tests;
