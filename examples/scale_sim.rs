//! The coordinator-at-scale case of the scale benchmark: `scale_sim [SHARDS] [PEERS]` runs
//! [`ldawt::coordinator::sim`] (default 100,000 shards, 200 peers with churn) and prints lease
//! decisions per second, memory, and gossip bytes per peer per second; it exits non-zero if a
//! shard was lost or completed twice, or a peer starved.

use anyhow::{Result, bail};
use ldawt::coordinator::sim::{SimConfig, run_observed};

/// (VmRSS, VmHWM) of this process in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mut cfg = SimConfig::web_scale();
    if let Some(s) = args.get(1) {
        cfg.shards = s.parse()?;
    }
    if let Some(p) = args.get(2) {
        cfg.peers = p.parse()?;
    }
    let (before, _) = rss_kib();
    let mut at_end = 0;
    let r = run_observed(&cfg, || at_end = rss_kib().0);
    let (_, peak) = rss_kib();
    let grown = at_end.saturating_sub(before) * 1024;
    println!("{r:#?}");
    println!(
        "SIM shards {} peers {} (peers seen with churn: {}) simulated {:.1} h, wall {:.1} s",
        cfg.shards,
        cfg.peers,
        r.peers_seen,
        r.sim_secs as f64 / 3600.0,
        r.wall.as_secs_f64()
    );
    println!("SIM_DECISIONS_PER_S {:.0}", r.decisions_per_s());
    println!(
        "SIM_MEMORY peak RSS {} KiB; state grown by the run {} KiB = {:.0} bytes per shard (lease book, every shard done)",
        peak,
        grown / 1024,
        grown as f64 / f64::from(cfg.shards)
    );
    println!(
        "SIM_GOSSIP_BYTES_PER_PEER_PER_S {:.0}",
        r.gossip_bytes_per_peer_per_s()
    );
    println!(
        "SIM_OUTCOME done {} failed {} open {} double-completions {} starved {} grants/peer-hour {:.1}..{:.1}",
        r.shards_done,
        r.shards_failed,
        r.shards_open,
        r.double_completions,
        r.starved.len(),
        r.min_grants_per_hour,
        r.max_grants_per_hour
    );
    if !r.finished || r.shards_open > 0 || r.double_completions > 0 || !r.starved.is_empty() {
        bail!("coordinator simulation failed its checks");
    }
    Ok(())
}
