//! A seeder's output dir (`--out`): the stored shards (each archive with its results file,
//! named by the seeding), the dataset's merged files, and the staging area of the transfers
//! arriving from workers.
//!
//! ```text
//! <out>/<archive>                              a stored shard (`name-00042.tar.gz`, …)
//! <out>/<stem>.results.parquet                 its results file (archive::results_path)
//! <out>/<stem>-r1.<ext>                        a retry round's archive, beside it
//! <out>/results.parquet                        one row per input row, at finalize
//! <out>/overview.json, <out>/report.html       the dataset's summary and page
//! <out>/<dataset name>.classes.json            a webdataset's class table
//! <out>/.ldawt-dataset                         which dataset this directory holds
//! <out>/.ldawt/                                a seeder's default data dir
//! <out>/.incoming/<id>/00042.e7.archive.part   a transfer being written
//! <out>/.incoming/<id>/00042.e7.archive        …received and verified by net (staged)
//! <out>/.incoming/<id>/00042.e7.archive.verifying   …set aside while it is verified
//! ```

use std::path::PathBuf;

use crate::model::ids::{DatasetId, Epoch, ShardId};

directory_type! {
    /// A seeder's output dir.
    OutDir, "The output dir at `path`."
}

impl OutDir {
    /// A stored archive, by its name (its results file is
    /// [`crate::archive::results_path`] of this).
    pub fn archive(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The merged `results.parquet` of the dataset.
    pub fn results(&self) -> PathBuf {
        self.0.join("results.parquet")
    }

    /// The dataset's merged `overview.json`.
    pub fn overview(&self) -> PathBuf {
        self.0.join("overview.json")
    }

    /// The dataset's `report.html`.
    pub fn report_page(&self) -> PathBuf {
        self.0.join("report.html")
    }

    /// A webdataset's class table (`<dataset name>.classes.json`).
    pub fn classes(&self, dataset_name: &str) -> PathBuf {
        self.0.join(format!("{dataset_name}.classes.json"))
    }

    /// The marker naming the dataset this directory holds (`.ldawt-dataset`).
    pub fn dataset_marker(&self) -> PathBuf {
        self.0.join(".ldawt-dataset")
    }

    /// A seeder's data dir when none is given (`.ldawt`).
    pub fn default_data_dir(&self) -> PathBuf {
        self.0.join(".ldawt")
    }

    /// The staging area of every dataset (`.incoming`).
    pub fn incoming(&self) -> PathBuf {
        self.0.join(".incoming")
    }

    /// The staging area of one dataset (`.incoming/<id>`).
    pub fn incoming_dataset(&self, dataset: DatasetId) -> PathBuf {
        self.incoming().join(dataset.to_hex())
    }

    /// A received (staged) file of epoch `epoch` of `shard`; `kind` is `archive` or
    /// `results` (`.incoming/<id>/00042.e7.archive`).
    pub fn staged(&self, dataset: DatasetId, shard: ShardId, epoch: Epoch, kind: &str) -> PathBuf {
        self.incoming_dataset(dataset)
            .join(format!("{}{epoch}.{kind}", staged_prefix(shard)))
    }

    /// The same file while its transfer is written (`….part`).
    pub fn staged_part(
        &self,
        dataset: DatasetId,
        shard: ShardId,
        epoch: Epoch,
        kind: &str,
    ) -> PathBuf {
        with_suffix(self.staged(dataset, shard, epoch, kind), ".part")
    }

    /// The same file set aside while it is verified (`….verifying`).
    pub fn verifying(
        &self,
        dataset: DatasetId,
        shard: ShardId,
        epoch: Epoch,
        kind: &str,
    ) -> PathBuf {
        with_suffix(self.staged(dataset, shard, epoch, kind), VERIFYING_SUFFIX)
    }
}

/// The suffix of a staged file set aside for verification.
pub const VERIFYING_SUFFIX: &str = ".verifying";

/// The start of the name of every staging file of `shard` (`00042.e`).
pub fn staged_prefix(shard: ShardId) -> String {
    format!("{}.e", shard.padded())
}

/// `(shard, epoch)` of a staging file name `<shard>.e<epoch>.<kind>[.part|.verifying]`.
pub fn parse_staged_name(name: &str) -> Option<(ShardId, Epoch)> {
    let (shard, rest) = name.split_once(".e")?;
    let (epoch, _) = rest.split_once('.')?;
    Some((ShardId(shard.parse().ok()?), Epoch(epoch.parse().ok()?)))
}

fn with_suffix(path: PathBuf, suffix: &str) -> PathBuf {
    let mut p = path.into_os_string();
    p.push(suffix);
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_path_keeps_its_name() {
        let o = OutDir::new("o");
        let id = DatasetId([1; 16]);
        let inc = format!("o/.incoming/{}", id.to_hex());
        assert_eq!(o.archive("d-00001.tar"), Path::new("o/d-00001.tar"));
        assert_eq!(o.results(), Path::new("o/results.parquet"));
        assert_eq!(o.overview(), Path::new("o/overview.json"));
        assert_eq!(o.report_page(), Path::new("o/report.html"));
        assert_eq!(o.classes("birds"), Path::new("o/birds.classes.json"));
        assert_eq!(o.dataset_marker(), Path::new("o/.ldawt-dataset"));
        assert_eq!(o.default_data_dir(), Path::new("o/.ldawt"));
        assert_eq!(o.incoming(), Path::new("o/.incoming"));
        let (s, e) = (ShardId(42), Epoch(7));
        assert_eq!(
            o.staged(id, s, e, "archive"),
            Path::new(&format!("{inc}/00042.e7.archive"))
        );
        assert_eq!(
            o.staged_part(id, s, e, "results"),
            Path::new(&format!("{inc}/00042.e7.results.part"))
        );
        assert_eq!(
            o.verifying(id, s, e, "archive"),
            Path::new(&format!("{inc}/00042.e7.archive.verifying"))
        );
    }

    #[test]
    fn staging_names_parse_back() {
        for name in [
            "00042.e7.archive",
            "00042.e7.results.part",
            "00042.e7.archive.verifying",
        ] {
            assert_eq!(
                parse_staged_name(name),
                Some((ShardId(42), Epoch(7))),
                "{name}"
            );
            assert!(name.starts_with(&staged_prefix(ShardId(42))));
        }
        assert!(!"00042.e7.archive".starts_with(&staged_prefix(ShardId(4))));
        for name in ["junk", "x.e7.archive", "00042.ex.archive", "00042.e7"] {
            assert_eq!(parse_staged_name(name), None, "{name}");
        }
    }
}
