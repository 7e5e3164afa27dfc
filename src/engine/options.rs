//! The dataset-builder settings of an engine run that go beyond "fetch and archive": the hash
//! check against an input column, the input columns carried into the results, the output
//! format, the image filters and resizing (the opt-out list and the User-Agent contact are the
//! fetcher's: [`crate::fetch::FetchConfig`]). They are plain serde types inside
//! [`super::EngineConfig`] so a seeder can send them with a grant. Pure: parsing and small
//! helpers only.

use serde::{Deserialize, Serialize};

/// The digest compared by `--verify-hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HashAlgorithm {
    /// SHA-256 (64 hex digits).
    Sha256,
    /// MD5 (32 hex digits).
    Md5,
}

impl HashAlgorithm {
    /// Hex digits of a digest.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Md5 => 32,
        }
    }

    /// Its lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Md5 => "md5",
        }
    }
}

/// `--verify-hash COL[:sha256|md5]`: each body's digest must equal the hex digest in `column`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashCheck {
    /// The input column holding the expected digests (hex, any case).
    pub column: String,
    /// The digest.
    pub algorithm: HashAlgorithm,
}

impl HashCheck {
    /// Parses `COL` or `COL:sha256` / `COL:md5`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (column, algorithm) = match text.rsplit_once(':') {
            Some((c, "sha256")) => (c, HashAlgorithm::Sha256),
            Some((c, "md5")) => (c, HashAlgorithm::Md5),
            Some((_, other)) => {
                return Err(format!(
                    "--verify-hash {text}: unknown digest '{other}' (expected sha256 or md5)"
                ));
            }
            None => (text, HashAlgorithm::Sha256),
        };
        if column.trim().is_empty() {
            return Err(format!("--verify-hash {text}: no column named"));
        }
        Ok(Self {
            column: column.to_string(),
            algorithm,
        })
    }
}

/// The layout of the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputFormat {
    /// A tar of `<stem>/<class>/<name>.<ext>` (LDAWT's layout).
    #[default]
    Classdirs,
    /// A webdataset tar: per sample `KEY.<ext>`, `KEY.json`, `KEY.cls`, adjacent.
    Webdataset,
    /// A plain directory tree `<output>/<class>/<name>.<ext>` (no tar).
    Files,
    /// One parquet of the images (`{bytes, path}` struct) and their row's columns.
    Parquet,
}

/// `--min-image-size`, `--max-image-area`, `--max-aspect-ratio`: limits on an image's
/// dimensions, read from its header (no full decode). A row outside them is skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageFilters {
    /// Both sides at least this many pixels.
    pub min_image_size: Option<u32>,
    /// Width × height at most this many pixels.
    pub max_image_area: Option<u64>,
    /// Longer side / shorter side at most this.
    pub max_aspect_ratio: Option<f64>,
}

impl ImageFilters {
    /// True when any limit is set (only then are headers read).
    pub fn active(&self) -> bool {
        self.min_image_size.is_some()
            || self.max_image_area.is_some()
            || self.max_aspect_ratio.is_some()
    }

    /// Checks `width` × `height`; the error is (error kind, message).
    pub fn check(&self, width: u32, height: u32) -> Result<(), (&'static str, String)> {
        if let Some(min) = self.min_image_size
            && width.min(height) < min
        {
            return Err((
                "image_too_small",
                format!("{width}x{height}: a side is under --min-image-size {min}"),
            ));
        }
        let area = u64::from(width) * u64::from(height);
        if let Some(max) = self.max_image_area
            && area > max
        {
            return Err((
                "image_area_too_large",
                format!("{width}x{height} = {area} pixels, over --max-image-area {max}"),
            ));
        }
        if let Some(max) = self.max_aspect_ratio {
            let ratio = f64::from(width.max(height)) / f64::from(width.min(height).max(1));
            if ratio > max {
                return Err((
                    "aspect_ratio_too_large",
                    format!(
                        "{width}x{height}: aspect ratio {ratio:.2} over --max-aspect-ratio {max}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// How images are resized (`--resize-mode`), as img2dataset names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResizeMode {
    /// Stored as downloaded.
    #[default]
    No,
    /// The shorter side becomes the image size, the ratio is kept.
    KeepRatio,
    /// The longer side becomes the image size, the ratio is kept.
    KeepRatioLargest,
    /// The shorter side becomes the image size, then a centred square is cut out.
    CenterCrop,
    /// The longer side becomes the image size, then black borders make it square.
    Border,
}

/// The encoding of resized images (`--encode-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncodeFormat {
    /// JPEG at [`ResizeOptions::encode_quality`].
    #[default]
    Jpg,
    /// Lossless PNG.
    Png,
    /// Lossy WebP at [`ResizeOptions::encode_quality`] (libwebp).
    Webp,
}

impl EncodeFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }
}

/// Resizing and re-encoding of stored images; off (`ResizeMode::No`) by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeOptions {
    /// How.
    pub mode: ResizeMode,
    /// The target size in pixels.
    pub image_size: u32,
    /// Never enlarge: images already within the size are not scaled (crop/border still apply).
    pub only_if_bigger: bool,
    /// The output encoding.
    pub encode_format: EncodeFormat,
    /// JPEG and WebP quality, 1–100.
    pub encode_quality: u8,
}

impl Default for ResizeOptions {
    fn default() -> Self {
        Self {
            mode: ResizeMode::No,
            image_size: 256,
            only_if_bigger: false,
            encode_format: EncodeFormat::Jpg,
            encode_quality: 95,
        }
    }
}

/// Where a `width` × `height` image goes under `opts`: the size it is scaled to, then the
/// canvas it is cropped or padded to (centred), if any.
pub fn resize_plan(
    opts: &ResizeOptions,
    width: u32,
    height: u32,
) -> ((u32, u32), Option<(u32, u32)>) {
    let size = opts.image_size.max(1);
    let (w, h) = (width.max(1), height.max(1));
    let by_shorter = matches!(opts.mode, ResizeMode::KeepRatio | ResizeMode::CenterCrop);
    let side = if by_shorter { w.min(h) } else { w.max(h) };
    let scaled = if opts.mode == ResizeMode::No || (opts.only_if_bigger && side <= size) {
        (w, h)
    } else {
        let f = f64::from(size) / f64::from(side);
        let s = |v: u32| ((f64::from(v) * f).round() as u32).max(1);
        (s(w), s(h))
    };
    let canvas = match opts.mode {
        ResizeMode::CenterCrop => Some((scaled.0.min(size), scaled.1.min(size))),
        ResizeMode::Border => Some((size.max(scaled.0), size.max(scaled.1))),
        _ => None,
    };
    (scaled, canvas)
}

/// Parses a comma-separated column list (`--extra-cols a,b,c`), refusing blanks and repeats.
pub fn parse_columns(flag: &str, text: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for c in text.split(',').map(str::trim) {
        if c.is_empty() {
            return Err(format!("{flag} {text}: empty column name"));
        }
        if out.iter().any(|o| o == c) {
            return Err(format!("{flag} {text}: column '{c}' named twice"));
        }
        out.push(c.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_checks_parse() {
        let c = HashCheck::parse("sha").unwrap();
        assert_eq!(
            (c.column.as_str(), c.algorithm),
            ("sha", HashAlgorithm::Sha256)
        );
        let c = HashCheck::parse("a:b:md5").unwrap();
        assert_eq!(
            (c.column.as_str(), c.algorithm),
            ("a:b", HashAlgorithm::Md5)
        );
        assert!(HashCheck::parse("x:crc32").unwrap_err().contains("crc32"));
        assert!(HashCheck::parse(":md5").is_err());
    }

    #[test]
    fn image_filters_check_sides_area_and_ratio() {
        let none = ImageFilters::default();
        assert!(!none.active());
        assert_eq!(none.check(1, 100_000), Ok(()));
        let f = ImageFilters {
            min_image_size: Some(100),
            max_image_area: Some(1_000_000),
            max_aspect_ratio: Some(3.0),
        };
        assert!(f.active());
        assert_eq!(f.check(100, 300), Ok(()));
        assert_eq!(f.check(1000, 1000), Ok(()));
        assert_eq!(f.check(99, 200).unwrap_err().0, "image_too_small");
        assert_eq!(f.check(1001, 1000).unwrap_err().0, "image_area_too_large");
        assert_eq!(f.check(100, 301).unwrap_err().0, "aspect_ratio_too_large");
        let ratio_only = ImageFilters {
            max_aspect_ratio: Some(2.0),
            ..ImageFilters::default()
        };
        assert!(
            ratio_only.check(0, 5).is_err(),
            "a zero side never divides by zero"
        );
    }

    #[test]
    fn resize_plans_follow_img2dataset_modes() {
        let o = |mode, only_if_bigger| ResizeOptions {
            mode,
            image_size: 256,
            only_if_bigger,
            ..ResizeOptions::default()
        };
        use ResizeMode::*;
        assert_eq!(resize_plan(&o(No, false), 1000, 500), ((1000, 500), None));
        assert_eq!(
            resize_plan(&o(KeepRatio, false), 1000, 500),
            ((512, 256), None)
        );
        assert_eq!(
            resize_plan(&o(KeepRatioLargest, false), 1000, 500),
            ((256, 128), None)
        );
        assert_eq!(
            resize_plan(&o(CenterCrop, false), 1000, 500),
            ((512, 256), Some((256, 256)))
        );
        assert_eq!(
            resize_plan(&o(Border, false), 1000, 500),
            ((256, 128), Some((256, 256)))
        );
        // Small images are enlarged unless told not to.
        assert_eq!(
            resize_plan(&o(KeepRatio, false), 100, 50),
            ((512, 256), None)
        );
        assert_eq!(resize_plan(&o(KeepRatio, true), 100, 50), ((100, 50), None));
        assert_eq!(
            resize_plan(&o(Border, true), 100, 50),
            ((100, 50), Some((256, 256)))
        );
        assert_eq!(
            resize_plan(&o(CenterCrop, true), 300, 200),
            ((300, 200), Some((256, 200)))
        );
    }

    #[test]
    fn column_lists_parse() {
        assert_eq!(
            parse_columns("--extra-cols", "a, b,c").unwrap(),
            vec!["a", "b", "c"]
        );
        assert!(parse_columns("--extra-cols", "a,,b").is_err());
        assert!(parse_columns("--extra-cols", "a,a").is_err());
    }
}
