//! `--min-image-size`, `--max-image-area`, `--max-aspect-ratio`: a downloaded image's
//! dimensions are read from its header (the `image` crate's decoders stop after the header; no
//! pixels are decoded) on the blocking pool, and a row outside the limits is skipped with the
//! reason instead of stored. A body whose dimensions cannot be read (not PNG/JPEG, corrupt
//! header) is skipped as `image_undecodable`: the limits could not be checked.

use std::io::{BufReader, Cursor, Read, Seek};

use super::ImageFilters;
use super::writer::WriterMsg;
use crate::fetch::Body;

/// Bytes of a body tried first when reading its dimensions.
const HEADER_BYTES: usize = 128 * 1024;

/// The error kind of a body whose dimensions cannot be read.
pub const UNDECODABLE: &str = "image_undecodable";

fn dims_of(reader: impl Read + Seek) -> Result<(u32, u32), String> {
    image::ImageReader::new(BufReader::new(reader))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_dimensions()
        .map_err(|e| e.to_string())
}

/// The dimensions of a stored row's body, from its header (on the blocking pool); `None`
/// for other rows or an unreadable header.
pub(crate) async fn measure(msg: WriterMsg) -> (WriterMsg, Option<(u32, u32)>) {
    if !matches!(msg, WriterMsg::Stored { .. }) {
        return (msg, None);
    }
    match tokio::task::spawn_blocking(move || {
        let dims = match &msg {
            WriterMsg::Stored { body, .. } => dimensions(body).ok(),
            _ => None,
        };
        (msg, dims)
    })
    .await
    {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The body's width and height, from its header.
pub fn dimensions(body: &Body) -> Result<(u32, u32), String> {
    match body {
        Body::Memory(chunks) if chunks.len() == 1 => dims_of(Cursor::new(&chunks[0][..])),
        Body::Memory(chunks) => {
            // The header is near the start (a JPEG's size follows its EXIF block, at most
            // 64 KiB): try the first chunks before copying the whole body.
            let mut head = Vec::with_capacity(HEADER_BYTES);
            for c in chunks {
                if head.len() >= HEADER_BYTES {
                    break;
                }
                head.extend_from_slice(c);
            }
            dims_of(Cursor::new(head)).or_else(|_| dims_of(Cursor::new(chunks.concat())))
        }
        Body::Spilled { path } => {
            let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
            dims_of(file)
        }
    }
}

/// Applies `filters` to a fetched row, returning it with the dimensions read (when it was
/// stored and they could be read); rows that were not stored pass through unchanged.
pub(crate) async fn check(
    msg: WriterMsg,
    filters: ImageFilters,
) -> (WriterMsg, Option<(u32, u32)>) {
    let (result, body, precompressed) = match msg.into_stored() {
        Ok(parts) => parts,
        Err(msg) => return (*msg, None),
    };
    let base = result.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let verdict = match dimensions(&body) {
            Ok((w, h)) => filters
                .check(w, h)
                .map(|()| (w, h))
                .map_err(|(k, m)| (k.to_string(), m)),
            Err(e) => Err((
                UNDECODABLE.to_string(),
                format!("cannot read the image's dimensions to apply the filters: {e}"),
            )),
        };
        match verdict {
            Ok(dims) => (
                WriterMsg::Stored {
                    result,
                    body,
                    precompressed,
                },
                Some(dims),
            ),
            Err((kind, message)) => {
                if let Body::Spilled { path } = &body {
                    let _ = std::fs::remove_file(path);
                }
                (WriterMsg::skipped(&result, &kind, message), None)
            }
        }
    })
    .await;
    outcome.unwrap_or_else(|e| {
        let msg = WriterMsg::skipped(&base, UNDECODABLE, format!("filter task failed: {e}"));
        (msg, None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn dimensions_come_from_the_first_chunks_or_the_whole_body() {
        let png = crate::fixture::image_body("/t.png", 300, 20);
        let jpg = crate::fixture::image_body("/t.jpg", 17, 900);
        for (bytes, want) in [(png, (300, 20)), (jpg, (17, 900))] {
            let chunks: Vec<Bytes> = bytes.chunks(100).map(Bytes::copy_from_slice).collect();
            assert_eq!(dimensions(&Body::Memory(chunks)).unwrap(), want);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("spill");
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(dimensions(&Body::Spilled { path }).unwrap(), want);
        }
        let junk = Body::Memory(vec![Bytes::from_static(b"\xff\xd8\xffjunk"); 3]);
        assert!(dimensions(&junk).is_err());
    }
}
