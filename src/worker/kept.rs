//! Finished shards a worker keeps across its own death. When the engine has finished a shard,
//! a marker (`finished.json`: the grant, the seeder, the counts and the archive's digest) is
//! written next to the archive in `<work dir>/<dataset>/<shard>-e<epoch>/`. A worker that
//! starts again (after `kill -9`, a crash, a reboot) keeps every such directory, removes all
//! other scratch (half-downloaded shards), and offers each kept shard to its seeder again as
//! soon as that seeder is in its offers: the delivery resumes (the seeder keeps the partial
//! transfer), and only a definite answer (stored, or the lease fenced / gone) ends it. A shard
//! whose lease lapsed meanwhile is refused as fenced and deleted then, never before.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layout::LeaseDir;
use crate::model::ids::NodeId;
use crate::protocol::control::Grant;

/// What a finished shard needs to be delivered again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// Its lease.
    pub grant: Grant,
    /// The seeder (as `SeederLink::seeder` names it; its peer id text in the marker).
    pub seeder: NodeId,
    /// Rows stored.
    pub ok: u64,
    /// Rows failed or skipped.
    pub failed: u64,
    /// Image bytes.
    pub bytes: u64,
    /// The archive's size, from the engine.
    pub archive_size: u64,
    /// The archive's sha256 (hex), from the engine.
    pub archive_sha256: Option<String>,
}

/// A kept shard: its directory and marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    /// `<work dir>/<dataset>/<shard>-e<epoch>`.
    pub dir: PathBuf,
    /// The marker.
    pub finished: Finished,
}

/// Writes the marker into `dir` (atomically: a half-written marker is never read back).
pub fn write_marker(dir: &Path, f: &Finished) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(f).map_err(std::io::Error::other)?;
    crate::layout::write_atomic(&LeaseDir::new(dir).finished_marker(), &bytes)
}

/// The marker of `dir`, if it holds a finished shard whose archive and results are present.
fn read_marker(dir: &Path) -> Option<Finished> {
    let dir = LeaseDir::new(dir);
    let f: Finished = serde_json::from_slice(&std::fs::read(dir.finished_marker()).ok()?).ok()?;
    crate::model::shard::check_archive_name(&f.grant.archive_name).ok()?;
    let archive = dir.archive(&f.grant.archive_name);
    let len = std::fs::metadata(&archive).ok()?.len();
    let results = crate::engine::results_path(&archive);
    (len == f.archive_size && results.is_file()).then_some(f)
}

/// Cleans `work_dir` after a previous life: keeps every finished shard (returned), removes
/// everything else (scratch of shards that never finished). Creates `work_dir` if missing.
pub fn recover(work_dir: &Path) -> Vec<Kept> {
    let mut kept = Vec::new();
    let datasets = std::fs::read_dir(work_dir).into_iter().flatten().flatten();
    for ds in datasets {
        let ds_path = ds.path();
        if !ds_path.is_dir() {
            let _ = std::fs::remove_file(&ds_path);
            continue;
        }
        for shard in std::fs::read_dir(&ds_path).into_iter().flatten().flatten() {
            let dir = shard.path();
            match read_marker(&dir) {
                Some(finished) => kept.push(Kept { dir, finished }),
                None => {
                    let _ = std::fs::remove_dir_all(&dir).or_else(|_| std::fs::remove_file(&dir));
                }
            }
        }
        // Empty dataset directories go (fails harmlessly when something was kept).
        let _ = std::fs::remove_dir(&ds_path);
    }
    if let Err(e) = std::fs::create_dir_all(work_dir) {
        tracing::error!("cannot create the work dir {}: {e}", work_dir.display());
    }
    kept.sort_by_key(|k| (k.finished.grant.shard.0, k.finished.grant.epoch));
    for k in &kept {
        let g = &k.finished.grant;
        tracing::info!(dataset = %g.dataset, shard = %g.shard, epoch = %g.epoch, seeder = %k.finished.seeder, "kept a shard finished before the restart; it is offered to its seeder again");
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::{DatasetId, Epoch, ShardId};
    use crate::model::time::UnixMillis;

    fn finished(shard: u32, size: u64) -> Finished {
        Finished {
            grant: Grant {
                dataset: DatasetId([7; 16]),
                shard: ShardId(shard),
                epoch: Epoch(3),
                expires_at: UnixMillis(0),
                ttl_ms: 1_000,
                rows: 10,
                archive_name: format!("shard-{shard:05}.tar.gz"),
                speculative: false,
                settings: None,
            },
            seeder: crate::model::ids::seeded_node_id(1),
            ok: 9,
            failed: 1,
            bytes: 100,
            archive_size: size,
            archive_sha256: None,
        }
    }

    #[test]
    fn finished_shards_survive_a_restart_and_scratch_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        let ds = work.join(DatasetId([7; 16]).to_hex());
        // A finished shard: marker, archive of the announced size, results.
        let done = ds.join("00001-e3");
        std::fs::create_dir_all(&done).unwrap();
        std::fs::write(done.join("shard-00001.tar.gz"), b"12345").unwrap();
        std::fs::write(done.join("shard-00001.results.parquet"), b"r").unwrap();
        write_marker(&done, &finished(1, 5)).unwrap();
        // Half-downloaded: no marker.
        let half = ds.join("00002-e4");
        std::fs::create_dir_all(&half).unwrap();
        std::fs::write(half.join("shard-00002.tar.gz"), b"12").unwrap();
        // A marker whose archive is truncated is not trusted.
        let bad = ds.join("00003-e5");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("shard-00003.tar.gz"), b"1").unwrap();
        std::fs::write(bad.join("shard-00003.results.parquet"), b"r").unwrap();
        write_marker(&bad, &finished(3, 5)).unwrap();
        let kept = recover(&work);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].dir, done);
        assert_eq!(kept[0].finished, finished(1, 5));
        assert!(!half.exists() && !bad.exists());
        // Nothing left to keep: the tree is cleaned and the work dir exists.
        std::fs::remove_dir_all(&done).unwrap();
        assert!(recover(&work).is_empty());
        assert!(work.is_dir() && !ds.exists());
        assert!(recover(&tmp.path().join("fresh")).is_empty());
        assert!(tmp.path().join("fresh").is_dir());
    }

    #[test]
    fn the_marker_names_the_seeder_by_its_peer_id_text() {
        let f = finished(1, 5);
        let mut v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["seeder"], serde_json::json!(f.seeder.to_string()));
        assert_eq!(serde_json::from_value::<Finished>(v.clone()).unwrap(), f);
        // Text that is no peer id is an error naming it, not a panic.
        v["seeder"] = "local".into();
        let err = serde_json::from_value::<Finished>(v)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a peer id (\"local\")"), "{err}");
    }
}
