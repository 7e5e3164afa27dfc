//! File listings for `ldawt compare`: read a side (text listing, local directory, tar or
//! tar.gz archive, WebDAV collection) into a [`Listing`] of relative paths and sizes, and diff
//! two listings. Reading does I/O; [`diff`] is pure.

mod archive;
mod dav;
mod local;
mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::input::InputError;

pub use dav::read_webdav;

/// Relative path (with `/` separators) → size in bytes when the source knows it.
pub type Listing = BTreeMap<String, Option<u64>>;

/// Where one side of a comparison comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A text file: one name per line (`gocmd ls`/`ls` output works; `name<TAB>size` too).
    Text(PathBuf),
    /// A local directory, walked recursively.
    Dir(PathBuf),
    /// A `.tar`, `.tar.gz` or `.tgz` archive.
    Archive(PathBuf),
    /// A WebDAV collection URL, walked recursively.
    WebDav(String),
}

impl Source {
    /// Chooses the kind from the argument: `http(s)://` → WebDAV; an existing directory → Dir;
    /// a tar name → Archive; anything else → Text.
    pub fn detect(arg: &str) -> Source {
        if arg.starts_with("http://") || arg.starts_with("https://") {
            return Source::WebDav(arg.to_string());
        }
        let path = PathBuf::from(arg);
        if path.is_dir() {
            Source::Dir(path)
        } else if crate::model::naming::split_archive_suffix_ignore_case(arg).is_some() {
            Source::Archive(path)
        } else {
            Source::Text(path)
        }
    }
}

/// Problems reading a listing; each names the file or URL.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    /// The path does not exist or cannot be read (or is not what its name says).
    #[error(transparent)]
    Input(#[from] InputError),
    /// A WebDAV side failed.
    #[error(transparent)]
    WebDav(#[from] crate::webdav::WebDavError),
}

impl ListingError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        match self {
            ListingError::WebDav(e) => e.is_bad_input(),
            _ => true,
        }
    }
}

fn io_error(path: &Path, e: std::io::Error) -> ListingError {
    crate::input::open_error(&path.display().to_string(), e).into()
}

fn unreadable(path: &str, reason: impl std::fmt::Display) -> ListingError {
    InputError::Unreadable {
        path: path.to_string(),
        reason: reason.to_string(),
    }
    .into()
}

/// Reads a local side (text, directory or archive). WebDAV sides go through [`read_webdav`].
pub fn read_local(source: &Source) -> Result<Listing, ListingError> {
    match source {
        Source::Text(p) => text::read_text(p),
        Source::Dir(p) => local::read_dir(p),
        Source::Archive(p) => archive::read_archive(p),
        Source::WebDav(url) => Err(unreadable(
            url,
            "a WebDAV side must be read with read_webdav",
        )),
    }
}

/// Keeps the file name only (`a/b/c.tar` → `c.tar`), for comparing a flat listing with a tree.
/// When two entries share a name the first (in path order) wins.
pub fn basenames(listing: Listing) -> Listing {
    let mut out = Listing::new();
    for (path, size) in listing {
        let name = path.rsplit('/').next().unwrap_or(&path).to_string();
        out.entry(name).or_insert(size);
    }
    out
}

/// Keeps the entries whose name ends with `suffix`.
pub fn with_suffix(listing: Listing, suffix: &str) -> Listing {
    listing
        .into_iter()
        .filter(|(p, _)| p.ends_with(suffix))
        .collect()
}

/// True when a path has a hidden component (a name starting with `.`), such as a node's
/// private `.ldawt/` folder, a `.incoming/` folder or a temp file.
pub fn is_hidden_path(path: &str) -> bool {
    path.split('/')
        .any(|seg| seg.starts_with('.') && seg != "." && seg != "..")
}

/// Drops the entries with a hidden component; returns the rest and how many were dropped.
pub fn without_hidden(listing: Listing) -> (Listing, usize) {
    let before = listing.len();
    let kept: Listing = listing
        .into_iter()
        .filter(|(p, _)| !is_hidden_path(p))
        .collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

/// The top-level folder every entry sits in (`a/` for the members of `a.tar`), if there is one
/// and no entry sits at the top itself.
pub fn common_top_folder(listing: &Listing) -> Option<String> {
    let mut top: Option<&str> = None;
    for path in listing.keys() {
        let (first, _) = path.split_once('/')?;
        match top {
            None => top = Some(first),
            Some(t) if t == first => {}
            Some(_) => return None,
        }
    }
    top.map(str::to_string)
}

/// Removes the top-level folder `top` from every entry.
pub fn strip_top_folder(listing: Listing, top: &str) -> Listing {
    let prefix = format!("{top}/");
    listing
        .into_iter()
        .map(|(p, s)| (p.strip_prefix(&prefix).map_or(p.clone(), str::to_string), s))
        .collect()
}

/// Which sides lose their common top folder so that the most names match: `(strip left,
/// strip right)`. Nothing is stripped unless it makes strictly more names match (a tar made
/// by `download` holds `<stem>/<class>/<file>`, the unpacked folder only `<class>/<file>`).
pub fn best_prefix_strip(left: &Listing, right: &Listing) -> (Option<String>, Option<String>) {
    let (lt, rt) = (common_top_folder(left), common_top_folder(right));
    let common = |l: &Listing, r: &Listing| l.keys().filter(|k| r.contains_key(*k)).count();
    let mut best = (common(left, right), None, None);
    let mut consider = |l: Option<&String>, r: Option<&String>| {
        let sl = l.map_or_else(|| left.clone(), |t| strip_top_folder(left.clone(), t));
        let sr = r.map_or_else(|| right.clone(), |t| strip_top_folder(right.clone(), t));
        let n = common(&sl, &sr);
        if n > best.0 {
            best = (n, l.cloned(), r.cloned());
        }
    };
    if lt.is_some() {
        consider(lt.as_ref(), None);
    }
    if rt.is_some() {
        consider(None, rt.as_ref());
    }
    if lt.is_some() && rt.is_some() {
        consider(lt.as_ref(), rt.as_ref());
    }
    (best.1, best.2)
}

/// What differs between two listings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingDiff {
    /// Only on the left, sorted.
    pub only_left: Vec<String>,
    /// Only on the right, sorted.
    pub only_right: Vec<String>,
    /// On both sides with different known sizes: (name, left size, right size).
    pub size_differs: Vec<(String, u64, u64)>,
    /// On both sides with a size unknown on at least one side (not size-checked).
    pub size_unknown: usize,
    /// On both sides.
    pub common: usize,
}

impl ListingDiff {
    /// True when nothing differs.
    pub fn is_same(&self) -> bool {
        self.only_left.is_empty() && self.only_right.is_empty() && self.size_differs.is_empty()
    }
}

/// Compares two listings by name, and by size when `sizes` is set.
pub fn diff(left: &Listing, right: &Listing, sizes: bool) -> ListingDiff {
    let mut d = ListingDiff::default();
    for (name, lsize) in left {
        match right.get(name) {
            None => d.only_left.push(name.clone()),
            Some(rsize) => {
                d.common += 1;
                if sizes {
                    match (lsize, rsize) {
                        (Some(l), Some(r)) if l != r => d.size_differs.push((name.clone(), *l, *r)),
                        (Some(_), Some(_)) => {}
                        _ => d.size_unknown += 1,
                    }
                }
            }
        }
    }
    d.only_right = right
        .keys()
        .filter(|k| !left.contains_key(*k))
        .cloned()
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn l(items: &[(&str, Option<u64>)]) -> Listing {
        items.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn diff_finds_each_kind_of_difference() {
        let a = l(&[("a", Some(1)), ("b", Some(2)), ("c", None)]);
        let b = l(&[("b", Some(3)), ("c", Some(4)), ("d", Some(5))]);
        let d = diff(&a, &b, true);
        assert_eq!(d.only_left, vec!["a"]);
        assert_eq!(d.only_right, vec!["d"]);
        assert_eq!(d.size_differs, vec![("b".to_string(), 2, 3)]);
        assert_eq!((d.size_unknown, d.common), (1, 2));
        assert!(diff(&a, &b, false).size_differs.is_empty());
    }

    #[test]
    fn basenames_and_suffix() {
        let a = l(&[("x/1.tar.gz", Some(1)), ("y/2.txt", None)]);
        assert_eq!(
            with_suffix(basenames(a), ".tar.gz"),
            l(&[("1.tar.gz", Some(1))])
        );
    }

    #[test]
    fn hidden_entries_and_top_folders() {
        let a = l(&[
            (".ldawt/identity.key", Some(1)),
            ("x/.incoming/1", None),
            ("x/1.jpg", Some(2)),
        ]);
        let (kept, dropped) = without_hidden(a);
        assert_eq!(
            kept.keys().map(String::as_str).collect::<Vec<_>>(),
            ["x/1.jpg"]
        );
        assert_eq!(dropped, 2);
        let tar = l(&[("a/c/1.jpg", Some(1)), ("a/d/2.jpg", Some(2))]);
        let dir = l(&[("c/1.jpg", Some(1)), ("d/2.jpg", Some(2))]);
        assert_eq!(common_top_folder(&tar).as_deref(), Some("a"));
        assert_eq!(common_top_folder(&dir), None);
        assert_eq!(best_prefix_strip(&tar, &dir), (Some("a".into()), None));
        assert_eq!(best_prefix_strip(&dir, &dir), (None, None));
        assert_eq!(strip_top_folder(tar, "a"), dir);
    }

    proptest! {
        #[test]
        fn diff_partitions_both_sides(
            a in proptest::collection::btree_map("[a-e]{1,2}", proptest::option::of(0u64..3), 0..20),
            b in proptest::collection::btree_map("[a-e]{1,2}", proptest::option::of(0u64..3), 0..20),
        ) {
            let d = diff(&a, &b, true);
            prop_assert_eq!(d.only_left.len() + d.common, a.len());
            prop_assert_eq!(d.only_right.len() + d.common, b.len());
            prop_assert_eq!(d.is_same() , d.only_left.is_empty() && d.only_right.is_empty() && d.size_differs.is_empty());
            let back = diff(&b, &a, true);
            prop_assert_eq!(back.only_left, d.only_right);
            prop_assert_eq!(back.size_differs.len(), d.size_differs.len());
        }
    }
}
