//! `--resize-mode`: stored images are decoded (a JPEG through libjpeg-turbo at the smallest of
//! its SIMD DCT scales that still covers the planned size, see [`turbo`]; anything else, and a
//! JPEG libjpeg-turbo rejects, through the `image` crate), scaled
//! (`fast_image_resize`'s SIMD bilinear convolution widened to the scale factor: area-like
//! averaging when shrinking, which is what dataset thumbnails need), cropped or bordered as
//! [`resize_plan`] says and re-encoded (JPEG 4:2:0 at the given quality through libjpeg-turbo,
//! PNG, or lossy WebP at the given quality through libwebp: the `image` crate's own WebP encoder
//! is lossless only, and lossless WebP thumbnails are several times the size of a q95 JPEG,
//! which defeats the point of choosing WebP). It runs on the blocking pool within a
//! [`DecodePool`]: a few decodes at once, holding at most a decoded-bytes budget together. A
//! body that cannot be decoded is skipped as `image_undecodable`.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, RgbImage, RgbaImage};
mod budget;
mod turbo;

pub(crate) use self::budget::DecodePool;
use self::turbo::{decode_jpeg_scaled, encode_jpeg};
use super::filter::UNDECODABLE;
use super::writer::WriterMsg;
use super::{EncodeFormat, ResizeMode, ResizeOptions, RowResult, resize_plan};
use crate::fetch::Body;

/// The pool every resize of a run shares (see [`DecodePool::for_this_machine`]).
pub(crate) fn pool() -> Arc<DecodePool> {
    Arc::new(DecodePool::for_this_machine())
}

/// Width and height before and after a resize.
pub type Resized = ((u32, u32), (u32, u32));

/// The decoded bytes the `image` crate would allocate for `bytes` (whole image), from its
/// header; `None` when it cannot read one (the decode then fails at once).
fn full_decode_bytes(bytes: &[u8]) -> Option<u64> {
    use image::ImageDecoder;
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    reader.into_decoder().ok().map(|d| d.total_bytes())
}

/// Decodes, resizes and re-encodes `bytes`; returns the new bytes and the dimensions before
/// and after. With a `pool`, the decoded image's bytes are reserved in its budget from before
/// they are allocated until the resize is done.
pub(crate) fn resize_image(
    bytes: &[u8],
    opts: &ResizeOptions,
    pool: Option<&DecodePool>,
) -> Result<(Vec<u8>, Resized), String> {
    let reserve = |n: u64| pool.and_then(|p| p.reserve_blocking(n));
    // A failed JPEG decode has given its reservation back before the whole-image one is taken:
    // holding one while waiting for another could leave two decodes each waiting on the other.
    let (_held, (w, h), img) = match decode_jpeg_scaled(bytes, opts, reserve) {
        Some(decoded) => decoded,
        None => {
            let held = full_decode_bytes(bytes).and_then(reserve);
            let img = image::load_from_memory(bytes).map_err(|e| format!("cannot decode: {e}"))?;
            (held, img.dimensions(), img)
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
    pool: Arc<DecodePool>,
) -> (WriterMsg, Option<Resized>) {
    let (result, body, precompressed) = match msg.into_stored() {
        Ok(parts) => parts,
        Err(msg) => return (*msg, None),
    };
    let Some(_slot) = pool.slot().await else {
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
            .and_then(|b| resize_image(&b, &opts, Some(&pool)));
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
mod tests;
