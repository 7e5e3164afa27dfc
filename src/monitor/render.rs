//! Rendering of samples and alert events: a readable line for people (UTC timestamp first)
//! and one JSON object per line for machines. Pure.

use super::Sample;
use super::alerts::AlertEvent;

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time in milliseconds.
pub fn utc_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

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
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(utc_timestamp(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc_timestamp(1_795_315_230_000), "2026-11-22 02:40:30");
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
