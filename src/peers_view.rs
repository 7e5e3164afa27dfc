//! Renders a node's [`NodeStatus`] as the human tables of `ldawt peers`: one row per node
//! (this one first) with its resources and activity, then one row per dataset with its
//! progress. Pure: the caller passes the document, which carries its own `now_ms`.

use std::fmt::Write as _;

use crate::protocol::status::{DatasetProgress, NodeStatus, PeerStatus};

const GIB: f64 = (1u64 << 30) as f64;

/// The whole `ldawt peers` text.
pub fn render(status: &NodeStatus) -> String {
    let mut out = String::new();
    let stalled = status.peers.iter().filter(|p| p.stalled).count();
    let _ = writeln!(
        out,
        "node {} ({}), {} peer(s) known, {} connected{}",
        status.peer_id,
        if status.roles.is_empty() {
            "idle".to_string()
        } else {
            status.roles.join("+")
        },
        status.peers.len(),
        status.peers.iter().filter(|p| p.connected).count(),
        if stalled > 0 {
            format!(", {stalled} stalled")
        } else {
            String::new()
        }
    );
    for addr in &status.listen_addrs {
        let _ = writeln!(out, "  join with: --join {addr}");
    }
    out.push('\n');
    let mut rows = vec![peer_row(&status.local, status.now_ms, true)];
    let mut peers: Vec<&PeerStatus> = status.peers.iter().collect();
    peers.sort_by(|a, b| {
        b.connected
            .cmp(&a.connected)
            .then(a.peer_id.cmp(&b.peer_id))
    });
    rows.extend(peers.into_iter().map(|p| peer_row(p, status.now_ms, false)));
    out.push_str(&table(
        &[
            "PEER",
            "ADDRESS",
            "ROLE",
            "CORES",
            "MEM FREE",
            "DISK FREE",
            "LEASES",
            "DONE",
            "MB/S",
            "IMG/S",
            "LAST SEEN",
        ],
        &rows,
    ));
    out.push('\n');
    if status.datasets.is_empty() {
        out.push_str("no dataset known yet\n");
    } else {
        let rows: Vec<Vec<String>> = status.datasets.iter().map(dataset_row).collect();
        out.push_str(&table(
            &[
                "DATASET",
                "NAME",
                "SEEDER",
                "SHARDS DONE",
                "LEASED",
                "FAILED",
                "ROWS OK",
                "ROWS FAILED",
                "PROGRESS",
            ],
            &rows,
        ));
    }
    out
}

/// `12D3Ko…xY7abc`: long enough to tell peers apart in a table.
fn short_id(id: &str) -> String {
    if id.chars().count() <= 16 {
        return id.to_string();
    }
    let head: String = id.chars().take(6).collect();
    let tail: String = id.chars().skip(id.chars().count() - 6).collect();
    format!("{head}…{tail}")
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB)
}

fn ago(now_ms: u64, then_ms: u64) -> String {
    if then_ms == 0 {
        return "never".into();
    }
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        0 => "now".into(),
        1..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        _ => format!("{}h ago", secs / 3600),
    }
}

/// An address as shown in the table: without its `/p2p/<peer id>` tail (the PEER column
/// already names the peer; the full form is in `--json` and the join line).
fn shown_addr(addr: &str) -> &str {
    addr.find("/p2p/").map_or(addr, |i| &addr[..i])
}

fn peer_row(p: &PeerStatus, now_ms: u64, local: bool) -> Vec<String> {
    let addr = match p.addrs.as_slice() {
        [] => "-".to_string(),
        [one] => shown_addr(one).to_string(),
        [first, rest @ ..] => format!("{} (+{})", shown_addr(first), rest.len()),
    };
    let seen = if local {
        "(this node)".to_string()
    } else if p.stalled {
        format!("{} (STALLED)", ago(now_ms, p.last_seen_ms))
    } else if p.connected {
        ago(now_ms, p.last_seen_ms)
    } else {
        format!("{} (disconnected)", ago(now_ms, p.last_seen_ms))
    };
    vec![
        short_id(&p.peer_id),
        addr,
        if p.role.is_empty() {
            "unknown".into()
        } else {
            p.role.clone()
        },
        p.cores.to_string(),
        format!("{} / {}", gib(p.mem_free_bytes), gib(p.mem_total_bytes)),
        gib(p.disk_free_bytes),
        p.leases_held.to_string(),
        p.shards_done.to_string(),
        format!("{:.2}", p.mb_per_s),
        format!("{:.1}", p.images_per_s),
        seen,
    ]
}

fn dataset_row(d: &DatasetProgress) -> Vec<String> {
    let pct = if d.shards_total == 0 {
        0.0
    } else {
        100.0 * f64::from(d.shards_done) / f64::from(d.shards_total)
    };
    vec![
        d.dataset_id.chars().take(12).collect(),
        d.name.clone(),
        short_id(&d.seeder),
        format!("{} / {}", d.shards_done, d.shards_total),
        d.shards_leased.to_string(),
        d.shards_failed.to_string(),
        format!("{} / {}", d.rows_ok, d.rows_total),
        d.rows_failed.to_string(),
        format!("{pct:.1}%"),
    ]
}

/// Left-aligned columns separated by two spaces.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let parts: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied(), &mut out);
    for row in rows {
        line(&mut row.iter().map(String::as_str), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> NodeStatus {
        NodeStatus {
            version: 1,
            peer_id: "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAlocal".into(),
            listen_addrs: vec!["/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWlocal".into()],
            roles: vec!["seeder".into(), "worker".into()],
            now_ms: 1_000_000,
            local: PeerStatus {
                peer_id: "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAlocal".into(),
                role: "seeder+worker".into(),
                cores: 8,
                mem_total_bytes: 16 << 30,
                mem_free_bytes: 8 << 30,
                ..Default::default()
            },
            peers: vec![
                PeerStatus {
                    peer_id: "12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBgone".into(),
                    role: "worker".into(),
                    last_seen_ms: 1_000_000 - 300_000,
                    ..Default::default()
                },
                PeerStatus {
                    peer_id: "12D3KooWCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCwork".into(),
                    addrs: vec![
                        "/ip4/10.0.0.7/tcp/4001".into(),
                        "/ip4/127.0.0.1/tcp/4001".into(),
                    ],
                    role: "worker".into(),
                    cores: 4,
                    disk_free_bytes: 3 << 30,
                    leases_held: 2,
                    shards_done: 5,
                    mb_per_s: 4.25,
                    images_per_s: 31.0,
                    last_seen_ms: 1_000_000 - 2_000,
                    connected: true,
                    ..Default::default()
                },
            ],
            datasets: vec![DatasetProgress {
                dataset_id: "00112233445566778899aabbccddeeff".into(),
                seeder: "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAlocal".into(),
                name: "inat.parquet".into(),
                shards_total: 8,
                shards_done: 2,
                shards_leased: 3,
                rows_total: 80_000,
                rows_ok: 19_990,
                rows_failed: 10,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn lists_this_node_first_then_connected_then_disconnected_peers() {
        let text = render(&status());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("2 peer(s) known, 1 connected"), "{text}");
        assert!(lines[1].contains("--join /ip4/10.0.0.5/tcp/4001/p2p/"));
        let header = lines.iter().position(|l| l.starts_with("PEER")).unwrap();
        assert!(lines[header + 1].starts_with("12D3Ko…Alocal"));
        assert!(lines[header + 1].ends_with("(this node)"));
        assert!(lines[header + 2].starts_with("12D3Ko…CCwork"));
        assert!(lines[header + 2].contains("/ip4/10.0.0.7/tcp/4001 (+1)"));
        assert!(lines[header + 2].contains("4.25"));
        assert!(lines[header + 2].ends_with("2s ago"));
        assert!(lines[header + 3].ends_with("5m ago (disconnected)"));
        // Columns line up: every cell of the row starts where its header starts.
        let col = lines[header].find("LEASES").unwrap(); // the header is ASCII
        assert_eq!(lines[header + 2].chars().nth(col), Some('2'));
        assert!(text.contains("0011223344"));
        assert!(text.contains("2 / 8"));
        assert!(text.contains("25.0%"));
    }

    #[test]
    fn addresses_in_the_table_drop_their_peer_id() {
        let mut st = status();
        st.local.addrs = vec!["/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWlocal".into()];
        let text = render(&st);
        let header = text.lines().position(|l| l.starts_with("PEER")).unwrap();
        let row = text.lines().nth(header + 1).unwrap();
        assert!(
            row.contains("/ip4/10.0.0.5/tcp/4001 ") && !row.contains("/p2p/"),
            "{row}"
        );
    }

    #[test]
    fn a_stalled_peer_is_marked_in_the_table_and_counted_in_the_header() {
        let mut st = status();
        st.peers[1].stalled = true;
        st.peers[1].last_seen_ms = 1_000_000 - 12_000;
        let text = render(&st);
        assert!(
            text.lines()
                .next()
                .unwrap()
                .ends_with("1 connected, 1 stalled"),
            "{text}"
        );
        let row = text
            .lines()
            .find(|l| l.starts_with("12D3Ko…CCwork"))
            .unwrap();
        assert!(row.ends_with("12s ago (STALLED)"), "{row}");
    }

    #[test]
    fn an_empty_node_renders_without_datasets() {
        let text = render(&NodeStatus::default());
        assert!(text.contains("(idle), 0 peer(s) known, 0 connected"));
        assert!(text.contains("no dataset known yet"));
    }
}
