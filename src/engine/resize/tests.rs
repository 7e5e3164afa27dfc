//! The resize path on real images: every mode's dimensions, the scaled JPEG decode, damaged
//! and greyscale JPEGs, the border's bands, WebP quality.

use super::turbo::{dct_scaled, decode_jpeg_scaled};
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
            let (out, (before, after)) = resize_image(&src, &opts, None).unwrap();
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
    assert!(resize_image(b"not an image", &ResizeOptions::default(), None).is_err());
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
        let ((), full, decoded) = decode_jpeg_scaled(&src, &opts, |_| ()).unwrap();
        let (planned, _) = resize_plan(&opts, w, h);
        assert_eq!(full, (w, h));
        assert_eq!(
            decoded.dimensions(),
            dct_scaled(full, planned).1,
            "{mode:?}"
        );
        let (out, dims) = resize_image(&src, &opts, None).unwrap();
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
    let ((), full, decoded) = decode_jpeg_scaled(src.get_ref(), &opts, |_| ()).unwrap();
    assert_eq!((full, decoded.dimensions()), ((1024, 768), (256, 192)));
    assert!(matches!(decoded, DynamicImage::ImageLuma8(_)));
    let (out, dims) = resize_image(src.get_ref(), &opts, None).unwrap();
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
    assert!(decode_jpeg_scaled(cut, &opts, |_| ()).is_none());
    assert!(resize_image(cut, &opts, None).is_err());
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
            },
            None
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
    let (out, _) = resize_image(bytes.get_ref(), &opts, None).unwrap();
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
        let (out, dims) = resize_image(src.get_ref(), &opts, None).unwrap();
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
    let (out, _) = resize_image(src.get_ref(), &opts, None).unwrap();
    assert_eq!(&out[12..16], b"VP8 ", "a lossy WebP");
    let border = ResizeOptions {
        mode: ResizeMode::Border,
        ..opts
    };
    let (out, dims) = resize_image(&png(300, 150), &border, None).unwrap();
    assert_eq!(dims, ((300, 150), (64, 64)));
    assert_eq!(
        &out[12..16],
        b"VP8 ",
        "an opaque border canvas has no alpha chunk"
    );
}

#[test]
fn decoded_sizes_come_from_the_header() {
    let opts = ResizeOptions {
        mode: ResizeMode::Border,
        image_size: 256,
        ..ResizeOptions::default()
    };
    // The size the JPEG decode announces before allocating.
    let announced = |bytes: &[u8]| {
        let mut size = None;
        decode_jpeg_scaled(bytes, &opts, |n| size = Some(n));
        size
    };
    // 1600x1200 for 256: decoded at 1/4, 400x300 RGB.
    assert_eq!(announced(&jpeg(1600, 1200, [9, 9, 9])), Some(400 * 300 * 3));
    let png = png(300, 150);
    assert_eq!(announced(&png), None);
    assert_eq!(full_decode_bytes(&png), Some(300 * 150 * 3));
    assert_eq!(full_decode_bytes(b"not an image"), None);
}

/// Six threads resizing 1200x1200 PNGs (4.3 MB decoded, 5 MiB of budget each) through a pool
/// whose budget is 8 MiB: one decoded image at a time, every resize done.
#[test]
fn the_budget_bounds_the_decoded_bytes_held_at_once() {
    let pool = std::sync::Arc::new(DecodePool::new(6, 8 << 20));
    let src = std::sync::Arc::new(png(1200, 1200));
    let opts = ResizeOptions {
        mode: ResizeMode::KeepRatio,
        image_size: 64,
        encode_format: EncodeFormat::Png,
        ..ResizeOptions::default()
    };
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (pool, src, opts) = (pool.clone(), src.clone(), opts.clone());
            std::thread::spawn(move || resize_image(&src, &opts, Some(&pool)).map(|(_, d)| d))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), ((1200, 1200), (64, 64)));
    }
    assert_eq!(pool.peak_bytes(), 5 << 20);
}
