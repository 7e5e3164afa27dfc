//! `ldawt demo`: the whole product offline, on one machine, in one command. It starts the
//! project's image server on loopback (standing in for the real URLs: nothing leaves the
//! machine), rewrites the embedded 200-row iNaturalist sample to it, runs a seeder and workers
//! as real `ldawt node` processes joined with the seeder's printed line and swarm key, shows
//! their progress and the `peers` table, and leaves everything in `--dir` to look at.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::commands::cli::GlobalOpts;
use crate::exit::UsageError;
use crate::fixture::{self, FixtureConfig, bench};
use crate::report::say;

/// The embedded sample: 200 rows of real iNaturalist open-data URLs (`photo_url`, `taxon_name`).
const SAMPLE: &[u8] = include_bytes!("../../tests/data/inat_sample_200.parquet");
/// Longest the demo's seeder may run.
const DEMO_LIMIT: Duration = Duration::from_secs(600);

/// Arguments of `ldawt demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder the demo creates and leaves behind: the sample, the seeder's `out/` (archives,
    /// results.parquet, overview.json, report.html) and every node's log.
    #[arg(long, value_name = "DIR", default_value = "ldawt-demo")]
    pub dir: PathBuf,
    /// Workers that join the seeder.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub workers: u32,
    /// Concurrent requests per worker (kept low so the demo takes a few seconds to watch).
    #[arg(long, default_value_t = 8)]
    pub concurrency: u32,
}

/// What the seeder printed that the workers need.
#[derive(Default)]
struct SeederLines {
    join: Option<String>,
    key: Option<String>,
    status: Option<String>,
}

fn spawn_node(exe: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    Command::new(exe)
        .args(args)
        .arg("--no-progress")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting an ldawt node")
}

/// Reads the seeder's stdout, echoing it, until its join and status lines are known.
async fn seeder_lines(child: &mut Child) -> anyhow::Result<SeederLines> {
    let stdout = child.stdout.take().context("the seeder's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut found = SeederLines::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while found.join.is_none() || found.status.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok(Some(line))) = tokio::time::timeout(left, lines.next_line()).await else {
            bail!("the seeder stopped before printing its join line (see its log)");
        };
        say!("  seeder │ {line}");
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |flag: &str| {
            let i = words.iter().position(|w| *w == flag)?;
            words.get(i + 1).map(|w| w.to_string())
        };
        if words.first() == Some(&"ldawt") && words.get(1) == Some(&"node") {
            found.join = after("--join");
            found.key = after("--swarm-key");
        }
        if let Some(url) = words.iter().find(|w| w.starts_with("http://")) {
            found.status = Some(
                url.trim_start_matches("http://")
                    .trim_end_matches("/status")
                    .to_string(),
            );
        }
    }
    // Keep echoing the seeder's report (its final summary) in the background.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            say!("  seeder │ {line}");
        }
    });
    Ok(found)
}

/// Runs `ldawt demo`.
pub async fn run(args: DemoArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    if dir.join("out").exists() {
        return Err(UsageError::new(format!(
            "{} already holds a demo run; remove it or pass another --dir",
            dir.display()
        ))
        .into());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let original = dir.join("inat_sample_original.parquet");
    std::fs::write(&original, SAMPLE).with_context(|| format!("writing {}", original.display()))?;

    // A WAN-like first-byte delay, so the progress is there to watch.
    let fx = fixture::start(FixtureConfig {
        first_byte_delay: Duration::from_millis(300),
        ..FixtureConfig::default()
    })
    .await
    .context("starting the local image server")?;
    let sample = dir.join("inat_sample.parquet");
    let rows = bench::rebase_parquet(
        &original,
        &sample,
        10_000,
        &fx.base_url(),
        None,
        "photo_url",
        "taxon_name",
        None,
    )?;
    say!(
        "demo: {rows} iNaturalist rows rewritten to a local image server at {} (nothing leaves this machine)",
        fx.base_url()
    );

    let exe = std::env::current_exe().context("finding this ldawt binary")?;
    let out = dir.join("out");
    let seeder_args: Vec<String> = [
        "node",
        "--seed",
        &sample.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--shards",
        "8",
        "--no-work",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--status-addr",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut seeder = spawn_node(&exe, &seeder_args, &dir.join("seeder.log"))?;
    let lines = seeder_lines(&mut seeder).await?;
    let (Some(join), Some(key), Some(status)) = (lines.join, lines.key, lines.status) else {
        bail!("the seeder printed no usable join line (see its log)");
    };
    say!("demo: the live dashboard is at http://{status}/ while the demo runs");

    let mut workers = Vec::new();
    for i in 1..=args.workers {
        let data = dir.join(format!("worker-{i}"));
        let worker_args: Vec<String> = [
            "node",
            "--join",
            &join,
            "--swarm-key",
            &key,
            // The demo's images are served on loopback: allow that on purpose.
            "--allow-private-urls",
            "--data-dir",
            &data.display().to_string(),
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--status-addr",
            "127.0.0.1:0",
            "--exit-when-idle",
            "5",
            "--concurrency",
            &args.concurrency.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = dir.join(format!("worker-{i}.log"));
        let mut w = spawn_node(&exe, &worker_args, &log)?;
        drop(w.stdout.take());
        say!("demo: worker {i} joined (log: {})", log.display());
        workers.push(w);
    }

    // Progress and the peers table while the seeder runs.
    let started = Instant::now();
    let mut last_table = String::new();
    let mut shown_table = false;
    let code = loop {
        tokio::select! {
            status = seeder.wait() => break status.context("waiting for the seeder")?.code().unwrap_or(1),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        if started.elapsed() > DEMO_LIMIT {
            let _ = seeder.kill().await;
            bail!("the demo's seeder did not finish within {DEMO_LIMIT:?}");
        }
        if let Ok(doc) = crate::status_client::fetch_status(&status).await {
            for d in &doc.datasets {
                say!(
                    "demo: {}/{} shards done, {} leased · {}/{} rows stored · {} worker(s) connected",
                    d.shards_done,
                    d.shards_total,
                    d.shards_leased,
                    d.rows_ok,
                    d.rows_total,
                    doc.peers.iter().filter(|p| p.connected).count()
                );
            }
            last_table = crate::peers_view::render(&doc);
            if !shown_table
                && doc.local.leases_held + doc.peers.iter().map(|p| p.leases_held).sum::<u32>() > 0
            {
                say!("\n$ ldawt peers --status-addr {status}\n{last_table}");
                shown_table = true;
            }
        }
    };
    for mut w in workers {
        if tokio::time::timeout(Duration::from_secs(30), w.wait())
            .await
            .is_err()
        {
            let _ = w.kill().await;
        }
    }
    fx.stop().await;
    if !last_table.is_empty() {
        say!("\nthe swarm as the seeder last saw it:\n{last_table}");
    }
    say!(
        "demo: done (seeder exit code {code}). Look at {}: the shard archives, results.parquet, overview.json and report.html; node logs are in {}",
        out.display(),
        dir.display()
    );
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
