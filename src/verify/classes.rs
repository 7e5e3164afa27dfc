//! The webdataset class table of a seeded dataset, owned by the seeder: ids in order of first
//! appearance over the seeded rows in shard order (for a file seeded in input order: the same
//! table `ldawt download` writes), computed once at seeding, sent to every worker in the
//! settings (so every shard's `KEY.cls` agrees) and checked against each delivery.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::layout::{DataDir, OutDir};
use crate::model::ids::ShardId;
use crate::seed::{SeededDataset, rowfile};

/// The class names of `seeded` (data under `data_dir`), id = position.
pub fn class_table(data_dir: &Path, seeded: &SeededDataset) -> std::io::Result<Vec<String>> {
    let dir = DataDir::new(data_dir).dataset(seeded.id);
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for i in 0..seeded.shard_rows.len() {
        let path = dir.shard_rows(ShardId(u32::try_from(i).unwrap_or(u32::MAX)));
        let rows = rowfile::read_rows(&path)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        for r in rows {
            if let Some(c) = r.class
                && !seen.contains(&c)
            {
                seen.insert(c.clone());
                names.push(c);
            }
        }
    }
    Ok(names)
}

/// Where the seeder writes the table: `<out>/<dataset name>.classes.json`.
pub fn classes_file(out: &Path, seeded: &SeededDataset) -> PathBuf {
    OutDir::new(out).classes(&seeded.name)
}

/// Writes the table of `names` ([`table_json`]) to [`classes_file`], atomically; returns
/// the path written.
pub fn write_table(
    out: &Path,
    seeded: &SeededDataset,
    names: &[String],
) -> std::io::Result<PathBuf> {
    let path = classes_file(out, seeded);
    let text = serde_json::to_vec_pretty(&table_json(names)).map_err(std::io::Error::other)?;
    crate::layout::write_atomic(&path, &text)?;
    Ok(path)
}

/// The table as JSON, the shape `ldawt download` writes: `{"classes": {name: id}, "names": […]}`.
pub fn table_json(names: &[String]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), serde_json::Value::from(i as u64)))
        .collect();
    serde_json::json!({ "classes": map, "names": names })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::DatasetId;

    #[test]
    fn the_table_is_written_beside_the_shards_under_the_datasets_name() {
        let out = tempfile::tempdir().unwrap();
        let seeded = SeededDataset {
            id: DatasetId([3; 16]),
            name: "birds".into(),
            source: "birds.parquet".into(),
            rows_total: 2,
            shard_rows: vec![2],
            archive_names: vec!["birds-00000.tar".into()],
        };
        let names = vec!["wren".to_string(), "tit".to_string()];
        let path = write_table(out.path(), &seeded, &names).unwrap();
        assert_eq!(path, out.path().join("birds.classes.json"));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v, table_json(&names));
        assert_eq!(v["classes"]["tit"], 1);
    }
}
