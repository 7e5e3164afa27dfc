//! User-facing output of the acquisition commands: a live progress bar (indicatif, on a
//! terminal) or plain periodic lines (otherwise) fed from [`ShardCounters`], and the final
//! summary table. Logs go through `tracing`; this module is what the user reads.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::{ShardCounters, ShardReport};

/// Writes one line to stdout, like `println!`, but a closed or broken stdout (`| head`, a
/// parent that stopped reading, a detached terminal) is ignored instead of panicking: a
/// command's work and its exit code must not depend on whether anyone still reads its output.
/// Every command writes its stdout lines through it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use say;

/// [`say`] for stderr.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
pub(crate) use say_err;

/// Bytes, human-readable (`12.3 MB`).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// How often plain progress lines are printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// A running progress display; [`Progress::finish`] stops it.
pub struct Progress {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

fn rates(done: u64, bytes: u64, since: Instant) -> (f64, f64) {
    let secs = since.elapsed().as_secs_f64().max(1e-3);
    (done as f64 / secs, bytes as f64 / 1e6 / secs)
}

impl Progress {
    /// Starts showing `counters`: a bar when stderr is a terminal and `plain` is false, one line
    /// every few seconds otherwise.
    pub fn start(counters: Arc<ShardCounters>, plain: bool) -> Self {
        let stop = CancellationToken::new();
        let bar_wanted = !plain && std::io::stderr().is_terminal();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let since = Instant::now();
            if bar_wanted {
                draw_bar(&counters, &token, since).await;
            } else {
                plain_lines(&counters, &token, since).await;
            }
        });
        Self { stop, task }
    }

    /// Stops the display (the bar is cleared).
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn draw_bar(counters: &ShardCounters, stop: &CancellationToken, since: Instant) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rows {msg}",
    ) {
        bar.set_style(style);
    }
    loop {
        let (done, ok, failed, bytes, total) = counters.snapshot();
        if total > 0 {
            bar.set_length(total);
        }
        bar.set_position(done);
        let (ips, mbps) = rates(ok, bytes, since);
        bar.set_message(format!("{ips:.0} img/s {mbps:.1} MB/s, {failed} errors"));
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    bar.finish_and_clear();
}

async fn plain_lines(counters: &ShardCounters, stop: &CancellationToken, since: Instant) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PLAIN_EVERY) => {}
        }
        let (done, ok, failed, bytes, total) = counters.snapshot();
        let (ips, mbps) = rates(ok, bytes, since);
        let total = if total > 0 {
            total.to_string()
        } else {
            "?".into()
        };
        eprintln!(
            "progress: {done}/{total} rows, {ok} ok, {failed} failed, {ips:.0} images/s, {mbps:.1} MB/s"
        );
    }
}

/// Writes the final summary table of a shard run.
pub fn write_summary(out: &mut impl Write, report: &ShardReport) -> std::io::Result<()> {
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let rate = report.success_rate_percent();
    let mb = report.bytes as f64 / 1e6;
    writeln!(
        out,
        "Download summary{}",
        if report.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    )?;
    writeln!(out, "  rows          {}", report.rows_total)?;
    writeln!(out, "  ok            {}", report.ok)?;
    writeln!(out, "  failed        {}", report.failed)?;
    writeln!(out, "  skipped       {}", report.skipped)?;
    let not_attempted = report.not_attempted();
    if not_attempted > 0 {
        writeln!(out, "  not attempted {not_attempted}")?;
    } else if report.interrupted {
        // A CSV's row count is not known before it is read to the end.
        writeln!(
            out,
            "  not attempted the rest of the input (row count unknown)"
        )?;
    }
    if report.carried_over > 0 {
        writeln!(
            out,
            "  carried over  {} (stored by the previous run, kept by --resume)",
            report.carried_over
        )?;
    }
    writeln!(out, "  success rate  {rate:.1}% of the rows attempted")?;
    writeln!(out, "  data          {mb:.2} MB")?;
    writeln!(out, "  time          {secs:.2} s")?;
    writeln!(
        out,
        "  speed         {:.2} MB/s, {:.1} images/s",
        mb / secs,
        report.ok as f64 / secs
    )?;
    if !report.error_breakdown.is_empty() {
        writeln!(out, "Errors")?;
        let mut errors: Vec<_> = report.error_breakdown.iter().collect();
        errors.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (kind, n) in errors {
            writeln!(out, "  {kind:<22} {n}")?;
        }
    }
    if !report.failed_rows.is_empty() {
        let listed = report.failed_rows.len() as u64;
        writeln!(
            out,
            "Failed rows{}",
            if report.failed > listed {
                format!(
                    " (first {listed} of {}; all are in the results file)",
                    report.failed
                )
            } else {
                String::new()
            }
        )?;
        for r in &report.failed_rows {
            writeln!(
                out,
                "  row {:<8} {:<20} {}",
                r.index,
                r.error_kind.as_deref().unwrap_or("-"),
                r.url.as_deref().unwrap_or("(no URL)")
            )?;
        }
    }
    writeln!(
        out,
        "Archive   {} ({:.2} MB{})",
        report.archive_path.display(),
        report.archive_size as f64 / 1e6,
        report
            .archive_sha256
            .as_deref()
            .map(|h| format!(", sha256 {h}"))
            .unwrap_or_default()
    )?;
    writeln!(out, "Results   {}", report.results_path.display())?;
    writeln!(
        out,
        "Overview  {}",
        crate::archive::overview_path(&report.archive_path).display()
    )?;
    if report.interrupted || not_attempted > 0 {
        let what = if not_attempted > 0 {
            format!("{not_attempted} rows were never attempted")
        } else {
            "the rest of the input was never attempted".to_string()
        };
        writeln!(
            out,
            "Interrupted: {what}. Run the same command with --resume to download only what is \
             missing."
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::FailedRow;

    fn report() -> ShardReport {
        ShardReport {
            rows_total: 10,
            ok: 6,
            failed: 1,
            skipped: 0,
            bytes: 1000,
            elapsed: Duration::from_secs(1),
            interrupted: true,
            archive_path: "o/s.tar".into(),
            archive_size: 2048,
            archive_sha256: None,
            results_path: "o/s.results.parquet".into(),
            error_breakdown: [("http_404".to_string(), 1)].into(),
            carried_over: 2,
            failed_rows: vec![FailedRow {
                index: 4,
                url: Some("http://h/4.jpg".into()),
                error_kind: Some("http_404".into()),
            }],
        }
    }

    fn text(r: &ShardReport) -> String {
        let mut out = Vec::new();
        write_summary(&mut out, r).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_interrupted_summary_says_what_is_left_and_how_to_continue() {
        let t = text(&report());
        assert!(t.contains("  not attempted 3\n"), "{t}");
        assert!(t.contains("  carried over  2 "), "{t}");
        assert!(t.contains("85.7% of the rows attempted"), "{t}");
        assert!(t.contains("Failed rows\n  row 4 "), "{t}");
        assert!(t.contains("http://h/4.jpg"), "{t}");
        assert!(
            t.contains("3 rows were never attempted") && t.contains("--resume"),
            "{t}"
        );
        // A CSV: the row count is only known once read to the end.
        let mut csv = report();
        csv.rows_total = 7;
        let t = text(&csv);
        assert!(
            t.contains("the rest of the input was never attempted"),
            "{t}"
        );
        // A complete run says nothing of the kind.
        let mut done = report();
        (done.interrupted, done.rows_total) = (false, 7);
        let t = text(&done);
        assert!(
            !t.contains("not attempted") && !t.contains("--resume to"),
            "{t}"
        );
    }
}
