//! libjpeg-turbo through its TurboJPEG 3 API, for the resize path: JPEGs decoded at the
//! smallest SIMD DCT scale that still covers the planned size, and the re-encode. Each
//! blocking-pool thread keeps its own decompressor and compressor.

use std::cell::RefCell;

use image::{DynamicImage, RgbImage};

use super::super::{ResizeOptions, resize_plan};

/// The DCT scale, in eighths (1, 2, 4 or 8), to decode a `full`-sized JPEG at so that both
/// sides stay at least `want`, and the size that gives: the smallest that is not below `want`
/// (the IDCT of an n/8 scale computes only n x n of each block's 8 x 8 frequencies, so a 4/8
/// decode is a 2 x 2 average for about a quarter of the IDCT and colour-conversion work). Only
/// these four: libjpeg-turbo has SIMD inverse DCTs for them, and its plain-C 3/8, 5/8… ones
/// (with the 6 x 6, 10 x 10… they need for 4:2:0 chroma) cost more than the larger SIMD decode:
/// on the benchmark's photos 5 % less CPU per image than picking among all eight.
pub(super) fn dct_scaled(full: (u32, u32), want: (u32, u32)) -> (u32, (u32, u32)) {
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

/// How libjpeg-turbo would decode a JPEG for the resize: its full dimensions, the DCT scale,
/// the pixel format and the decoded size (from the header alone).
struct DecodePlan {
    full: (u32, u32),
    factor: turbojpeg::ScalingFactor,
    format: turbojpeg::PixelFormat,
    scaled: (usize, usize),
}

impl DecodePlan {
    /// The decoded image's bytes.
    fn bytes(&self) -> usize {
        self.scaled
            .0
            .saturating_mul(self.scaled.1)
            .saturating_mul(self.format.size())
    }
}

/// The [`DecodePlan`] of `bytes` for `opts`, read from the header with `dec`; an error for a
/// JPEG this path does not take (CMYK/YCCK, a header libjpeg-turbo rejects, too large).
fn plan(
    dec: &mut turbojpeg::Decompressor,
    bytes: &[u8],
    opts: &ResizeOptions,
) -> Result<DecodePlan, String> {
    use turbojpeg::{Colorspace, PixelFormat, ScalingFactor};
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
    let scaled = header.scaled(factor);
    let plan = DecodePlan {
        full: (fw, fh),
        factor,
        format,
        scaled: (scaled.width, scaled.height),
    };
    // The `image` crate's default allocation limit: a forged header must not reserve more.
    if plan.bytes() > MAX_DECODED_BYTES {
        return Err(format!(
            "{}x{} is too large to decode",
            plan.scaled.0, plan.scaled.1
        ));
    }
    Ok(plan)
}

/// A lossy (baseline, progressive) YCbCr, RGB or greyscale JPEG decoded by libjpeg-turbo at the
/// smallest DCT scale that still covers the size [`resize_plan`] scales it to; with its full
/// dimensions. `None` (the caller decodes it the ordinary way) for anything else: not a JPEG,
/// CMYK/YCCK, or an error or warning from libjpeg-turbo (a truncated file, say).
/// `before_alloc` gets the decoded size, read from the header, before the pixels are allocated
/// (the resize pool reserves it there); what it returns comes back with the image, or is
/// dropped with a decode that failed.
pub(super) fn decode_jpeg_scaled<R>(
    bytes: &[u8],
    opts: &ResizeOptions,
    before_alloc: impl FnOnce(u64) -> R,
) -> Option<(R, (u32, u32), DynamicImage)> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    with_turbo(|dec, _| {
        let plan = plan(dec, bytes, opts)?;
        let held = before_alloc(plan.bytes() as u64);
        dec.set_scaling_factor(plan.factor)
            .map_err(|e| e.to_string())?;
        let (w, h) = plan.scaled;
        let channels = plan.format.size();
        let mut pixels = vec![0u8; plan.bytes()];
        let image = turbojpeg::Image {
            pixels: &mut pixels[..],
            width: w,
            pitch: w * channels,
            height: h,
            format: plan.format,
        };
        dec.decompress(bytes, image).map_err(|e| e.to_string())?;
        let (w, h) = (w as u32, h as u32);
        let img = if channels == 1 {
            image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
        } else {
            RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
        };
        img.map(|img| (held, plan.full, img))
            .ok_or_else(|| "short buffer".into())
    })
    .ok()
}

/// `rgb` as a 4:2:0 JPEG (libjpeg's and OpenCV's default) at `quality` (1–100), through
/// libjpeg-turbo.
pub(super) fn encode_jpeg(rgb: &RgbImage, quality: u8) -> Result<Vec<u8>, String> {
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
