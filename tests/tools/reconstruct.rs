//! `ldawt reconstruct` on parquets built here: the Hugging Face `{bytes, path}` struct and a
//! plain binary column, original bytes and re-encoding, bad rows, and refused inputs.

use std::io::Cursor;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};

use crate::common::archive_entries;
use crate::util::{bad_input, ok, run, stderr, stdout, write_parquet};

fn encoded(format: image::ImageFormat, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(8, 6, |x, y| image::Rgb([seed, x as u8 * 20, y as u8 * 30]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// `ldawt reconstruct --input <input> --output <output> <extra>`.
fn reconstruct(input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "reconstruct",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// Writes a parquet of two columns: `image` (the given array) and `label` (nullable text).
fn write_image_parquet(path: &Path, image: ArrayRef, labels: Vec<Option<&str>>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("image", image.data_type().clone(), true),
        Field::new("label", DataType::Utf8, true),
    ]));
    let batch =
        RecordBatch::try_new(schema, vec![image, Arc::new(StringArray::from(labels))]).unwrap();
    write_parquet(path, &batch);
}

fn hf_parquet(path: &Path) -> Vec<Option<Vec<u8>>> {
    let png = encoded(image::ImageFormat::Png, 1);
    let jpg = encoded(image::ImageFormat::Jpeg, 2);
    let cells: Vec<Option<Vec<u8>>> = vec![
        Some(png.clone()),
        Some(jpg.clone()),
        None,
        Some(b"not an image".to_vec()),
        Some(png),
    ];
    let labels = vec![
        Some("Apis mellifera"),
        Some("Bombus"),
        Some("Bombus"),
        Some("Apis mellifera"),
        None,
    ];
    let bytes = BinaryArray::from_iter(cells.iter().map(|c| c.as_deref()));
    let paths = StringArray::from(
        (0..5)
            .map(|i| Some(format!("img{i}.x")))
            .collect::<Vec<_>>(),
    );
    let fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let image = StructArray::new(
        fields,
        vec![Arc::new(bytes) as ArrayRef, Arc::new(paths)],
        None,
    );
    write_image_parquet(path, Arc::new(image), labels);
    cells
}

#[test]
fn reconstruct_hugging_face_struct_keeps_bytes_and_reports_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("train.parquet");
    let cells = hf_parquet(&input);
    let output = dir.path().join("train.tar.gz");
    let out = reconstruct(&input, &output, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad rows → exit 1\n{}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("row 2: image bytes are null"), "{err}");
    assert!(
        err.contains("row 3: bytes are not a recognised image format"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("5 rows: 3 images written in 3 label folders, 2 bad rows skipped")
    );
    let m = archive_entries(&output);
    let files: Vec<&String> = m.keys().filter(|k| !k.ends_with('/')).collect();
    assert_eq!(
        files,
        [
            "train/Apis_mellifera/0.png",
            "train/Bombus/1.jpg",
            "train/unlabeled/4.png"
        ]
    );
    assert_eq!(
        m["train/Apis_mellifera/0.png"],
        *cells[0].as_ref().unwrap(),
        "original bytes kept"
    );
    assert_eq!(m["train/Bombus/1.jpg"], *cells[1].as_ref().unwrap());
    assert!(m.contains_key("train/") && m.contains_key("train/Bombus/"));
    // Deterministic: a second run (with --force) gives the same archive bytes.
    let first = std::fs::read(&output).unwrap();
    reconstruct(&input, &output, &["--force", "--threads", "1"]);
    assert_eq!(std::fs::read(&output).unwrap(), first);
    // Without --force an existing output is refused.
    bad_input(
        &reconstruct(&input, &output, &[]),
        &["train.tar.gz", "--force"],
    );
}

#[test]
fn reconstruct_plain_binary_column_reencodes_to_jpg() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("plain.parquet");
    let n = 600; // more than one record batch
    let imgs: Vec<Vec<u8>> = (0..n)
        .map(|i| encoded(image::ImageFormat::Png, i as u8))
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("img", DataType::Binary, false),
        Field::new("cls", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(BinaryArray::from_iter_values(imgs.iter())),
            Arc::new(StringArray::from(
                (0..n).map(|i| format!("c{}", i % 3)).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    write_parquet(&input, &batch);
    let output = dir.path().join("plain.tar");
    let text = ok(&reconstruct(
        &input,
        &output,
        &[
            "--image-col",
            "img",
            "--label-col",
            "cls",
            "--format",
            "jpg",
            "--threads",
            "3",
        ],
    ));
    assert!(
        text.contains("600 images written in 3 label folders, 0 bad rows"),
        "{text}"
    );
    let m = archive_entries(&output);
    let files: Vec<_> = m.iter().filter(|(k, _)| !k.ends_with('/')).collect();
    assert_eq!(files.len(), n);
    for (name, bytes) in files {
        assert!(name.ends_with(".jpg"), "{name}");
        assert_eq!(
            image::guess_format(bytes).unwrap(),
            image::ImageFormat::Jpeg
        );
        let img = image::load_from_memory(bytes).unwrap();
        assert_eq!((img.width(), img.height()), (8, 6));
    }
    assert!(m.contains_key("plain/c2/599.jpg"));
}

#[test]
fn reconstruct_refuses_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("train.parquet");
    hf_parquet(&input);
    let i = input.to_str().unwrap();
    let o = dir.path().join("o.tar.gz");
    let o = o.to_str().unwrap();
    let r = |args: &[&str]| {
        let mut all = vec!["reconstruct"];
        all.extend_from_slice(args);
        run(&all)
    };
    bad_input(
        &r(&["--input", "/nonexistent/a.parquet", "--output", o]),
        &["/nonexistent/a.parquet"],
    );
    bad_input(
        &r(&["--input", i, "--output", o, "--image-col", "pixels"]),
        &["pixels", "image, label"],
    );
    bad_input(
        &r(&["--input", i, "--output", o, "--label-col", "species"]),
        &["species"],
    );
    bad_input(
        &r(&["--input", i, "--output", o, "--image-col", "label"]),
        &["label", "binary image bytes"],
    );
    bad_input(
        &r(&["--input", i, "--output", o, "--label-col", "image"]),
        &["image", "label"],
    );
    bad_input(
        &r(&[
            "--input",
            i,
            "--output",
            dir.path().join("o.zip").to_str().unwrap(),
        ]),
        &["o.zip", ".tar"],
    );
    // The output's folder cannot be created (a file is in the way): the error names it.
    let blocked = format!("{i}/sub/o.tar");
    bad_input(
        &r(&["--input", i, "--output", &blocked]),
        &["cannot create the output folder", &format!("{i}/sub")],
    );
    // A CSV is refused with a clear message, not a raw "Corrupt footer".
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "image,label\nx,y\n").unwrap();
    let text = bad_input(
        &r(&["--input", csv.to_str().unwrap(), "--output", o]),
        &["rows.csv", "parquet", "CSV"],
    );
    assert!(!text.contains("Corrupt footer"), "{text}");
    std::fs::remove_file(&csv).unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "nothing but the input left behind: {left:?}");
}

fn gif_and_webp_parquet(path: &Path) -> Vec<Option<Vec<u8>>> {
    let gif = encoded(image::ImageFormat::Gif, 7);
    let webp = encoded(image::ImageFormat::WebP, 9);
    let png = encoded(image::ImageFormat::Png, 3);
    let jpg = encoded(image::ImageFormat::Jpeg, 4);
    let cells: Vec<Option<Vec<u8>>> = vec![
        Some(gif),
        Some(webp),
        Some(png[..png.len() / 2].to_vec()),
        Some(b"GIF89a broken".to_vec()),
        Some(jpg[..jpg.len() / 3].to_vec()),
        Some(b"RIFF\x10\0\0\0WEBPVP8 broken".to_vec()),
        Some(b"plain text".to_vec()),
    ];
    let labels = vec![
        Some("Abaeis mexicana"),
        None,
        Some("O'Neil"),
        Some("O'Neil"),
        Some("x"),
        Some("x"),
        Some("x"),
    ];
    let image = BinaryArray::from_iter(cells.iter().map(|c| c.as_deref()));
    write_image_parquet(path, Arc::new(image), labels);
    cells
}

#[test]
fn reconstruct_decodes_gif_and_webp_and_lists_bad_rows_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.parquet");
    gif_and_webp_parquet(&input);
    for (format, ext, expected) in [
        ("png", "png", image::ImageFormat::Png),
        ("jpg", "jpg", image::ImageFormat::Jpeg),
    ] {
        // The output's folder does not exist yet: it is created.
        let output = dir.path().join(format).join("deeper").join("mixed.tar");
        let out = reconstruct(&input, &output, &["--format", format]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}\n{}", stdout(&out));
        assert!(
            stdout(&out).contains("7 rows: 2 images written"),
            "GIF and WebP decode: {}\n{err}",
            stdout(&out)
        );
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines.len(),
            5,
            "one line per bad row, no blank lines: {err:?}"
        );
        for (line, row) in lines.iter().zip(2..) {
            assert!(line.starts_with(&format!("row {row}: ")), "{err:?}");
        }
        let m = archive_entries(&output);
        for (name, row) in [("mixed/Abaeis_mexicana/0", 0), ("mixed/unlabeled/1", 1)] {
            let bytes = &m[&format!("{name}.{ext}")];
            assert_eq!(image::guess_format(bytes).unwrap(), expected, "row {row}");
            let img = image::load_from_memory(bytes).unwrap();
            assert_eq!((img.width(), img.height()), (8, 6));
        }
    }
    // Keep-bytes mode names the GIF and WebP by their magic bytes.
    let output = dir.path().join("keep.tar");
    let out = reconstruct(&input, &output, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let m = archive_entries(&output);
    assert!(
        m.contains_key("keep/Abaeis_mexicana/0.gif"),
        "{:?}",
        m.keys()
    );
    assert!(m.contains_key("keep/unlabeled/1.webp"), "{:?}", m.keys());
}
