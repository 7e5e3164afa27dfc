//! Archive listings: the regular files of a `.tar`, `.tar.gz` or `.tgz` (gzip detected from
//! the magic bytes, not the name), streamed entry by entry, with their sizes.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::{Listing, ListingError, io_error};

fn unreadable(path: &Path, e: impl std::fmt::Display) -> ListingError {
    super::unreadable(
        &path.display().to_string(),
        format!("not a readable tar archive: {e}"),
    )
}

/// Lists `path`.
pub fn read_archive(path: &Path) -> Result<Listing, ListingError> {
    let mut file = BufReader::new(File::open(path).map_err(|e| io_error(path, e))?);
    let mut magic = [0u8; 2];
    let gz = {
        let buf = std::io::BufRead::fill_buf(&mut file).map_err(|e| io_error(path, e))?;
        if buf.len() >= 2 {
            magic.copy_from_slice(&buf[..2]);
        }
        magic == [0x1f, 0x8b]
    };
    let reader: Box<dyn Read> = if gz {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut archive = tar::Archive::new(reader);
    let mut out = Listing::new();
    for entry in archive.entries().map_err(|e| unreadable(path, e))? {
        let entry = entry.map_err(|e| unreadable(path, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(|e| unreadable(path, e))?;
        let name = name.to_string_lossy().trim_start_matches("./").to_string();
        out.insert(name, Some(entry.size()));
    }
    Ok(out)
}
