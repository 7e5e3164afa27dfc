//! `--resume` support: streams a previous archive (plain or gzip, detected by its magic bytes)
//! and copies the members a caller wants to keep into the new archive, without extracting.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use super::ArchiveWriter;
use crate::model::naming::has_precompressed_extension;

/// Copies every regular member of `old` for which `keep` answers true into `into` (`keep` is
/// asked once per member, just before the copy; answering true for a path already copied
/// would store it twice, so callers remember what they accepted); returns how many were
/// copied. A missing old archive copies nothing; a damaged one stops at the damage (what was
/// copied so far is kept, the rest is downloaded again).
pub fn copy_members(
    old: &Path,
    mut keep: impl FnMut(&str) -> bool,
    into: &mut ArchiveWriter,
) -> io::Result<u64> {
    let mut copied = 0;
    let Ok(file) = File::open(old) else {
        return Ok(copied);
    };
    let mut reader = BufReader::with_capacity(1024 * 1024, file);
    let mut magic = [0u8; 2];
    let gz = {
        let buf = io::BufRead::fill_buf(&mut reader)?;
        if buf.len() >= 2 {
            magic.copy_from_slice(&buf[..2]);
        }
        magic == [0x1F, 0x8B]
    };
    let source: Box<dyn Read> = if gz {
        Box::new(GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(source);
    let Ok(entries) = archive.entries() else {
        return Ok(copied);
    };
    for entry in entries {
        let Ok(entry) = entry else {
            tracing::warn!(archive = %old.display(), "previous archive is damaged; the rest is downloaded again");
            break;
        };
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let Ok(path) = entry.path() else { continue };
        let member = path.to_string_lossy().into_owned();
        if !keep(&member) {
            continue;
        }
        let size = entry.header().size()?;
        let precompressed = has_precompressed_extension(&member);
        into.append(&member, size, entry, precompressed)?;
        copied += 1;
    }
    Ok(copied)
}
