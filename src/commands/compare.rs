//! `ldawt compare`: command-line glue over `crate::listing` — reads both sides, diffs them,
//! prints what is only on each side (and size differences with `--sizes`), optionally writes
//! the lists to `--out-dir`. Exit 0 when the sides match, 1 when they differ (like `diff`).
//! Hidden entries are left out unless `--include-hidden`; an archive's top folder is removed
//! (with a note) when that makes more names match, unless `--keep-prefix`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::commands::cli::GlobalOpts;
use crate::exit::UsageError;
use crate::listing::{self, Listing, ListingDiff, ListingError, Source};
use crate::report::say;
use crate::webdav::{RetryPolicy, parse_url};

/// How many names of each list are printed (all are written with `--out-dir`).
const SHOWN: usize = 20;

/// Arguments of `ldawt compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Left side: a text listing, a directory, a .tar/.tar.gz/.tgz, or a WebDAV URL.
    pub left: String,
    /// Right side: same kinds as LEFT.
    pub right: String,
    /// Also report files present on both sides with different sizes.
    #[arg(long)]
    pub sizes: bool,
    /// Compare file names only, ignoring folders (for flat listings against trees).
    #[arg(long)]
    pub basename: bool,
    /// Only consider names ending with this suffix (e.g. `.tar.gz`).
    #[arg(long)]
    pub suffix: Option<String>,
    /// Write only_left.txt, only_right.txt and size_differs.tsv into this directory.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// WebDAV user for URL sides; the password comes from LDAWT_PASSWORD or ~/.netrc.
    #[arg(long)]
    pub user: Option<String>,
    /// Also compare hidden files and folders (a path component starting with `.`, such as a
    /// node's private `.ldawt/`); they are left out by default.
    #[arg(long)]
    pub include_hidden: bool,
    /// Compare names exactly as listed. By default, when every entry of a side sits in one
    /// top-level folder (an archive's `<stem>/`) and removing it makes more names match, it is
    /// removed and a note says so.
    #[arg(long)]
    pub keep_prefix: bool,
}

fn listing_failure(e: ListingError) -> anyhow::Error {
    if e.is_bad_input() {
        UsageError::new(e.to_string()).into()
    } else {
        e.into()
    }
}

async fn read_side(arg: &str, user: Option<&str>) -> anyhow::Result<Listing> {
    match Source::detect(arg) {
        Source::WebDav(text) => {
            let url = parse_url(&text).map_err(super::upload::webdav_failure)?;
            let client = super::upload::client_for(&url, user, RetryPolicy::webdav())?;
            listing::read_webdav(&client, &url)
                .await
                .map_err(listing_failure)
        }
        local => tokio::task::spawn_blocking(move || listing::read_local(&local))
            .await
            .context("the listing thread failed")?
            .map_err(listing_failure),
    }
}

fn write_lists(dir: &Path, d: &ListingDiff) -> anyhow::Result<()> {
    let unwritable = |e: std::io::Error| {
        UsageError::new(format!("cannot write to --out-dir {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(unwritable)?;
    let write = |name: &str, lines: Vec<String>| -> anyhow::Result<()> {
        let path = dir.join(name);
        let mut text = String::new();
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        crate::layout::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    };
    write("only_left.txt", d.only_left.clone())?;
    write("only_right.txt", d.only_right.clone())?;
    write(
        "size_differs.tsv",
        d.size_differs
            .iter()
            .map(|(n, l, r)| format!("{n}\t{l}\t{r}"))
            .collect(),
    )?;
    Ok(())
}

fn print_list(title: &str, names: &[String]) {
    say!("{title} ({}):", names.len());
    for n in names.iter().take(SHOWN) {
        say!("  {n}");
    }
    if names.len() > SHOWN {
        say!("  ... and {} more", names.len() - SHOWN);
    }
}

/// Runs `ldawt compare`.
pub async fn run(args: CompareArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let (left, right) = tokio::try_join!(
        read_side(&args.left, args.user.as_deref()),
        read_side(&args.right, args.user.as_deref())
    )?;
    let hidden = |l: Listing, side: &str, arg: &str| {
        if args.include_hidden {
            return l;
        }
        let (kept, dropped) = listing::without_hidden(l);
        if dropped > 0 {
            say!(
                "note: left out {dropped} hidden file{} of the {side} side {arg} (pass --include-hidden to compare them)",
                if dropped == 1 { "" } else { "s" }
            );
        }
        kept
    };
    let (mut left, mut right) = (
        hidden(left, "left", &args.left),
        hidden(right, "right", &args.right),
    );
    if !args.keep_prefix && !args.basename {
        let (strip_left, strip_right) = listing::best_prefix_strip(&left, &right);
        if let Some(top) = strip_left {
            say!(
                "note: every entry of the left side is under {top}/; compared without that folder (pass --keep-prefix to keep it)"
            );
            left = listing::strip_top_folder(left, &top);
        }
        if let Some(top) = strip_right {
            say!(
                "note: every entry of the right side is under {top}/; compared without that folder (pass --keep-prefix to keep it)"
            );
            right = listing::strip_top_folder(right, &top);
        }
    }
    let prepare = |mut l: Listing| {
        if args.basename {
            l = listing::basenames(l);
        }
        if let Some(s) = &args.suffix {
            l = listing::with_suffix(l, s);
        }
        l
    };
    let (left, right) = (prepare(left), prepare(right));
    let d = listing::diff(&left, &right, args.sizes);
    say!("left:  {} ({} files)", args.left, left.len());
    say!("right: {} ({} files)", args.right, right.len());
    print_list("only in left", &d.only_left);
    print_list("only in right", &d.only_right);
    if args.sizes {
        say!("size differs ({}):", d.size_differs.len());
        for (n, l, r) in d.size_differs.iter().take(SHOWN) {
            say!("  {n}: {l} vs {r} bytes");
        }
        if d.size_differs.len() > SHOWN {
            say!("  ... and {} more", d.size_differs.len() - SHOWN);
        }
        if d.size_unknown > 0 {
            say!(
                "size unknown on one side for {} common files (not size-checked)",
                d.size_unknown
            );
        }
    }
    say!(
        "{} in common, {} only left, {} only right{}",
        d.common,
        d.only_left.len(),
        d.only_right.len(),
        if args.sizes {
            format!(", {} size differs", d.size_differs.len())
        } else {
            String::new()
        }
    );
    if let Some(dir) = &args.out_dir {
        write_lists(dir, &d)?;
        say!("lists written to {}", dir.display());
    }
    Ok(if d.is_same() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::PARTIAL)
    })
}
