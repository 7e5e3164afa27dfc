//! `ldawt node --seed … --retry-failed` on a dataset whose shards are done: a *retry round* of
//! a done shard re-opens it for the rows whose latest outcome is not final (they failed with a
//! kind another attempt may cure, see [`crate::engine::retry_failed`]); workers lease it like
//! any shard but get only those rows, under the archive name `<stem>-r<N>.<ext>`; the seeder
//! verifies the delivery against those rows and stores it beside the original (its own results
//! file `<stem>-r<N>.results.parquet`); finalize lays each round's outcomes over the earlier
//! ones, so `results.parquet` keeps exactly one row per input row, the newest outcome, with
//! the archive that holds it. No original file is rewritten and no `ok` row is fetched again.
//!
//! Nothing is persisted for a round beyond its rows file: a restarted seeder derives the
//! round again from the files in `--out` (a shard that is not done but whose results file
//! exists is in a round).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::archive::results_path;
use crate::engine::retry_failed::is_final;
use crate::layout::{OutDir, SeedDir};
use crate::model::ids::ShardId;
pub use crate::results::merge::{round_archive, stored_rounds};
use crate::results::read_results;
use crate::seed::rowfile;

/// A shard's open retry round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryRound {
    /// 1 for the first round.
    pub round: u32,
    /// Rows retried.
    pub rows: u64,
    /// The round's archive name (`<stem>-r<round>.tar.gz`, or `.parquet`).
    pub archive_name: String,
    /// The rows file of the round (under the dataset's data dir).
    pub rows_file: PathBuf,
}

/// Plans the next round of `shard` (archive `base`), if its stored outcomes (the original
/// results, then each stored round's) leave rows worth another try: writes their rows file
/// in `dir` (the dataset's data dir). `None` when the shard has no results file or nothing to
/// retry.
pub fn plan(
    out: &Path,
    dir: &Path,
    shard: ShardId,
    base: &str,
) -> Result<Option<RetryRound>, String> {
    let out_dir = OutDir::new(out);
    let first = results_path(&out_dir.archive(base));
    if !first.exists() {
        return Ok(None);
    }
    let rounds = stored_rounds(out, base);
    let mut retry: HashMap<u64, bool> = HashMap::new();
    let files = std::iter::once(first)
        .chain(rounds.iter().map(|n| results_path(&out_dir.archive(n))))
        .collect::<Vec<_>>();
    for f in &files {
        read_results(f, |r| {
            retry.insert(r.index, !is_final(&r));
        })
        .map_err(|e| e.to_string())?;
    }
    let wanted: HashSet<u64> = retry
        .into_iter()
        .filter_map(|(i, again)| again.then_some(i))
        .collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    let round = rounds.len() as u32 + 1;
    let seed_dir = SeedDir::new(dir);
    let rows_file = seed_dir.retry_rows(shard, round);
    let all = rowfile::read_rows(&seed_dir.shard_rows(shard)).map_err(|e| e.to_string())?;
    let mut w = rowfile::RowFileWriter::create(&rows_file).map_err(|e| e.to_string())?;
    for r in all.iter().filter(|r| wanted.contains(&r.index)) {
        w.push(r).map_err(|e| e.to_string())?;
    }
    let rows = w.finish().map_err(|e| e.to_string())?;
    Ok(Some(RetryRound {
        round,
        rows,
        archive_name: round_archive(base, round),
        rows_file,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_names_keep_the_extension() {
        assert_eq!(round_archive("b-00001.tar.gz", 2), "b-00001-r2.tar.gz");
        assert_eq!(round_archive("b-00001.parquet", 1), "b-00001-r1.parquet");
        assert_eq!(round_archive("b-00001.tar", 1), "b-00001-r1.tar");
        for n in ["b-00001-r2.tar.gz", "b-00001-r1.parquet"] {
            assert!(crate::model::shard::check_archive_name(n).is_ok(), "{n}");
        }
    }
}
