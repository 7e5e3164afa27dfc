//! Naming rules for archive members, pure and deterministic: the member stem of a URL
//! (LDAWT's `<parent segment>` for `/photos/<id>/medium.jpg`), the extension (URL path, else
//! `Content-Type`, else magic bytes), safe and collision-free class folders, and the compact
//! per-shard set of claimed names that makes every member unique.
//!
//! Uniqueness is decided at dispatch time in input order, on `(folder, stem)` (the extension is
//! only known after the response), so one clean run and an interrupted-then-resumed run name
//! every row identically: the first row to claim a stem keeps it, later ones get `_r<index>`.

use std::collections::{HashMap, HashSet};

/// FNV-1a 64: a tiny hash that is stable across Rust versions and platforms.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Longest folder or stem kept, in bytes (file systems allow 255).
const MAX_SEGMENT: usize = 150;

/// The path of an absolute URL, without scheme, host, query string or fragment.
pub fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// Splits `name.ext` when `ext` looks like a file extension (1–5 ASCII alphanumerics).
fn split_extension(segment: &str) -> Option<(&str, &str)> {
    let (stem, ext) = segment.rsplit_once('.')?;
    let looks_like = !stem.is_empty()
        && (1..=5).contains(&ext.len())
        && ext.bytes().all(|b| b.is_ascii_alphanumeric());
    looks_like.then_some((stem, ext))
}

/// The extension of the URL's last path segment (query ignored), lower-cased, without the dot.
pub fn url_extension(url: &str) -> Option<String> {
    let last = url_path(url).rsplit('/').next().unwrap_or("");
    split_extension(last).map(|(_, ext)| ext.to_ascii_lowercase())
}

/// The extension for a `Content-Type` (parameters stripped, case-insensitive).
pub fn content_type_extension(content_type: &str) -> Option<&'static str> {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    Some(match mime.to_ascii_lowercase().as_str() {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/tiff" => "tiff",
        "image/bmp" | "image/x-ms-bmp" => "bmp",
        "image/avif" => "avif",
        "image/heic" => "heic",
        "image/svg+xml" => "svg",
        "application/pdf" => "pdf",
        _ => return None,
    })
}

/// The image type recognised from the first bytes, as an extension.
pub fn sniff_extension(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpg")
    } else if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("png")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("gif")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("webp")
    } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        Some("tiff")
    } else if head.starts_with(b"BM") && head.len() >= 14 {
        Some("bmp")
    } else if head.len() >= 12 && &head[4..8] == b"ftyp" && (&head[8..12] == b"avif") {
        Some("avif")
    } else if head.starts_with(b"%PDF-") {
        Some("pdf")
    } else {
        None
    }
}

/// True when the bytes are an image format that is already compressed (deflating it again
/// only costs CPU).
pub fn is_precompressed(head: &[u8]) -> bool {
    matches!(
        sniff_extension(head),
        Some("jpg" | "png" | "gif" | "webp" | "avif")
    )
}

/// True when a member name has the extension of an already-compressed image format.
pub fn has_precompressed_extension(name: &str) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    matches!(
        ext.as_deref(),
        Some("jpg" | "jpeg" | "png" | "gif" | "webp" | "avif" | "heic")
    )
}

/// The archive file-name suffixes ldawt writes and reads, longest first, each with whether it
/// means gzip: the one place these rules live (compression, stems, name checks, listings).
pub const ARCHIVE_SUFFIXES: [(&str, bool); 3] =
    [(".tar.gz", true), (".tgz", true), (".tar", false)];

/// Splits an archive file name into (stem, gzip?), matching the suffix exactly (lower case):
/// `x.tar.gz` → `("x", true)`, `x.tar` → `("x", false)`; any other name → `None`. The stem
/// may be empty.
pub fn split_archive_suffix(name: &str) -> Option<(&str, bool)> {
    ARCHIVE_SUFFIXES
        .iter()
        .find_map(|(suffix, gz)| name.strip_suffix(suffix).map(|stem| (stem, *gz)))
}

/// [`split_archive_suffix`] ignoring ASCII case (`X.TGZ` → `("X", true)`), for names a user
/// typed.
pub fn split_archive_suffix_ignore_case(name: &str) -> Option<(&str, bool)> {
    let lower = name.to_ascii_lowercase();
    ARCHIVE_SUFFIXES.iter().find_map(|(suffix, gz)| {
        lower
            .ends_with(suffix)
            .then(|| (&name[..name.len() - suffix.len()], *gz))
    })
}

/// True when the bytes start like an HTML or XML text page (an error page, not an image).
pub fn looks_like_html(head: &[u8]) -> bool {
    let trimmed: Vec<u8> = head
        .iter()
        .skip_while(|b| b.is_ascii_whitespace() || **b == 0xEF || **b == 0xBB || **b == 0xBF)
        .take(15)
        .map(u8::to_ascii_lowercase)
        .collect();
    trimmed.starts_with(b"<!doctype")
        || trimmed.starts_with(b"<html")
        || trimmed.starts_with(b"<?xml")
        || trimmed.starts_with(b"<head")
        || trimmed.starts_with(b"<body")
}

/// The extension to store a body under: URL path, else `Content-Type`, else magic bytes, else
/// `bin`.
pub fn choose_extension(url: &str, content_type: Option<&str>, head: &[u8]) -> String {
    url_extension(url)
        .or_else(|| {
            content_type
                .and_then(content_type_extension)
                .map(str::to_string)
        })
        .or_else(|| sniff_extension(head).map(str::to_string))
        .unwrap_or_else(|| "bin".to_string())
}

/// Makes `raw` safe as one path segment. LDAWT's own rewrites (drop `'`, space and `/` → `_`)
/// are applied first; any other change (control characters, NUL, `\`, reserved characters,
/// `.`/`..`, empty, over-long) marks the result lossy, and a lossy result gets `_<8 hex>` of
/// the raw value's hash so two different raw values never share a segment.
pub fn safe_segment(raw: &str) -> String {
    let mut lossy = false;
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '\'' => {}
            ' ' | '/' => out.push('_'),
            c if c.is_control() || matches!(c, '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') => {
                lossy = true;
                out.push('_');
            }
            c => out.push(c),
        }
    }
    if out.is_empty() || out == "." || out == ".." {
        lossy = true;
        out = "_".to_string();
    }
    if out.len() > MAX_SEGMENT {
        lossy = true;
        let mut cut = MAX_SEGMENT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    if lossy {
        out.push_str(&format!("_{:08x}", fnv1a(raw.as_bytes()) as u32));
    }
    out
}

/// The member stem of a URL before uniqueness: the parent path segment when the last segment
/// has an extension (iNaturalist `/photos/<id>/medium.jpg` → `<id>`), else the last segment
/// (`/media/<id>` → `<id>`); the file stem when there is no parent. Made safe.
pub fn url_stem(url: &str) -> String {
    let segments: Vec<&str> = url_path(url).split('/').filter(|s| !s.is_empty()).collect();
    let raw = match segments.as_slice() {
        [] => "index",
        [.., parent, last] if split_extension(last).is_some() => parent,
        [last] => split_extension(last).map_or(*last, |(stem, _)| stem),
        [.., last] => last,
    };
    safe_segment(raw)
}

/// The folder of rows whose class label is null (or of every row when there is no class
/// column).
pub const NULL_CLASS_FOLDER: &str = "unlabeled";

/// THE class-folder rule of every command (`download`, a swarm worker, `reconstruct`): a label
/// goes through [`safe_segment`] (LDAWT's rewrites: `'` dropped, space and `/` → `_`), a null
/// label maps to [`NULL_CLASS_FOLDER`]. [`ClassFolders`] adds collision handling on top; use it
/// (not this function alone) when writing an archive.
pub fn class_folder(raw: Option<&str>) -> String {
    match raw {
        Some(raw) => safe_segment(raw),
        None => NULL_CLASS_FOLDER.to_string(),
    }
}

/// Maps raw class labels to folders, stable and collision-free within a shard: the first label
/// (in input order) to produce a folder keeps it; a different label producing the same folder
/// gets `_<8 hex>` of its own hash.
#[derive(Debug, Default)]
pub struct ClassFolders {
    by_label: HashMap<String, String>,
    null_folder: Option<String>,
    taken: HashMap<String, Option<String>>,
}

impl ClassFolders {
    /// An empty mapping.
    pub fn new() -> Self {
        Self::default()
    }

    fn remember(&mut self, label: Option<&str>, folder: String) {
        self.taken.insert(folder.clone(), label.map(str::to_string));
        match label {
            Some(l) => {
                self.by_label.insert(l.to_string(), folder);
            }
            None => self.null_folder = Some(folder),
        }
    }

    fn known(&self, label: Option<&str>) -> Option<&str> {
        match label {
            Some(l) => self.by_label.get(l).map(String::as_str),
            None => self.null_folder.as_deref(),
        }
    }

    /// Records a mapping found in a previous run's results (resume).
    pub fn preassign(&mut self, label: Option<&str>, folder: &str) {
        self.remember(label, folder.to_string());
    }

    /// The folder of `label`, assigning one on first sight (no allocation once known).
    pub fn folder(&mut self, label: Option<&str>) -> &str {
        if self.known(label).is_none() {
            let mut folder = class_folder(label);
            let owner = label.map(str::to_string);
            if self.taken.get(&folder).is_some_and(|o| o != &owner) {
                let hash = fnv1a(label.unwrap_or("\0null").as_bytes()) as u32;
                folder = format!("{folder}_{hash:08x}");
            }
            self.remember(label, folder);
        }
        self.known(label).unwrap_or(NULL_CLASS_FOLDER)
    }
}

/// The set of `(folder, stem)` pairs claimed in a shard, kept as 64-bit hashes (8 bytes per
/// row, so a 10M-row shard stays bounded).
#[derive(Debug, Default)]
pub struct NameSet {
    claimed: HashSet<u64>,
}

fn name_key(folder: &str, stem: &str) -> u64 {
    let mut key = Vec::with_capacity(folder.len() + stem.len() + 1);
    key.extend_from_slice(folder.as_bytes());
    key.push(0);
    key.extend_from_slice(stem.as_bytes());
    fnv1a(&key)
}

impl NameSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of names claimed.
    pub fn len(&self) -> usize {
        self.claimed.len()
    }

    /// True when nothing is claimed.
    pub fn is_empty(&self) -> bool {
        self.claimed.is_empty()
    }

    /// Marks a name as taken (a member carried over from a previous run).
    pub fn insert_existing(&mut self, folder: &str, stem: &str) {
        self.claimed.insert(name_key(folder, stem));
    }

    /// Claims a unique stem for row `index` in `folder`: `stem` itself when free, else
    /// `stem_r<index>` (then `_2`, `_3`… in the unlikely case that is taken too).
    pub fn claim(&mut self, folder: &str, stem: &str, index: u64) -> String {
        if self.claimed.insert(name_key(folder, stem)) {
            return stem.to_string();
        }
        let base = format!("{stem}_r{index}");
        let mut candidate = base.clone();
        let mut n = 2u32;
        while !self.claimed.insert(name_key(folder, &candidate)) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        candidate
    }
}

/// Splits a member path `<top>/<folder>/<stem>.<ext>` (or `<top>/<stem>.<ext>`) back into
/// `(folder, stem)`; the folder is empty for unclassified archives.
pub fn split_member(member: &str) -> Option<(&str, &str)> {
    let (_, rest) = member.split_once('/')?;
    let (folder, file) = rest.rsplit_once('/').unwrap_or(("", rest));
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    Some((folder, stem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn inaturalist_urls_are_named_by_photo_id() {
        let url = "http://inaturalist-open-data.s3.amazonaws.com/photos/174646186/medium.jpeg?x=1";
        assert_eq!(url_stem(url), "174646186");
        assert_eq!(url_extension(url).as_deref(), Some("jpeg"));
        assert_eq!(
            url_stem("https://mediaphoto.mnhn.fr/media/14413658xyz"),
            "14413658xyz"
        );
        assert_eq!(
            url_extension("https://mediaphoto.mnhn.fr/media/14413658xyz"),
            None
        );
        assert_eq!(url_stem("http://h/a.JPG"), "a");
        assert_eq!(url_extension("http://h/a.JPG").as_deref(), Some("jpg"));
        assert_eq!(url_stem("http://h/"), "index");
    }

    #[test]
    fn extension_falls_back_to_content_type_then_magic() {
        assert_eq!(
            choose_extension("http://h/p/1", Some("image/png; q=1"), b""),
            "png"
        );
        assert_eq!(
            choose_extension("http://h/p/1", Some("IMAGE/JPEG"), b""),
            "jpg"
        );
        assert_eq!(choose_extension("http://h/p/1", None, b"GIF89a..."), "gif");
        assert_eq!(
            choose_extension("http://h/p/1", Some("binary/octet-stream"), b"x"),
            "bin"
        );
        assert_eq!(
            choose_extension("http://h/p/1.png?a.jpg", Some("image/jpeg"), b""),
            "png"
        );
    }

    #[test]
    fn html_is_recognised() {
        assert!(looks_like_html(b"  <!DOCTYPE html><html>"));
        assert!(looks_like_html(b"<HTML><body>"));
        assert!(!looks_like_html(&[0xFF, 0xD8, 0xFF, 0xE0]));
    }

    #[test]
    fn classes_are_made_safe_like_ldawt() {
        assert_eq!(safe_segment("Abaeis mexicana"), "Abaeis_mexicana");
        assert_eq!(safe_segment("O'Brien/x y"), "OBrien_x_y");
        let dots = safe_segment("..");
        assert!(dots.starts_with("__") && dots.len() == 10, "{dots}");
        let nul = safe_segment("a\0b");
        assert!(nul.starts_with("a_b_") && !nul.contains('\0'));
        assert_ne!(safe_segment("a\0b"), safe_segment("a\x01b"));
        assert!(safe_segment(&"x".repeat(1000)).len() <= MAX_SEGMENT + 9);
    }

    #[test]
    fn class_folders_are_collision_free_and_stable() {
        let mut f = ClassFolders::new();
        assert_eq!(f.folder(Some("a b")), "a_b");
        let other = f.folder(Some("a_b")).to_string();
        assert_ne!(other, "a_b");
        assert_eq!(f.folder(Some("a b")), "a_b");
        assert_eq!(f.folder(Some("a_b")), other);
        assert_eq!(f.folder(None), "unlabeled");
    }

    #[test]
    fn one_class_folder_rule() {
        assert_eq!(class_folder(Some("Abaeis mexicana")), "Abaeis_mexicana");
        assert_eq!(class_folder(Some("O'Neil")), "ONeil");
        assert_eq!(class_folder(None), NULL_CLASS_FOLDER);
        assert_eq!(ClassFolders::new().folder(Some("O'Neil")), "ONeil");
    }

    #[test]
    fn duplicate_stems_get_a_row_suffix() {
        let mut names = NameSet::new();
        assert_eq!(names.claim("c", "123", 0), "123");
        assert_eq!(names.claim("c", "123", 5), "123_r5");
        assert_eq!(names.claim("d", "123", 6), "123");
        names.insert_existing("c", "9_r7");
        assert_eq!(names.claim("c", "9", 1), "9");
        assert_eq!(names.claim("c", "9", 7), "9_r7_2");
        assert_eq!(split_member("top/c/123_r5.jpg"), Some(("c", "123_r5")));
        assert_eq!(split_member("top/123.jpg"), Some(("", "123")));
    }

    #[test]
    fn archive_suffixes_split_longest_first() {
        assert_eq!(split_archive_suffix("a.tar.gz"), Some(("a", true)));
        assert_eq!(split_archive_suffix("a.tgz"), Some(("a", true)));
        assert_eq!(split_archive_suffix("a.tar"), Some(("a", false)));
        assert_eq!(split_archive_suffix(".tar"), Some(("", false)));
        assert_eq!(split_archive_suffix("a.TAR"), None);
        assert_eq!(split_archive_suffix("a.zip"), None);
        assert_eq!(
            split_archive_suffix_ignore_case("Ab.TAR.GZ"),
            Some(("Ab", true))
        );
        assert_eq!(
            split_archive_suffix_ignore_case("Ab.Tar"),
            Some(("Ab", false))
        );
        assert_eq!(split_archive_suffix_ignore_case("Ab.gz"), None);
    }

    proptest! {
        #[test]
        fn safe_segments_never_escape(raw in ".{0,40}") {
            let s = safe_segment(&raw);
            prop_assert!(!s.is_empty() && s != "." && s != "..");
            prop_assert!(!s.contains('/') && !s.contains('\0') && !s.contains('\\'));
            prop_assert!(!s.chars().any(char::is_control));
        }

        #[test]
        fn claimed_names_are_unique(stems in proptest::collection::vec(0u8..6, 1..60)) {
            let mut names = NameSet::new();
            let mut seen = HashSet::new();
            for (i, s) in stems.iter().enumerate() {
                let name = names.claim("c", &format!("s{s}"), i as u64);
                prop_assert!(seen.insert(name));
            }
        }
    }
}
