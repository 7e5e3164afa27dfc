//! The archive of a delivered shard checked entry by entry against the members its results
//! vouch for (pure: fed each tar entry's path, type and size, then each member's measured
//! length and sha256): every entry is either an expected member (once, with the stated size
//! and hash) or the directory of one; links, devices, other paths (absolute, `..`, another
//! folder) and duplicates are refused; every expected member must appear. A webdataset side
//! member's size is only bounded: its content is parsed instead ([`super::samples`]).

use std::collections::{HashMap, HashSet};

use super::Invalid;
use super::rows::{Expected, ExpectedMember, MemberKind};
use super::samples::side_limit;

/// The type of a tar entry, as far as verification cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Anything else (symlink, hard link, device, FIFO, extension header…), by its type byte.
    Other(u8),
}

/// Checks the entries of one archive.
pub struct ArchiveCheck {
    members: HashMap<String, ExpectedMember>,
    dirs: HashSet<String>,
}

fn shown(path: &str) -> String {
    path.chars().take(200).collect()
}

impl ArchiveCheck {
    /// A check expecting exactly the members of `expected`.
    pub fn new(expected: &Expected) -> Self {
        Self {
            members: expected.members.clone(),
            dirs: expected.dirs.clone(),
        }
    }

    /// Checks an entry's header. For a member, returns what its content must be (the caller
    /// reads it and calls [`ArchiveCheck::content`]); for a directory, `None`.
    pub fn entry(
        &mut self,
        path: &[u8],
        kind: EntryKind,
        size: u64,
    ) -> Result<Option<(String, ExpectedMember)>, Invalid> {
        let Ok(path) = std::str::from_utf8(path) else {
            return Err(Invalid::UnexpectedEntry {
                path: String::from_utf8_lossy(path).chars().take(200).collect(),
                why: "not UTF-8".into(),
            });
        };
        match kind {
            EntryKind::File => {
                let want = self
                    .members
                    .remove(path)
                    .ok_or_else(|| Invalid::UnexpectedMember(shown(path)))?;
                if want.kind != MemberKind::Image {
                    let limit = side_limit(&want.kind);
                    if size > limit {
                        return Err(Invalid::UnexpectedEntry {
                            path: shown(path),
                            why: format!("{size} bytes, over the {limit} a side member may hold"),
                        });
                    }
                    return Ok(Some((path.to_string(), want)));
                }
                if want.size != size {
                    return Err(Invalid::MemberSize {
                        member: shown(path),
                        expected: want.size,
                        found: size,
                    });
                }
                Ok(Some((path.to_string(), want)))
            }
            EntryKind::Dir => {
                let dir = path.strip_suffix('/').unwrap_or(path);
                if size != 0 || !self.dirs.remove(dir) {
                    return Err(Invalid::UnexpectedEntry {
                        path: shown(path),
                        why: "a directory no stored row is in".into(),
                    });
                }
                Ok(None)
            }
            EntryKind::Other(t) => Err(Invalid::UnexpectedEntry {
                path: shown(path),
                why: format!("entry type '{}' (only files and folders)", t.escape_ascii()),
            }),
        }
    }

    /// Checks a member's content as read: `read` bytes hashing to `sha256`.
    pub fn content(
        &self,
        member: &str,
        want: &ExpectedMember,
        read: u64,
        sha256: [u8; 32],
    ) -> Result<(), Invalid> {
        if read != want.size {
            return Err(Invalid::MemberSize {
                member: shown(member),
                expected: want.size,
                found: read,
            });
        }
        if sha256 != want.sha256 {
            return Err(Invalid::MemberHash(shown(member)));
        }
        Ok(())
    }

    /// Ends the check: no expected member may be missing.
    pub fn finish(self) -> Result<(), Invalid> {
        match self.members.keys().min() {
            Some(m) => Err(Invalid::MissingMember(shown(m))),
            None => Ok(()),
        }
    }
}
