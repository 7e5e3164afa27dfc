//! The webdataset class table of a seeded dataset, owned by the seeder: ids in order of first
//! appearance over the seeded rows in shard order (for a file seeded in input order: the same
//! table `ldawt download` writes), computed once at seeding, sent to every worker in the
//! settings (so every shard's `KEY.cls` agrees) and checked against each delivery.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::model::ids::ShardId;
use crate::seed::{SeededDataset, dataset_dir, rowfile, shard_path};

/// The class names of `seeded` (data under `data_dir`), id = position.
pub fn class_table(data_dir: &Path, seeded: &SeededDataset) -> std::io::Result<Vec<String>> {
    let dir = dataset_dir(data_dir, seeded.id);
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for i in 0..seeded.shard_rows.len() {
        let path = shard_path(&dir, ShardId(u32::try_from(i).unwrap_or(u32::MAX)));
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
    out.join(format!("{}.classes.json", seeded.name))
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
