//! Local directory listings: every regular file under the directory (symlinks followed), as a
//! `/`-separated path relative to it, with its size.

use std::path::Path;

use super::{Listing, ListingError, io_error};

/// Upper bound on directory depth, so a symlink loop cannot walk forever.
const MAX_DEPTH: usize = 64;

/// Walks `root`.
pub fn read_dir(root: &Path) -> Result<Listing, ListingError> {
    let mut out = Listing::new();
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(super::unreadable(
                &dir.display().to_string(),
                format!("more than {MAX_DEPTH} nested directories (symlink loop?)"),
            ));
        }
        for entry in std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
            let entry = entry.map_err(|e| io_error(&dir, e))?;
            let path = entry.path();
            let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let meta = std::fs::metadata(&path).map_err(|e| io_error(&path, e))?;
            if meta.is_dir() {
                stack.push((path, format!("{rel}/"), depth + 1));
            } else if meta.is_file() {
                out.insert(rel, Some(meta.len()));
            }
        }
    }
    Ok(out)
}
