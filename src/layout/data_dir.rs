//! The node's data dir (`--data-dir`, a seeder's default `<out>/.ldawt`): its identity and
//! swarm keys, the lease database, the lock held while a node runs, the seeded datasets'
//! row files and the worker's scratch, where a finished shard waits (with its
//! `finished.json`) until its seeder has stored it.
//!
//! ```text
//! <data>/identity.key                          libp2p identity (0600)
//! <data>/swarm.key                             a seeder's swarm key (0600)
//! <data>/leases.redb                           leases and completion records
//! <data>/node.lock                             held while a node runs
//! <data>/datasets/<id>/manifest.json           a complete seeding
//! <data>/datasets/<id>/shard-00042.rows        the rows of shard 42
//! <data>/datasets/<id>/shard-00042.hosts       its heaviest hosts (`seed::hosts`)
//! <data>/datasets/<id>/retry-00042-r1.rows     the rows of its first retry round
//! <data>/work/<id>/00042-e7/                   a worker's scratch for epoch 7 of shard 42
//! <data>/work/<id>/00042-e7/finished.json      …once the shard is finished
//! ```

use std::path::PathBuf;

use crate::model::ids::{DatasetId, Epoch, ShardId};

directory_type! {
    /// A node's data dir.
    DataDir, "The data dir at `path`."
}

impl DataDir {
    /// The node's libp2p identity (`identity.key`).
    pub fn identity_key(&self) -> PathBuf {
        self.0.join("identity.key")
    }

    /// The swarm key a seeder creates or reuses (`swarm.key`).
    pub fn swarm_key(&self) -> PathBuf {
        self.0.join(SWARM_KEY_FILE)
    }

    /// The redb lease database (`leases.redb`).
    pub fn leases_db(&self) -> PathBuf {
        self.0.join("leases.redb")
    }

    /// The lock file that keeps a second node off this data dir (`node.lock`).
    pub fn lock_file(&self) -> PathBuf {
        self.0.join("node.lock")
    }

    /// Where a seeded dataset's row files are (`datasets/<id>`).
    pub fn dataset(&self, id: DatasetId) -> SeedDir {
        SeedDir(self.0.join("datasets").join(id.to_hex()))
    }

    /// The worker's scratch (`work`).
    pub fn work(&self) -> WorkDir {
        WorkDir(self.0.join("work"))
    }
}

/// The swarm key's file name in a data dir.
pub const SWARM_KEY_FILE: &str = "swarm.key";

directory_type! {
    /// One seeded dataset's directory in the data dir: its manifest and row files.
    SeedDir, "The directory at `path` (`<data>/datasets/<id>`)."
}

impl SeedDir {
    /// `manifest.json`, written last: its presence marks a complete seeding.
    pub fn manifest(&self) -> PathBuf {
        self.0.join("manifest.json")
    }

    /// The rows of one shard (`shard-00042.rows`).
    pub fn shard_rows(&self, shard: ShardId) -> PathBuf {
        self.0.join(format!("{shard}.rows"))
    }

    /// The rows of retry round `round` of `shard` (`retry-00042-r1.rows`).
    pub fn retry_rows(&self, shard: ShardId, round: u32) -> PathBuf {
        self.0
            .join(format!("retry-{}-r{round}.rows", shard.padded()))
    }
}

directory_type! {
    /// The worker's scratch: one directory per lease, grouped by dataset.
    WorkDir, "The scratch at `path` (`<data>/work`)."
}

impl WorkDir {
    /// One lease's directory (`<id>/00042-e7`).
    pub fn lease(&self, dataset: DatasetId, shard: ShardId, epoch: Epoch) -> LeaseDir {
        LeaseDir(
            self.0
                .join(dataset.to_hex())
                .join(format!("{}-e{epoch}", shard.padded())),
        )
    }
}

directory_type! {
    /// One lease's scratch directory: the shard's archive and results file, and the marker of a
    /// finished shard.
    LeaseDir, "The directory at `path` (as found when the work dir is scanned)."
}

impl LeaseDir {
    /// The shard's archive (its granted name).
    pub fn archive(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The marker of a finished shard (`finished.json`).
    pub fn finished_marker(&self) -> PathBuf {
        self.0.join(FINISHED_MARKER)
    }
}

/// The finished-shard marker's file name.
pub const FINISHED_MARKER: &str = "finished.json";

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_path_keeps_its_name() {
        let d = DataDir::new("/d");
        let id = DatasetId([0xab; 16]);
        let hex = id.to_hex();
        assert_eq!(d.identity_key(), Path::new("/d/identity.key"));
        assert_eq!(d.swarm_key(), Path::new("/d/swarm.key"));
        assert_eq!(d.leases_db(), Path::new("/d/leases.redb"));
        assert_eq!(d.lock_file(), Path::new("/d/node.lock"));
        let s = d.dataset(id);
        assert_eq!(s.path(), Path::new(&format!("/d/datasets/{hex}")));
        assert_eq!(s.manifest(), s.path().join("manifest.json"));
        assert_eq!(s.shard_rows(ShardId(42)), s.path().join("shard-00042.rows"));
        assert_eq!(
            s.retry_rows(ShardId(42), 3),
            s.path().join("retry-00042-r3.rows")
        );
        assert_eq!(
            s.shard_rows(ShardId(123_456)),
            s.path().join("shard-123456.rows")
        );
        let l = d.work().lease(id, ShardId(7), Epoch(12));
        assert_eq!(l.path(), Path::new(&format!("/d/work/{hex}/00007-e12")));
        assert_eq!(l.finished_marker(), l.path().join("finished.json"));
        assert_eq!(l.archive("x-00007.tar.gz"), l.path().join("x-00007.tar.gz"));
    }
}
