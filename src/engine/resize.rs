//! `--resize-mode`: stored images are decoded (a JPEG at the smallest DCT scale that still
//! covers the planned size, through `jpeg-decoder`; anything else through the `image` crate),
//! scaled (`fast_image_resize`'s SIMD bilinear convolution widened to the scale factor:
//! area-like averaging when shrinking, which is what dataset thumbnails need), cropped or
//! bordered as [`resize_plan`] says and re-encoded (JPEG 4:2:0 at the given quality through
//! `jpeg-encoder`, PNG, or lossy WebP at the given quality through libwebp: the `image` crate's
//! own WebP encoder is lossless only, and lossless WebP thumbnails are several times the size
//! of a q95 JPEG, which defeats the point of choosing WebP). It runs on the blocking pool under
//! a semaphore of one permit per core, so decoding never starves the network tasks nor piles up
//! more images in memory than there are cores. A body that cannot be decoded is skipped as
//! `image_undecodable`.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, RgbImage, RgbaImage};
use tokio::sync::Semaphore;

use super::filter::UNDECODABLE;
use super::writer::WriterMsg;
use super::{EncodeFormat, ResizeMode, ResizeOptions, RowResult, RowStatus, resize_plan};
use crate::fetch::Body;

/// One permit per core: at most that many images are decoded at once.
pub(crate) fn pool() -> Arc<Semaphore> {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    Arc::new(Semaphore::new(cores))
}

/// Width and height before and after a resize.
pub type Resized = ((u32, u32), (u32, u32));

/// Decodes, resizes and re-encodes `bytes`; returns the new bytes and the dimensions before
/// and after.
pub fn resize_image(bytes: &[u8], opts: &ResizeOptions) -> Result<(Vec<u8>, Resized), String> {
    let ((w, h), img) = match decode_jpeg_scaled(bytes, opts) {
        Some(decoded) => decoded,
        None => {
            let img = image::load_from_memory(bytes).map_err(|e| format!("cannot decode: {e}"))?;
            (img.dimensions(), img)
        }
    };
    let (scaled, canvas) = resize_plan(opts, w, h);
    let mut img = if scaled == img.dimensions() {
        img
    } else {
        resample(img, scaled)?
    };
    if let Some((cw, ch)) = canvas {
        img = match opts.mode {
            ResizeMode::CenterCrop => {
                img.crop_imm((scaled.0 - cw) / 2, (scaled.1 - ch) / 2, cw, ch)
            }
            _ => {
                let at = ((cw - scaled.0) / 2, (ch - scaled.1) / 2);
                if img.color().has_alpha() {
                    let mut out = DynamicImage::ImageRgba8(RgbaImage::from_pixel(
                        cw,
                        ch,
                        image::Rgba([0, 0, 0, 255]),
                    ));
                    image::imageops::overlay(&mut out, &img, i64::from(at.0), i64::from(at.1));
                    out
                } else {
                    // An opaque source: an opaque canvas (no alpha channel to encode), its rows
                    // copied in (a per-pixel blend cost as much as the resize itself).
                    DynamicImage::ImageRgb8(paste_rgb(&img.into_rgb8(), (cw, ch), at))
                }
            }
        };
    }
    let stored = img.dimensions();
    let mut out = Cursor::new(Vec::new());
    match opts.encode_format {
        EncodeFormat::Jpg => {
            let rgb: RgbImage = match img {
                DynamicImage::ImageRgb8(rgb) => rgb,
                other => other.to_rgb8(),
            };
            let mut enc =
                jpeg_encoder::Encoder::new(out.get_mut(), opts.encode_quality.clamp(1, 100));
            // 4:2:0 chroma (libjpeg's and OpenCV's default, and what the `image` encoder wrote),
            // each chroma sample the average of its four pixels.
            enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
            enc.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
            let (rw, rh) = rgb.dimensions();
            let (Ok(ew), Ok(eh)) = (u16::try_from(rw), u16::try_from(rh)) else {
                return Err(format!(
                    "cannot encode a {rw}x{rh} image as JPEG (max 65535)"
                ));
            };
            enc.encode(rgb.as_raw(), ew, eh, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| format!("cannot encode: {e}"))?;
            Ok(())
        }
        EncodeFormat::Png => img.write_to(&mut out, image::ImageFormat::Png),
        EncodeFormat::Webp => {
            let webp = encode_webp(&img, opts.encode_quality)?;
            return Ok((webp, ((w, h), stored)));
        }
    }
    .map_err(|e| format!("cannot encode: {e}"))?;
    Ok((out.into_inner(), ((w, h), stored)))
}

/// `img` scaled to `to` with a triangle (bilinear) filter widened to the scale factor, so a
/// shrink averages every source pixel (area-like). 8-bit RGB, RGBA and grey go through
/// `fast_image_resize` (SIMD, fixed point); other pixel types through the `image` crate.
fn resample(img: DynamicImage, to: (u32, u32)) -> Result<DynamicImage, String> {
    use fast_image_resize as fir;
    let (w, h) = img.dimensions();
    let (kind, raw) = match img {
        DynamicImage::ImageRgb8(i) => (fir::PixelType::U8x3, i.into_raw()),
        DynamicImage::ImageRgba8(i) => (fir::PixelType::U8x4, i.into_raw()),
        DynamicImage::ImageLuma8(i) => (fir::PixelType::U8, i.into_raw()),
        other => return Ok(other.resize_exact(to.0, to.1, FilterType::Triangle)),
    };
    let src = fir::images::Image::from_vec_u8(w, h, raw, kind)
        .map_err(|e| format!("cannot resize {w}x{h}: {e}"))?;
    let mut dst = fir::images::Image::new(to.0, to.1, kind);
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear));
    fir::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| format!("cannot resize {w}x{h} to {}x{}: {e}", to.0, to.1))?;
    let px = dst.into_vec();
    match kind {
        fir::PixelType::U8x3 => RgbImage::from_raw(to.0, to.1, px).map(DynamicImage::ImageRgb8),
        fir::PixelType::U8x4 => RgbaImage::from_raw(to.0, to.1, px).map(DynamicImage::ImageRgba8),
        _ => image::GrayImage::from_raw(to.0, to.1, px).map(DynamicImage::ImageLuma8),
    }
    .ok_or_else(|| format!("cannot resize {w}x{h}: short output buffer"))
}

/// The size to decode a `full`-sized JPEG at so that both sides stay at least `want`: the
/// smallest of the DCT scales 1/8, 1/4, 1/2 and 1 (the IDCT computes only the low frequencies,
/// so a 1/2-scale decode is a 2x2 average for a quarter of the work) that is not below `want`.
pub(crate) fn dct_scaled(full: (u32, u32), want: (u32, u32)) -> (u32, u32) {
    let at = |len: u32, k: u32| (len * k).div_ceil(8);
    [1, 2, 4, 8]
        .into_iter()
        .map(|k| (at(full.0, k), at(full.1, k)))
        .find(|&(w, h)| w >= want.0 && h >= want.1)
        .unwrap_or(full)
}

/// A baseline or progressive RGB or greyscale JPEG decoded at the smallest DCT scale that still
/// covers the size [`resize_plan`] scales it to; with its full dimensions. `None` (the caller
/// decodes it the ordinary way) for anything else: not a JPEG, CMYK, 16-bit, or a decode error.
fn decode_jpeg_scaled(bytes: &[u8], opts: &ResizeOptions) -> Option<((u32, u32), DynamicImage)> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut dec = jpeg_decoder::Decoder::new(bytes);
    dec.read_info().ok()?;
    let info = dec.info()?;
    let full = (u32::from(info.width), u32::from(info.height));
    let (want, _) = resize_plan(opts, full.0, full.1);
    let at = dct_scaled(full, want);
    let (dw, dh) = if at == full {
        full
    } else {
        let (sw, sh) = dec
            .scale(u16::try_from(at.0).ok()?, u16::try_from(at.1).ok()?)
            .ok()?;
        (u32::from(sw), u32::from(sh))
    };
    if dw < want.0 || dh < want.1 {
        return None;
    }
    let pixels = dec.decode().ok()?;
    let img = match dec.info()?.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => {
            DynamicImage::ImageRgb8(RgbImage::from_raw(dw, dh, pixels)?)
        }
        jpeg_decoder::PixelFormat::L8 => {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(dw, dh, pixels)?)
        }
        _ => return None,
    };
    Some((full, img))
}

/// `src` centred at `at` on a black `canvas`-sized image, row by row.
fn paste_rgb(src: &RgbImage, canvas: (u32, u32), at: (u32, u32)) -> RgbImage {
    let mut out = RgbImage::from_pixel(canvas.0, canvas.1, image::Rgb([0, 0, 0]));
    let row = src.width() as usize * 3;
    let stride = canvas.0 as usize * 3;
    let dst: &mut [u8] = &mut out;
    for (y, line) in src.as_raw().chunks_exact(row.max(1)).enumerate() {
        let start = (at.1 as usize + y) * stride + at.0 as usize * 3;
        if let Some(to) = dst.get_mut(start..start + row) {
            to.copy_from_slice(line);
        }
    }
    out
}

/// Lossy WebP at `quality` (1–100); RGBA when the image has an alpha channel, else RGB.
fn encode_webp(img: &DynamicImage, quality: u8) -> Result<Vec<u8>, String> {
    let quality = f32::from(quality.clamp(1, 100));
    let (w, h) = img.dimensions();
    let encoded = if img.color().has_alpha() {
        let rgba = img.to_rgba8();
        webp::Encoder::from_rgba(rgba.as_raw(), w, h).encode_simple(false, quality)
    } else {
        let rgb = img.to_rgb8();
        webp::Encoder::from_rgb(rgb.as_raw(), w, h).encode_simple(false, quality)
    };
    encoded
        .map(|m| m.to_vec())
        .map_err(|e| format!("cannot encode as WebP ({w}x{h}): {e:?}"))
}

fn body_bytes(body: &Body) -> std::io::Result<Vec<u8>> {
    match body {
        Body::Memory(chunks) => Ok(chunks.concat()),
        Body::Spilled { path } => std::fs::read(path),
    }
}

/// Resizes a fetched row's image, returning it with the dimensions before and after; rows
/// that were not stored pass through unchanged.
pub(crate) async fn apply(
    msg: WriterMsg,
    opts: ResizeOptions,
    pool: Arc<Semaphore>,
) -> (WriterMsg, Option<Resized>) {
    let WriterMsg::Stored {
        result,
        body,
        precompressed,
    } = msg
    else {
        return (msg, None);
    };
    let skipped = |result: &RowResult, message: String| {
        WriterMsg::Record(RowResult {
            status: RowStatus::Skipped,
            error_kind: Some(UNDECODABLE.to_string()),
            error_message: Some(message),
            bytes: 0,
            sha256: None,
            member: None,
            ..result.clone()
        })
    };
    let Ok(_permit) = pool.acquire_owned().await else {
        let msg = WriterMsg::Stored {
            result,
            body,
            precompressed,
        };
        return (msg, None);
    };
    let base = result.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let resized = body_bytes(&body)
            .map_err(|e| format!("cannot read the body back: {e}"))
            .and_then(|b| resize_image(&b, &opts));
        if let Body::Spilled { path } = &body {
            let _ = std::fs::remove_file(path);
        }
        match resized {
            Ok((bytes, dims)) => {
                let ext = opts.encode_format.extension();
                let member = result.member.as_deref().map(|m| {
                    let stem = m.rsplit_once('.').map_or(m, |(s, _)| s);
                    format!("{stem}.{ext}")
                });
                let msg = WriterMsg::Stored {
                    result: RowResult {
                        bytes: bytes.len() as u64,
                        sha256: None,
                        member,
                        ..result
                    },
                    body: Body::Memory(vec![Bytes::from(bytes)]),
                    precompressed: true,
                };
                (msg, Some(dims))
            }
            Err(message) => (skipped(&result, format!("--resize-mode: {message}")), None),
        }
    })
    .await;
    outcome.unwrap_or_else(|e| (skipped(&base, format!("resize task failed: {e}")), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn every_mode_gives_the_planned_dimensions() {
        let src = png(300, 150);
        for (mode, want) in [
            (ResizeMode::KeepRatio, (128, 64)),
            (ResizeMode::KeepRatioLargest, (64, 32)),
            (ResizeMode::CenterCrop, (64, 64)),
            (ResizeMode::Border, (64, 64)),
        ] {
            for format in [EncodeFormat::Jpg, EncodeFormat::Png, EncodeFormat::Webp] {
                let opts = ResizeOptions {
                    mode,
                    image_size: 64,
                    encode_format: format,
                    ..ResizeOptions::default()
                };
                let (out, (before, after)) = resize_image(&src, &opts).unwrap();
                assert_eq!((before, after), ((300, 150), want));
                let img = image::load_from_memory(&out).unwrap();
                assert_eq!(img.dimensions(), want, "{mode:?} {format:?}");
                let guessed = image::guess_format(&out).unwrap();
                let expected = match format {
                    EncodeFormat::Jpg => image::ImageFormat::Jpeg,
                    EncodeFormat::Png => image::ImageFormat::Png,
                    EncodeFormat::Webp => image::ImageFormat::WebP,
                };
                assert_eq!(guessed, expected);
            }
        }
        assert!(resize_image(b"not an image", &ResizeOptions::default()).is_err());
    }

    fn jpeg(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        let img = RgbImage::from_pixel(w, h, image::Rgb(rgb));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn dct_scale_never_goes_below_the_planned_size() {
        assert_eq!(dct_scaled((640, 480), (256, 192)), (320, 240));
        assert_eq!(dct_scaled((2048, 1536), (256, 192)), (256, 192));
        assert_eq!(dct_scaled((2049, 1536), (256, 192)), (257, 192));
        assert_eq!(dct_scaled((2000, 1500), (256, 192)), (500, 375));
        assert_eq!(dct_scaled((300, 150), (256, 128)), (300, 150));
        assert_eq!(dct_scaled((100, 100), (256, 256)), (100, 100));
        // center_crop keeps the shorter side at the target: 4000x1000 -> 1024x256.
        assert_eq!(dct_scaled((4000, 1000), (1024, 256)), (2000, 500));
    }

    #[test]
    fn large_jpegs_are_decoded_scaled_down_with_the_full_dimensions_reported() {
        for (mode, (w, h), want) in [
            (ResizeMode::Border, (1600, 1200), (256, 256)),
            (ResizeMode::KeepRatioLargest, (1200, 1600), (192, 256)),
            (ResizeMode::KeepRatio, (1600, 1200), (341, 256)),
            (ResizeMode::CenterCrop, (4000, 1000), (256, 256)),
            (ResizeMode::Border, (640, 480), (256, 256)),
        ] {
            let opts = ResizeOptions {
                mode,
                image_size: 256,
                encode_format: EncodeFormat::Jpg,
                ..ResizeOptions::default()
            };
            let src = jpeg(w, h, [200, 100, 50]);
            // The fast path is taken, at a reduced scale where the plan allows one.
            let (full, decoded) = decode_jpeg_scaled(&src, &opts).unwrap();
            let (planned, _) = resize_plan(&opts, w, h);
            assert_eq!(full, (w, h));
            assert_eq!(decoded.dimensions(), dct_scaled(full, planned), "{mode:?}");
            let (out, dims) = resize_image(&src, &opts).unwrap();
            assert_eq!(dims, ((w, h), want), "{mode:?}");
            let img = image::load_from_memory(&out).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), want);
            let centre = img.get_pixel(want.0 / 2, want.1 / 2).0;
            for (got, exp) in centre.into_iter().zip([200u8, 100, 50]) {
                assert!(got.abs_diff(exp) <= 6, "{mode:?}: centre {centre:?}");
            }
        }
    }

    #[test]
    fn border_centres_the_image_between_black_bands() {
        let src = RgbImage::from_pixel(300, 150, image::Rgb([200, 100, 50]));
        let mut bytes = Cursor::new(Vec::new());
        src.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        let opts = ResizeOptions {
            mode: ResizeMode::Border,
            image_size: 64,
            encode_format: EncodeFormat::Png,
            ..ResizeOptions::default()
        };
        let (out, _) = resize_image(bytes.get_ref(), &opts).unwrap();
        let img = image::load_from_memory(&out).unwrap().to_rgb8();
        // 64x32 scaled, pasted at y = 16: bands above and below, the image between.
        for (y, want) in [
            (0, [0, 0, 0]),
            (15, [0, 0, 0]),
            (16, [200, 100, 50]),
            (47, [200, 100, 50]),
            (48, [0, 0, 0]),
            (63, [0, 0, 0]),
        ] {
            for x in [0, 31, 63] {
                assert_eq!(img.get_pixel(x, y).0, want, "({x}, {y})");
            }
        }
    }

    #[test]
    fn webp_is_lossy_and_follows_the_quality() {
        // A noisy photo-like image: lossless WebP would be far larger than q50 lossy.
        let img = RgbImage::from_fn(256, 256, |x, y| {
            let n = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) as u8;
            image::Rgb([n, (x as u8).wrapping_add(n / 4), (y as u8) ^ n])
        });
        let mut src = Cursor::new(Vec::new());
        img.write_to(&mut src, image::ImageFormat::Png).unwrap();
        let size_at = |q: u8| {
            let opts = ResizeOptions {
                mode: ResizeMode::Border,
                image_size: 256,
                encode_format: EncodeFormat::Webp,
                encode_quality: q,
                ..ResizeOptions::default()
            };
            let (out, dims) = resize_image(src.get_ref(), &opts).unwrap();
            assert_eq!(dims, ((256, 256), (256, 256)));
            let back = image::load_from_memory_with_format(&out, image::ImageFormat::WebP).unwrap();
            assert_eq!(back.dimensions(), (256, 256));
            out.len()
        };
        let (low, high) = (size_at(30), size_at(95));
        assert!(low < high, "q30 {low} bytes, q95 {high} bytes");
        // VP8 (lossy) bitstream, not VP8L (lossless).
        let opts = ResizeOptions {
            mode: ResizeMode::KeepRatio,
            image_size: 64,
            encode_format: EncodeFormat::Webp,
            ..ResizeOptions::default()
        };
        let (out, _) = resize_image(src.get_ref(), &opts).unwrap();
        assert_eq!(&out[12..16], b"VP8 ", "a lossy WebP");
        let border = ResizeOptions {
            mode: ResizeMode::Border,
            ..opts
        };
        let (out, dims) = resize_image(&png(300, 150), &border).unwrap();
        assert_eq!(dims, ((300, 150), (64, 64)));
        assert_eq!(
            &out[12..16],
            b"VP8 ",
            "an opaque border canvas has no alpha chunk"
        );
    }
}
