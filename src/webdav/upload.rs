//! Parallel upload of local files and directory trees into a WebDAV collection: plans the
//! remote layout (a directory `d` lands as `<base>/d/...`), creates collections, skips files
//! already there with the same size, uploads with bounded concurrency and reports per file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use futures::StreamExt;
use reqwest::Url;

use super::client::{as_collection, child_collection_url, child_url};
use super::{WebDavClient, WebDavError};

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOutcome {
    /// Sent (this many bytes) and verified by size.
    Uploaded(u64),
    /// Already on the server with the same size; not sent.
    Skipped,
}

/// One planned file transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadItem {
    /// The local file.
    pub local: PathBuf,
    /// The collection it goes into (trailing slash).
    pub remote_dir: Url,
    /// Its name there.
    pub name: String,
    /// Its local size.
    pub size: u64,
}

/// The outcome of a whole upload run.
#[derive(Debug, Default)]
pub struct UploadReport {
    /// Files sent, with their size.
    pub uploaded: Vec<(PathBuf, u64)>,
    /// Files already present with the same size.
    pub skipped: Vec<PathBuf>,
    /// Files that failed after retries, with the error.
    pub failed: Vec<(PathBuf, WebDavError)>,
}

/// Deepest directory nesting walked, so a symlink loop cannot walk forever.
const MAX_DEPTH: usize = 64;

fn local_err(path: &Path, e: impl std::fmt::Display) -> WebDavError {
    WebDavError::Local {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn name_of(path: &Path) -> Result<String, WebDavError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| local_err(path, e))?;
    canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| local_err(path, "has no file name to use on the server"))
}

/// The planned upload: collections to create (parents first), files (sorted), and the hidden
/// entries left out.
#[derive(Debug, Default)]
pub struct UploadPlan {
    /// Collections to create, parents before children.
    pub dirs: Vec<Url>,
    /// Files to send.
    pub items: Vec<UploadItem>,
    /// Hidden files and folders (name starting with `.`) found inside the given directories
    /// and left out, e.g. a node's private `.ldawt/` (its key) or a `.incoming/` folder.
    pub hidden: Vec<PathBuf>,
}

/// True for a hidden entry (its name starts with `.`).
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Plans the upload of `paths` into `base`: the collections to create (parents first) and
/// the files, both sorted. Hidden entries inside a directory are left out (and listed) unless
/// `include_hidden`; a path named explicitly is always uploaded. Every path must exist and be readable (else `Local`, exit 2).
pub fn plan_uploads(
    paths: &[PathBuf],
    base: &Url,
    include_hidden: bool,
) -> Result<UploadPlan, WebDavError> {
    let base = as_collection(base);
    let mut dirs = vec![base.clone()];
    let mut items = Vec::new();
    let mut hidden = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| local_err(path, e))?;
        let name = name_of(path)?;
        if meta.is_file() {
            items.push(UploadItem {
                local: path.clone(),
                remote_dir: base.clone(),
                name,
                size: meta.len(),
            });
            continue;
        }
        // Depth-first walk of a directory, bounded by the files that exist.
        let mut stack = vec![(path.clone(), child_collection_url(&base, &name), 0usize)];
        while let Some((dir, remote, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(local_err(
                    &dir,
                    format!("more than {MAX_DEPTH} nested directories (symlink loop?)"),
                ));
            }
            dirs.push(remote.clone());
            let mut children: Vec<_> = std::fs::read_dir(&dir)
                .map_err(|e| local_err(&dir, e))?
                .collect::<Result<_, _>>()
                .map_err(|e| local_err(&dir, e))?;
            children.sort_by_key(|e| e.file_name());
            for child in children {
                let child_path = child.path();
                let child_name = child.file_name().to_string_lossy().into_owned();
                if !include_hidden && is_hidden(&child_name) {
                    hidden.push(child_path);
                    continue;
                }
                let meta = std::fs::metadata(&child_path).map_err(|e| local_err(&child_path, e))?;
                if meta.is_dir() {
                    stack.push((
                        child_path,
                        child_collection_url(&remote, &child_name),
                        depth + 1,
                    ));
                } else if meta.is_file() {
                    items.push(UploadItem {
                        local: child_path,
                        remote_dir: remote.clone(),
                        name: child_name,
                        size: meta.len(),
                    });
                }
            }
        }
    }
    items.sort_by(|a, b| (&a.remote_dir, &a.name).cmp(&(&b.remote_dir, &b.name)));
    let dirs: BTreeSet<Url> = dirs.into_iter().collect();
    // Parents sort before children (a prefix sorts first).
    hidden.sort();
    Ok(UploadPlan {
        dirs: dirs.into_iter().collect(),
        items,
        hidden,
    })
}

/// Uploads one file into collection `remote_dir` (created if missing) unless a file of the same
/// size is already there (when `skip_same_size`). This is what `ldawt node --upload-to` calls
/// for each verified shard archive. `sent` counts bytes sent.
pub async fn upload_file(
    client: &WebDavClient,
    local: &Path,
    remote_dir: &Url,
    skip_same_size: bool,
    sent: &AtomicU64,
) -> Result<FileOutcome, WebDavError> {
    let name = name_of(local)?;
    let remote_dir = as_collection(remote_dir);
    client.ensure_collection(&remote_dir).await?;
    let url = child_url(&remote_dir, &name);
    if skip_same_size {
        let size = std::fs::metadata(local)
            .map_err(|e| local_err(local, e))?
            .len();
        if client.remote_size(&url).await? == Some(size) {
            return Ok(FileOutcome::Skipped);
        }
    }
    client
        .put_file(local, &url, sent)
        .await
        .map(FileOutcome::Uploaded)
}

/// Runs a planned upload: creates `dirs`, lists each once to find files to skip, then sends
/// the rest `concurrency` at a time. Failing files are reported, never fatal; a failure to
/// create or list a collection fails that collection's files.
pub async fn upload_all(
    client: &WebDavClient,
    dirs: &[Url],
    items: Vec<UploadItem>,
    concurrency: usize,
    skip_same_size: bool,
    sent: &AtomicU64,
) -> UploadReport {
    let mut report = UploadReport::default();
    let mut existing: BTreeMap<Url, Result<BTreeMap<String, Option<u64>>, String>> =
        BTreeMap::new();
    for dir in dirs {
        let listing = match client.ensure_collection(dir).await {
            Err(e) => Err(e.to_string()),
            Ok(()) if !skip_same_size => Ok(BTreeMap::new()),
            Ok(()) => match client.list(dir, true).await {
                Ok(entries) => Ok(entries
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|e| !e.is_dir)
                    .map(|e| (e.name, e.size))
                    .collect()),
                Err(e) => Err(e.to_string()),
            },
        };
        existing.insert(dir.clone(), listing);
    }
    let mut todo = Vec::new();
    for item in items {
        match existing.get(&item.remote_dir) {
            Some(Ok(names)) if names.get(&item.name) == Some(&Some(item.size)) => {
                report.skipped.push(item.local);
            }
            Some(Err(reason)) => report.failed.push((
                item.local,
                WebDavError::BadReply {
                    url: item.remote_dir.to_string(),
                    reason: reason.clone(),
                },
            )),
            _ => todo.push(item),
        }
    }
    let results: Vec<_> = futures::stream::iter(todo)
        .map(|item| async move {
            let url = child_url(&item.remote_dir, &item.name);
            let res = client.put_file(&item.local, &url, sent).await;
            (item, res)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (item, res) in results {
        match res {
            Ok(size) => report.uploaded.push((item.local, size)),
            Err(e) => report.failed.push((item.local, e)),
        }
    }
    report.uploaded.sort();
    report.failed.sort_by(|a, b| a.0.cmp(&b.0));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_maps_directories_under_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shards");
        std::fs::create_dir_all(root.join("sub dir")).unwrap();
        std::fs::write(root.join("a.tar"), b"aa").unwrap();
        std::fs::write(root.join("sub dir/b.tar"), b"bbb").unwrap();
        let single = dir.path().join("one.txt");
        std::fs::write(&single, b"1").unwrap();
        let base = Url::parse("http://h/dav/x").unwrap();
        std::fs::create_dir_all(root.join(".ldawt")).unwrap();
        std::fs::write(root.join(".ldawt/identity.key"), b"secret").unwrap();
        std::fs::write(root.join(".a.tar.part"), b"p").unwrap();
        let plan = plan_uploads(&[root.clone(), single.clone()], &base, false).unwrap();
        assert_eq!(plan.hidden, [root.join(".a.tar.part"), root.join(".ldawt")]);
        let all = plan_uploads(&[root.clone(), single.clone()], &base, true).unwrap();
        assert_eq!((all.items.len(), all.dirs.len()), (5, 4));
        let UploadPlan { dirs, items, .. } = plan;
        let dirs: Vec<&str> = dirs.iter().map(Url::as_str).collect();
        assert_eq!(
            dirs,
            [
                "http://h/dav/x/",
                "http://h/dav/x/shards/",
                "http://h/dav/x/shards/sub%20dir/"
            ]
        );
        let urls: Vec<String> = items
            .iter()
            .map(|i| child_url(&i.remote_dir, &i.name).to_string())
            .collect();
        assert_eq!(
            urls,
            [
                "http://h/dav/x/one.txt",
                "http://h/dav/x/shards/a.tar",
                "http://h/dav/x/shards/sub%20dir/b.tar"
            ]
        );
        assert!(matches!(
            plan_uploads(&[dir.path().join("missing")], &base, false),
            Err(WebDavError::Local { .. })
        ));
    }

    #[test]
    fn plan_refuses_a_symlink_loop() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("loop");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&root, root.join("again")).unwrap();
        let base = Url::parse("http://h/x").unwrap();
        // Either our depth bound or the kernel's ELOOP stops the walk, with a local error.
        let err = plan_uploads(&[root], &base, false).unwrap_err();
        assert!(matches!(err, WebDavError::Local { .. }), "{err}");
        assert!(err.to_string().contains("loop/again/again"), "{err}");
    }
}
