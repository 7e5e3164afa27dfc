//! Per-image work of `ldawt reconstruct`: sniff the format of stored bytes to pick the file
//! extension, or decode and re-encode to PNG/JPEG. Pure functions on byte slices.

use std::io::Cursor;

use image::ImageFormat;

/// Target formats for `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Lossless PNG.
    Png,
    /// JPEG (quality 90); transparency is dropped.
    Jpg,
}

/// The file extension for bytes of a recognised image format (magic bytes), else an error.
pub fn sniff_extension(bytes: &[u8]) -> Result<&'static str, String> {
    let format = image::guess_format(bytes)
        .map_err(|_| "bytes are not a recognised image format".to_string())?;
    Ok(match format {
        ImageFormat::Jpeg => "jpg",
        ImageFormat::Png => "png",
        ImageFormat::Gif => "gif",
        ImageFormat::WebP => "webp",
        ImageFormat::Tiff => "tif",
        ImageFormat::Bmp => "bmp",
        other => other.extensions_str().first().copied().unwrap_or("img"),
    })
}

/// Decodes `bytes` and encodes them as `format`; returns the new bytes and the extension.
pub fn reencode(bytes: &[u8], format: OutputFormat) -> Result<(Vec<u8>, &'static str), String> {
    let img = image::load_from_memory(bytes).map_err(|e| format!("cannot decode image: {e}"))?;
    let mut out = Cursor::new(Vec::new());
    match format {
        OutputFormat::Png => {
            img.write_to(&mut out, ImageFormat::Png)
                .map_err(|e| format!("cannot encode PNG: {e}"))?;
            Ok((out.into_inner(), "png"))
        }
        OutputFormat::Jpg => {
            let rgb = image::DynamicImage::ImageRgb8(img.to_rgb8());
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
            rgb.write_with_encoder(encoder)
                .map_err(|e| format!("cannot encode JPEG: {e}"))?;
            Ok((out.into_inner(), "jpg"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let img = image::RgbaImage::from_pixel(3, 2, image::Rgba([10, 20, 30, 128]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn sniffs_and_reencodes() {
        let p = png();
        assert_eq!(sniff_extension(&p).unwrap(), "png");
        let (jpg, ext) = reencode(&p, OutputFormat::Jpg).unwrap();
        assert_eq!((ext, sniff_extension(&jpg).unwrap()), ("jpg", "jpg"));
        let back = image::load_from_memory(&jpg).unwrap();
        assert_eq!((back.width(), back.height()), (3, 2));
        assert!(sniff_extension(b"hello world").is_err());
        assert!(reencode(b"\x89PNG\r\n\x1a\ngarbage", OutputFormat::Png).is_err());
    }
}
