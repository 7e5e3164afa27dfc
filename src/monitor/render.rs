//! Rendering of samples and alert events: a readable line for people (UTC timestamp first)
//! and one JSON object per line for machines. Pure.

use super::Sample;
use super::alerts::AlertEvent;
use crate::results::overview::utc_timestamp;

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// The readable line for a sample.
pub fn human_line(s: &Sample) -> String {
    let mut line = format!(
        "[{}] cpu {:.1}% | mem {:.1}% ({:.1} GiB free) | disk {} {:.1}% ({:.1} GiB free of {:.1}) | net down {:.2} MB/s up {:.2} MB/s",
        utc_timestamp(s.ts_ms),
        s.cpu_percent,
        s.mem_used_percent,
        gib(s.mem_available_bytes),
        s.disk_mount,
        s.disk_used_percent,
        gib(s.disk_free_bytes),
        gib(s.disk_total_bytes),
        s.net_rx_bytes_per_s / 1e6,
        s.net_tx_bytes_per_s / 1e6,
    );
    if let Some(pid) = s.pid {
        line.push_str(&format!(" | pid {pid}"));
        if let Some(fds) = s.fds {
            line.push_str(&format!(" fds {fds}"));
        }
        if let Some(rss) = s.rss_bytes {
            line.push_str(&format!(" rss {:.0} MiB", rss as f64 / (1u64 << 20) as f64));
        }
    }
    if let Some(n) = &s.node {
        if n.reachable {
            line.push_str(&format!(
                " | node {}: {} peers ({} connected), {} leases, {:.1} img/s, {:.2} MB/s, shards {}/{}",
                n.addr,
                n.peers,
                n.peers_connected,
                n.leases_held,
                n.images_per_s,
                n.mb_per_s,
                n.dataset_shards_done,
                n.dataset_shards_total
            ));
        } else {
            line.push_str(&format!(
                " | node {}: not answering ({})",
                n.addr,
                n.error.as_deref().unwrap_or("no reply")
            ));
        }
    }
    line
}

/// The readable line for an alert event.
pub fn event_line(ts_ms: u64, e: &AlertEvent) -> String {
    match e {
        AlertEvent::Raised(m) => format!("[{}] ALERT {m}", utc_timestamp(ts_ms)),
        AlertEvent::Cleared(m) => format!("[{}] cleared: {m}", utc_timestamp(ts_ms)),
    }
}

/// The JSON line for a sample (`"type":"sample"` plus every field).
pub fn json_sample(s: &Sample) -> String {
    let mut v = serde_json::to_value(s).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("type".into(), "sample".into());
    }
    v.to_string()
}

/// The JSON line for an alert event.
pub fn json_event(ts_ms: u64, e: &AlertEvent) -> String {
    let (kind, msg) = match e {
        AlertEvent::Raised(m) => ("alert", m),
        AlertEvent::Cleared(m) => ("cleared", m),
    };
    serde_json::json!({"type": kind, "ts_ms": ts_ms, "message": msg}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_start_with_a_utc_timestamp() {
        let s = Sample {
            ts_ms: 1_795_315_230_000,
            ..Default::default()
        };
        assert!(human_line(&s).starts_with("[2026-11-22 02:40:30] cpu 0.0%"));
        let e = event_line(0, &AlertEvent::Cleared("x".into()));
        assert_eq!(e, "[1970-01-01 00:00:00] cleared: x");
    }

    #[test]
    fn json_lines_carry_a_type() {
        let s = Sample {
            cpu_percent: 5.0,
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&json_sample(&s)).unwrap();
        assert_eq!(v["type"], "sample");
        assert_eq!(v["cpu_percent"], 5.0);
        assert!(json_event(1, &AlertEvent::Raised("x".into())).contains("\"alert\""));
    }
}
