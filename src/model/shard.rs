//! Shard planning for a seeded dataset: contiguous row ranges (`--shard-rows N` or
//! `--shards N`), or whole classes kept together (`--group-col`) with the balanced LPT split of
//! [`crate::model::split_plan`]. Also names each shard's archive.

use std::ops::Range;

use crate::model::naming::split_archive_suffix;
use crate::model::split_plan::{ClassWeight, SplitPlan, plan_lpt};

/// Default rows per shard when neither `--shard-rows` nor `--shards` is given.
pub const DEFAULT_SHARD_ROWS: u64 = 10_000;

/// How the user asked to cut the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSizing {
    /// At most this many rows per shard.
    Rows(u64),
    /// This many shards (fewer if there are fewer rows or classes).
    Count(u32),
}

impl ShardSizing {
    /// The number of shards for `total_rows` rows (at least 1, at most `total_rows`).
    pub fn shard_count(self, total_rows: u64) -> u64 {
        let n = match self {
            ShardSizing::Rows(r) => total_rows.div_ceil(r.max(1)),
            ShardSizing::Count(c) => u64::from(c.max(1)),
        };
        n.clamp(1, total_rows.max(1))
    }
}

/// Contiguous row ranges covering `0..total_rows` exactly once, sizes differing by at most 1
/// for `Count`, all `Rows(r)` long except the last for `Rows`.
pub fn plan_contiguous(total_rows: u64, sizing: ShardSizing) -> Vec<Range<u64>> {
    if total_rows == 0 {
        return Vec::new();
    }
    match sizing {
        ShardSizing::Rows(r) => {
            let r = r.max(1);
            (0..total_rows.div_ceil(r))
                .map(|i| i * r..((i + 1) * r).min(total_rows))
                .collect()
        }
        ShardSizing::Count(_) => {
            let n = sizing.shard_count(total_rows);
            let base = total_rows / n;
            let extra = total_rows % n;
            let mut start = 0;
            (0..n)
                .map(|i| {
                    let len = base + u64::from(i < extra);
                    let r = start..start + len;
                    start += len;
                    r
                })
                .collect()
        }
    }
}

/// Whole classes per shard: the LPT plan over `classes` with the number of shards `sizing`
/// asks for (never more shards than classes). Empty groups are dropped by renumbering, so
/// shard `i` of the result is group `i` of the returned plan's non-empty groups.
pub fn plan_grouped(classes: &[ClassWeight], sizing: ShardSizing) -> SplitPlan {
    let total: u64 = classes.iter().map(|c| c.weight).sum();
    let groups = sizing
        .shard_count(total)
        .min(classes.len().max(1) as u64)
        .max(1);
    plan_lpt(classes, usize::try_from(groups).unwrap_or(usize::MAX))
}

/// The archive file name of shard `index` of a dataset named `name` (`name-00003.tar.gz`).
pub fn archive_name(name: &str, index: u32) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{clean}-{}.tar.gz",
        crate::model::ids::ShardId(index).padded()
    )
}

/// Longest archive file name a worker accepts, in bytes: the results (`.results.parquet`) and
/// overview side files derived from it must still fit a 255-byte file name.
pub const MAX_ARCHIVE_NAME: usize = 200;

/// Why an archive name from a grant is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeArchiveName {
    /// Empty, or longer than [`MAX_ARCHIVE_NAME`].
    #[error("archive name of {0} bytes (allowed: 1 to 200)")]
    Length(usize),
    /// Not `<stem>.tar.gz`, `<stem>.tgz`, `<stem>.tar` or `<stem>.parquet`.
    #[error("archive name without a .tar.gz, .tgz, .tar or .parquet extension")]
    Extension,
    /// The stem holds something other than ASCII letters, digits, `-` and `_` (a separator,
    /// `..`, a leading dot, a control or NUL character...).
    #[error("archive name with a character other than A-Z a-z 0-9 - _ in its stem")]
    Character,
}

/// Checks that `name` (from a peer's grant) is one plain file name of the form
/// [`archive_name`] produces: `<stem><ext>` with a non-empty stem of ASCII letters, digits,
/// `-` and `_`, one of the archive extensions, at most [`MAX_ARCHIVE_NAME`] bytes. So it has no
/// separator, no `..`, no leading dot, no NUL or control character and is never absolute:
/// joining it to a directory stays in that directory.
pub fn check_archive_name(name: &str) -> Result<&str, UnsafeArchiveName> {
    if name.is_empty() || name.len() > MAX_ARCHIVE_NAME {
        return Err(UnsafeArchiveName::Length(name.len()));
    }
    // A seeder generates `.tar.gz`; `.tar` and `.tgz` are the other forms the engine writes.
    // `--format parquet`: the seeder names each shard's images parquet `<stem>.parquet`.
    let stem = match split_archive_suffix(name) {
        Some((stem, _)) => stem,
        None => name
            .strip_suffix(".parquet")
            .ok_or(UnsafeArchiveName::Extension)?,
    };
    if stem.is_empty() {
        return Err(UnsafeArchiveName::Extension);
    }
    if !stem
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(UnsafeArchiveName::Character);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rows_sizing_cuts_fixed_ranges() {
        assert_eq!(
            plan_contiguous(25, ShardSizing::Rows(10)),
            vec![0..10, 10..20, 20..25]
        );
        assert_eq!(plan_contiguous(10, ShardSizing::Rows(10)), vec![0..10]);
        assert!(plan_contiguous(0, ShardSizing::Rows(10)).is_empty());
    }

    #[test]
    fn count_sizing_balances_within_one_row() {
        assert_eq!(
            plan_contiguous(10, ShardSizing::Count(3)),
            vec![0..4, 4..7, 7..10]
        );
        // More shards than rows: one row each.
        assert_eq!(plan_contiguous(2, ShardSizing::Count(5)), vec![0..1, 1..2]);
    }

    #[test]
    fn grouped_never_makes_more_shards_than_classes() {
        let classes: Vec<ClassWeight> = ["a", "b"]
            .iter()
            .map(|c| ClassWeight {
                class: Some(c.to_string()),
                weight: 100,
            })
            .collect();
        let plan = plan_grouped(&classes, ShardSizing::Rows(10));
        assert_eq!(plan.loads, vec![100, 100]);
        let plan = plan_grouped(&classes, ShardSizing::Count(1));
        assert_eq!(plan.loads, vec![200]);
    }

    #[test]
    fn archive_names_are_safe_and_sortable() {
        assert_eq!(archive_name("inat 2021/x", 3), "inat_2021_x-00003.tar.gz");
    }

    #[test]
    fn hostile_archive_names_are_refused() {
        for bad in [
            "../../x.tar",
            "/abs/x.tar",
            "a/b.tar.gz",
            "a\\b.tar.gz",
            "..tar",
            ".tar.gz",
            ".hidden.tar.gz",
            "x..tar",
            "x.tar.gz\0",
            "x\n.tar",
            "x.zip",
            "x",
            "",
            "x.tar/",
            "\u{202e}x.tar",
        ] {
            assert!(check_archive_name(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}.tar", "a".repeat(MAX_ARCHIVE_NAME));
        assert_eq!(
            check_archive_name(&long),
            Err(UnsafeArchiveName::Length(MAX_ARCHIVE_NAME + 4))
        );
        for good in [
            "birds-00002.tar.gz",
            "x.tgz",
            "x_y-1.tar",
            "-00001.tar.gz",
            "b-00001.parquet",
        ] {
            assert_eq!(check_archive_name(good), Ok(good));
        }
    }

    proptest! {
        #[test]
        fn every_generated_name_passes_the_check(name in ".{0,120}", index in any::<u32>()) {
            let n = archive_name(&name, index);
            prop_assert_eq!(check_archive_name(&n), Ok(n.as_str()));
        }

        #[test]
        fn an_accepted_name_stays_in_its_directory(name in "[a-z./\\\\_\\-\\x00]{0,24}") {
            if check_archive_name(&name).is_ok() {
                let p = std::path::Path::new("/data/work").join(&name);
                prop_assert_eq!(p.parent(), Some(std::path::Path::new("/data/work")));
                prop_assert!(!name.contains("..") && !name.starts_with('.'));
                prop_assert!(!name.contains('/') && !name.contains('\\') && !name.contains('\0'));
            }
        }

        #[test]
        fn contiguous_plans_cover_every_row_once(total in 0u64..5000, k in 1u64..700, count in proptest::bool::ANY) {
            let sizing = if count { ShardSizing::Count(k as u32) } else { ShardSizing::Rows(k) };
            let plan = plan_contiguous(total, sizing);
            let mut next = 0;
            for r in &plan {
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start);
                next = r.end;
            }
            prop_assert_eq!(next, total);
            if total > 0 {
                prop_assert_eq!(plan.len() as u64, sizing.shard_count(total));
                let max = plan.iter().map(|r| r.end - r.start).max().unwrap_or(0);
                let min = plan.iter().map(|r| r.end - r.start).min().unwrap_or(0);
                match sizing {
                    ShardSizing::Rows(r) => prop_assert!(max <= r),
                    ShardSizing::Count(_) => prop_assert!(max - min <= 1),
                }
            }
        }
    }
}
