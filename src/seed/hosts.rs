//! The hosts of each shard, recorded while seeding so the swarm's per-host budget
//! ([`crate::model::swarm_budget`]) can tell which leases may touch which host.
//!
//! Bounded whatever the shard size: a [`HostTally`] keeps at most [`CANDIDATES`] counters
//! (Misra–Gries heavy hitters), so it is exact when a shard has that few distinct hosts and
//! otherwise keeps the heaviest ones. The summary ([`ShardHosts`]) lists at most [`TOP_HOSTS`]
//! hosts; `other` says that rows of further hosts exist (the budget then counts the shard as
//! touching every host, which keeps the budget sound). It is written beside the shard's rows
//! file (`shard-NNNNN.hosts`, JSON); a missing or unreadable file reads as "any host".

use std::path::{Path, PathBuf};

use crate::layout::SeedDir;
use crate::model::ids::ShardId;
pub use crate::model::swarm_budget::ShardHosts;

/// Counters kept per shard while its rows are written.
pub const CANDIDATES: usize = 16;
/// Hosts listed per shard at most.
pub const TOP_HOSTS: usize = 8;

/// The host part of a URL (`host[:port]`, lower case, no user info), without parsing the
/// whole URL: this runs once per seeded row.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then_some(host)
}

/// Bounded heavy-hitter counts of the hosts of a stream of URLs.
#[derive(Debug, Default)]
pub struct HostTally {
    counts: Vec<(Box<str>, u64)>,
    /// A host was dropped (more than [`CANDIDATES`] distinct ones, or a URL without a host).
    overflow: bool,
}

impl HostTally {
    /// Counts one row's URL (`None`: a null cell, which fetches nothing).
    pub fn add(&mut self, url: Option<&str>) {
        let Some(url) = url else { return };
        let Some(host) = url_host(url) else {
            // Not a URL the tally understands: the budget must assume any host.
            self.overflow = true;
            return;
        };
        if let Some(c) = self
            .counts
            .iter_mut()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
        {
            c.1 += 1;
        } else if self.counts.len() < CANDIDATES {
            self.counts
                .push((host.to_ascii_lowercase().into_boxed_str(), 1));
        } else {
            self.overflow = true;
            for c in &mut self.counts {
                c.1 -= 1;
            }
            self.counts.retain(|(_, n)| *n > 0);
        }
    }

    /// The summary: the [`TOP_HOSTS`] heaviest hosts, and whether others exist.
    pub fn summary(&self) -> ShardHosts {
        let mut counts: Vec<&(Box<str>, u64)> = self.counts.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ShardHosts {
            other: self.overflow || counts.len() > TOP_HOSTS,
            hosts: counts
                .iter()
                .take(TOP_HOSTS)
                .map(|(h, _)| h.to_string())
                .collect(),
        }
    }
}

/// The hosts file of the shard whose rows file is `rows_path` (`shard-00042.hosts`).
pub fn hosts_path(rows_path: &Path) -> PathBuf {
    rows_path.with_extension("hosts")
}

/// Writes `summary` beside the shard's rows file, just before the rows file is persisted
/// (whose directory sync covers this file too). No sync of its own: a torn or missing file
/// reads as "any host" ([`load`]), so seeding pays no extra fsync per shard.
pub fn write(rows_path: &Path, summary: &ShardHosts) -> std::io::Result<()> {
    let text = serde_json::to_vec(summary).map_err(std::io::Error::other)?;
    std::fs::write(hosts_path(rows_path), text)
}

/// The hosts of shards `0..shards` of the dataset in `dir`; a shard without a readable hosts
/// file (seeded by an older version) may touch any host.
pub fn load(dir: &Path, shards: usize) -> Vec<ShardHosts> {
    (0..shards)
        .map(|i| {
            let shard = ShardId(u32::try_from(i).unwrap_or(u32::MAX));
            std::fs::read(hosts_path(&SeedDir::new(dir).shard_rows(shard)))
                .ok()
                .and_then(|b| serde_json::from_slice::<ShardHosts>(&b).ok())
                .map(|mut s| {
                    s.hosts.truncate(TOP_HOSTS);
                    s
                })
                .unwrap_or_else(ShardHosts::unknown)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_out_of_urls_without_user_info_or_path() {
        assert_eq!(url_host("http://a.example:81/x.jpg"), Some("a.example:81"));
        assert_eq!(url_host("https://u:p@B.example?q"), Some("B.example"));
        assert_eq!(url_host("https://[::1]:8080/p"), Some("[::1]:8080"));
        assert_eq!(url_host("not a url"), None);
        assert_eq!(url_host("http:///path"), None);
    }

    #[test]
    fn few_hosts_are_counted_exactly() {
        let mut t = HostTally::default();
        for i in 0..100 {
            t.add(Some(if i % 4 == 0 {
                "http://B/x"
            } else {
                "http://a/y"
            }));
        }
        t.add(None);
        assert_eq!(
            t.summary(),
            ShardHosts {
                hosts: vec!["a".into(), "b".into()],
                other: false
            }
        );
    }

    #[test]
    fn many_hosts_keep_the_heavy_ones_and_mark_the_rest() {
        let mut t = HostTally::default();
        for i in 0..10_000u32 {
            let url = if i % 2 == 0 {
                "http://heavy/x".to_string()
            } else {
                format!("http://h{i}/x")
            };
            t.add(Some(&url));
        }
        let s = t.summary();
        assert!(s.other);
        assert_eq!(s.hosts[0], "heavy");
        assert!(s.hosts.len() <= TOP_HOSTS);
    }

    #[test]
    fn a_url_without_a_host_means_any_host() {
        let mut t = HostTally::default();
        t.add(Some("http://a/x"));
        t.add(Some("garbage"));
        assert!(t.summary().other);
    }

    #[test]
    fn missing_files_read_as_any_host() {
        let dir = tempfile::tempdir().unwrap();
        let rows = SeedDir::new(dir.path()).shard_rows(ShardId(1));
        let known = ShardHosts {
            hosts: vec!["a:80".into()],
            other: false,
        };
        write(&rows, &known).unwrap();
        assert_eq!(
            load(dir.path(), 3),
            vec![ShardHosts::unknown(), known, ShardHosts::unknown()]
        );
    }
}
