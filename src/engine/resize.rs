//! `--resize-mode`: stored images are decoded (a JPEG through libjpeg-turbo's TurboJPEG API at
//! the smallest of its SIMD DCT scales, 1/8, 2/8, 4/8 or 8/8, that still covers the planned size; anything
//! else, and a JPEG libjpeg-turbo rejects, through the `image` crate), scaled
//! (`fast_image_resize`'s SIMD bilinear convolution widened to the scale factor: area-like
//! averaging when shrinking, which is what dataset thumbnails need), cropped or bordered as
//! [`resize_plan`] says and re-encoded (JPEG 4:2:0 at the given quality through libjpeg-turbo,
//! PNG, or lossy WebP at the given quality through libwebp: the `image` crate's own WebP encoder
//! is lossless only, and lossless WebP thumbnails are several times the size of a q95 JPEG,
//! which defeats the point of choosing WebP). It runs on the blocking pool under a semaphore of
//! two permits per core, so decoding never starves the network tasks nor piles up more images in
//! memory than twice the cores; each pool thread keeps its TurboJPEG handles. A body that cannot
//! be decoded is skipped as `image_undecodable`.

use std::cell::RefCell;
use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, RgbImage, RgbaImage};
use tokio::sync::Semaphore;

use super::filter::UNDECODABLE;
use super::writer::WriterMsg;
use super::{EncodeFormat, ResizeMode, ResizeOptions, RowResult, resize_plan};
use crate::fetch::Body;

/// Two permits per core: at most that many images are decoded at once. One per core left a
/// core idle in every hand-off (a finished decode wakes the next waiting row on the runtime,
/// which then starts its blocking task): on 2 cores the benchmark's resize ran at 1.6 cores
/// with one per core and 1.8 with two, 12 % more images per second for the same CPU.
pub(crate) fn pool() -> Arc<Semaphore> {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    Arc::new(Semaphore::new(2 * cores))
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
            let jpeg = encode_jpeg(&rgb, opts.encode_quality)?;
            return Ok((jpeg, ((w, h), stored)));
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

/// The DCT scale, in eighths (1, 2, 4 or 8), to decode a `full`-sized JPEG at so that both
/// sides stay at least `want`, and the size that gives: the smallest that is not below `want`
/// (the IDCT of an n/8 scale computes only n x n of each block's 8 x 8 frequencies, so a 4/8
/// decode is a 2 x 2 average for about a quarter of the IDCT and colour-conversion work). Only
/// these four: libjpeg-turbo has SIMD inverse DCTs for them, and its plain-C 3/8, 5/8… ones
/// (with the 6 x 6, 10 x 10… they need for 4:2:0 chroma) cost more than the larger SIMD decode:
/// on the benchmark's photos 5 % less CPU per image than picking among all eight.
pub(crate) fn dct_scaled(full: (u32, u32), want: (u32, u32)) -> (u32, (u32, u32)) {
    let at = |len: u32, k: u32| (u64::from(len) * u64::from(k)).div_ceil(8) as u32;
    [1, 2, 4, 8]
        .into_iter()
        .map(|k| (k, (at(full.0, k), at(full.1, k))))
        .find(|&(_, (w, h))| w >= want.0 && h >= want.1)
        .unwrap_or((8, full))
}

/// The most bytes a scaled JPEG decode may allocate (512 MiB, as the `image` crate's default
/// limit; the fallback decode then refuses the image with its own error).
const MAX_DECODED_BYTES: usize = 512 << 20;

thread_local! {
    /// This blocking-pool thread's TurboJPEG handles (created on first use, reused after).
    static TURBO: RefCell<Option<(turbojpeg::Decompressor, turbojpeg::Compressor)>> =
        const { RefCell::new(None) };
}

/// Runs `f` with this thread's TurboJPEG decompressor and compressor.
fn with_turbo<T>(
    f: impl FnOnce(&mut turbojpeg::Decompressor, &mut turbojpeg::Compressor) -> Result<T, String>,
) -> Result<T, String> {
    TURBO.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let d = turbojpeg::Decompressor::new().map_err(|e| format!("TurboJPEG: {e}"))?;
            let c = turbojpeg::Compressor::new().map_err(|e| format!("TurboJPEG: {e}"))?;
            *slot = Some((d, c));
        }
        let (d, c) = slot.as_mut().ok_or("TurboJPEG: no handle")?;
        f(d, c)
    })
}

/// A lossy (baseline, progressive) YCbCr, RGB or greyscale JPEG decoded by libjpeg-turbo at the
/// smallest DCT scale that still covers the size [`resize_plan`] scales it to; with its full
/// dimensions. `None` (the caller decodes it the ordinary way) for anything else: not a JPEG,
/// CMYK/YCCK, or an error or warning from libjpeg-turbo (a truncated file, say).
fn decode_jpeg_scaled(bytes: &[u8], opts: &ResizeOptions) -> Option<((u32, u32), DynamicImage)> {
    use turbojpeg::{Colorspace, Image, PixelFormat, ScalingFactor};
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    with_turbo(|dec, _| {
        let header = dec.read_header(bytes).map_err(|e| e.to_string())?;
        let format = match header.colorspace {
            Colorspace::Gray => PixelFormat::GRAY,
            Colorspace::YCbCr | Colorspace::RGB => PixelFormat::RGB,
            other => return Err(format!("{other:?}")),
        };
        let (Ok(fw), Ok(fh)) = (u32::try_from(header.width), u32::try_from(header.height)) else {
            return Err("too large".into());
        };
        let (want, _) = resize_plan(opts, fw, fh);
        // A lossless JPEG decodes at full size only.
        let eighths = if header.is_lossless {
            8
        } else {
            dct_scaled((fw, fh), want).0
        };
        let factor = ScalingFactor::new(eighths as usize, 8);
        dec.set_scaling_factor(factor).map_err(|e| e.to_string())?;
        let scaled = header.scaled(factor);
        let (w, h) = (scaled.width, scaled.height);
        let channels = format.size();
        // The `image` crate's default allocation limit: a forged header must not reserve more.
        if w.saturating_mul(h).saturating_mul(channels) > MAX_DECODED_BYTES {
            return Err(format!("{w}x{h} is too large to decode"));
        }
        let mut pixels = vec![0u8; w * h * channels];
        let image = Image {
            pixels: &mut pixels[..],
            width: w,
            pitch: w * channels,
            height: h,
            format,
        };
        dec.decompress(bytes, image).map_err(|e| e.to_string())?;
        let (w, h) = (w as u32, h as u32);
        let img = if channels == 1 {
            image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
        } else {
            RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
        };
        img.map(|img| ((fw, fh), img))
            .ok_or_else(|| "short buffer".into())
    })
    .ok()
}

/// `rgb` as a 4:2:0 JPEG (libjpeg's and OpenCV's default) at `quality` (1–100), through
/// libjpeg-turbo.
fn encode_jpeg(rgb: &RgbImage, quality: u8) -> Result<Vec<u8>, String> {
    let (w, h) = rgb.dimensions();
    with_turbo(|_, enc| {
        enc.set_quality(i32::from(quality.clamp(1, 100)))
            .and_then(|()| enc.set_subsamp(turbojpeg::Subsamp::Sub2x2))
            .and_then(|()| {
                enc.compress_to_vec(turbojpeg::Image {
                    pixels: rgb.as_raw().as_slice(),
                    width: w as usize,
                    pitch: w as usize * 3,
                    height: h as usize,
                    format: turbojpeg::PixelFormat::RGB,
                })
            })
            .map_err(|e| format!("cannot encode a {w}x{h} image as JPEG: {e}"))
    })
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
    let (result, body, precompressed) = match msg.into_stored() {
        Ok(parts) => parts,
        Err(msg) => return (*msg, None),
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
            Err(message) => (
                WriterMsg::skipped(&result, UNDECODABLE, format!("--resize-mode: {message}")),
                None,
            ),
        }
    })
    .await;
    outcome.unwrap_or_else(|e| {
        (
            WriterMsg::skipped(&base, UNDECODABLE, format!("resize task failed: {e}")),
            None,
        )
    })
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
        assert_eq!(dct_scaled((640, 480), (256, 192)), (4, (320, 240)));
        assert_eq!(dct_scaled((800, 533), (256, 171)), (4, (400, 267)));
        assert_eq!(dct_scaled((500, 375), (256, 192)), (8, (500, 375)));
        assert_eq!(dct_scaled((2048, 1536), (256, 192)), (1, (256, 192)));
        assert_eq!(dct_scaled((2049, 1536), (256, 192)), (1, (257, 192)));
        assert_eq!(dct_scaled((2000, 1500), (256, 192)), (2, (500, 375)));
        assert_eq!(dct_scaled((300, 150), (256, 128)), (8, (300, 150)));
        assert_eq!(dct_scaled((100, 100), (256, 256)), (8, (100, 100)));
        // center_crop keeps the shorter side at the target: 4000x1000 -> 1024x256.
        assert_eq!(dct_scaled((4000, 1000), (1024, 256)), (4, (2000, 500)));
        // Only the scales with SIMD inverse DCTs.
        for full in [(640, 480), (800, 533), (4000, 1000), (333, 777), (9000, 17)] {
            for want in [(1, 1), (17, 9), (256, 256), (300, 200), (1024, 1024)] {
                let (k, (w, h)) = dct_scaled(full, want);
                assert!([1, 2, 4, 8].contains(&k), "{full:?} {want:?} -> {k}");
                assert!(
                    k == 8 || (w >= want.0 && h >= want.1),
                    "{full:?} {want:?} -> {k}"
                );
            }
        }
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
            assert_eq!(
                decoded.dimensions(),
                dct_scaled(full, planned).1,
                "{mode:?}"
            );
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
    fn greyscale_and_damaged_jpegs() {
        let opts = ResizeOptions {
            mode: ResizeMode::Border,
            image_size: 256,
            encode_format: EncodeFormat::Jpg,
            ..ResizeOptions::default()
        };
        let grey = image::GrayImage::from_pixel(1024, 768, image::Luma([90]));
        let mut src = Cursor::new(Vec::new());
        grey.write_to(&mut src, image::ImageFormat::Jpeg).unwrap();
        let (full, decoded) = decode_jpeg_scaled(src.get_ref(), &opts).unwrap();
        assert_eq!((full, decoded.dimensions()), ((1024, 768), (256, 192)));
        assert!(matches!(decoded, DynamicImage::ImageLuma8(_)));
        let (out, dims) = resize_image(src.get_ref(), &opts).unwrap();
        assert_eq!(dims, ((1024, 768), (256, 256)));
        let back = image::load_from_memory(&out).unwrap().to_rgb8();
        assert!(
            back.get_pixel(128, 128)
                .0
                .iter()
                .all(|&c| c.abs_diff(90) <= 3)
        );
        // A JPEG cut after its header: not decodable by libjpeg-turbo; an error, no panic.
        let cut = &jpeg(640, 480, [1, 2, 3])[..200];
        assert!(decode_jpeg_scaled(cut, &opts).is_none());
        assert!(resize_image(cut, &opts).is_err());
        // A forged 65535x65535 header is refused before any allocation.
        let mut forged = jpeg(16, 16, [1, 2, 3]);
        let sof = forged.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        forged[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(
            resize_image(
                &forged,
                &ResizeOptions {
                    mode: ResizeMode::No,
                    ..opts
                }
            )
            .is_err()
        );
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
