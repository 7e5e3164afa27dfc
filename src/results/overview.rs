//! `<stem>.overview.json`: LDAWT's summary fields (`download_summary`, `error_breakdown`,
//! `execution_info`) with their real definitions — a row counts once, whatever its attempts —
//! plus ldawt's own (`skipped`, archive size and sha256, `interrupted`).

use std::path::Path;

use serde_json::json;

use super::ShardReport;

/// `YYYY-MM-DD HH:MM:SS` (UTC) for milliseconds since the epoch.
pub fn utc_timestamp(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The run's settings as the overview records them, built by the engine from its
/// configuration: LDAWT's `script_inputs` (`output_file` is added from the report) and
/// ldawt's `dataset_options`.
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewSettings {
    /// `concurrent_downloads`, `per_host`, `timeout`, `max_file_size`, `max_attempts`.
    pub script_inputs: serde_json::Map<String, serde_json::Value>,
    /// The output format, User-Agent, opt-out directives, hash check, extra columns,
    /// filters and resizing.
    pub dataset_options: serde_json::Value,
}

/// The overview document for a finished (or interrupted) run.
pub fn overview_json(
    report: &ShardReport,
    settings: &OverviewSettings,
    finished_unix_ms: u64,
) -> serde_json::Value {
    let secs = report.elapsed.as_secs_f64();
    let rate = report.success_rate_percent();
    let mb = report.bytes as f64 / 1e6;
    let round2 = |v: f64| (v * 100.0).round() / 100.0;
    let mut script_inputs = serde_json::Map::new();
    script_inputs.insert(
        "output_file".into(),
        report.archive_path.display().to_string().into(),
    );
    script_inputs.extend(settings.script_inputs.clone());
    json!({
        "script_inputs": script_inputs,
        "dataset_options": settings.dataset_options,
        "download_summary": {
            "total_records_processed": report.ok + report.failed + report.skipped,
            "total_rows": report.rows_total,
            "successful_downloads": report.ok,
            "failed_downloads": report.failed,
            "skipped": report.skipped,
            "success_rate_percent": round2(rate),
            "total_data_mb": round2(mb),
            "total_bytes": report.bytes,
            "total_time_seconds": round2(secs),
            // Megabytes per second. `average_speed_mbps` is LDAWT's (misleading) name for the
            // same value, kept so existing readers of overview.json keep working.
            "average_speed_mb_per_s": if secs > 0.0 { round2(mb / secs) } else { 0.0 },
            "average_speed_mbps": if secs > 0.0 { round2(mb / secs) } else { 0.0 },
            "rows_not_attempted": report.not_attempted(),
            "rows_carried_over": report.carried_over,
            "images_per_second": if secs > 0.0 { round2(report.ok as f64 / secs) } else { 0.0 },
        },
        "error_breakdown": report.error_breakdown,
        "archive": {
            "path": report.archive_path.display().to_string(),
            "size_bytes": report.archive_size,
            "sha256": report.archive_sha256,
            "results": report.results_path.display().to_string(),
        },
        "execution_info": {
            "timestamp": utc_timestamp(finished_unix_ms),
            "shutdown_requested": report.interrupted,
        },
    })
}

/// Writes the overview next to the archive ([`crate::layout::write_atomic`]).
pub fn write_overview(path: &Path, doc: &serde_json::Value) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(doc).map_err(std::io::Error::other)?;
    crate::layout::write_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(utc_timestamp(784_111_777_000), "1994-11-06 08:49:37");
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(utc_timestamp(1_709_208_000_000), "2024-02-29 12:00:00");
    }
}
