//! The results file of a delivered shard checked against the rows the seeder seeded (pure: fed
//! one result at a time): exactly one result per seeded row index, with the seeded URL (as the
//! engine records it: trimmed) and class; an `ok` row names a member under the shard's top folder and the class folder the
//! engine gives its label, a file name derived from its URL, a size within the limit and a
//! sha256; failed and skipped rows name no member. What it accepts becomes the list of members
//! the archive must hold, and the counts come from it, never from the worker's own claims.

use std::collections::{HashMap, HashSet};

use super::samples::sample_members;
use super::{DeliveryFormat, Invalid, ShardSpec, Verified};
use crate::input::UrlRow;
use crate::model::naming::{fnv1a, safe_segment, url_stem};
use crate::results::{RowResult, RowStatus};

/// Longest file or folder name accepted in a member path (file systems allow 255 bytes).
const MAX_NAME: usize = 255;
/// Longest `error_kind` copied into the merged results.
const MAX_ERROR_KIND: usize = 64;

/// An archive member an `ok` row vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedMember {
    /// The row it belongs to.
    pub index: u64,
    /// Its size in bytes.
    pub size: u64,
    /// The sha256 its row records for the stored bytes.
    pub sha256: [u8; 32],
    /// What the member is.
    pub kind: MemberKind,
}

/// What an expected archive member is: a row's stored bytes (size and sha256 checked) or a
/// webdataset side member (size bounded, content parsed, see [`super::samples`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKind {
    /// The stored image.
    Image,
    /// `KEY.json`.
    Json,
    /// `KEY.cls` holding this id.
    Cls(u32),
    /// `KEY.txt`.
    Txt,
}

/// What the archive must hold: these members, and nothing but these and their directories.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Member path → what it must be.
    pub members: HashMap<String, ExpectedMember>,
    /// Directory entries allowed (`<top>` and `<top>/<folder>` of the members), no slash.
    pub dirs: HashSet<String>,
    /// Counts and bytes of the results, as verified.
    pub verified: Verified,
}

/// True when `name` can be one path segment on any file system the archive is unpacked to:
/// not empty, not `.`/`..`, no separator, no control or reserved character, at most 255 bytes.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= MAX_NAME
        && !name.chars().any(|c| {
            c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        })
}

/// True when `member` is `<top>/<folder>/<file>` with three safe names: never absolute, never
/// `..`, never deeper or shallower (a classdirs or parquet member).
pub fn is_classdirs_member(top: &str, member: &str) -> bool {
    let parts: Vec<&str> = member.split('/').collect();
    matches!(parts.as_slice(), [t, folder, file]
        if *t == top && is_safe_name(folder) && is_safe_name(file))
}

/// True when `member` can be a verified member of a shard under `top` in any format: a
/// classdirs member, or one safe file name (a webdataset sample's image, `KEY.<ext>`).
pub fn is_safe_member(top: &str, member: &str) -> bool {
    is_classdirs_member(top, member) || (!member.contains('/') && is_safe_name(member))
}

/// The two folders the engine can give `label` in a shard: its safe name, or that name with
/// `_<8 hex>` of the label when another label took the plain one first.
fn folder_choices(label: Option<&str>) -> [String; 2] {
    let plain = match label {
        Some(raw) => safe_segment(raw),
        None => "unlabeled".to_string(),
    };
    let hash = fnv1a(label.unwrap_or("\0null").as_bytes()) as u32;
    let suffixed = format!("{plain}_{hash:08x}");
    [plain, suffixed]
}

/// True when `file` is `<stem>.<ext>` where the stem is the URL's (or the URL's plus
/// `_r<index>`, then `_<n>`, for a duplicate) and the extension 1–5 lower-case alphanumerics.
fn file_matches_url(file: &str, url: &str, index: u64) -> bool {
    let Some((stem, ext)) = file.rsplit_once('.') else {
        return false;
    };
    let ext_ok = (1..=5).contains(&ext.len())
        && ext
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    if !ext_ok {
        return false;
    }
    let base = url_stem(url);
    if stem == base {
        return true;
    }
    let dup = format!("{base}_r{index}");
    match stem.strip_prefix(&dup) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('_')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// Parses a hex sha256.
fn parse_sha256(hex_text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

/// Checks a results file row by row against the seeded rows of its shard.
pub struct ResultsCheck<'a> {
    spec: &'a ShardSpec,
    seeded: HashMap<u64, &'a UrlRow>,
    seen: HashSet<u64>,
    folder_of: HashMap<Option<String>, String>,
    label_of: HashMap<String, Option<String>>,
    expected: Expected,
}

impl<'a> ResultsCheck<'a> {
    /// A check of the shard whose seeded rows are `rows`.
    pub fn new(spec: &'a ShardSpec, rows: &'a [UrlRow]) -> Self {
        Self {
            spec,
            seeded: rows.iter().map(|r| (r.index, r)).collect(),
            seen: HashSet::with_capacity(rows.len()),
            folder_of: HashMap::new(),
            label_of: HashMap::new(),
            expected: Expected::default(),
        }
    }

    /// Checks one result.
    pub fn push(&mut self, r: &RowResult) -> Result<(), Invalid> {
        let index = r.index;
        let Some(seeded) = self.seeded.get(&index).copied() else {
            return Err(Invalid::UnknownRow(index));
        };
        if !self.seen.insert(index) {
            return Err(Invalid::DuplicateRow(index));
        }
        // The engine records a fetched row's URL trimmed, an empty one as given.
        let trimmed = |u: &Option<String>| u.as_deref().map(str::trim).map(str::to_string);
        if trimmed(&r.url) != trimmed(&seeded.url) {
            return Err(Invalid::WrongUrl(index));
        }
        if r.class != seeded.class {
            return Err(Invalid::WrongClass(index));
        }
        if r.error_kind
            .as_ref()
            .is_some_and(|k| k.len() > MAX_ERROR_KIND)
        {
            return Err(Invalid::BadRow {
                index,
                why: "error kind too long".into(),
            });
        }
        let v = &mut self.expected.verified;
        match r.status {
            RowStatus::Ok => {}
            RowStatus::Failed | RowStatus::Skipped => {
                if r.member.is_some() {
                    return Err(Invalid::BadRow {
                        index,
                        why: "a row that was not stored names an archive member".into(),
                    });
                }
                if r.status == RowStatus::Failed {
                    v.failed += 1;
                } else {
                    v.skipped += 1;
                }
                return Ok(());
            }
        }
        let bad = |why: &str| Invalid::BadRow {
            index,
            why: why.to_string(),
        };
        let url = seeded
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("stored without a URL"))?;
        let member = r
            .member
            .as_deref()
            .ok_or_else(|| bad("stored without a member"))?;
        let bad_member = |why: &str| Invalid::BadMember {
            index,
            member: member.chars().take(200).collect(),
            why: why.to_string(),
        };
        if r.bytes > self.spec.max_member_bytes {
            return Err(bad_member("larger than the largest file allowed"));
        }
        let sha256 = r
            .sha256
            .as_deref()
            .and_then(parse_sha256)
            .ok_or_else(|| bad_member("no valid sha256"))?;
        let image = ExpectedMember {
            index,
            size: r.bytes,
            sha256,
            kind: MemberKind::Image,
        };
        let members = match &self.spec.format {
            // A parquet row's `image.path` is the member name classdirs would give it.
            DeliveryFormat::Classdirs | DeliveryFormat::Parquet => {
                self.classdirs_member(member, url, index, r.class.clone())?;
                vec![(member.to_string(), image)]
            }
            DeliveryFormat::Webdataset(rules) => {
                sample_members(rules, member, index, r.class.as_deref(), image)
                    .map_err(|why| bad_member(&why))?
            }
        };
        let e = &mut self.expected;
        for (name, want) in members {
            if e.members.contains_key(&name) {
                return Err(Invalid::DuplicateMember(name));
            }
            e.members.insert(name, want);
        }
        e.verified.ok += 1;
        e.verified.bytes += r.bytes;
        Ok(())
    }

    /// Checks a classdirs member name (`<top>/<class folder>/<file>`) and records its folder.
    fn classdirs_member(
        &mut self,
        member: &str,
        url: &str,
        index: u64,
        label: Option<String>,
    ) -> Result<(), Invalid> {
        let bad_member = |why: &str| Invalid::BadMember {
            index,
            member: member.chars().take(200).collect(),
            why: why.to_string(),
        };
        if !is_classdirs_member(&self.spec.top, member) {
            return Err(bad_member("not <shard>/<class folder>/<file name>"));
        }
        let mut parts = member.splitn(3, '/').skip(1);
        let (folder, file) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if !folder_choices(label.as_deref()).iter().any(|f| f == folder) {
            return Err(bad_member("not the class folder of the row's label"));
        }
        match self.folder_of.get(&label) {
            Some(f) if f != folder => return Err(bad_member("a second folder for one label")),
            Some(_) => {}
            None => {
                if self.label_of.contains_key(folder) {
                    return Err(bad_member("one folder for two labels"));
                }
                self.folder_of.insert(label.clone(), folder.to_string());
                self.label_of.insert(folder.to_string(), label);
            }
        }
        if !file_matches_url(file, url, index) {
            return Err(bad_member("file name not derived from the row's URL"));
        }
        let e = &mut self.expected;
        e.dirs.insert(self.spec.top.clone());
        e.dirs.insert(format!("{}/{folder}", self.spec.top));
        Ok(())
    }

    /// Ends the check: every seeded row must have had its result.
    pub fn finish(self) -> Result<Expected, Invalid> {
        let missing = self.seeded.len() - self.seen.len();
        if missing > 0 {
            let first = self
                .seeded
                .keys()
                .filter(|i| !self.seen.contains(i))
                .min()
                .copied()
                .unwrap_or_default();
            return Err(Invalid::MissingRows { first, missing });
        }
        Ok(self.expected)
    }
}
