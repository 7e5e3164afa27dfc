//! `report.html`: a finished run as one self-contained page (inline CSS and SVG, no script, no
//! external asset) written next to `overview.json` by `ldawt download` and by a seeder. It is
//! built from the run's per-row results, streamed once: outcomes, the error breakdown, the
//! busiest classes by images and bytes, and the distribution of per-row latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::results::{RowResult, RowStatus};

/// Classes shown in the per-class chart (the rest are summed as "other classes").
const TOP_CLASSES: usize = 15;
/// Upper bounds (ms) of the latency histogram's buckets; the last bucket is open.
const LATENCY_BUCKETS_MS: [u64; 8] = [50, 100, 250, 500, 1_000, 2_500, 10_000, 30_000];

/// What the page shows, accumulated row by row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFigures {
    /// Rows seen.
    pub rows: u64,
    /// Rows stored.
    pub ok: u64,
    /// Rows failed.
    pub failed: u64,
    /// Rows skipped.
    pub skipped: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Failed rows by error kind.
    pub errors: BTreeMap<String, u64>,
    /// Stored images and bytes by class (`(none)` for rows without a class).
    pub classes: BTreeMap<String, (u64, u64)>,
    /// Stored rows per latency bucket ([`LATENCY_BUCKETS_MS`] plus one open bucket).
    pub latency: [u64; LATENCY_BUCKETS_MS.len() + 1],
}

impl RunFigures {
    /// Counts one row.
    pub fn add(&mut self, r: &RowResult) {
        self.rows += 1;
        match r.status {
            RowStatus::Ok => {
                self.ok += 1;
                self.bytes += r.bytes;
                let class = r.class.clone().unwrap_or_else(|| "(none)".into());
                let entry = self.classes.entry(class).or_default();
                entry.0 += 1;
                entry.1 += r.bytes;
                let bucket = LATENCY_BUCKETS_MS
                    .iter()
                    .position(|b| r.elapsed_ms <= *b)
                    .unwrap_or(LATENCY_BUCKETS_MS.len());
                self.latency[bucket] += 1;
            }
            RowStatus::Failed => {
                self.failed += 1;
                let kind = r.error_kind.clone().unwrap_or_else(|| "unknown".into());
                *self.errors.entry(kind).or_default() += 1;
            }
            RowStatus::Skipped => self.skipped += 1,
        }
    }

    /// Figures of every row of the results files `paths` (streamed).
    pub fn from_results(paths: &[&Path]) -> Result<Self, super::ResultsError> {
        let mut f = RunFigures::default();
        for p in paths {
            super::read_results(p, |r| f.add(&r))?;
        }
        Ok(f)
    }
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn human_bytes(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A horizontal bar chart as inline SVG: one labelled bar per `(label, value, shown)`.
fn bar_chart(id: &str, bars: &[(String, u64, String)], color: &str) -> String {
    if bars.is_empty() {
        return "<p class=\"muted\">none</p>".into();
    }
    let max = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let row_h = 22;
    let height = bars.len() * row_h + 4;
    let mut svg =
        format!("<svg id=\"{id}\" viewBox=\"0 0 640 {height}\" width=\"100%\" role=\"img\">");
    for (i, (label, value, shown)) in bars.iter().enumerate() {
        let y = i * row_h + 2;
        let w = (*value as f64 / max * 320.0).max(1.0);
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{ty}\" class=\"l\">{label}</text>\
             <rect x=\"200\" y=\"{y}\" width=\"{w:.1}\" height=\"16\" rx=\"3\" fill=\"{color}\"/>\
             <text x=\"{vx:.1}\" y=\"{ty}\" class=\"v\">{shown}</text>",
            ty = y + 13,
            label = esc(&truncate(label, 30)),
            vx = 206.0 + w,
            shown = esc(shown),
        );
    }
    svg.push_str("</svg>");
    svg
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// The page for a run titled `title`, with `elapsed_secs` of wall time when it is known (a
/// seeder's dataset spans restarts: no rate is shown for it).
pub fn render(title: &str, f: &RunFigures, elapsed_secs: Option<f64>) -> String {
    let timing = match elapsed_secs {
        Some(secs) if secs > 0.0 => format!(
            "<div><b>{secs:.1} s</b><small>wall time</small></div>\n\
             <div><b>{:.1}</b><small>images/s</small></div>\n\
             <div><b>{:.2}</b><small>MB/s</small></div>",
            f.ok as f64 / secs,
            f.bytes as f64 / secs / 1e6
        ),
        _ => String::new(),
    };
    let attempted = f.ok + f.failed;
    let success = if attempted > 0 {
        100.0 * f.ok as f64 / attempted as f64
    } else {
        0.0
    };
    let outcomes = bar_chart(
        "outcomes",
        &[
            ("ok".into(), f.ok, f.ok.to_string()),
            ("failed".into(), f.failed, f.failed.to_string()),
            ("skipped".into(), f.skipped, f.skipped.to_string()),
        ],
        "#2f9e44",
    );
    let mut errors: Vec<_> = f.errors.iter().collect();
    errors.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let errors = bar_chart(
        "errors",
        &errors
            .iter()
            .map(|(k, n)| ((*k).clone(), **n, n.to_string()))
            .collect::<Vec<_>>(),
        "#e03131",
    );
    let mut classes: Vec<_> = f.classes.iter().collect();
    classes.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let mut class_bars: Vec<(String, u64, String)> = classes
        .iter()
        .take(TOP_CLASSES)
        .map(|(c, (n, b))| ((*c).clone(), *n, format!("{n} · {}", human_bytes(*b))))
        .collect();
    if classes.len() > TOP_CLASSES {
        let (n, b) = classes[TOP_CLASSES..]
            .iter()
            .fold((0, 0), |(n, b), (_, (cn, cb))| (n + cn, b + cb));
        let label = format!("{} other classes", classes.len() - TOP_CLASSES);
        class_bars.push((label, n, format!("{n} · {}", human_bytes(b))));
    }
    let classes_svg = bar_chart("classes", &class_bars, "#1c7ed6");
    let mut lower = 0;
    let latency_bars: Vec<(String, u64, String)> = f
        .latency
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let label = match LATENCY_BUCKETS_MS.get(i) {
                Some(up) => {
                    let l = format!("{lower}–{up} ms");
                    lower = *up;
                    l
                }
                None => format!("> {lower} ms"),
            };
            (label, *n, n.to_string())
        })
        .collect();
    let latency = bar_chart("latency", &latency_bars, "#f08c00");
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ldawt report: {title}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; color: #1d2330; margin: 0; background: #f6f7f9; }}
header {{ background: #1d2330; color: #fff; padding: 14px 22px; }}
h1 {{ margin: 0; font-size: 18px; }} h2 {{ font-size: 13px; text-transform: uppercase; color: #677084; margin: 0 0 8px; }}
main {{ display: grid; gap: 16px; padding: 16px 22px; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); }}
section {{ background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 12px 14px; }}
.kpis {{ display: flex; gap: 24px; flex-wrap: wrap; }} .kpis b {{ display: block; font-size: 22px; }}
.kpis small, .muted {{ color: #677084; }}
svg text {{ font: 12px system-ui, sans-serif; fill: #1d2330; }} svg text.v {{ fill: #677084; }}
</style></head>
<body><header><h1>ldawt report: {title}</h1></header><main>
<section style="grid-column: 1 / -1"><h2>Run</h2><div class="kpis" id="kpis">
<div><b id="rows">{rows}</b><small>rows</small></div>
<div><b id="ok">{ok}</b><small>stored</small></div>
<div><b id="failed">{failed}</b><small>failed</small></div>
<div><b id="skipped">{skipped}</b><small>skipped</small></div>
<div><b>{success:.1} %</b><small>success of attempted</small></div>
<div><b>{bytes}</b><small>stored</small></div>
{timing}
</div></section>
<section><h2>Outcomes</h2>{outcomes}</section>
<section><h2>Errors by kind</h2>{errors}</section>
<section><h2>Top classes (images · bytes)</h2>{classes_svg}</section>
<section><h2>Per-row latency of stored images</h2>{latency}</section>
</main></body></html>
"#,
        title = esc(title),
        rows = f.rows,
        ok = f.ok,
        failed = f.failed,
        skipped = f.skipped,
        bytes = human_bytes(f.bytes),
    )
}

/// `report.html` beside an overview: `out/x.overview.json` → `out/x.report.html`,
/// `out/overview.json` → `out/report.html`.
pub fn report_path(overview: &Path) -> std::path::PathBuf {
    let name = overview
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix("overview.json").unwrap_or(&name);
    overview.with_file_name(format!("{stem}report.html"))
}

/// Writes the page to `path` ([`crate::layout::write_atomic`]).
pub fn write_report(path: &Path, html: &str) -> std::io::Result<()> {
    crate::layout::write_atomic(path, html.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: u64, status: RowStatus, class: &str, kind: Option<&str>) -> RowResult {
        RowResult {
            index,
            url: Some(format!("http://h/{index}.jpg")),
            class: Some(class.into()),
            status,
            http_status: None,
            error_kind: kind.map(str::to_string),
            error_message: None,
            bytes: if status == RowStatus::Ok { 1_000 } else { 0 },
            sha256: None,
            member: None,
            attempts: 1,
            elapsed_ms: index * 40,
        }
    }

    #[test]
    fn figures_count_every_row_once_and_the_page_shows_them_escaped() {
        let mut f = RunFigures::default();
        for i in 0..20 {
            f.add(&row(
                i,
                RowStatus::Ok,
                if i % 2 == 0 { "<owl>" } else { "moth" },
                None,
            ));
        }
        f.add(&row(20, RowStatus::Failed, "moth", Some("http_404")));
        f.add(&row(21, RowStatus::Failed, "moth", Some("http_404")));
        f.add(&row(22, RowStatus::Skipped, "moth", None));
        assert_eq!((f.rows, f.ok, f.failed, f.skipped), (23, 20, 2, 1));
        assert_eq!(f.errors["http_404"], 2);
        assert_eq!(f.classes["moth"], (10, 10_000));
        assert_eq!(f.latency.iter().sum::<u64>(), 20);
        let html = render("a <b> run", &f, Some(2.0));
        assert!(html.contains("<b id=\"ok\">20</b>"));
        assert!(html.contains("http_404"));
        assert!(html.contains("&lt;owl&gt;"), "labels are escaped");
        assert!(html.contains("a &lt;b&gt; run"), "the title is escaped");
        assert!(!html.contains("<script"), "no script");
        assert!(!html.contains("src=\""), "no external asset");
    }

    #[test]
    fn the_report_sits_beside_its_overview() {
        assert_eq!(
            report_path(Path::new("out/g1.overview.json")),
            Path::new("out/g1.report.html")
        );
        assert_eq!(
            report_path(Path::new("out/overview.json")),
            Path::new("out/report.html")
        );
    }

    #[test]
    fn many_classes_are_summarised() {
        let mut f = RunFigures::default();
        for i in 0..40 {
            f.add(&row(i, RowStatus::Ok, &format!("c{i}"), None));
        }
        let html = render("x", &f, None);
        assert!(html.contains("25 other classes"), "{html}");
    }
}
