//! Text listings: one name per line, blank lines ignored, surrounding spaces trimmed. Lines
//! ending in `:` are headers (`gocmd ls` prints the collection path first) and `C- ` lines are
//! sub-collections; both are skipped;
//! `name<TAB>size` gives a size.

use std::path::Path;

use super::{Listing, io_error};

/// Parses listing text.
pub fn parse_text(text: &str) -> Listing {
    let mut out = Listing::new();
    for line in text.lines() {
        let line = line.trim();
        // `gocmd ls` prints sub-collections as `C- /path`: not files.
        if line.is_empty() || line.ends_with(':') || line.starts_with("C- ") {
            continue;
        }
        let (name, size) = match line.rsplit_once('\t') {
            Some((n, s)) if s.trim().parse::<u64>().is_ok() => (n.trim(), s.trim().parse().ok()),
            _ => (line, None),
        };
        let name = name.trim_start_matches("./").to_string();
        out.insert(name, size);
    }
    out
}

/// Reads a listing file.
pub fn read_text(path: &Path) -> Result<Listing, super::ListingError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    Ok(parse_text(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gocmd_output_and_sizes() {
        let text = "/iplant/home/u/AIIRA_New_Insects:\n  a.tar.gz\n  b.tar.gz\t42\n\n./c.txt\n";
        let l = parse_text(text);
        assert_eq!(l.len(), 3);
        assert_eq!(l["a.tar.gz"], None);
        assert_eq!(l["b.tar.gz"], Some(42));
        assert!(l.contains_key("c.txt"));
    }
}
