//! A gzip writer that stores already-compressed data instead of deflating it. Deflating JPEG or
//! PNG bytes costs about ten times the CPU of storing them and makes them larger (measured here:
//! zlib-rs level 1 on JPEG-like data, 51 MB/s and +5.5 %), so image members go into the gzip
//! stream as stored deflate blocks while tar headers and other members are deflated at the
//! chosen level. The output is one ordinary gzip member (RFC 1952) any gunzip reads.
//!
//! Switching from deflate to stored uses a full flush, which byte-aligns the stream and resets
//! the compressor's history, so later deflated data never refers back across stored data.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Largest payload of one stored deflate block.
const STORED_MAX: usize = 65_535;
/// Compressed bytes gathered before they are written to the inner writer.
const OUT_CHUNK: usize = 256 * 1024;

/// gzip output with a per-section choice between deflating and storing.
pub struct GzipWriter<W: Write> {
    inner: W,
    deflate: Compress,
    crc: Crc,
    out: Vec<u8>,
    storing: bool,
    dirty: bool,
}

fn deflate_error(e: flate2::CompressError) -> io::Error {
    io::Error::other(e)
}

impl<W: Write> GzipWriter<W> {
    /// Writes the gzip header and deflates at `level` until told to store.
    pub fn new(mut inner: W, level: u32) -> io::Result<Self> {
        // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=3 (Unix)
        inner.write_all(&[0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3])?;
        Ok(Self {
            inner,
            deflate: Compress::new(Compression::new(level.min(9)), false),
            crc: Crc::new(),
            out: Vec::with_capacity(OUT_CHUNK + 64 * 1024),
            storing: false,
            dirty: false,
        })
    }

    /// Chooses how the following bytes are written: stored (`true`) or deflated.
    pub fn set_storing(&mut self, storing: bool) -> io::Result<()> {
        if storing && !self.storing && self.dirty {
            self.run(&[], FlushCompress::Full)?;
            self.dirty = false;
        }
        self.storing = storing;
        Ok(())
    }

    /// Feeds `input` to the compressor (or flushes it) until it is consumed and, for a flush,
    /// until the compressor has no more output.
    fn run(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            if self.out.capacity() - self.out.len() < 32 * 1024 {
                self.out.reserve(64 * 1024);
            }
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, &mut self.out, flush)
                .map_err(deflate_error)?;
            let consumed = (self.deflate.total_in() - before) as usize;
            input = &input[consumed..];
            let room_left = self.out.capacity() > self.out.len();
            if self.out.len() >= OUT_CHUNK {
                self.inner.write_all(&self.out)?;
                self.out.clear();
            }
            let done = match flush {
                FlushCompress::None => input.is_empty(),
                FlushCompress::Finish => status == Status::StreamEnd,
                _ => input.is_empty() && room_left,
            };
            if done {
                return Ok(());
            }
        }
    }

    /// Writes `data` as stored blocks straight to the inner writer (no extra copy).
    fn store(&mut self, data: &[u8]) -> io::Result<()> {
        if !self.out.is_empty() {
            self.inner.write_all(&self.out)?;
            self.out.clear();
        }
        for piece in data.chunks(STORED_MAX) {
            let len = piece.len() as u16;
            // BFINAL=0, BTYPE=00 (stored); the stream is byte-aligned here.
            let mut head = [0u8; 5];
            head[1..3].copy_from_slice(&len.to_le_bytes());
            head[3..5].copy_from_slice(&(!len).to_le_bytes());
            self.inner.write_all(&head)?;
            self.inner.write_all(piece)?;
        }
        Ok(())
    }

    /// Ends the deflate stream, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.run(&[], FlushCompress::Finish)?;
        self.out.extend_from_slice(&self.crc.sum().to_le_bytes());
        self.out.extend_from_slice(&self.crc.amount().to_le_bytes());
        self.inner.write_all(&self.out)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.crc.update(buf);
        if self.storing {
            self.store(buf)
        } else {
            self.dirty = true;
            self.run(buf, FlushCompress::None)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.out)?;
        self.out.clear();
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use proptest::prelude::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn mixed_sections_round_trip_and_store_incompressible_data() {
        let text = b"header header header header ".repeat(2000);
        let mut noise = vec![0u8; 300_000];
        let mut s = 7u64;
        for b in noise.iter_mut() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *b = s as u8;
        }
        let mut w = GzipWriter::new(Vec::new(), 1).unwrap();
        w.write_all(&text).unwrap();
        w.set_storing(true).unwrap();
        w.write_all(&noise).unwrap();
        w.set_storing(false).unwrap();
        w.write_all(&text).unwrap();
        let gz = w.finish().unwrap();
        let mut expect = text.clone();
        expect.extend_from_slice(&noise);
        expect.extend_from_slice(&text);
        assert_eq!(gunzip(&gz), expect);
        assert!(
            gz.len() < noise.len() + 10_000,
            "text deflated, noise stored: {}",
            gz.len()
        );
    }

    proptest! {
        #[test]
        fn any_section_sequence_round_trips(
            sections in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..70_000)), 0..6),
            level in 0u32..10,
        ) {
            let mut w = GzipWriter::new(Vec::new(), level).unwrap();
            let mut expect = Vec::new();
            for (storing, data) in &sections {
                w.set_storing(*storing).unwrap();
                w.write_all(data).unwrap();
                expect.extend_from_slice(data);
            }
            let gz = w.finish().unwrap();
            prop_assert_eq!(gunzip(&gz), expect);
        }
    }
}
