//! The dataset-builder options of `ldawt download` (opt-outs, User-Agent contact, hash check,
//! extra columns, output format), kept apart from the transfer options and applied onto the
//! [`EngineConfig`] in one step.

use std::path::Path;

use clap::{Args, ValueEnum};

use crate::engine::{
    EncodeFormat, EngineConfig, HashCheck, ImageFilters, OutputFormat, ResizeMode, ResizeOptions,
    check_user_agent_token, parse_columns,
};
use crate::exit::UsageError;
use crate::fetch::robots_tag;

/// The output layout on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// A tar of `<stem>/<class>/<name>.<ext>` (LDAWT's layout).
    Classdirs,
    /// A webdataset tar: per sample `KEY.<ext>`, `KEY.json`, `KEY.cls`, adjacent.
    Webdataset,
    /// A plain directory tree `<output>/<class>/<name>.<ext>` (no tar).
    Files,
    /// One `.parquet` of the images (`{bytes, path}` struct, as Hugging Face `datasets` reads
    /// them) with url, class, sha256, sizes and the extra columns.
    Parquet,
}

/// `--resize-mode` on the command line (img2dataset's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ResizeModeArg {
    /// Store images as downloaded.
    No,
    /// Shorter side = --image-size, ratio kept.
    KeepRatio,
    /// Longer side = --image-size, ratio kept.
    KeepRatioLargest,
    /// Shorter side = --image-size, then a centred square.
    CenterCrop,
    /// Longer side = --image-size, then black borders to a square.
    Border,
}

/// `--encode-format` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncodeFormatArg {
    /// JPEG at --encode-quality.
    Jpg,
    /// Lossless PNG.
    Png,
    /// Lossy WebP at --encode-quality.
    Webp,
}

/// Options for building training datasets.
#[derive(Debug, Args)]
pub struct DatasetOptions {
    /// X-Robots-Tag directives that stop an image from being stored (row skipped as
    /// `opted_out`); unscoped, `ldawt:` and `*:` forms count. An empty string disables the
    /// check [default: noai,noimageai,noindex,noimageindex].
    #[arg(long, value_name = "A,B")]
    pub disallowed_header_directives: Option<String>,
    /// Your contact (e-mail or URL), added to the User-Agent so site owners can reach you:
    /// `ldawt/<version> (+https://github.com/ldawt/ldawt; TOKEN)`.
    #[arg(long, value_name = "TOKEN")]
    pub user_agent_token: Option<String>,
    /// Compare each body's digest with the hex digest in input column COL (sha256 unless
    /// `:md5`); a mismatch is failed as `hash_mismatch` and not stored. Empty cells are not
    /// checked.
    #[arg(long, value_name = "COL[:sha256|md5]")]
    pub verify_hash: Option<String>,
    /// Input columns carried into the results file (and each webdataset sample's `.json`).
    #[arg(long, value_name = "A,B,C")]
    pub extra_cols: Option<String>,
    /// Caption column: each webdataset sample gets `KEY.txt` with the row's caption (and
    /// `caption` in its `.json`).
    #[arg(long, value_name = "COL")]
    pub caption_col: Option<String>,
    /// Fetch each site's robots.txt once (RFC 9309, for the `ldawt` token) and skip the rows it
    /// disallows as `robots_disallowed`, without requesting them. A robots.txt answering 5xx
    /// or unreachable disallows the whole site; 4xx allows it.
    #[arg(long)]
    pub respect_robots_txt: bool,
    /// Output layout [default: classdirs].
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Skip images whose width or height is under N pixels (read from the image header; the
    /// row is skipped as `image_too_small`).
    #[arg(long, value_name = "N")]
    pub min_image_size: Option<u32>,
    /// Skip images of more than N pixels, width × height (`image_area_too_large`).
    #[arg(long, value_name = "N")]
    pub max_image_area: Option<u64>,
    /// Skip images whose longer side is more than R times the shorter one
    /// (`aspect_ratio_too_large`).
    #[arg(long, value_name = "R")]
    pub max_aspect_ratio: Option<f64>,
    /// Resize stored images (decoded and re-encoded) [default: no].
    #[arg(long, value_enum)]
    pub resize_mode: Option<ResizeModeArg>,
    /// Target size in pixels for --resize-mode [default: 256].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub image_size: Option<u32>,
    /// Never enlarge: images already within --image-size are not scaled (crop/border still
    /// apply).
    #[arg(long)]
    pub resize_only_if_bigger: bool,
    /// Encoding of resized images [default: jpg].
    #[arg(long, value_enum)]
    pub encode_format: Option<EncodeFormatArg>,
    /// JPEG or WebP quality of resized images, 1-100 [default: 95].
    #[arg(long, value_name = "Q", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub encode_quality: Option<u8>,
}

impl DatasetOptions {
    /// Checks the options and sets them on `engine`.
    pub fn apply(&self, engine: &mut EngineConfig) -> anyhow::Result<()> {
        engine.resize = self.resize()?;
        engine.respect_robots_txt = self.respect_robots_txt;
        if let Some(list) = &self.disallowed_header_directives {
            engine.fetch.disallowed_header_directives = robots_tag::parse_list(list);
        }
        if let Some(token) = &self.user_agent_token {
            check_user_agent_token(token).map_err(UsageError::new)?;
            engine.fetch.user_agent_token = Some(token.trim().to_string());
        }
        if let Some(spec) = &self.verify_hash {
            engine.verify_hash = Some(HashCheck::parse(spec).map_err(UsageError::new)?);
        }
        if let Some(cols) = &self.extra_cols {
            let cols = parse_columns("--extra-cols", cols).map_err(UsageError::new)?;
            let fixed = crate::results::schema();
            if let Some(c) = cols.iter().find(|c| {
                fixed.field_with_name(c).is_ok() || crate::engine::SAMPLE_KEYS.contains(&c.as_str())
            }) {
                return Err(UsageError::new(format!(
                    "--extra-cols: '{c}' is already a column of the results file (or a key of \
                     the webdataset .json); rename it in the input"
                ))
                .into());
            }
            engine.extra_cols = cols;
        }
        if let Some(r) = self.max_aspect_ratio
            && !(r.is_finite() && r >= 1.0)
        {
            return Err(UsageError::new(format!(
                "--max-aspect-ratio {r}: must be a number of at least 1 (longer side / shorter side)"
            ))
            .into());
        }
        engine.filters = ImageFilters {
            min_image_size: self.min_image_size,
            max_image_area: self.max_image_area,
            max_aspect_ratio: self.max_aspect_ratio,
        };
        engine.format = match self.format {
            None | Some(FormatArg::Classdirs) => OutputFormat::Classdirs,
            Some(FormatArg::Webdataset) => OutputFormat::Webdataset,
            Some(FormatArg::Files) => OutputFormat::Files,
            Some(FormatArg::Parquet) => OutputFormat::Parquet,
        };
        if let Some(col) = self.caption_col.clone() {
            if engine.format != OutputFormat::Webdataset {
                return Err(UsageError::new("--caption-col needs --format webdataset").into());
            }
            if col.trim().is_empty() {
                return Err(UsageError::new("--caption-col: no column named").into());
            }
            engine.caption_col = Some(col);
        }
        Ok(())
    }
}

impl DatasetOptions {
    /// The resize settings; the tuning flags without `--resize-mode` are a mistake.
    fn resize(&self) -> Result<ResizeOptions, UsageError> {
        let mode = match self.resize_mode {
            None | Some(ResizeModeArg::No) => ResizeMode::No,
            Some(ResizeModeArg::KeepRatio) => ResizeMode::KeepRatio,
            Some(ResizeModeArg::KeepRatioLargest) => ResizeMode::KeepRatioLargest,
            Some(ResizeModeArg::CenterCrop) => ResizeMode::CenterCrop,
            Some(ResizeModeArg::Border) => ResizeMode::Border,
        };
        let mut r = ResizeOptions {
            mode,
            ..ResizeOptions::default()
        };
        let tuned = self.image_size.is_some()
            || self.resize_only_if_bigger
            || self.encode_format.is_some()
            || self.encode_quality.is_some();
        if tuned && r.mode == ResizeMode::No {
            return Err(UsageError::new(
                "--image-size, --resize-only-if-bigger, --encode-format and --encode-quality \
                 need --resize-mode (keep_ratio, keep_ratio_largest, center_crop or border)",
            ));
        }
        if let Some(n) = self.image_size {
            r.image_size = n;
        }
        r.only_if_bigger = self.resize_only_if_bigger;
        r.encode_format = match self.encode_format {
            None | Some(EncodeFormatArg::Jpg) => EncodeFormat::Jpg,
            Some(EncodeFormatArg::Png) => EncodeFormat::Png,
            Some(EncodeFormatArg::Webp) => EncodeFormat::Webp,
        };
        if let Some(q) = self.encode_quality {
            r.encode_quality = q;
        }
        Ok(r)
    }
}

/// Checks `--output` against the format: `files` writes a new directory (not a `.tar` name,
/// not over an existing path unless resuming it).
pub fn check_output(
    format: OutputFormat,
    output: &Path,
    resume: bool,
    compressed: bool,
) -> Result<(), UsageError> {
    if format == OutputFormat::Parquet {
        if compressed {
            return Err(UsageError::new(
                "--compression/--level do not apply to --format parquet",
            ));
        }
        if !output
            .to_string_lossy()
            .to_ascii_lowercase()
            .ends_with(".parquet")
        {
            return Err(UsageError::new(format!(
                "--output {}: --format parquet writes a .parquet file; name it so",
                output.display()
            )));
        }
        return Ok(());
    }
    if format != OutputFormat::Files {
        return Ok(());
    }
    if compressed {
        return Err(UsageError::new(
            "--compression/--level do not apply to --format files (a plain directory tree)",
        ));
    }
    if crate::model::naming::split_archive_suffix_ignore_case(&output.to_string_lossy()).is_some() {
        return Err(UsageError::new(format!(
            "--output {}: --format files writes a directory; give a name without .tar",
            output.display()
        )));
    }
    if output.exists() && !resume {
        return Err(UsageError::new(format!(
            "--output {} already exists; --format files writes a new directory (pass --resume \
             to continue it, or remove it or choose another name)",
            output.display()
        )));
    }
    Ok(())
}
